"""importance_sample: EG3D's fine depths drawn from the coarse weights (no gradient).

The maths is in cpp/include/innout/importance_sample.h, the specification in
:func:`innout.ops.reference.importance_sample`.
"""

from __future__ import annotations

import torch

from innout.ops import _native
from innout.ops._checks import (
    check_count,
    check_importance_sample,
    check_pdf_weights,
    check_tensor,
    check_uniform_values,
)
from innout.ops._uniforms import resolve_uniforms

_OP = "importance_sample"


@torch.library.custom_op("innout::importance_sample", mutates_args=())
def _importance_sample(
    depths: torch.Tensor, weights: torch.Tensor, uniforms: torch.Tensor
) -> torch.Tensor:
    check_importance_sample(depths, weights, uniforms)
    check_pdf_weights(_OP, weights)
    batch, rays, samples = depths.shape
    out = depths.new_empty(batch, rays, uniforms.shape[-1])
    if out.numel() == 0:
        return out
    cdf = depths.new_empty(batch * rays, samples - 2)  # workspace: the library never allocates
    buffers = {
        "num_rays": batch * rays,
        "num_samples": samples,
        "num_importance": uniforms.shape[-1],
        "depths": depths.contiguous(),
        "weights": weights.contiguous(),
        "uniforms": uniforms.contiguous(),
        "cdf": cdf,
        "samples": out,
    }
    _native.call("importance_sample", depths.device, depths.dtype, buffers)
    return out


@_importance_sample.register_fake
def _(depths, weights, uniforms):
    check_importance_sample(depths, weights, uniforms)
    return depths.new_empty(depths.shape[0], depths.shape[1], uniforms.shape[-1])


def importance_sample(
    depths: torch.Tensor,
    weights: torch.Tensor,
    num_importance: int,
    *,
    generator: torch.Generator | None = None,
    uniforms: torch.Tensor | None = None,
    deterministic: bool = False,
) -> torch.Tensor:
    """EG3D's importance depths: inverse-CDF sampling of the smoothed coarse weights.

    Args:
        depths: [B, R, K] coarse depths, sorted (K >= 4). Sorting is not checked: other depths
            give the formulas' values, as the reference does.
        weights: [B, R, K-1] coarse weights (the marcher's weights output); not differentiated.
            Finite and >= 0, as a pdf's (ValueError otherwise, NaN included).
        num_importance: N >= 0, an int: fine samples per ray (0 gives [B, R, 0]).
        generator: the torch.Generator the uniforms are drawn from (float32, shape [B, R, N]).
        uniforms: [B, R, N] uniforms in [0, 1] to use instead of drawing (draw-for-draw matching);
            values outside [0, 1] (NaN included) are refused with a ValueError.
        deterministic: use linspace(0, 1, N) for every ray (EG3D's det=True): flicker-free video.

    Returns:
        [B, R, N] fine depths, unsorted (merge them with the coarse depths and sort).
    """
    check_count(_OP, "num_importance", num_importance, 0)
    check_tensor(_OP, "depths", depths, "[B, R, K]", 3)
    shape = (depths.shape[0], depths.shape[1], num_importance)
    spread = torch.linspace(0, 1, num_importance, dtype=depths.dtype, device=depths.device)
    u = resolve_uniforms(_OP, shape, depths, uniforms, generator, deterministic, spread)
    check_importance_sample(depths, weights, u)  # before .detach(), for a clear error
    if uniforms is not None:
        check_uniform_values(_OP, u)
    return _importance_sample(depths.detach(), weights.detach(), u.contiguous())
