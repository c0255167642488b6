"""Exported scenes: the file alone renders the frame's raw image; bad files are refused clearly."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from innout.cli import main
from innout.edit.scene_export import export_scene
from innout.invert import invert
from innout.invert.state import render_frames
from innout.scene import SCENE_FORMAT, SceneError, load_scene, render_scene
from safetensors.torch import load_file, save_file
from test_invert import TINY_RUN, synthetic_clip


@pytest.fixture(scope="module")
def innout_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scene") / "run"
    return invert(synthetic_clip(2), method="innout", out=folder, progress=False, **TINY_RUN)


def _reference_render(result, frame: int, latents=None, camera=None):
    """The run's own deterministic raw render of one frame."""
    ws = (result.latents if latents is None else latents)[frame : frame + 1]
    cameras = result.cameras[frame : frame + 1] if camera is None else camera.reshape(1, 25)
    index = torch.tensor([frame])
    return render_frames(result.generator, result.state, ws, cameras, index, superresolve=False)


def test_a_scene_renders_like_the_run_it_came_from(innout_run, tmp_path):
    path = export_scene(innout_run, 1, tmp_path / "frame1.safetensors")
    scene = load_scene(path)
    assert scene.has_object and scene.resolution == 64
    assert scene.metadata["format"] == SCENE_FORMAT and scene.metadata["method"] == "innout"
    out = render_scene(scene)
    expected = _reference_render(innout_run, 1)
    assert out["features"].shape == (32, 64, 64)
    torch.testing.assert_close(out["image_raw"], expected.image_raw[0], atol=1e-5, rtol=0)
    # Another camera, and the pure-PyTorch ops: the same image.
    camera = innout_run.cameras[0]
    moved = render_scene(scene, camera=camera, backend="reference")
    torch.testing.assert_close(
        moved["image_raw"], _reference_render(innout_run, 1, camera=camera).image_raw[0],
        atol=1e-4, rtol=0,
    )  # fmt: skip


def test_edits_are_baked_into_the_exported_planes(innout_run, tmp_path):
    from innout.edit.render import render_options

    path = tmp_path / "edited.safetensors"
    assert main(["export-scene", str(innout_run.folder), "--frame", "0", "--edit",
                 "hair_color=0.3", "--out", str(path)]) == 0  # fmt: skip
    scene = load_scene(path)
    assert json.loads(scene.metadata["edits"]) == ["hair_color=0.3"]
    latents = render_options(innout_run, ["hair_color=0.3"])["latents"]
    expected = _reference_render(innout_run, 0, latents=latents).image_raw[0]
    torch.testing.assert_close(render_scene(scene)["image_raw"], expected, atol=1e-5, rtol=0)
    unedited = _reference_render(innout_run, 0).image_raw[0]
    assert (expected - unedited).abs().max() > 0.05


def _corrupt(source, target, change) -> None:
    tensors = load_file(str(source))
    from safetensors import safe_open

    with safe_open(str(source), framework="pt") as file:
        metadata = dict(file.metadata())
    change(tensors, metadata)
    save_file(tensors, str(target), metadata=metadata)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t, m: t.pop("face.output.bias"), "missing tensor.*face.output.bias"),
        (lambda t, m: t.pop("object.code"), "missing tensor.*object.code"),
        (lambda t, m: t.update(camera=torch.zeros(24)), r"camera must have shape \[25\]"),
        (lambda t, m: t.update(**{"face.hidden.bias": torch.zeros(64, dtype=torch.float64)}),
         "must be float32"),
        (lambda t, m: t["face.planes"].__setitem__((0, 0, 0, 0), float("nan")), "NaN"),
        (lambda t, m: m.update(format="other/1"), "expected 'innout-scene/1'"),
        (lambda t, m: m.pop("ray_end"), "lacks 'ray_end'"),
        (lambda t, m: m.update(coarse_samples="many"), "must be a number"),
        (lambda t, m: m.update(ray_start="4.0"), "ray_start < ray_end"),
    ],
)  # fmt: skip
def test_bad_scene_files_are_refused_with_what_was_expected(innout_run, tmp_path, change, message):
    good = export_scene(innout_run, 0, tmp_path / "good.safetensors")
    bad = tmp_path / "bad.safetensors"
    _corrupt(good, bad, change)
    with pytest.raises(SceneError, match=message):
        load_scene(bad)


def test_truncated_and_garbage_files_are_refused(innout_run, tmp_path):
    good = export_scene(innout_run, 0, tmp_path / "good.safetensors").read_bytes()
    for name, data in {
        "truncated": good[: len(good) // 2],
        "header only": good[:8],
        "huge header length": struct.pack("<Q", 1 << 40) + good[8:],
        "text": b"not a scene",
    }.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(data)
        with pytest.raises(SceneError, match="not a readable safetensors file"):
            load_scene(path)
    with pytest.raises(SceneError, match="no such scene file"):
        load_scene(tmp_path / "absent.safetensors")
    with pytest.raises(SceneError, match=r"frame must be in \[0, 1\]"):
        export_scene(innout_run, 2, tmp_path / "x.safetensors")
    assert main(["export-scene", str(tmp_path), "--frame", "0", "--out",
                 str(tmp_path / "y.safetensors")]) == 2  # fmt: skip
    assert not (tmp_path / "y.safetensors").exists()
