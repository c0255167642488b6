"""Input validation shared by innout's ops and their references: every message names the argument,
what was expected and what came.

Two kinds of checks live here. Structural ones (types, ranks, shapes, dtypes, devices, counts and
scalar parameters) read no tensor data, so they also run on fake and meta tensors and inside
torch.compile graphs. Value checks (a blend weight in [0, 1], finite ray bounds, a pdf's weights)
reduce a tensor once per call and read one small result on the host; they run where real data is:
in the ops' eager kernels and in the references, never in the fake implementations.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

FLOAT_DTYPES = (torch.float32, torch.float64)


def check_tensor(op: str, name: str, tensor: object, expected: str, ndim: int) -> torch.Tensor:
    """Checks that `tensor` is a float32/float64 tensor of rank `ndim` (`expected`: shape text)."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a tensor {expected}, got {type(tensor).__name__}")
    if tensor.dim() != ndim:
        raise ValueError(f"{op}: {name} must have shape {expected}, got {tuple(tensor.shape)}")
    if tensor.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: {name} must be float32 or float64, got {tensor.dtype}")
    return tensor


def check_same(op: str, tensors: Sequence[tuple[str, torch.Tensor]]) -> None:
    """All tensors share the first one's dtype and device."""
    first_name, first = tensors[0]
    for name, tensor in tensors[1:]:
        if tensor.dtype != first.dtype:
            raise TypeError(
                f"{op}: {name} has dtype {tensor.dtype} but {first_name} has {first.dtype}; "
                "all inputs must share one dtype"
            )
        if tensor.device != first.device:
            raise ValueError(
                f"{op}: {name} is on {tensor.device} but {first_name} is on {first.device}; "
                "all inputs must be on one device"
            )


def check_shape(op: str, name: str, tensor: torch.Tensor, shape: Sequence[int], text: str) -> None:
    """`tensor` has exactly `shape`; `text` spells the expected shape symbolically."""
    if tuple(tensor.shape) != tuple(shape):
        raise ValueError(
            f"{op}: {name} must have shape {text} = {tuple(shape)}, got {tuple(tensor.shape)}"
        )


def check_count(op: str, name: str, value: object, minimum: int) -> int:
    """`value` is an int (a bool would silently count as 0 or 1) of at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{op}: {name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value}")
    return int(value)


def check_box_warp(op: str, box_warp: object, dtype: torch.dtype) -> float:
    """box_warp is a real number, finite and > 0, and stays finite in the points' `dtype`.

    A float32 op computes in float32, where a box_warp above float32's largest value would be
    infinite (the planes would span an infinite cube): refused like inf itself. A tiny box_warp is
    valid - coordinates then overflow to +-inf and features are NaN, as in the reference.
    """
    if isinstance(box_warp, bool) or not isinstance(box_warp, numbers.Real):
        raise TypeError(f"{op}: box_warp must be a real number, got {type(box_warp).__name__}")
    value = float(box_warp)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{op}: box_warp must be finite and > 0, got {value}")
    largest = torch.finfo(dtype).max if dtype in FLOAT_DTYPES else math.inf
    if value > largest:
        raise ValueError(
            f"{op}: box_warp must be finite and > 0 in {dtype} (at most {largest}), got {value}"
        )
    return value


def check_triplane_sample(planes: object, points: object, box_warp: object) -> float:
    """Structure of triplane_sample's inputs; returns box_warp as a float."""
    op = "triplane_sample"
    check_tensor(op, "planes", planes, "[B or 1, 3, C, H, W]", 5)
    check_tensor(op, "points", points, "[B, M, 3]", 3)
    check_same(op, [("planes", planes), ("points", points)])
    if planes.shape[1] != 3:
        raise ValueError(
            f"{op}: planes must have 3 planes in dim 1, got shape {tuple(planes.shape)}"
        )
    if points.shape[2] != 3:
        raise ValueError(f"{op}: points must have shape [B, M, 3], got {tuple(points.shape)}")
    if planes.shape[0] not in (1, points.shape[0]):
        raise ValueError(
            f"{op}: planes batch must be 1 (shared) or the points batch {points.shape[0]}, "
            f"got {planes.shape[0]}"
        )
    if min(planes.shape[2:]) <= 0:
        raise ValueError(f"{op}: planes must have C, H, W > 0, got shape {tuple(planes.shape)}")
    return check_box_warp(op, box_warp, points.dtype)


