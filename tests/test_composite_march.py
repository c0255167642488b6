"""composite_march / ray_march: outputs and every gradient against the reference, edge cases."""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICES, assert_close, grads_of
from innout import ops
from innout.ops import reference

NAMES = ["depths", "density_in", "features_in", "density_out", "features_out", "blend"]


def make_inputs(
    batch,
    rays,
    samples,
    channels,
    dtype,
    device,
    seed=0,
    ood=True,
    blend=None,
    density_scale=4.0,
    coincident=False,
):
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.rand(*shape, generator=g, dtype=dtype)

    depths = torch.sort(2.25 + 1.05 * rand(batch, rays, samples), dim=-1).values
    if coincident:  # repeated depths: zero-length intervals
        depths[..., 1::3] = depths[..., 0::3][..., : depths[..., 1::3].shape[-1]]
        depths = torch.sort(depths, dim=-1).values
    tensors = [
        depths,
        density_scale * torch.randn(batch, rays, samples, generator=g, dtype=dtype),
        rand(batch, rays, samples, channels),
    ]
    if ood:
        b = (
            rand(batch, rays, samples)
            if blend is None
            else torch.full((batch, rays, samples), blend, dtype=dtype)
        )
        tensors += [
            density_scale * torch.randn(batch, rays, samples, generator=g, dtype=dtype),
            rand(batch, rays, samples, channels),
            b,
        ]
    else:
        tensors += [None, None, None]
    return [t.to(device).requires_grad_() if t is not None else None for t in tensors]


def check_against_reference(inputs, name=""):
    out = ops.composite_march(*inputs)
    expected = reference.composite_march(*inputs)
    for label, a, b in zip(["composite", "depth", "weights"], out, expected):
        assert_close(a, b, f"{name} {label}")
    generator = torch.Generator().manual_seed(1)
    upstream = [torch.randn(o.shape, generator=generator, dtype=o.dtype).to(o.device) for o in out]
    grads = grads_of(out, inputs, upstream)
    ref_grads = grads_of(expected, inputs, upstream)
    for label, a, b in zip(NAMES, grads, ref_grads):
        if b is not None:
            # depth gradients sum over K intervals of terms of size ~|grad| * K: scale atol.
            assert_close(a, b, f"{name} grad_{label}", atol_scale=10.0)
    return out


