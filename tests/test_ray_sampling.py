"""importance_sample and stratified_sample against EG3D's formulas (the reference)."""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICES, assert_close
from innout import ops
from innout.ops import reference


def coarse_pass(batch, rays, samples, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    depths = torch.sort(
        2.25 + 1.05 * torch.rand(batch, rays, samples, generator=g, dtype=dtype), -1
    ).values
    density = 5 * torch.randn(batch, rays, samples, generator=g, dtype=dtype)
    features = torch.rand(batch, rays, samples, 3, generator=g, dtype=dtype)
    weights = reference.ray_march(depths, density, features)[2]
    return depths.to(device), weights.to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1, 50, 48, 48), (2, 7, 4, 5), (3, 9, 13, 1)])
def test_importance_sample_matches_reference(device, dtype, shape):
    batch, rays, samples, fine = shape
    depths, weights = coarse_pass(batch, rays, samples, dtype, device)
    uniforms = torch.rand(batch, rays, fine, dtype=dtype).to(device)
    out = ops.importance_sample(depths, weights, fine, uniforms=uniforms)
    assert_close(
        out,
        reference.importance_sample(depths, weights, uniforms.shape[-1], uniforms=uniforms),
        "samples",
    )


@pytest.mark.parametrize("device", DEVICES)
def test_importance_sample_edge_uniforms_and_weights(device):
    depths, weights = coarse_pass(2, 6, 10, torch.float64, device)
    weights[0] = 0.0  # no weight at all: a uniform pdf
    weights[1, :, 4] = 1e6  # one dominant interval
    uniforms = torch.tensor([0.0, 1e-9, 0.5, 1 - 1e-9, 1.0], dtype=torch.float64, device=device)
    uniforms = uniforms.expand(2, 6, 5).contiguous()
    out = ops.importance_sample(depths, weights, 5, uniforms=uniforms)
    assert_close(
        out,
        reference.importance_sample(depths, weights, uniforms.shape[-1], uniforms=uniforms),
        "samples",
    )


def test_importance_samples_stay_within_the_used_bins():
    depths, weights = coarse_pass(1, 40, 24, torch.float32, "cpu")
    out = ops.importance_sample(depths, weights, 64, generator=torch.Generator().manual_seed(3))
    mids = (depths[..., :-1] + depths[..., 1:]) / 2
    # EG3D's sample_pdf uses the first K-2 midpoints as bin edges.
    assert (out >= mids[..., :1] - 1e-6).all() and (out <= mids[..., -2:-1] + 1e-6).all()


def test_importance_sample_generator_matches_eg3d_draws():
    depths, weights = coarse_pass(2, 5, 12, torch.float32, "cpu")
    out = ops.importance_sample(depths, weights, 7, generator=torch.Generator().manual_seed(11))
    # EG3D draws torch.rand(rays, N) from the global generator in the same order.
    uniforms = torch.rand(2 * 5, 7, generator=torch.Generator().manual_seed(11)).reshape(2, 5, 7)
    assert torch.equal(out, ops.importance_sample(depths, weights, 7, uniforms=uniforms))
    again = ops.importance_sample(depths, weights, 7, generator=torch.Generator().manual_seed(11))
    assert torch.equal(out, again)


def test_deterministic_importance_sample_uses_linspace():
    depths, weights = coarse_pass(1, 8, 16, torch.float64, "cpu")
    out = ops.importance_sample(depths, weights, 9, deterministic=True)
    uniforms = torch.linspace(0, 1, 9, dtype=torch.float64).expand(1, 8, 9)
    assert_close(
        out,
        reference.importance_sample(depths, weights, uniforms.shape[-1], uniforms=uniforms),
        "samples",
    )
    assert torch.equal(out, ops.importance_sample(depths, weights, 9, deterministic=True))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stratified_sample_matches_reference(device, dtype):
    g = torch.Generator().manual_seed(0)
    near = (2.0 + torch.rand(3, 20, generator=g, dtype=dtype)).to(device)
    far = near + 1.05
    uniforms = torch.rand(3, 20, 48, generator=g, dtype=dtype).to(device)
    out = ops.stratified_sample(near, far, 48, uniforms=uniforms)
    assert_close(out, reference.stratified_sample(near, far, 48, uniforms=uniforms), "depths")
    plain = ops.stratified_sample(near, far, 48, deterministic=True)
    assert_close(plain, reference.stratified_sample(near, far, 48, deterministic=True), "depths")
    assert (torch.diff(out, dim=-1) >= 0).all()


