"""triplane_sample: features of 3-D points in EG3D's tri-plane representation (a torch op).

The maths is in cpp/include/innout/triplane_sample.h, the specification in
:func:`innout.ops.reference.triplane_sample`.
"""

from __future__ import annotations

import torch

from innout.ops import _native
from innout.ops._checks import check_same, check_tensor

_OP = "triplane_sample"


def _check(planes: torch.Tensor, points: torch.Tensor, box_warp: float) -> None:
    check_tensor(_OP, "planes", planes, "[B or 1, 3, C, H, W]", 5)
    check_tensor(_OP, "points", points, "[B, M, 3]", 3)
    check_same(_OP, [("planes", planes), ("points", points)])
    if planes.shape[1] != 3:
        raise ValueError(
            f"{_OP}: planes must have 3 planes in dim 1, got shape {tuple(planes.shape)}"
        )
    if points.shape[2] != 3:
        raise ValueError(f"{_OP}: points must have shape [B, M, 3], got {tuple(points.shape)}")
    if planes.shape[0] not in (1, points.shape[0]):
        raise ValueError(
            f"{_OP}: planes batch must be 1 (shared) or the points batch {points.shape[0]}, "
            f"got {planes.shape[0]}"
        )
    if min(planes.shape[2:]) <= 0:
        raise ValueError(f"{_OP}: planes must have C, H, W > 0, got shape {tuple(planes.shape)}")
    if not box_warp > 0:
        raise ValueError(f"{_OP}: box_warp must be > 0, got {box_warp}")


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
        "box_warp": float(box_warp),
    }


def _channels_last(planes: torch.Tensor) -> torch.Tensor:
    # The kernels read the C channels of a texel contiguously: [B, 3, H, W, C].
    return planes.permute(0, 1, 3, 4, 2).contiguous()


@torch.library.custom_op("innout::triplane_sample", mutates_args=())
def _triplane_sample(planes: torch.Tensor, points: torch.Tensor, box_warp: float) -> torch.Tensor:
    _check(planes, points, box_warp)
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
    _check(planes, points, box_warp)
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
    _check(planes, points, box_warp)
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
        points: [B, M, 3] world coordinates, same dtype and device.
        box_warp: side of the cube [-box_warp/2, box_warp/2]^3 the planes span (EG3D: 1).

    Returns:
        [B, M, C] features: mean over the planes (x, y), (x, z), (z, x) of grid_sample(bilinear,
        zero padding, align_corners=False). Differentiable with respect to planes and points.
    """
    _check(planes, points, box_warp)  # before the dispatcher, which would only say "not a Tensor"
    return _triplane_sample(planes, points, float(box_warp))
