"""stratified_sample: EG3D's coarse depths, jittered within their interval (no gradient).

The maths is in cpp/include/innout/stratified_sample.h, the specification in
:func:`innout.ops.reference.stratified_sample`.
"""

from __future__ import annotations

import torch

from innout.ops import _native
from innout.ops._checks import (
    check_ray_bounds,
    check_stratified_sample,
    check_uniform_values,
)
from innout.ops._uniforms import resolve_uniforms

_OP = "stratified_sample"


@torch.library.custom_op("innout::stratified_sample", mutates_args=())
def _stratified_sample(
    near: torch.Tensor, far: torch.Tensor, num_samples: int, uniforms: torch.Tensor | None
) -> torch.Tensor:
    check_stratified_sample(near, far, num_samples, uniforms)
    check_ray_bounds(_OP, near, far)
    out = near.new_empty(near.shape[0], near.shape[1], num_samples)
    if out.numel() == 0:
        return out
    buffers = {
        "num_rays": near.numel(),
        "num_samples": num_samples,
        "near": near.contiguous(),
        "far": far.contiguous(),
        "uniforms": uniforms.contiguous() if uniforms is not None else None,
        "depths": out,
    }
    _native.call("stratified_sample", near.device, near.dtype, buffers)
    return out


@_stratified_sample.register_fake
def _(near, far, num_samples, uniforms):
    check_stratified_sample(near, far, num_samples, uniforms)
    return near.new_empty(near.shape[0], near.shape[1], num_samples)


def stratified_sample(
    near: torch.Tensor,
    far: torch.Tensor,
    num_samples: int,
    *,
    generator: torch.Generator | None = None,
    uniforms: torch.Tensor | None = None,
    deterministic: bool = False,
) -> torch.Tensor:
    """EG3D's stratified coarse depths ``t_k = near + (k + u_k) (far - near) / (K - 1)``.

    Args:
        near, far: [B, R] depth range of each ray (FFHQ models: 2.25 and 3.3): finite, with
            near <= far on every ray (ValueError otherwise).
        num_samples: K >= 2, an int.
        generator: the torch.Generator the jitter is drawn from (float32, shape [B, R, K]).
        uniforms: [B, R, K] jitter in [0, 1) to use instead of drawing; values outside [0, 1]
            (NaN included) are refused with a ValueError.
        deterministic: no jitter (u = 0): the evenly spaced depths, for flicker-free video.

    Returns:
        [B, R, K] depths (sorted; the last may pass `far` by up to one spacing, as in EG3D).
    """
    check_stratified_sample(near, far, num_samples, None)
    shape = (near.shape[0], near.shape[1], num_samples)
    u = resolve_uniforms(_OP, shape, near, uniforms, generator, deterministic, None)
    if uniforms is not None:
        check_uniform_values(_OP, u)
    return _stratified_sample(near.detach(), far.detach(), num_samples, u)