def check_composite_march(
    depths: object,
    density_in: object,
    features_in: object,
    density_out: object,
    features_out: object,
    blend: object,
) -> None:
    """Structure of composite_march's inputs (blend's values: :func:`check_blend_values`)."""
    op = "composite_march"
    check_tensor(op, "depths", depths, "[B, R, K]", 3)
    batch, rays, samples = depths.shape
    check_tensor(op, "density_in", density_in, "[B, R, K]", 3)
    check_tensor(op, "features_in", features_in, "[B, R, K, C]", 4)
    check_shape(op, "density_in", density_in, depths.shape, "[B, R, K]")
    channels = features_in.shape[-1]
    check_shape(op, "features_in", features_in, (batch, rays, samples, channels), "[B, R, K, C]")
    tensors = [("depths", depths), ("density_in", density_in), ("features_in", features_in)]
    given = [density_out is not None, features_out is not None, blend is not None]
    if any(given) and not all(given):
        raise ValueError(
            f"{op}: density_out, features_out and blend must be given together (OOD field) or "
            f"all be None (EG3D marcher); got density_out={given[0]}, features_out={given[1]}, "
            f"blend={given[2]}"
        )
    if all(given):
        check_tensor(op, "density_out", density_out, "[B, R, K]", 3)
        check_tensor(op, "features_out", features_out, "[B, R, K, C]", 4)
        check_tensor(op, "blend", blend, "[B, R, K]", 3)
        check_shape(op, "density_out", density_out, depths.shape, "[B, R, K]")
        check_shape(op, "features_out", features_out, features_in.shape, "[B, R, K, C]")
        check_shape(op, "blend", blend, depths.shape, "[B, R, K]")
        tensors += [("density_out", density_out), ("features_out", features_out), ("blend", blend)]
    check_same(op, tensors)
    if samples < 2:
        raise ValueError(
            f"{op}: depths must have at least 2 samples per ray (K >= 2), got K={samples}"
        )
    if channels < 1:
        raise ValueError(f"{op}: features_in must have at least 1 channel, got C={channels}")


def check_stratified_sample(
    near: object, far: object, num_samples: object, uniforms: object
) -> None:
    """Structure of stratified_sample's inputs (near/far values: :func:`check_ray_bounds`)."""
    op = "stratified_sample"
    check_tensor(op, "near", near, "[B, R]", 2)
    check_tensor(op, "far", far, "[B, R]", 2)
    check_shape(op, "far", far, near.shape, "[B, R] like near")
    if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral):
        raise TypeError(f"{op}: num_samples must be an int, got {type(num_samples).__name__}")
    if num_samples < 2:
        raise ValueError(f"{op}: needs at least 2 samples per ray, got num_samples={num_samples}")
    tensors = [("near", near), ("far", far)]
    if uniforms is not None:
        check_tensor(op, "uniforms", uniforms, "[B, R, K]", 3)
        check_shape(op, "uniforms", uniforms, (*near.shape, num_samples), "[B, R, K]")
        tensors.append(("uniforms", uniforms))
    check_same(op, tensors)


def check_importance_sample(depths: object, weights: object, uniforms: object) -> None:
    """Structure of importance_sample's inputs (weights' values: :func:`check_pdf_weights`)."""
    op = "importance_sample"
    check_tensor(op, "depths", depths, "[B, R, K]", 3)
    check_tensor(op, "weights", weights, "[B, R, K-1]", 3)
    check_tensor(op, "uniforms", uniforms, "[B, R, N]", 3)
    batch, rays, samples = depths.shape
    if samples < 4:
        raise ValueError(
            f"{op}: depths must have K >= 4 coarse samples per ray (EG3D's pdf has K-3 bins), "
            f"got K={samples}"
        )
    check_shape(op, "weights", weights, (batch, rays, samples - 1), "[B, R, K-1]")
    check_shape(op, "uniforms", uniforms, (batch, rays, uniforms.shape[-1]), "[B, R, N]")
    check_same(op, [("depths", depths), ("weights", weights), ("uniforms", uniforms)])


def _has_data(tensor: torch.Tensor) -> bool:
    # Meta tensors carry shapes only; an empty tensor has no value to be out of range.
    return tensor.numel() > 0 and tensor.device.type != "meta"


