"""EG3D's renderer over innout's ops: backends agree, chunking and determinism behave."""

from __future__ import annotations

import math

import pytest
import torch
from innout.eg3d import camera
from innout.eg3d.renderer import render_rays
from innout.render.settings import RenderSettings, draw_uniforms


class LinearDecoder(torch.nn.Module):
    """A small stand-in for the OSGDecoder (same output contract)."""

    def __init__(self, channels: int = 8, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.weight = torch.nn.Parameter(torch.randn(channels, channels + 1, generator=generator))

    def forward(self, features: torch.Tensor) -> dict:
        out = features @ self.weight
        return {"sigma": 5 * out[..., :1], "rgb": torch.sigmoid(out[..., 1:]) * 1.002 - 0.001}


def scene(batch=2, resolution=8, channels=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    planes = torch.randn(batch, 3, channels, 16, 16, generator=generator)
    yaw = torch.tensor([math.pi / 2, math.pi / 2 + 0.3])[:batch]
    labels = camera.camera_labels(
        camera.look_at_cam2world(yaw, math.pi / 2), camera.intrinsics(camera.FFHQ_FOCAL)
    )
    origins, directions = camera.pixel_rays(labels, resolution)
    return planes, LinearDecoder(channels, seed), origins, directions


SETTINGS = RenderSettings(depth_resolution=12, depth_resolution_importance=10)


def test_innout_and_reference_backends_agree_draw_for_draw():
    planes, decoder, origins, directions = scene()
    uniforms = draw_uniforms(
        2, origins.shape[1], SETTINGS, origins.device, torch.Generator().manual_seed(3)
    )
    fast = render_rays(planes, decoder, origins, directions, SETTINGS, uniforms=uniforms)
    slow = render_rays(
        planes,
        decoder,
        origins,
        directions,
        RenderSettings(**{**SETTINGS.__dict__, "backend": "reference"}),
        uniforms=uniforms,
    )
    for key in fast:
        torch.testing.assert_close(fast[key], slow[key], rtol=1e-4, atol=1e-4)


def test_chunking_does_not_change_the_render():
    planes, decoder, origins, directions = scene()
    generator_settings = dict(generator=torch.Generator().manual_seed(5))
    whole = render_rays(planes, decoder, origins, directions, SETTINGS, **generator_settings)
    chunked_settings = RenderSettings(**{**SETTINGS.__dict__, "chunk_rays": 7})
    chunked = render_rays(
        planes,
        decoder,
        origins,
        directions,
        chunked_settings,
        generator=torch.Generator().manual_seed(5),
    )
    for key in whole:
        torch.testing.assert_close(whole[key], chunked[key], rtol=0, atol=1e-6)


def test_deterministic_render_repeats_exactly_and_seeded_renders_differ():
    planes, decoder, origins, directions = scene()
    det = RenderSettings(**{**SETTINGS.__dict__, "deterministic": True})
    a = render_rays(planes, decoder, origins, directions, det)
    b = render_rays(planes, decoder, origins, directions, det)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = render_rays(
        planes, decoder, origins, directions, SETTINGS, generator=torch.Generator().manual_seed(1)
    )
    d = render_rays(
        planes, decoder, origins, directions, SETTINGS, generator=torch.Generator().manual_seed(2)
    )
    assert not torch.equal(c["features"], d["features"])


def test_samples_multiplier_doubles_the_samples():
    settings = RenderSettings(
        depth_resolution=12, depth_resolution_importance=10, samples_multiplier=2
    )
    assert (settings.coarse_samples, settings.fine_samples) == (24, 20)
    uniforms = draw_uniforms(1, 5, settings, torch.device("cpu"))
    assert uniforms.stratified.shape == (1, 5, 24) and uniforms.importance.shape == (1, 5, 20)


def test_gradients_reach_planes_and_decoder():
    planes, decoder, origins, directions = scene(batch=1)
    planes.requires_grad_()
    out = render_rays(
        planes, decoder, origins, directions, SETTINGS, generator=torch.Generator().manual_seed(0)
    )
    (out["features"].square().mean() + out["depth"].mean()).backward()
    assert planes.grad.abs().sum() > 0 and decoder.weight.grad.abs().sum() > 0


def test_white_background_adds_the_missing_opacity():
    planes, decoder, origins, directions = scene(batch=1)
    settings = RenderSettings(**{**SETTINGS.__dict__, "deterministic": True})
    plain = render_rays(planes, decoder, origins, directions, settings)
    white = render_rays(
        planes,
        decoder,
        origins,
        directions,
        RenderSettings(**{**settings.__dict__, "white_back": True}),
    )
    expected = plain["features"] + 2 * (1 - plain["weight_total"]).unsqueeze(-1)
    torch.testing.assert_close(white["features"], expected)


def test_rendering_kwargs_are_read_with_eg3d_defaults():
    settings = RenderSettings.from_rendering_kwargs(
        {
            "depth_resolution": 48,
            "depth_resolution_importance": 48,
            "ray_start": 2.25,
            "ray_end": 3.3,
            "box_warp": 1,
            "clamp_mode": "softplus",
        }
    )
    assert settings.white_back is False and settings.coarse_samples == 48
    with pytest.raises(ValueError, match="'auto'"):
        RenderSettings.from_rendering_kwargs(
            {"depth_resolution": 4, "ray_start": "auto", "ray_end": "auto", "box_warp": 1}
        )


def test_frontal_camera_looks_at_the_pivot_down_minus_z():
    label = camera.frontal_labels(1)
    cam2world = label[0, :16].reshape(4, 4)
    torch.testing.assert_close(cam2world[:3, 3], torch.tensor([0.0, 0.0, 2.7]), atol=1e-6, rtol=0)
    torch.testing.assert_close(cam2world[:3, 2], torch.tensor([0.0, 0.0, -1.0]), atol=1e-6, rtol=0)
    origins, directions = camera.pixel_rays(label, 2)
    # Pixel (0, 0) is top-left: the ray goes left (-x) and up (+y) in the world.
    assert directions[0, 0, 0] < 0 and directions[0, 0, 1] > 0
    assert abs(camera.fov_to_focal(18.837) - camera.FFHQ_FOCAL) < 3e-3
