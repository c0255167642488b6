"""triplane_sample: features of 3-D points in EG3D's tri-plane representation (a torch op).

The maths is in cpp/include/innout/triplane_sample.h, the specification in
:func:`innout.ops.reference.triplane_sample`.
"""

from __future__ import annotations

import torch

from innout.ops import _native
from innout.ops._checks import check_triplane_sample

#: The smallest positive float32 (a subnormal).
_FLOAT32_TINY = 2.0**-149


def _kernel_box_warp(box_warp: float, dtype: torch.dtype) -> float:
    """box_warp as the kernels get it (converted to the tensors' dtype).

    A positive box_warp that rounds to 0 in float32 (at most half the smallest subnormal) would
    reach the core as 0, which it refuses; the smallest subnormal gives the same scale
    2 / box_warp = inf as the reference's float32 arithmetic, so every valid box_warp runs.
    """
    if dtype == torch.float32 and box_warp <= _FLOAT32_TINY / 2:
        return _FLOAT32_TINY
    return box_warp


def _buffers(planes_last: torch.Tensor, points: torch.Tensor, box_warp: float) -> dict:
    plane_batch, _, height, width, channels = planes_last.shape
    return {
        "planes": planes_last,
        "plane_batch": plane_batch,
        "channels": channels,
        "height": height,
        "width": width,
        "points": points,
        "batch": points.shape[0],
        "num_points": points.shape[1],
        "box_warp": _kernel_box_warp(float(box_warp), points.dtype),
    }


def _channels_last(planes: torch.Tensor) -> torch.Tensor:
    # The kernels read the C channels of a texel contiguously: [B, 3, H, W, C].
    return planes.permute(0, 1, 3, 4, 2).contiguous()


@torch.library.custom_op("innout::triplane_sample", mutates_args=())
def _triplane_sample(planes: torch.Tensor, points: torch.Tensor, box_warp: float) -> torch.Tensor:
    check_triplane_sample(planes, points, box_warp)
    points = points.contiguous()
    features = _native.empty((points.shape[0], points.shape[1], planes.shape[2]), points)
    if features.numel() == 0:
        return features
    buffers = _buffers(_channels_last(planes), points, box_warp)
    buffers["features"] = features
    _native.call("triplane_sample_forward", points.device, points.dtype, buffers)
    return features


@_triplane_sample.register_fake
def _(planes: torch.Tensor, points: torch.Tensor, box_warp: float) -> torch.Tensor:
    check_triplane_sample(planes, points, box_warp)
    return points.new_empty(points.shape[0], points.shape[1], planes.shape[2])


@torch.library.custom_op("innout::triplane_sample_backward", mutates_args=())
def _triplane_sample_backward(
    grad_features: torch.Tensor,
    planes: torch.Tensor,
    points: torch.Tensor,
    box_warp: float,
    need_grad_planes: bool,
    need_grad_points: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    check_triplane_sample(planes, points, box_warp)
    points = points.contiguous()
    grad_features = grad_features.to(points.dtype).contiguous()
    planes_last = _channels_last(planes)
    grad_planes_last = (
        _native.empty(planes_last.shape, planes_last) if need_grad_planes else planes.new_empty(0)
    )
    grad_points = _native.empty(points.shape, points) if need_grad_points else points.new_empty(0)
    if points.numel() == 0:
        grad_planes_last.zero_()
    elif need_grad_planes or need_grad_points:
        buffers = _buffers(planes_last, points, box_warp)
        buffers.update(
            grad_features=grad_features, grad_planes=grad_planes_last, grad_points=grad_points
        )
        _native.call("triplane_sample_backward", points.device, points.dtype, buffers)
    grad_planes = (
        grad_planes_last.permute(0, 1, 4, 2, 3).contiguous()
        if need_grad_planes
        else grad_planes_last
    )
    return grad_planes, grad_points


@_triplane_sample_backward.register_fake
def _(grad_features, planes, points, box_warp, need_grad_planes, need_grad_points):
    grad_planes = torch.empty_like(planes) if need_grad_planes else planes.new_empty(0)
    grad_points = torch.empty_like(points) if need_grad_points else points.new_empty(0)
    return grad_planes, grad_points


def _setup_context(ctx, inputs, output) -> None:
    planes, points, box_warp = inputs
    ctx.save_for_backward(planes, points)
    ctx.box_warp = box_warp


def _backward(ctx, grad_features):
    planes, points = ctx.saved_tensors
    need_planes, need_points = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    grad_planes, grad_points = _triplane_sample_backward(
        grad_features, planes, points, ctx.box_warp, need_planes, need_points
    )
    return (grad_planes if need_planes else None, grad_points if need_points else None, None)


_triplane_sample.register_autograd(_backward, setup_context=_setup_context)


def triplane_sample(
    planes: torch.Tensor, points: torch.Tensor, box_warp: float = 1.0
) -> torch.Tensor:
    """Tri-plane features of points: the mean of three bilinear samples (EG3D, docs/method.md
    section 2).

    Args:
        planes: [B or 1, 3, C, H, W] float32/float64 tri-planes (a batch of 1 is shared).
        points: [B, M, 3] world coordinates, same dtype and device. Any values: a point whose
            grid coordinates are not finite (NaN, +-inf, or overflowing because box_warp is tiny)
            gets NaN features, and its gradients are NaN or 0 exactly where
            :func:`innout.ops.reference.triplane_sample`'s are.
        box_warp: side of the cube [-box_warp/2, box_warp/2]^3 the planes span (EG3D: 1); a real
            number, finite and > 0, also in the points' dtype (else ValueError).

    Returns:
        [B, M, C] features: mean over the planes (x, y), (x, z), (z, x) of grid_sample(bilinear,
        zero padding, align_corners=False). Differentiable with respect to planes and points.
    """
    # Checked before the dispatcher, which would only say "not a Tensor" or "not a float".
    box_warp = check_triplane_sample(planes, points, box_warp)
    return _triplane_sample(planes, points, box_warp)