def _min_max(tensor: torch.Tensor) -> tuple[float, float]:
    """min and max of `tensor` (NaN if it holds a NaN) from one pass and one device-to-host copy."""
    low, high = torch.aminmax(tensor.detach())
    low, high = torch.stack([low, high]).tolist()
    return low, high


def check_blend_values(op: str, blend: torch.Tensor) -> None:
    """Every blend weight b (the OOD field's share of a sample) lies in [0, 1].

    Outside it, b or 1 - b is negative, and so is that field's share of an interval's opacity:
    weights turn negative and the transmittance can grow past 1 (the composite then strays far
    from [-1, 1]), so such a blend is refused rather than rendered.
    """
    _check_unit_interval(op, "blend", blend)


def check_ray_bounds(op: str, near: torch.Tensor, far: torch.Tensor) -> None:
    """near and far are finite on every ray, near <= far, and the depths stay finite.

    The samples reach up to one spacing past far, and a sampler computes near plus up to twice
    far - near; |near| + 2 (far - near) must therefore be finite too (a range that overflows would
    make depths inf or NaN, in an order-dependent way). All from two reductions over [B, R]: far -
    near is >= 0 exactly where near <= far (a difference of distinct floats is never 0), and the
    reach is finite only where near and far are.
    """
    if not _has_data(near):
        return
    near, far = near.detach(), far.detach()
    span = far - near
    reach = torch.add(near.abs(), span, alpha=2)  # |near| + 2 span in one kernel
    low, high = torch.stack([span.min(), reach.max()]).tolist()
    if low >= 0.0 and high <= torch.finfo(near.dtype).max:
        return
    for name, tensor in (("near", near), ("far", far)):
        bad = ~torch.isfinite(tensor)
        if bad.any():
            where = tuple(torch.nonzero(bad)[0].tolist())
            raise ValueError(
                f"{op}: {name} must be finite on every ray, got {tensor[where].item()} at ray "
                f"{where}"
            )
    if (near > far).any():
        bad, rule = near > far, "near must be <= far"
    else:
        bad = ~torch.isfinite(reach)
        rule = f"|near| + 2 (far - near) must be finite in {near.dtype} (the depths' reach)"
    where = tuple(torch.nonzero(bad)[0].tolist())
    raise ValueError(
        f"{op}: {rule} on every ray, got near={near[where].item()}, far={far[where].item()} at "
        f"ray {where}"
    )


#: The largest weight importance sampling accepts. Compositing weights are at most 4/3 (two
#: dense fields); far above, EG3D's smoothing constants (+0.01, +1e-5) vanish in float32 rounding
#: and the samples would depend on the order in which the cdf is summed.
MAX_PDF_WEIGHT = 1e6


def check_pdf_weights(op: str, weights: torch.Tensor) -> None:
    """The weights importance sampling draws from are in [0, MAX_PDF_WEIGHT] (a pdf up to scale).

    composite_march's weights always are; negative or non-finite ones make the cdf decrease or
    NaN, where inverse-cdf sampling has no meaning.
    """
    if not _has_data(weights):
        return
    low, high = _min_max(weights)
    if not (low >= 0.0 and high <= MAX_PDF_WEIGHT):
        got = "a NaN" if math.isnan(low) else f"values in [{low}, {high}]"
        raise ValueError(f"{op}: weights must be in [0, {MAX_PDF_WEIGHT:g}], got {got}")


def check_uniform_values(op: str, uniforms: torch.Tensor) -> None:
    """Uniforms a caller passes (instead of a generator's draws) lie in [0, 1].

    They place samples within their interval or bin; outside [0, 1] the samplers would extrapolate,
    and +-inf or NaN give depths that depend on how the formula is ordered. Checked only for
    uniforms given explicitly: drawn ones are in [0, 1) by construction.
    """
    _check_unit_interval(op, "uniforms", uniforms)


def _check_unit_interval(op: str, name: str, values: torch.Tensor) -> None:
    """Every value of `values` lies in [0, 1] (ValueError naming the range found otherwise)."""
    if not _has_data(values):
        return
    low, high = _min_max(values)
    if not (low >= 0.0 and high <= 1.0):
        got = "a NaN" if math.isnan(low) else f"values in [{low}, {high}]"
        raise ValueError(f"{op}: {name} must lie in [0, 1] everywhere, got {got}")
