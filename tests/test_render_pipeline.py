"""The one ray pipeline (innout.render): it computes the sampling recipe written out step by step,
EG3D's renderer is its face-only case, and the op backends are one lookup with one signature."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from conftest import assert_close
from innout import ops
from innout.eg3d import camera
from innout.eg3d.renderer import render_rays as render_eg3d
from innout.eg3d.renderer import triplane_field
from innout.invert.composite import render_composite
from innout.invert.object_field import ObjectField
from innout.render import RenderSettings, RenderUniforms, draw_uniforms, render_rays

OP_NAMES = ("triplane_sample", "composite_march", "ray_march", "stratified_sample",
            "importance_sample")  # fmt: skip


class LinearDecoder(torch.nn.Module):
    """A small decoder with EG3D's output contract (raw sigma, padded-sigmoid features)."""

    def __init__(self, channels: int, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        weight = torch.randn(channels, channels + 1, generator=generator, dtype=torch.float64)
        self.weight = torch.nn.Parameter(weight)

    def forward(self, features: torch.Tensor) -> dict:
        out = features @ self.weight
        return {"sigma": 5 * out[..., :1], "rgb": torch.sigmoid(out[..., 1:]) * 1.002 - 0.001}


def scene(channels: int = 32):
    generator = torch.Generator().manual_seed(0)
    planes = torch.randn(2, 3, channels, 16, 16, generator=generator, dtype=torch.float64)
    yaw = torch.tensor([math.pi / 2, math.pi / 2 + 0.3])
    labels = camera.camera_labels(
        camera.look_at_cam2world(yaw, math.pi / 2), camera.intrinsics(camera.FFHQ_FOCAL)
    )
    origins, directions = camera.pixel_rays(labels, 5)
    return planes.requires_grad_(), origins.double(), directions.double()


def object_field() -> ObjectField:
    field = ObjectField(frames=3, plane_resolution=8, generator=torch.Generator().manual_seed(1))
    return field.double()


def recipe(face, obj, origins, directions, settings, uniforms, kernels):
    """The pipeline's sampling recipe, written out step by step for one chunk (the spec)."""
    batch, rays, _ = origins.shape

    def at(field, depths):
        k = depths.shape[-1]
        points = origins[:, :, None] + depths[..., None] * directions[:, :, None]
        out = field(points.reshape(batch, rays * k, 3), kernels)
        blend = None if out.blend is None else out.blend.reshape(batch, rays, k)
        return out.density.reshape(batch, rays, k), out.features.reshape(batch, rays, k, -1), blend

    near = torch.full((batch, rays), settings.ray_start, dtype=origins.dtype)
    far = torch.full_like(near, settings.ray_end)
    coarse = ops.reference.stratified_sample(
        near, far, settings.coarse_samples, uniforms=uniforms.stratified
    )
    face_c = at(face, coarse)
    obj_c = at(obj, coarse) if obj else None
    with torch.no_grad():
        march_in = face_c[:2] + (obj_c if obj else ())
        weights = ops.reference.composite_march(coarse, *march_in)[2]
    fine = ops.reference.importance_sample(
        coarse, weights, settings.fine_samples, uniforms=uniforms.importance
    )
    face_f = at(face, fine)
    depths, order = torch.sort(torch.cat([coarse, fine], -1), -1)

    def merged(coarse_values, fine_values):
        both = torch.cat([coarse_values, fine_values], 2)
        index = order if both.dim() == 3 else order[..., None].expand_as(both)
        return torch.gather(both, 2, index)

    face_m = [merged(c, f) for c, f in zip(face_c[:2], face_f[:2])]
    if obj is None:
        return {"features": ops.reference.ray_march(depths, *face_m)[0]}
    obj_f = at(obj, fine)
    obj_m = [merged(c, f) for c, f in zip(obj_c, obj_f)]
    zeros = face_m[1][..., :1] * 0
    composite, depth, w = ops.reference.composite_march(
        depths,
        face_m[0],
        torch.cat([face_m[1], zeros], -1),
        obj_m[0],
        torch.cat([obj_m[1], zeros + 1], -1),
        obj_m[2],
    )
    alone = ops.reference.ray_march(depths, obj_m[0], obj_m[1])
    return {
        "features": composite[..., :-1],
        "depth": depth,
        "weight_total": w.sum(-1),
        "object_opacity": (composite[..., -1] + 1) / 2,
        "object_features": alone[0],
        "object_weight_total": alone[2].sum(-1),
        "blend": obj_m[2],
        "blend_coarse": obj_c[2],
        "blend_fine": obj_f[2],
    }


@pytest.mark.parametrize("backend", ["innout", "reference"])
@pytest.mark.parametrize("with_object", [False, True])
def test_the_pipeline_follows_the_sampling_recipe(backend, with_object):
    planes, origins, directions = scene()
    settings = RenderSettings(depth_resolution=10, depth_resolution_importance=7, backend=backend)
    uniforms = draw_uniforms(2, 25, settings, torch.device("cpu"), torch.Generator().manual_seed(2))
    uniforms = RenderUniforms(uniforms.stratified.double(), uniforms.importance.double())
    decoder = LinearDecoder(32, 3).double()
    face = triplane_field(planes, decoder, settings.box_warp)
    field = object_field() if with_object else None
    obj = None
    if with_object:
        from innout.invert.composite import object_field_at

        obj = object_field_at(field, torch.tensor([0, 2]), settings.box_warp)
    rays = render_rays(face, origins, directions, settings, object_field=obj, uniforms=uniforms)
    expected = recipe(face, obj, origins, directions, settings, uniforms, ops.backend("reference"))
    for name, value in expected.items():
        assert_close(getattr(rays, name), value, name)
    if not with_object:
        assert rays.object_opacity is None and rays.blend is None
    # Every gradient of the composite reaches the planes the same way.
    upstream = torch.randn(rays.features.shape, generator=torch.Generator().manual_seed(4),
                           dtype=torch.float64)  # fmt: skip
    (got,) = torch.autograd.grad(rays.features, planes, upstream)
    (want,) = torch.autograd.grad(expected["features"], planes, upstream)
    assert_close(got, want, "grad_planes")


def test_eg3d_rendering_is_the_composite_with_no_object():
    planes, origins, directions = scene()
    decoder = LinearDecoder(32, 3).double()
    settings = RenderSettings(depth_resolution=10, depth_resolution_importance=7, chunk_rays=7)
    alone = render_eg3d(planes, decoder, origins, directions, settings,
                        generator=torch.Generator().manual_seed(5))  # fmt: skip
    composite = render_composite(planes, decoder, None, torch.tensor([0, 1]), origins, directions,
                                 settings, generator=torch.Generator().manual_seed(5))  # fmt: skip
    assert torch.equal(alone["features"], composite.features)
    assert torch.equal(alone["depth"], composite.depth)
    assert torch.equal(alone["weight_total"], composite.weight_total)


def test_chunks_and_blend_scale_give_the_unchunked_composite():
    planes, origins, directions = scene()
    decoder = LinearDecoder(32, 3).double()
    field = object_field()
    scale = torch.rand(2, 25, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    frames = torch.tensor([1, 2])
    outputs = []
    for chunk in (None, 6):
        settings = RenderSettings(depth_resolution=10, depth_resolution_importance=7,
                                  chunk_rays=chunk)  # fmt: skip
        outputs.append(render_composite(planes, decoder, field, frames, origins, directions,
                                        settings, blend_scale=scale,
                                        generator=torch.Generator().manual_seed(7)))  # fmt: skip
    whole, chunked = outputs
    # Equal up to float64 rounding: the decoder's matrix products see other row counts per chunk.
    for name in ("features", "depth", "object_opacity", "blend", "blend_coarse", "blend_fine"):
        assert_close(getattr(chunked, name), getattr(whole, name), name)
    # A scale of 0 removes the object: its opacity vanishes where the scale does.
    settings = RenderSettings(depth_resolution=10, depth_resolution_importance=7)
    removed = render_composite(planes, decoder, field, frames, origins, directions, settings,
                               blend_scale=torch.zeros(2, 25, dtype=torch.float64),
                               generator=torch.Generator().manual_seed(7))  # fmt: skip
    assert torch.equal(removed.object_opacity, torch.zeros_like(removed.object_opacity))


def test_blend_scale_of_the_wrong_shape_is_refused():
    planes, origins, directions = scene()
    face = triplane_field(planes, LinearDecoder(32, 3).double(), 1.0)
    with pytest.raises(ValueError, match=r"blend_scale must have shape \[2, 25\]"):
        render_rays(face, origins, directions, RenderSettings(), blend_scale=torch.ones(2, 3))


def test_each_backend_offers_the_public_ops_with_their_signatures():
    innout_ops, reference_ops = ops.backend("innout"), ops.backend("reference")
    for name in OP_NAMES:
        public = getattr(ops, name)
        assert getattr(innout_ops, name) is public
        assert inspect.signature(getattr(reference_ops, name)) == inspect.signature(public), name
        assert getattr(reference_ops, name) is getattr(ops.reference, name)


def test_an_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match="backend must be one of innout, reference, got 'cuda'"):
        ops.backend("cuda")
    with pytest.raises(ValueError, match="backend must be one of innout, reference"):
        RenderSettings(backend="fast")


@pytest.mark.parametrize("deterministic", [False, True])
def test_reference_samplers_draw_like_the_ops(deterministic):
    depths = torch.linspace(2.0, 3.0, 12).expand(2, 3, 12).contiguous()
    weights = torch.rand(2, 3, 11, generator=torch.Generator().manual_seed(8))
    near, far = torch.full((2, 3), 2.0), torch.full((2, 3), 3.0)
    for kernels in (ops.backend("innout"), ops.backend("reference")):
        kwargs = {"deterministic": deterministic, "generator": torch.Generator().manual_seed(9)}
        fine = kernels.importance_sample(depths, weights, 5, **kwargs)
        coarse = kernels.stratified_sample(near, far, 12, **kwargs)
        if kernels.name == "innout":
            expected = fine, coarse
    assert_close(fine, expected[0], "importance depths")
    assert_close(coarse, expected[1], "stratified depths")
