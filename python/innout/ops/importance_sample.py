"""importance_sample: EG3D's fine depths drawn from the coarse weights (no gradient).

The maths is in cpp/include/innout/importance_sample.h, the specification in
:func:`innout.ops.reference.importance_sample`.
"""

from __future__ import annotations

import torch

from innout.ops import _native
from innout.ops._checks import check_same, check_shape, check_tensor
from innout.ops._uniforms import resolve_uniforms

_OP = "importance_sample"


def _check(depths: torch.Tensor, weights: torch.Tensor, uniforms: torch.Tensor) -> None:
    check_tensor(_OP, "depths", depths, "[B, R, K]", 3)
    check_tensor(_OP, "weights", weights, "[B, R, K-1]", 3)
    check_tensor(_OP, "uniforms", uniforms, "[B, R, N]", 3)
    batch, rays, samples = depths.shape
    if samples < 4:
        raise ValueError(
            f"{_OP}: needs K >= 4 coarse samples per ray (EG3D's pdf has K-3 bins), got K={samples}"
        )
    check_shape(_OP, "weights", weights, (batch, rays, samples - 1), "[B, R, K-1]")
    check_shape(_OP, "uniforms", uniforms, (batch, rays, uniforms.shape[-1]), "[B, R, N]")
    check_same(_OP, [("depths", depths), ("weights", weights), ("uniforms", uniforms)])


@torch.library.custom_op("innout::importance_sample", mutates_args=())
def _importance_sample(
    depths: torch.Tensor, weights: torch.Tensor, uniforms: torch.Tensor
) -> torch.Tensor:
    _check(depths, weights, uniforms)
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
    _check(depths, weights, uniforms)
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
        depths: [B, R, K] coarse depths, sorted (K >= 4).
        weights: [B, R, K-1] coarse weights (the marcher's weights output); not differentiated.
        num_importance: N, fine samples per ray.
        generator: the torch.Generator the uniforms are drawn from (float32, shape [B, R, N]).
        uniforms: [B, R, N] uniforms in [0, 1] to use instead of drawing (draw-for-draw matching).
        deterministic: use linspace(0, 1, N) for every ray (EG3D's det=True): flicker-free video.

    Returns:
        [B, R, N] fine depths, unsorted (merge them with the coarse depths and sort).
    """
    if num_importance < 0:
        raise ValueError(f"{_OP}: num_importance must be >= 0, got {num_importance}")
    check_tensor(_OP, "depths", depths, "[B, R, K]", 3)
    shape = (depths.shape[0], depths.shape[1], num_importance)
    spread = torch.linspace(0, 1, num_importance, dtype=depths.dtype, device=depths.device)
    u = resolve_uniforms(_OP, shape, depths, uniforms, generator, deterministic, spread)
    return _importance_sample(depths.detach(), weights.detach(), u.contiguous())