SHAPES = [(1, 64, 96, 32), (2, 17, 12, 5), (3, 5, 2, 1), (1, 1, 48, 3)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("ood", [True, False])
def test_outputs_and_all_gradients_match_reference(device, dtype, shape, ood):
    check_against_reference(make_inputs(*shape, dtype, device, ood=ood), f"{shape} ood={ood}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("blend", [0.0, 1.0])
def test_constant_blend_edge_values(device, blend):
    check_against_reference(
        make_inputs(2, 9, 16, 4, torch.float64, device, blend=blend), f"b={blend}"
    )


@pytest.mark.parametrize("device", DEVICES)
def test_zero_blend_equals_eg3d_ray_march(device):
    inputs = make_inputs(2, 11, 20, 6, torch.float64, device, blend=0.0)
    composite = ops.composite_march(*inputs)
    marched = reference.ray_march(*inputs[:3])
    for a, b in zip(composite, marched):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ray_march_matches_reference(device, dtype):
    depths, density, features, *_ = make_inputs(2, 30, 24, 8, dtype, device, ood=False)
    out = ops.ray_march(depths, density, features)
    expected = reference.ray_march(depths, density, features)
    for label, a, b in zip(["composite", "depth", "weights"], out, expected):
        assert_close(a, b, label)
    upstream = [torch.randn_like(o) for o in out]
    for label, a, b in zip(
        NAMES,
        grads_of(out, [depths, density, features], upstream),
        grads_of(expected, [depths, density, features], upstream),
    ):
        assert_close(a, b, f"grad_{label}", atol_scale=10.0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("density_scale", [0.0, 1e3])
def test_zero_and_huge_densities(device, density_scale):
    # 0: every density is softplus(-1) (thin); 1e3: opaque intervals (T hits the 1e-10 floor),
    # where dividing cumulative products would give inf/NaN gradients.
    inputs = make_inputs(2, 8, 32, 4, torch.float64, device, density_scale=density_scale)
    out = check_against_reference(inputs, f"density x{density_scale}")
    assert all(torch.isfinite(o).all() for o in out)


@pytest.mark.parametrize("device", DEVICES)
def test_all_transparent_rays_clamp_depth_to_last_sample(device):
    inputs = make_inputs(1, 6, 10, 3, torch.float64, device)
    with torch.no_grad():
        for density in (inputs[1], inputs[3]):
            density.fill_(-1e4)  # softplus(-1e4 - 1) = 0: no weight anywhere, depth = 0/0
    out = check_against_reference(inputs, "transparent")
    assert torch.equal(out[1], inputs[0][..., -1].detach())


@pytest.mark.parametrize("device", DEVICES)
def test_coincident_depths(device):
    check_against_reference(
        make_inputs(2, 7, 15, 3, torch.float64, device, coincident=True), "coincident"
    )


@pytest.mark.parametrize("which", NAMES)
def test_each_gradient_alone(which):
    inputs = make_inputs(2, 5, 9, 3, torch.float64, "cpu")
    for name, tensor in zip(NAMES, inputs):
        tensor.requires_grad_(name == which)
    out = ops.composite_march(*inputs)
    expected_out = reference.composite_march(*inputs)
    # Only outputs that depend on the input (features do not move the depth or the weights).
    used = [i for i, o in enumerate(expected_out) if o.requires_grad]
    upstream = [torch.randn_like(out[i]) for i in used]
    target = inputs[NAMES.index(which)]
    (grad,) = torch.autograd.grad([out[i] for i in used], [target], upstream)
    (expected,) = torch.autograd.grad([expected_out[i] for i in used], [target], upstream)
    assert_close(grad, expected, f"grad_{which}", atol_scale=10.0)


@pytest.mark.parametrize("ood", [True, False])
def test_gradcheck_float64(ood):
    inputs = make_inputs(2, 3, 6, 2, torch.float64, "cpu", ood=ood)
    assert torch.autograd.gradcheck(lambda *x: ops.composite_march(*x), tuple(inputs))


@pytest.mark.parametrize("record", [True, False])
def test_opcheck(record):
    inputs = make_inputs(2, 4, 8, 3, torch.float32, "cpu")
    torch.library.opcheck(torch.ops.innout.composite_march.default, (*inputs, record))
    no_ood = make_inputs(2, 4, 8, 3, torch.float32, "cpu", ood=False)
    torch.library.opcheck(torch.ops.innout.composite_march.default, (*no_ood, record))


@pytest.mark.parametrize("device", DEVICES)
def test_backward_with_and_without_interval_record_agree_bitwise(device):
    # The record only caches sigma and the softplus slope; recomputing them must give the same bits.
    inputs = make_inputs(2, 13, 20, 5, torch.float32, device)
    results = []
    for record in (True, False):
        outputs = torch.ops.innout.composite_march(*inputs, record)[:3]
        upstream = [torch.ones_like(o) for o in outputs]
        results.append(torch.autograd.grad(outputs, inputs, upstream))
    for with_record, without in zip(*results):
        assert torch.equal(with_record, without)


def test_cpu_results_are_bitwise_reproducible_for_any_thread_count():
    inputs = make_inputs(2, 300, 48, 8, torch.float32, "cpu")
    threads = torch.get_num_threads()
    runs = []
    try:
        for count in (1, threads, max(threads, 3)):
            torch.set_num_threads(count)
            out = ops.composite_march(*inputs)
            upstream = [torch.ones_like(o) for o in out]
            runs.append((*out, *torch.autograd.grad(out, inputs, upstream)))
    finally:
        torch.set_num_threads(threads)
    for run in runs[1:]:
        for a, b in zip(runs[0], run):
            assert torch.equal(a, b)


def test_zero_rays():
    inputs = make_inputs(2, 0, 8, 3, torch.float32, "cpu")
    out = ops.composite_march(*inputs)
    assert [tuple(o.shape) for o in out] == [(2, 0, 3), (2, 0), (2, 0, 7)]
    grads = torch.autograd.grad(sum(o.sum() for o in out), inputs)
    assert all(g.numel() == 0 for g in grads)


def test_nan_density_propagates_to_its_ray_only():
    inputs = make_inputs(1, 4, 8, 3, torch.float32, "cpu")
    with torch.no_grad():
        inputs[1][0, 2, 3] = float("nan")
    composite, _, weights = ops.composite_march(*inputs)
    assert torch.isnan(composite[0, 2]).all()
    assert (
        torch.isfinite(composite[0, [0, 1, 3]]).all()
        and torch.isfinite(weights[0, [0, 1, 3]]).all()
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("ood", [True, False])
def test_unsorted_and_non_finite_depths_match_reference(device, ood):
    # Depths are not checked (a renderer sorts them): whatever they are, the outputs are the
    # reference's. Infinite intervals give infinite weights, whose composite depends on the order
    # of the sum (the reference's: interval by interval); a first depth above the last clamps the
    # depth to the last one, as torch.clamp does; a NaN bound makes it NaN.
    inf, nan = float("inf"), float("nan")
    rows = [
        [0.0, inf, 0.0, 1.0, 2.0],  # +inf and -inf intervals
        [3.0, 2.0, 1.0, 0.5, 0.0],  # reversed: the depth clamps to t_last < t_0
        [2.0, 2.5, 1.0, 0.2, 1.0],  # t_0 > t_last, weighted mean below both
        [0.5, 1.0, 1.5, 2.0, nan],  # NaN bound
        [-inf, 0.0, 0.0, 0.0, inf],  # -inf and +inf midpoints: NaN mean
        [0.5, 1.0, 1.5, 2.0, 2.5],  # ordinary
    ]
    depths = torch.tensor([rows], dtype=torch.float64, device=device)
    inputs = make_inputs(1, len(rows), 5, 3, torch.float64, device, seed=4, ood=ood)
    inputs = [t.detach() if t is not None else None for t in inputs]
    inputs[0] = depths
    inputs[1] = torch.full_like(depths, 12.0)  # dense: alpha near 1 where deltas are positive
    out = ops.composite_march(*inputs)
    expected = reference.composite_march(*inputs)
    for label, a, b in zip(["composite", "depth", "weights"], out, expected):
        assert_close(a, b, label)
    assert torch.isnan(out[1][0, 3])
    assert out[1][0, 2] == 1.0  # clamp(mean, 2.0, 1.0) = 1.0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("ood", [True, False])
def test_infinite_weights_sum_in_the_formulas_order(device, ood):
    # Weights 1 and -inf (an infinite then a negative interval): the reference sums
    # 1 * (0 + 0) / 2 + (-inf) * (0 + 1) / 2 = -inf; summing per sample instead would give
    # (1 - inf) / 2 * 0 = NaN for the middle colour.
    depths = torch.tensor([[[0.0, float("inf"), 0.0]]], device=device)
    density = torch.zeros(1, 1, 3, device=device)
    colours = torch.tensor([0.0, 0.0, 1.0], device=device).reshape(1, 1, 3, 1)
    ood_field = (density, colours, torch.full_like(density, 0.5)) if ood else ()
    composite, _, weights = ops.composite_march(depths, density, colours, *ood_field)
    expected = reference.composite_march(depths, density, colours, *ood_field)
    assert torch.isneginf(weights[0, 0, 1]) and torch.isneginf(expected[0]).all()
    assert torch.equal(composite, expected[0])


def test_meta_tensors_infer_shapes():
    depths = torch.empty(2, 100, 96, device="meta")
    features = torch.empty(2, 100, 96, 32, device="meta")
    out = ops.composite_march(depths, depths, features, depths, features, depths)
    assert [tuple(o.shape) for o in out] == [(2, 100, 32), (2, 100), (2, 100, 95)]
