"""innout-tiny: training runs and resumes, the bundled model and directions load and work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import innout
import pytest
import torch
from innout.eg3d.checkpoint import CheckpointError, generator_state, write_converted
from innout.eg3d.loading import load_generator
from innout.metrics import psnr_from_mse as psnr
from innout.tiny import bundle
from innout.tiny.directions import SHIPPED_DIRECTIONS, load_tiny_direction, measure_direction
from innout.tiny.heads import sample_heads
from innout.tiny.train import TrainConfig, build_tiny, train_tiny

SMOKE = dict(
    field_steps=20,
    batch=2,
    rays_per_item=64,
    warmup_steps=5,
    sr_steps=2,
    sr_pool=2,
    sr_batch=2,
    eval_heads=1,
    gt_samples=16,
    log_every=1,
)


def fake_metrics(generator):
    return {"psnr_raw": 0.0}


def test_twenty_step_training_smoke_run_writes_a_loadable_model(tmp_path):
    config = TrainConfig(**SMOKE)
    record = train_tiny(config, tmp_path, progress=False)
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    field = [line for line in lines if line["stage"] == "field"]
    assert [line["step"] for line in field] == list(range(20))
    assert all(torch.isfinite(torch.tensor(line["loss"])) for line in lines)
    # Twenty steps already fit the mean image much better than the first step did.
    assert sum(x["loss"] for x in field[-5:]) < sum(x["loss"] for x in field[:5])
    assert record["metrics"]["heads"] == 1 and "psnr_sr" in record["metrics"]
    assert record["train_config"]["field_steps"] == 20
    assert not (tmp_path / "state.pt").exists()
    generator = load_generator(tmp_path / "innout-tiny.safetensors")
    z, cameras = sample_heads(1, torch.Generator().manual_seed(0))
    images = generator.render(generator.mapping(z, cameras), cameras)
    assert images["image"].shape == (1, 3, 128, 128)
    assert images["image_raw"].shape == (1, 3, 64, 64)


def stop_after_two_steps(config, folder):
    """Runs training that is interrupted at its third field step (state saved after step 2)."""
    import innout.tiny.train as train_module

    original = train_module._field_step
    calls = {"n": 0}

    def failing(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(*args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_module, "_field_step", failing)
        with pytest.raises(KeyboardInterrupt):
            train_tiny(config, folder, progress=False, evaluate=fake_metrics, checkpoint_every=2)
    assert (folder / "state.pt").is_file()


def test_training_is_deterministic_and_resumes_where_it_stopped(tmp_path):
    config = TrainConfig(**{**SMOKE, "field_steps": 4, "sr_steps": 1})
    train_tiny(config, tmp_path / "a", progress=False, evaluate=fake_metrics)
    train_tiny(config, tmp_path / "b", progress=False, evaluate=fake_metrics)
    a = load_generator(tmp_path / "a" / "innout-tiny.safetensors").state_dict()
    b = load_generator(tmp_path / "b" / "innout-tiny.safetensors").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)

    stop_after_two_steps(config, tmp_path / "c")
    train_tiny(config, tmp_path / "c", progress=False, evaluate=fake_metrics)
    c = load_generator(tmp_path / "c" / "innout-tiny.safetensors").state_dict()
    assert all(torch.equal(a[k], c[k]) for k in a)
    log = [json.loads(line) for line in (tmp_path / "c" / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in log if line["stage"] == "field"] == [0, 1, 2, 3]

    # A saved state of other settings is refused, not silently mixed in.
    stop_after_two_steps(config, tmp_path / "d")
    other = TrainConfig(**{**SMOKE, "field_steps": 4, "sr_steps": 1, "lr": 1e-4})
    with pytest.raises(ValueError, match="other settings"):
        train_tiny(other, tmp_path / "d", progress=False, evaluate=fake_metrics)


def test_bad_training_settings_are_refused():
    with pytest.raises(ValueError, match="batch"):
        TrainConfig(batch=0)
    with pytest.raises(ValueError, match="rays_per_item"):
        TrainConfig(rays_per_item=64 * 64 + 1)


def test_psnr_of_images_in_minus_one_to_one():
    assert psnr(4.0) == pytest.approx(0.0)
    assert psnr(0.04) == pytest.approx(20.0)


def installed_editable() -> bool:
    direct_url = metadata.distribution("innout").read_text("direct_url.json") or "{}"
    return json.loads(direct_url).get("dir_info", {}).get("editable", False)


@pytest.mark.skipif(installed_editable(), reason="an editable install reads the source tree")
def test_the_installed_distribution_contains_the_bundled_files():
    installed = {str(f) for f in metadata.files("innout") or []}
    assert "innout/tiny/data/innout-tiny.safetensors" in installed
    assert "innout/tiny/data/innout-tiny.json" in installed
    assert "innout/tiny/data/directions/smile.safetensors" in installed


def test_bundled_model_loads_from_the_installed_package():
    generator = load_generator("tiny")
    assert generator.img_resolution == 128 and generator.neural_rendering_resolution == 64
    record = bundle.training_record()
    assert record["metrics"]["psnr_sr"] > 0 and record["seconds"]["total"] > 0
    assert record["command"].startswith("innout tiny train")
    # From a fresh interpreter in an unrelated folder: nothing comes from the source tree.
    code = (
        "import innout, torch; g = innout.load_generator('tiny'); "
        "print(g.render(g.mapping(torch.zeros(1, 512), torch.zeros(1, 25)), "
        "innout.eg3d.camera.frontal_labels(1))['image'].shape)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path("/"),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "torch.Size([1, 3, 128, 128])" in result.stdout


def test_a_missing_bundled_model_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(bundle, "data_folder", lambda: tmp_path)
    with pytest.raises(CheckpointError, match="innout-tiny's weights are missing"):
        load_generator("tiny")


def test_bundled_model_matches_its_own_record_on_held_out_heads():
    from innout.tiny.evaluate import evaluate_heldout

    generator = load_generator("tiny")
    measured = evaluate_heldout(generator, heads=2)
    # Two heads of the recorded held-out set: the same order of quality as the record says.
    assert abs(measured["psnr_sr"] - bundle.training_record()["metrics"]["psnr_sr"]) < 3.0


def test_shipped_directions_load_and_are_calibrated():
    names = bundle.direction_names()
    for required in ("smile", "mouth_open", "eye_size", "hair_color", "skin_tone", "face_width"):
        assert required in names
    assert set(SHIPPED_DIRECTIONS) <= set(names)
    for name in names:
        direction = load_tiny_direction(name)
        assert direction.name == name and direction.unit.shape == (512,)
        assert float(direction.unit.norm()) == pytest.approx(1.0, abs=1e-5)
        assert direction.slope > 0 and direction.samples >= 1000
    with pytest.raises(ValueError, match="bundled: "):
        load_tiny_direction("moustache")


def test_hair_colour_direction_changes_the_fitted_hair_colour():
    generator = load_generator("tiny")
    direction = load_tiny_direction("hair_color")
    z = torch.randn(1, 512, generator=torch.Generator().manual_seed(0))
    z[:, :11] = 0  # every parameter in the middle of its range
    cameras = innout.eg3d.camera.frontal_labels(1)
    changes = measure_direction(
        generator, direction, z, 0.3, cameras, others=("skin_tone", "background"), grid=11
    )
    assert changes["hair_color"] == pytest.approx(0.3, abs=0.12)
    assert abs(changes["skin_tone"]) < 0.1 and abs(changes["background"]) < 0.1


def test_z_with_parameter_inverts_the_squashing():
    from innout.synth.head import PARAMETER_RANGES, params_from_z, z_with_parameter

    z = torch.randn(1, 512, generator=torch.Generator().manual_seed(3))
    for name, (low, high) in PARAMETER_RANGES.items():
        if name == "blink":
            continue
        value = low + 0.3 * (high - low)
        edited = params_from_z(z_with_parameter(z, name, value)).as_dict()
        before = params_from_z(z).as_dict()
        assert edited[name] == pytest.approx(value, abs=1e-6)
        assert all(edited[k] == before[k] for k in before if k != name)
    with pytest.raises(ValueError, match="outside its range"):
        z_with_parameter(z, "smile", 1.5)
    with pytest.raises(ValueError, match="not read from z"):
        z_with_parameter(z, "blink", 0.5)


def test_a_direction_moves_the_render_like_the_models_own_parameter_change():
    from innout.tiny.directions import measure_model_response

    generator = load_generator("tiny")
    direction = load_tiny_direction("hair_color")
    z = torch.randn(1, 512, generator=torch.Generator().manual_seed(0))
    z[:, :11] = 0
    cameras = innout.eg3d.camera.frontal_labels(1)
    model = measure_model_response(generator, z, "hair_color", 0.3, cameras, grid=11)
    edit = measure_direction(generator, direction, z, 0.3, cameras, others=(), grid=11)
    assert model == pytest.approx(0.3, abs=0.12)
    assert edit["hair_color"] == pytest.approx(model, abs=0.08)
    assert measure_model_response(generator, z, "hair_color", 0.8, cameras, grid=11) is None


def test_eye_size_direction_enlarges_the_rendered_eyes():
    # The model renders eyes (sclera and iris); before the world's eyes were sized for a 64^2
    # rendering and half of the training rays went through the face, this fitted back 0.000.
    # The response is still weak and uneven: from this head, +0.14 fits back as +0.02 and +0.25
    # as +0.19 (see the README).
    generator = load_generator("tiny")
    direction = load_tiny_direction("eye_size")
    z = torch.randn(1, 512, generator=torch.Generator().manual_seed(0))
    z[:, :11] = 0
    cameras = innout.eg3d.camera.frontal_labels(1)
    changes = measure_direction(generator, direction, z, 0.25, cameras, others=(), grid=11)
    assert changes["eye_size"] > 0.1


def test_generator_state_round_trips_through_a_converted_file(tmp_path):
    from innout.tiny.architecture import tiny_init_kwargs

    generator = build_tiny(3)
    config, tensors = generator_state(generator, tiny_init_kwargs())
    write_converted(tmp_path / "g.safetensors", config, tensors)
    loaded = load_generator(tmp_path / "g.safetensors")
    state = generator.state_dict()
    assert set(state) == set(loaded.state_dict())
    assert all(torch.equal(state[k], v) for k, v in loaded.state_dict().items())
    assert loaded.rendering_kwargs == generator.rendering_kwargs


def test_face_weighted_ray_sampling():
    from innout.eg3d import camera
    from innout.tiny.train import face_rays, sample_pixels

    rng = torch.Generator().manual_seed(0)
    _, labels = sample_heads(3, rng)
    origins, directions = camera.pixel_rays(labels, 64)
    face = face_rays(origins, directions)
    # The face sphere projects to a disc near the image centre, whatever the camera.
    assert 300 < int(face[0].sum()) < 1200
    centre_row_col = face.reshape(3, 64, 64).nonzero()[:, 1:].float().mean(0)
    assert (centre_row_col - 32).abs().max() < 10
    pixels = sample_pixels(face, 256, 0.5, torch.Generator().manual_seed(1))
    on_face = face.gather(1, pixels)
    assert pixels.shape == (3, 256)
    assert (on_face[:, :128]).all()  # the first half is drawn among the face pixels
    assert all(len(set(row[:128].tolist())) == 128 for row in pixels)
    # face_fraction 0 draws exactly what uniform sampling drew (the bundled model's recipe).
    uniform = sample_pixels(face, 256, 0.0, torch.Generator().manual_seed(2))
    reference = torch.Generator().manual_seed(2)
    expected = torch.stack([torch.randperm(64 * 64, generator=reference)[:256] for _ in range(3)])
    assert torch.equal(uniform, expected)


def test_feature_rays_cover_the_eyes_and_mouth_and_weigh_in_the_colour_loss():
    import math

    from innout.eg3d import camera as cameras
    from innout.tiny.train import FEATURE_SPHERES, _field_step, face_rays, feature_rays

    pose = cameras.look_at_cam2world(math.pi / 2, math.pi / 2)
    label = cameras.camera_labels(pose, cameras.intrinsics(cameras.FFHQ_FOCAL).expand(1, 3, 3))
    origins, directions = cameras.pixel_rays(label, 64)
    features = feature_rays(origins, directions)[0]
    # Rays aimed at each sphere's centre are feature rays; one aimed above the head is not.
    for centre, _ in FEATURE_SPHERES:
        aim = torch.tensor(centre) - origins[0, 0]
        assert feature_rays(origins[:1, :1], (aim / aim.norm()).reshape(1, 1, 3)).item()
    above = torch.tensor([0.0, 0.35, 0.0]) - origins[0, 0]
    assert not feature_rays(origins[:1, :1], (above / above.norm()).reshape(1, 1, 3)).item()
    # Eyes and mouth: a few hundred of the 4096 pixels, nearly all of them face pixels.
    face = face_rays(origins, directions)[0]
    assert 150 < int(features.sum()) < 700
    assert int((features & ~face).sum()) < 0.15 * int(features.sum())

    with pytest.raises(ValueError, match="feature_weight"):
        TrainConfig(feature_weight=0.0)
    # The weight changes the loss, not the measured colour error, on the same draws.
    stats = {}
    for weight in (1.0, 4.0):
        generator = build_tiny(0)
        config = TrainConfig(**{**SMOKE, "feature_weight": weight, "feature_weight_start": 0.0})
        stats[weight] = _field_step(generator, config, torch.Generator().manual_seed(3), 0)
    assert stats[1.0]["rgb_mse"] == pytest.approx(stats[4.0]["rgb_mse"], rel=1e-6)
    assert stats[1.0]["loss"] != pytest.approx(stats[4.0]["loss"], rel=1e-3)


def test_the_feature_weight_applies_from_its_start_fraction_of_the_field_steps():
    from innout.tiny.train import _field_step, feature_weight_at

    config = TrainConfig(field_steps=100, feature_weight=3.0, feature_weight_start=0.5)
    assert [feature_weight_at(config, step) for step in (0, 49, 50, 99)] == [1.0, 1.0, 3.0, 3.0]
    always = TrainConfig(field_steps=100, feature_weight=3.0, feature_weight_start=0.0)
    assert feature_weight_at(always, 0) == 3.0
    for start in (-0.1, 1.5):
        with pytest.raises(ValueError, match="feature_weight_start"):
            TrainConfig(feature_weight_start=start)
    # Before the start the loss is the unweighted one: the same as a run with weight 1.
    losses = {}
    for weight, step in ((1.0, 0), (3.0, 0), (3.0, 19)):
        config = TrainConfig(**{**SMOKE, "feature_weight": weight, "feature_weight_start": 0.5})
        stats = _field_step(build_tiny(0), config, torch.Generator().manual_seed(3), step)
        losses[weight, step] = stats["loss"]
    assert losses[3.0, 0] == pytest.approx(losses[1.0, 0], rel=1e-6)
    assert losses[3.0, 19] != pytest.approx(losses[1.0, 0], rel=1e-3)
