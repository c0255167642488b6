"""The ops work inside torch.compile graphs (fake implementations, autograd registration)."""

from __future__ import annotations

import torch
from innout import ops
from innout.ops import reference


def render(planes, points, depths, density_out, blend):
    batch, rays, samples = depths.shape
    features = ops.triplane_sample(planes, points).reshape(batch, rays, samples, -1)
    density_in = features[..., 0]
    composite, depth, _ = ops.composite_march(
        depths, density_in, features.sigmoid(), density_out, features.sigmoid().flip(-1), blend
    )
    return composite.square().mean() + depth.mean()


def test_compiled_render_matches_eager_including_gradients():
    torch.manual_seed(0)
    batch, rays, samples, channels = 1, 32, 12, 8
    planes = torch.randn(1, 3, channels, 16, 16, requires_grad=True)
    depths = torch.sort(2.25 + torch.rand(batch, rays, samples), -1).values
    points = (torch.rand(batch, rays * samples, 3) - 0.5).requires_grad_()
    density_out = torch.randn(batch, rays, samples, requires_grad=True)
    blend = torch.rand(batch, rays, samples, requires_grad=True)
    inputs = (planes, points, depths, density_out, blend)

    eager = render(*inputs)
    eager_grads = torch.autograd.grad(eager, [planes, points, density_out, blend])
    compiled = torch.compile(render, backend="aot_eager", fullgraph=True)
    result = compiled(*inputs)
    grads = torch.autograd.grad(result, [planes, points, density_out, blend])
    torch.testing.assert_close(result, eager)
    for a, b in zip(grads, eager_grads):
        torch.testing.assert_close(a, b)


def test_reference_and_ops_agree_inside_the_compiled_function():
    planes = torch.randn(2, 3, 4, 8, 8)
    points = torch.rand(2, 50, 3) - 0.5
    compiled = torch.compile(ops.triplane_sample, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(planes, points), reference.triplane_sample(planes, points))
