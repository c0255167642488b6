"""Exported scenes: the file alone renders the frame's raw image; bad files are refused clearly."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest
import torch
from innout import scene as scenes
from innout.cli import main
from innout.edit.scene_export import export_scene
from innout.invert import invert
from innout.invert.state import render_frames
from innout.scene import SCENE_FORMAT, SceneError, load_scene, render_scene
from safetensors.torch import load_file, save_file
from test_invert import TINY_RUN, synthetic_clip

_runs: dict[str, object] = {}


@pytest.fixture(scope="module")
def innout_run(tmp_path_factory):
    """A short In-N-Out run of a 2-frame synthetic clip. Other test modules import this fixture;
    the run is made once per test session and only read."""
    if "run" not in _runs:
        folder = tmp_path_factory.mktemp("scene") / "run"
        _runs["run"] = invert(synthetic_clip(2), method="innout", out=folder, progress=False,
                              **TINY_RUN)  # fmt: skip
    return _runs["run"]


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
        (lambda t, m: m.update(coarse_samples="many"), "must be an integer"),
        (lambda t, m: m.update(box_warp="many"), "must be a number"),
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


@pytest.fixture(scope="module")
def exported(innout_run, tmp_path_factory):
    """Frame 0 of the run, exported once for the tests that damage a copy of it."""
    return export_scene(innout_run, 0, tmp_path_factory.mktemp("exported") / "frame0.safetensors")


def _refused(path, what: str) -> str:
    """load_scene's message for a refused file: it names the file and says `what`."""
    with pytest.raises(SceneError) as refused:
        load_scene(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: ") and what in message, message
    return message


def _degenerate(index: int, value: float):
    return lambda t, m: t["camera"].__setitem__(index, value)


@pytest.mark.parametrize(
    ("change", "what"),
    [
        (lambda t, m: t["camera"].zero_(), "rotation (top-left 3x3) is orthonormal"),
        (lambda t, m: t["camera"][16:].zero_(), "focal lengths fx, fy >= 0.001, got fx=0.0"),
        (_degenerate(20, 0.0), "focal lengths"),
        (_degenerate(16, -4.0), "focal lengths"),
        (lambda t, m: t["camera"][:3].mul_(1.01), "orthonormal to within 0.001"),
        (lambda t, m: t["camera"].__setitem__(slice(0, 3), torch.tensor([1.0, 1.0, 0.0])),
         "orthonormal"),
        (_degenerate(14, 0.5), "last row [0, 0, 0, 1]"),
        (_degenerate(24, 0.0), "intrinsics rows"),
        (_degenerate(3, float("nan")), "camera contains NaN or infinity (element 3)"),
        (_degenerate(11, float("inf")), "camera contains NaN or infinity (element 11)"),
    ],
)  # fmt: skip
def test_degenerate_cameras_are_refused(exported, tmp_path, change, what):
    """A camera that renders all-NaN (or a sheared image) with no error is refused on load."""
    good = exported
    bad = tmp_path / "bad.safetensors"
    _corrupt(good, bad, change)
    _refused(bad, what)


def test_a_camera_within_the_tolerance_or_mirrored_is_accepted(exported, tmp_path):
    good = exported
    for name, change in {
        "within": lambda t, m: t["camera"][:3].mul_(1.0004),
        "mirrored": lambda t, m: t["camera"][:12:4].neg_(),
    }.items():
        path = tmp_path / f"{name}.safetensors"
        _corrupt(good, path, change)
        assert load_scene(path).tensors["camera"].isfinite().all()


def test_render_scene_refuses_a_degenerate_camera_argument(exported, tmp_path):
    scene = load_scene(exported)
    with pytest.raises(SceneError, match="camera: expected a cam2world"):
        render_scene(scene, camera=torch.zeros(25))


@pytest.mark.parametrize("name", ["face.planes", "face.hidden.weight", "face.output.bias",
                                  "object.planes", "object.code", "object.hidden.bias",
                                  "object.output.weight", "camera"])  # fmt: skip
@pytest.mark.parametrize("value", [float("nan"), float("-inf")])
def test_every_tensor_must_be_finite(exported, tmp_path, name, value):
    good = exported
    bad = tmp_path / "bad.safetensors"
    _corrupt(good, bad, lambda t, m: t[name].view(-1).__setitem__(-1, value))
    numel = load_scene(good).tensors[name].numel()
    _refused(bad, f"{name} contains NaN or infinity (element {numel - 1})")


@pytest.mark.parametrize(
    ("key", "text", "what"),
    [
        ("resolution", "20000", "resolution must be in [1, 4096], got '20000'"),
        ("resolution", "4097", "resolution must be in [1, 4096]"),
        ("resolution", "0", "resolution must be in [1, 4096]"),
        ("coarse_samples", "1025", "coarse_samples must be in [2, 1024]"),
        ("fine_samples", "1025", "fine_samples must be in [0, 1024]"),
        ("fine_samples", "99999999999999999999999", "fine_samples must be in [0, 1024]"),
        ("resolution", "64.7", "resolution must be an integer (JSON syntax, e.g. '64'), got "
                               "'64.7'"),
        ("resolution", "64.0", "must be an integer"),
        ("resolution", "6.4e1", "must be an integer"),
        ("resolution", '"64"', "must be an integer"),
        ("resolution", "true", "must be an integer"),
        ("resolution", " 64", "must be an integer"),
        ("resolution", "+64", "must be an integer"),
        ("resolution", "064", "must be an integer"),
        ("resolution", "1_28", "must be an integer"),
        ("coarse_samples", "\u0664\u0668", "must be an integer"),  # Arabic-Indic digits
        ("ray_end", "inf", "ray_end must be a number (JSON syntax"),
        ("ray_end", "1_0", "must be a number"),
        ("ray_end", " 3.3", "must be a number"),
        ("ray_end", "1e999", "settings contain NaN or infinity"),
        ("ray_end", "1e300", "out of the float32 range"),
        ("coarse_samples", "3", "coarse_samples must be >= 4 when fine_samples > 0, got 3"),
    ],
)  # fmt: skip
def test_sizes_are_json_integers_within_the_limits(exported, tmp_path, key, text, what):
    """Sizes are bounded before anything is allocated (a resolution of 20000 passed and then
    allocated gigabytes while rendering), and "64.7" is refused instead of becoming 64."""
    good = exported
    bad = tmp_path / "bad.safetensors"
    _corrupt(good, bad, lambda t, m: m.update({key: text}))
    _refused(bad, what)


def test_settings_at_the_limits_are_accepted(exported, tmp_path):
    good = exported
    path = tmp_path / "limits.safetensors"
    _corrupt(good, path, lambda t, m: m.update(resolution=str(scenes.MAX_RESOLUTION),
                                                coarse_samples=str(scenes.MAX_SAMPLES),
                                                fine_samples=str(scenes.MAX_SAMPLES)))  # fmt: skip
    scene = load_scene(path)
    assert (scene.resolution, scene.coarse_samples, scene.fine_samples) == (4096, 1024, 1024)


def _header_and_buffer(path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _file(header: dict | str, buffer: bytes) -> bytes:
    text = header if isinstance(header, str) else json.dumps(header)
    return struct.pack("<Q", len(text.encode())) + text.encode() + buffer


@pytest.mark.parametrize(
    ("change", "what"),
    [
        # JSON's true is no integer, though Python's True is an int (1): taken for one, both of
        # these empty extra tensors would be accepted.
        (lambda h: h.update(x={"dtype": "F32", "shape": [True, 0], "data_offsets": [0, 0]}),
         "shape of x must be an array of non-negative integers"),
        (lambda h: h.update(x={"dtype": "F32", "shape": [0], "data_offsets": [False, False]}),
         "data_offsets of x must be two non-negative integers"),
        (lambda h: h["camera"].update(shape=[25.0]), "shape of camera must be an array"),
        (lambda h: h["camera"].update(shape=[1] * 9), "at most 8 are supported"),
        (lambda h: h.update({f"x{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}
                             for i in range(60)}), "more than 64 tensors"),
        (lambda h: h["__metadata__"].update(pad="x" * scenes.MAX_HEADER_BYTES),
         "exceeds the limit of 1048576 bytes"),
        (lambda h: h["__metadata__"].update(deep=1), "__metadata__ entry 'deep' must be a string"),
    ],
)  # fmt: skip
def test_the_header_is_checked_before_anything_is_allocated(exported, tmp_path, change, what):
    header, buffer = _header_and_buffer(exported)
    change(header)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(_file(header, buffer))
    _refused(bad, what)


def test_tensor_sizes_are_checked_against_the_file_before_allocating(exported, tmp_path):
    """A header promising more data than the file holds is refused from the header alone: no
    tensor of the promised size is ever allocated."""
    header, buffer = _header_and_buffer(exported)
    header["face.planes"]["shape"] = [3, 1024, 2048, 2048]  # 48 GiB of floats
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(_file(header, buffer))
    _refused(bad, "data_offsets of face.planes span")
    # Duplicate keys, NaN literals and deep nesting: JSON Python accepts but the C++ reader not.
    text = json.dumps(header)
    for name, broken in {
        "duplicate": text.replace('"camera"', '"face.planes"', 1),
        "nan": text[:-1] + ', "x": NaN}',
        "deep": text[:-1] + ', "x": ' + "[" * 70 + "]" * 70 + "}",
        "surrogate": text[:-1] + ', "x\\ud800": {}}',
    }.items():
        bad = tmp_path / f"{name}.safetensors"
        bad.write_bytes(_file(broken, buffer))
        _refused(bad, "not a readable safetensors file")


def test_the_limits_are_documented():
    guide = (Path(__file__).resolve().parents[1] / "docs" / "embedding.md").read_text()
    for name in ("kSceneMaxResolution", "kSceneMaxSamples", "kSceneMaxPlaneSize",
                 "kSceneMaxChannels", "kSceneMaxHeaderBytes", "kSceneMaxTensors"):  # fmt: skip
        assert re.search(rf"`{name}`", guide), name
