"""triplane_sample: forward and both gradients against the reference, edge cases, gradcheck."""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICES, assert_close, grads_of
from innout import ops
from innout.ops import reference


def make_inputs(
    batch, plane_batch, points, channels, height, width, dtype, device, seed=0, spread=1.3
):
    generator = torch.Generator().manual_seed(seed)
    planes = torch.randn(plane_batch, 3, channels, height, width, generator=generator, dtype=dtype)
    # spread > 1 puts some points outside the cube, where zero padding applies.
    coords = (torch.rand(batch, points, 3, generator=generator, dtype=dtype) - 0.5) * spread
    return planes.to(device).requires_grad_(), coords.to(device).requires_grad_()


SHAPES = [
    # batch, plane batch, points, channels, height, width
    (1, 1, 200, 32, 16, 16),
    (3, 3, 77, 5, 9, 13),  # non-square planes, odd sizes
    (4, 1, 50, 8, 12, 7),  # planes shared across the batch (In-N-Out's object tri-plane)
    (2, 2, 1, 1, 1, 1),  # 1x1 planes, one channel, one point
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("box_warp", [1.0, 0.7])
def test_forward_and_gradients_match_reference(device, dtype, shape, box_warp):
    planes, points = make_inputs(*shape, dtype=dtype, device=device)
    out = ops.triplane_sample(planes, points, box_warp)
    expected = reference.triplane_sample(planes, points, box_warp)
    assert_close(out, expected, "features")
    upstream = torch.randn_like(out)
    grad_planes, grad_points = grads_of(out, [planes, points], upstream)
    ref_planes, ref_points = grads_of(expected, [planes, points], upstream)
    assert_close(grad_planes, ref_planes, "grad_planes")
    # d/d points carries the factors W/2 and 2/box_warp of the unnormalisation: larger values.
    assert_close(grad_points, ref_points, "grad_points", atol_scale=10.0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("which", ["planes", "points"])
def test_only_requested_gradient_is_computed(device, which):
    planes, points = make_inputs(2, 2, 40, 4, 6, 5, torch.float64, device)
    planes.requires_grad_(which == "planes")
    points.requires_grad_(which == "points")
    out = ops.triplane_sample(planes, points)
    upstream = torch.randn_like(out)
    target = planes if which == "planes" else points
    (grad,) = torch.autograd.grad(out, [target], upstream)
    (expected,) = torch.autograd.grad(reference.triplane_sample(planes, points), [target], upstream)
    assert_close(grad, expected, f"grad_{which}")


@pytest.mark.parametrize("device", DEVICES)
def test_points_on_texel_centres_borders_and_outside(device):
    dtype = torch.float64
    height, width = 4, 6
    planes = torch.randn(1, 3, 3, height, width, dtype=dtype, device=device)
    # Coordinates in [-1, 1] grid units: -1 and 1 are the outer edges of the border texels,
    # (2 j + 1) / W - 1 are texel centres, |x| > 1 is outside (zero padding), far outside too.
    special = [-1.0, 1.0, -1.0 + 1.0 / width, 1.0 - 1.0 / width, 0.0, 1.2, -1.7, 40.0, -1e6]
    grid = torch.tensor(special, dtype=dtype)
    points = (
        torch.stack(torch.meshgrid(grid, grid, grid[:4], indexing="ij"), -1).reshape(1, -1, 3) / 2
    )
    points = points.to(device)
    assert_close(
        ops.triplane_sample(planes, points), reference.triplane_sample(planes, points), "features"
    )
    far = torch.tensor([[[1e6, -1e6, 1e6], [-1e30, 1e30, 0.0]]], dtype=dtype, device=device)
    assert torch.equal(
        ops.triplane_sample(planes, far), torch.zeros(1, 2, 3, dtype=dtype, device=device)
    )


NON_FINITE = [float("nan"), float("inf"), -float("inf")]


def non_finite_points(dtype, device, box_warp):
    """Every mix of in-cube, NaN and +-inf coordinates, plus coordinates around the overflow of
    grid_sample's unnormalisation (g + 1) * (size / 2): for the 4-texel-wide planes of the tests,
    g = 1.6e38 stays finite in float32 and g = 1.8e38 overflows."""
    inside = [0.1 * box_warp, -0.3 * box_warp]
    huge = [1.6e38 * box_warp / 2, 1.8e38 * box_warp / 2, -1.8e38 * box_warp / 2]
    values = torch.tensor(inside + NON_FINITE + huge, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(values, values, values, indexing="ij"), -1).reshape(1, -1, 3)
    return grid.to(dtype=dtype, device=device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("box_warp", [1.0, 2.0, 1e-45, 1e-300])
def test_non_finite_and_overflowing_points_match_reference(device, dtype, box_warp):
    # NaN, +-inf and coordinates that overflow (huge points, or a tiny box_warp) give exactly the
    # reference's features and gradients: NaN where it is NaN, the same values elsewhere.
    g = torch.Generator().manual_seed(3)
    planes = torch.randn(2, 3, 5, 3, 4, generator=g, dtype=dtype).to(device).requires_grad_()
    points = non_finite_points(dtype, device, box_warp).expand(2, -1, -1).contiguous()
    points.requires_grad_()
    out = ops.triplane_sample(planes, points, box_warp)
    expected = reference.triplane_sample(planes, points, box_warp)
    assert_close(out, expected, "features")
    assert out.isnan().any()
    if box_warp >= 1.0:  # the in-cube points have finite features
        assert torch.isfinite(out[:, 0]).all()
    upstream = torch.randn(out.shape, generator=g, dtype=dtype).to(device)
    grads = torch.autograd.grad(out, [planes, points], upstream)
    expected_grads = torch.autograd.grad(expected, [planes, points], upstream)
    assert_close(grads[0], expected_grads[0], "grad_planes")
    assert_close(grads[1], expected_grads[1], "grad_points", atol_scale=10.0)
    assert torch.isfinite(grads[0]).all()  # a non-finite point touches no texel


@pytest.mark.parametrize("device", DEVICES)
def test_nan_points_do_not_affect_the_others(device):
    planes, points = make_inputs(1, 1, 5, 4, 6, 6, torch.float32, device)
    points = points.detach().clone()
    points[0, 2, 1] = float("nan")
    points.requires_grad_()
    out = ops.triplane_sample(planes, points)
    assert torch.isnan(out[0, 2]).all()
    assert torch.isfinite(out[0, [0, 1, 3, 4]]).all()
    grad_planes, grad_points = torch.autograd.grad(out.sum(), [planes, points])
    expected = torch.autograd.grad(reference.triplane_sample(planes, points).sum(), [points])[0]
    assert_close(grad_points, expected, "grad_points", atol_scale=10.0)
    assert torch.isnan(grad_points[0, 2, 0])  # x pairs with the NaN y on plane (x, y)
    assert torch.isfinite(grad_points[0, [0, 1, 3, 4]]).all()
    assert torch.isfinite(grad_planes).all()


@pytest.mark.parametrize("box_warp", [0.9, 0.05, 40.0])
def test_gradcheck_float64(box_warp):
    # The 2 / box_warp scaling is applied last in the point gradient: small and large box_warps
    # check that the chain rule still holds.
    planes, points = make_inputs(2, 1, 6, 3, 5, 4, torch.float64, "cpu", spread=1.1)
    points = (points.detach() * box_warp).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda pl, pt: ops.triplane_sample(pl, pt, box_warp), (planes, points)
    )


def test_opcheck():
    planes, points = make_inputs(2, 2, 10, 3, 5, 4, torch.float32, "cpu")
    torch.library.opcheck(torch.ops.innout.triplane_sample.default, (planes, points, 1.0))


def test_cpu_results_are_bitwise_reproducible_for_any_thread_count():
    planes, points = make_inputs(2, 1, 3000, 16, 32, 32, torch.float32, "cpu")
    upstream = torch.randn(2, 3000, 16)
    runs = []
    threads = torch.get_num_threads()
    try:
        for count in (1, threads, 1, max(threads, 3)):
            torch.set_num_threads(count)
            out = ops.triplane_sample(planes, points)
            runs.append((out, *torch.autograd.grad(out, [planes, points], upstream)))
    finally:
        torch.set_num_threads(threads)
    for run in runs[1:]:
        for a, b in zip(runs[0], run):
            assert torch.equal(a, b)


def test_non_contiguous_inputs_give_the_same_result():
    planes, points = make_inputs(2, 2, 30, 4, 8, 8, torch.float64, "cpu")
    planes_t = planes.detach().transpose(3, 4).contiguous().transpose(3, 4)
    points_t = points.detach().transpose(1, 2).contiguous().transpose(1, 2)
    assert not planes_t.is_contiguous() and not points_t.is_contiguous()
    assert torch.equal(ops.triplane_sample(planes_t, points_t), ops.triplane_sample(planes, points))


def test_empty_point_set_gives_empty_features_and_zero_plane_gradient():
    planes = torch.randn(1, 3, 4, 5, 5, requires_grad=True)
    points = torch.zeros(1, 0, 3, requires_grad=True)
    out = ops.triplane_sample(planes, points)
    assert out.shape == (1, 0, 4)
    (grad,) = torch.autograd.grad(out.sum(), [planes])
    assert torch.equal(grad, torch.zeros_like(planes))


def test_meta_tensors_infer_shapes():
    planes = torch.empty(1, 3, 32, 256, 256, device="meta")
    points = torch.empty(4, 1000, 3, device="meta")
    assert ops.triplane_sample(planes, points).shape == (4, 1000, 32)
