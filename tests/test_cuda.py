"""CUDA backend at realistic sizes: every op, forward and backward, against the CPU backend and
the reference (skipped without a GPU; run by scripts/gpu_check.sh on a GPU machine)."""

from __future__ import annotations

import pytest
import torch
from conftest import CUDA_SKIP_REASON, cuda_usable
from innout import ops
from innout.ops import reference

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not cuda_usable(), reason=CUDA_SKIP_REASON)]


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def test_triplane_sample_large_matches_float64_reference():
    g = torch.Generator().manual_seed(0)
    planes = torch.randn(1, 3, 32, 256, 256, generator=g)
    points = torch.rand(2, 200_000, 3, generator=g) - 0.5
    upstream = torch.randn(2, 200_000, 32, generator=g)
    p64 = planes.double().requires_grad_()
    q64 = points.double().requires_grad_()
    expected = reference.triplane_sample(p64, q64)
    expected_grads = torch.autograd.grad(expected, [p64, q64], upstream.double())
    p = planes.cuda().requires_grad_()
    q = points.cuda().requires_grad_()
    out = ops.triplane_sample(p, q)  # shared planes, batch 2: atomics from both items
    grads = torch.autograd.grad(out, [p, q], upstream.cuda())
    assert relative_error(out.cpu(), expected) < 1e-6
    assert relative_error(grads[0].cpu(), expected_grads[0]) < 1e-5  # float32 atomics
    assert relative_error(grads[1].cpu(), expected_grads[1]) < 1e-5


@pytest.mark.parametrize("ood", [True, False])
def test_composite_march_large_matches_cpu_backend(ood):
    g = torch.Generator().manual_seed(1)
    shape = (1, 16384, 96)
    inputs = [
        torch.sort(2.25 + 1.05 * torch.rand(shape, generator=g), -1).values,
        5 * torch.randn(shape, generator=g),
        torch.rand(*shape, 32, generator=g),
    ]
    if ood:
        inputs += [
            5 * torch.randn(shape, generator=g),
            torch.rand(*shape, 32, generator=g),
            torch.rand(shape, generator=g),
        ]
    cpu = [t.clone().requires_grad_() for t in inputs]
    gpu = [t.cuda().requires_grad_() for t in inputs]
    out_cpu = ops.composite_march(*cpu)
    out_gpu = ops.composite_march(*gpu)
    upstream = [torch.randn(o.shape, generator=g) for o in out_cpu]
    grads_cpu = torch.autograd.grad(out_cpu, cpu, upstream)
    grads_gpu = torch.autograd.grad(out_gpu, gpu, [u.cuda() for u in upstream])
    for a, b in zip(out_gpu, out_cpu):
        assert relative_error(a.cpu(), b) < 1e-5
    for a, b in zip(grads_gpu, grads_cpu):
        assert relative_error(a.cpu(), b) < 1e-4


def test_samplers_match_cpu_backend():
    g = torch.Generator().manual_seed(2)
    depths = torch.sort(2.25 + 1.05 * torch.rand(2, 4096, 48, generator=g), -1).values
    weights = torch.rand(2, 4096, 47, generator=g)
    uniforms = torch.rand(2, 4096, 48, generator=g)
    cpu = ops.importance_sample(depths, weights, 48, uniforms=uniforms)
    gpu = ops.importance_sample(depths.cuda(), weights.cuda(), 48, uniforms=uniforms.cuda())
    assert relative_error(gpu.cpu(), cpu) < 1e-6
    near, far = torch.full((2, 4096), 2.25), torch.full((2, 4096), 3.3)
    strat_cpu = ops.stratified_sample(near, far, 48, uniforms=uniforms)
    strat_gpu = ops.stratified_sample(near.cuda(), far.cuda(), 48, uniforms=uniforms.cuda())
    assert relative_error(strat_gpu.cpu(), strat_cpu) < 1e-6


def test_ops_run_on_the_current_stream():
    planes = torch.randn(1, 3, 8, 32, 32, device="cuda")
    points = torch.rand(1, 5000, 3, device="cuda") - 0.5
    expected = ops.triplane_sample(planes, points)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        out = ops.triplane_sample(planes, points)
    torch.cuda.current_stream().wait_stream(stream)
    torch.testing.assert_close(out, expected)


def test_float64_on_cuda_matches_reference():
    g = torch.Generator().manual_seed(3)
    planes = torch.randn(2, 3, 4, 9, 11, generator=g, dtype=torch.float64).cuda().requires_grad_()
    points = (torch.rand(2, 300, 3, generator=g, dtype=torch.float64) - 0.5).cuda().requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: ops.triplane_sample(a, b), (planes, points))


def test_eg3d_generator_on_cuda_matches_cpu():
    from eg3d_small import small_generator
    from innout.eg3d import camera

    generator = small_generator(seed=1)
    cameras = camera.frontal_labels(2)
    z = torch.randn(2, generator.z_dim, generator=torch.Generator().manual_seed(0))
    ws = generator.mapping(z, cameras, 0.7)
    cpu = generator.render(ws, cameras, deterministic=True)
    gpu_generator = generator.cuda()
    gpu = gpu_generator.render(ws.cuda(), cameras.cuda(), deterministic=True)
    for key in ("image", "image_raw", "image_depth"):
        assert relative_error(gpu[key].cpu(), cpu[key]) < 1e-4, key
