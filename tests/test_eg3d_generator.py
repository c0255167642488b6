"""The EG3D generator on innout's renderer: shapes, batching, reproducibility, backends, CLI."""

from __future__ import annotations

import pytest
import torch
from eg3d_small import small_generator
from innout.eg3d import camera
from innout.eg3d.generate import generate, parse_seeds


@pytest.fixture(scope="module")
def generator():
    return small_generator()


def test_forward_gives_eg3d_outputs(generator):
    z = torch.randn(2, generator.z_dim)
    out = generator(z, camera.frontal_labels(2), noise_mode="const")
    assert out["image"].shape == (2, 3, 128, 128)
    assert out["image_raw"].shape == (2, 3, 16, 16) and out["image_depth"].shape == (2, 1, 16, 16)
    assert out["features"].shape == (2, 32, 16, 16)
    assert torch.isfinite(out["image"]).all()


def test_batch_items_are_rendered_independently(generator):
    z = torch.randn(2, generator.z_dim)
    cameras = camera.camera_labels(
        camera.look_at_cam2world(torch.tensor([1.4, 1.8]), 1.5), camera.intrinsics(4.2647)
    )
    ws = generator.mapping(z, cameras)
    both = generator.render(ws, cameras, deterministic=True)
    for i in range(2):
        one = generator.render(ws[i : i + 1], cameras[i : i + 1], deterministic=True)
        for key in ("image", "image_raw", "image_depth"):
            torch.testing.assert_close(both[key][i : i + 1], one[key], rtol=1e-4, atol=1e-4)


def test_render_is_reproducible_and_backends_agree(generator):
    ws = generator.mapping(torch.randn(1, generator.z_dim), camera.frontal_labels(1))
    cameras = camera.frontal_labels(1)
    a = generator.render(ws, cameras, seed=3)
    b = generator.render(ws, cameras, seed=3)
    assert torch.equal(a["image"], b["image"])
    reference = generator.render(ws, cameras, seed=3, backend="reference")
    for key in ("image", "image_raw", "image_depth"):
        torch.testing.assert_close(a[key], reference[key], rtol=1e-4, atol=1e-4)
    chunked = generator.render(ws, cameras, seed=3, chunk_rays=50)
    torch.testing.assert_close(a["image"], chunked["image"], rtol=0, atol=1e-5)


def test_truncation_zero_gives_the_average_latent(generator):
    ws = generator.mapping(torch.randn(3, generator.z_dim), camera.frontal_labels(3), 0.0)
    expected = generator.backbone.mapping.w_avg.expand_as(ws)
    torch.testing.assert_close(ws, expected)


def test_wrong_camera_shape_is_refused(generator):
    ws = generator.mapping(torch.randn(1, generator.z_dim), camera.frontal_labels(1))
    with pytest.raises(ValueError, match=r"\[N, 25\]"):
        generator.render(ws, torch.zeros(1, 16))


def test_seeds_parse():
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    with pytest.raises(ValueError, match="seeds must look like"):
        parse_seeds("a-b")


def test_generate_writes_images_depth_and_orbit_video(generator, tmp_path):
    av = pytest.importorskip("av")  # a dependency; absent on some GPU images that run -m cuda
    written = generate(generator, [5], tmp_path, orbit=True, orbit_frames=3, progress=False)
    names = sorted(p.name for p in written)
    assert names == ["seed0005.png", "seed0005_depth.png", "seed0005_orbit.mp4"]
    with av.open(str(tmp_path / "seed0005_orbit.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 3 and frames[0].shape == (128, 128, 3)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temp files left


def test_training_step_through_the_in_place_super_resolution():
    # 2X super-resolution writes into image_raw in place (EG3D's quirk, kept for inference);
    # with autograd recording it must not break the backward pass.
    # Rendering at the SR input size (64): no resize, so rgb aliases the feature image.
    generator = small_generator(seed=3, resolution=64).train().requires_grad_(True)
    cameras = camera.frontal_labels(2)
    ws = generator.mapping(torch.randn(2, generator.z_dim), cameras)
    out = generator.render(ws, cameras)
    (out["image"].square().mean() + out["image_raw"].square().mean()).backward()
    assert generator.backbone.synthesis.b4.const.grad.abs().sum() > 0
    with torch.no_grad():
        inference = generator.render(ws, cameras, plain_raw=False)
        plain = generator.render(ws, cameras)
        eg3d = generator(torch.randn(2, generator.z_dim), cameras)
    torch.testing.assert_close(inference["image"], out["image"].detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(plain["image"], out["image"].detach(), rtol=1e-5, atol=1e-5)
    # In inference EG3D's image_raw (and so the feature image it is a view of) carries the SR's
    # first ToRGB output; `render` keeps the plain rendering unless asked for EG3D's.
    assert not torch.allclose(inference["image_raw"], out["image_raw"].detach(), atol=1e-3)
    torch.testing.assert_close(plain["image_raw"], out["image_raw"].detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(plain["features"][:, :3], plain["image_raw"])
    assert eg3d["image_raw"].shape == plain["image_raw"].shape


def test_plane_resolution_option_for_small_models():
    from eg3d_small import init_kwargs
    from innout.eg3d.generator import TriPlaneGenerator

    generator = TriPlaneGenerator(**init_kwargs(), plane_resolution=64).eval()
    ws = generator.mapping(torch.randn(1, generator.z_dim), camera.frontal_labels(1))
    assert generator.planes(ws, noise_mode="const").shape == (1, 3, 32, 64, 64)
    out = generator.render(ws, camera.frontal_labels(1), resolution=16)
    assert out["image"].shape == (1, 3, 128, 128)
    with pytest.raises(ValueError, match="power of two"):
        TriPlaneGenerator(**init_kwargs(), plane_resolution=100)