@pytest.mark.parametrize("backend", ops.BACKENDS)
def test_stratified_sample_ranges(backend):
    # An empty range (near == far) is a valid ray: every depth is near. near > far, a non-finite
    # bound or a range that overflows is refused, naming the argument.
    kernels = ops.backend(backend)
    near = torch.tensor([[2.0, 1e30, -5.0]])
    out = kernels.stratified_sample(near, near.clone(), 6, deterministic=True)
    assert torch.equal(out, near.unsqueeze(-1).expand(1, 3, 6))
    bad = [
        (torch.tensor([[2.0, 3.0]]), torch.tensor([[2.5, 2.9]]), "near must be <= far"),
        (torch.tensor([[2.0, float("nan")]]), torch.full((1, 2), 3.0), "near must be finite"),
        (torch.full((1, 2), 2.0), torch.tensor([[3.0, float("inf")]]), "far must be finite"),
        (torch.full((1, 2), -3e38), torch.full((1, 2), 3e38), "must be finite in"),
        (torch.full((1, 2), -3e38), torch.zeros(1, 2), "must be finite in"),
    ]
    for near, far, message in bad:
        with pytest.raises(ValueError, match=message):
            kernels.stratified_sample(near, far, 6, deterministic=True)


@pytest.mark.parametrize("backend", ops.BACKENDS)
@pytest.mark.parametrize("op", ["stratified_sample", "importance_sample"])
def test_given_uniforms_must_lie_in_the_unit_interval(backend, op):
    kernels = ops.backend(backend)
    depths, weights = coarse_pass(1, 3, 8, torch.float32, "cpu")
    near, far = depths[..., 0], depths[..., -1]

    def call(uniforms):
        if op == "stratified_sample":
            return kernels.stratified_sample(near, far, 4, uniforms=uniforms)
        return kernels.importance_sample(depths, weights, 4, uniforms=uniforms)

    assert call(torch.tensor([0.0, 0.3, 0.999, 1.0]).expand(1, 3, 4)).shape == (1, 3, 4)
    for value in (-1e-6, 1.5, float("nan"), float("inf")):
        uniforms = torch.full((1, 3, 4), 0.5)
        uniforms[0, 1, 2] = value
        with pytest.raises(ValueError, match=r"uniforms must lie in \[0, 1\]"):
            call(uniforms)


@pytest.mark.parametrize("backend", ops.BACKENDS)
def test_importance_sample_weights_must_be_a_pdf(backend):
    kernels = ops.backend(backend)
    depths, weights = coarse_pass(1, 4, 8, torch.float32, "cpu")
    zero = kernels.importance_sample(depths, torch.zeros_like(weights), 5, deterministic=True)
    assert torch.isfinite(zero).all()  # no weight at all: EG3D's bias gives a uniform pdf
    for value in (-1e-3, -float("inf"), float("inf"), float("nan")):
        bad = weights.clone()
        bad[0, 2, 3] = value
        with pytest.raises(ValueError, match=r"weights must be in \[0, 1e\+06\]"):
            kernels.importance_sample(depths, bad, 5, deterministic=True)


def test_importance_sample_without_rays_or_samples():
    depths, weights = coarse_pass(2, 3, 8, torch.float64, "cpu")
    for kernels in (ops, reference):
        generator = torch.Generator().manual_seed(0)
        out = kernels.importance_sample(depths[:, :0], weights[:, :0], 4, generator=generator)
        assert out.shape == (2, 0, 4)
        assert kernels.importance_sample(depths, weights, 0, deterministic=True).shape == (2, 3, 0)


def test_stratified_sample_is_seeded_by_its_generator():
    near, far = torch.full((1, 30), 2.25), torch.full((1, 30), 3.3)
    a = ops.stratified_sample(near, far, 48, generator=torch.Generator().manual_seed(5))
    b = ops.stratified_sample(near, far, 48, generator=torch.Generator().manual_seed(5))
    c = ops.stratified_sample(near, far, 48, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    spacing = (3.3 - 2.25) / 47
    offsets = (a - ops.stratified_sample(near, far, 48, deterministic=True)) / spacing
    assert (offsets >= -1e-5).all() and (offsets <= 1 + 1e-5).all()


def test_opcheck():
    depths, weights = coarse_pass(2, 5, 12, torch.float32, "cpu")
    uniforms = torch.rand(2, 5, 6)
    torch.library.opcheck(torch.ops.innout.importance_sample.default, (depths, weights, uniforms))
    near, far = torch.full((2, 5), 2.0), torch.full((2, 5), 3.0)
    torch.library.opcheck(
        torch.ops.innout.stratified_sample.default, (near, far, 8, torch.rand(2, 5, 8))
    )
    torch.library.opcheck(torch.ops.innout.stratified_sample.default, (near, far, 8, None))
