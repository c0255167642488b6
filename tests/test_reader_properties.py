"""Property tests of the Python readers of untrusted files (dataset.json, masks, run.json, a run's
tensor files, a network's config): every input is either refused with an error naming the file
or accepted with exactly what the file says. Derandomised, so CI runs the same examples."""

from __future__ import annotations

import functools
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from innout.eg3d import camera
from innout.eg3d.checkpoint import INT_LIMITS, CheckpointError, build_generator, read_converted
from innout.eg3d.loading import GENERATOR_CLASSES
from innout.invert import InputError, run_folder
from innout.invert.clip import GREY_LEVELS, MAX_GREY_SHARE, read_cameras, read_masks
from innout.media import write_png
from innout.tiny.bundle import weights_path

PROPERTY = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])  # fmt: skip

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
)
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="innout-property-"))


def _valid_label(yaw: float, pitch: float, focal: float) -> list[float]:
    pose = camera.look_at_cam2world(yaw, pitch)
    return camera.camera_labels(pose, camera.intrinsics(focal))[0].tolist()


@st.composite
def datasets(draw) -> object:
    """dataset.json documents: valid ones, valid ones with one value replaced, and junk."""
    kind = draw(st.sampled_from(["valid", "changed", "junk"]))
    if kind == "junk":
        return draw(ANY_JSON)
    count = draw(st.integers(1, 3))
    labels = []
    for i in range(count):
        yaw = draw(st.floats(0.5, 2.6))
        pitch = draw(st.floats(0.8, 2.3))
        focal = draw(st.floats(0.5, 10.0))
        labels.append([f"{i:05d}.png", _valid_label(yaw, pitch, focal)])
    if kind == "changed":
        entry = draw(st.integers(0, count - 1))
        index = draw(st.integers(0, 24))
        labels[entry][1][index] = draw(JSON_SCALARS)
    return {"labels": labels}


@PROPERTY
@given(document=datasets())
def test_dataset_json_is_refused_or_read_exactly(document):
    path = _scratch() / "dataset.json"
    path.write_text(json.dumps(document))
    try:
        pairs = read_cameras(path)
    except InputError as error:
        assert str(error).startswith(str(path))
        return
    labels = document["labels"]
    assert [name for name, _ in pairs] == [entry[0] for entry in labels]
    for (_, values), entry in zip(pairs, labels):
        assert values == [float(v) for v in entry[1]]
        assert all(math.isfinite(v) and not isinstance(v, bool) for v in entry[1])
    assert camera.label_problems(torch.tensor([v for _, v in pairs])) == []


@PROPERTY
@given(data=st.binary(max_size=200))
def test_dataset_json_bytes_never_crash(data):
    path = _scratch() / "dataset.json"
    path.write_bytes(data)
    with pytest.raises(InputError, match="dataset.json"):
        read_cameras(path)


@PROPERTY
@given(pixels=arrays(np.uint8, (8, 8), elements=st.sampled_from([0, 1, 31, 32, 127, 128, 223,
                                                                  224, 254, 255])))  # fmt: skip
def test_masks_are_binary_or_refused(pixels):
    folder = _scratch()
    write_png(folder / "a.png", pixels)
    grey = float(((pixels >= GREY_LEVELS[0]) & (pixels <= GREY_LEVELS[1])).mean())
    if grey > MAX_GREY_SHARE:
        with pytest.raises(InputError, match="grey"):
            read_masks(folder, ["a.png"], (8, 8))
    else:
        masks = read_masks(folder, ["a.png"], (8, 8))
        assert torch.equal(masks[0, 0], torch.from_numpy(pixels >= 128).float())


VALID_MANIFEST = {
    "format": run_folder.MANIFEST_FORMAT,
    "status": "complete",
    "method": "wplus",
    "preset": "fast",
    "settings": {},
    "network": {"name": "tiny"},
    "input": {"frames": 2},
}


@st.composite
def manifests(draw) -> object:
    kind = draw(st.sampled_from(["valid", "dropped", "changed", "junk"]))
    manifest = dict(VALID_MANIFEST)
    if kind == "junk":
        return draw(ANY_JSON)
    if kind == "dropped":
        del manifest[draw(st.sampled_from(sorted(manifest)))]
    if kind == "changed":
        manifest[draw(st.sampled_from(sorted(manifest)))] = draw(ANY_JSON)
    return manifest


@PROPERTY
@given(document=manifests(), raw=st.none() | st.binary(max_size=64))
def test_run_json_is_refused_or_read_exactly(document, raw):
    folder = _scratch()
    path = folder / run_folder.MANIFEST
    if raw is not None:
        path.write_bytes(raw)
    else:
        path.write_text(json.dumps(document))
    try:
        manifest = run_folder.read_manifest(folder)
    except InputError as error:
        assert str(folder) in str(error)
        return
    assert raw is None and manifest == json.loads(json.dumps(document))
    assert manifest["format"] == run_folder.MANIFEST_FORMAT
    assert all(key in manifest for key in run_folder.MANIFEST_KEYS)


EXPECTED = {"ws": (2, 3, 4), "cameras": (2, 25)}


@st.composite
def tensor_files(draw) -> dict[str, torch.Tensor]:
    tensors = {}
    for name, shape in EXPECTED.items():
        if draw(st.booleans()) or not draw(st.booleans()):
            if draw(st.integers(0, 3)) == 0:
                shape = tuple(draw(st.lists(st.integers(0, 4), min_size=1, max_size=3)))
            values = draw(arrays(np.float32, shape, elements=st.floats(width=32)))
            tensors[name] = torch.from_numpy(values)
    return tensors


@PROPERTY
@given(tensors=tensor_files(), damage=st.none() | st.integers(0, 400))
def test_run_tensor_files_are_refused_or_read_exactly(tensors, damage):
    from safetensors.torch import save_file

    folder = _scratch()
    path = folder / run_folder.LATENTS
    save_file(tensors, str(path))
    if damage is not None:
        data = bytearray(path.read_bytes())
        del data[damage % max(len(data), 1) :]
        path.write_bytes(bytes(data))
    try:
        read = run_folder.read_tensors(folder, run_folder.LATENTS, EXPECTED)
    except InputError as error:
        assert str(error).startswith(str(path))
        return
    assert {k: tuple(v.shape) for k, v in read.items()} == EXPECTED
    for key, value in read.items():
        assert torch.isfinite(value).all() and torch.equal(value, tensors[key])


@functools.cache
def tiny_config():
    return read_converted(weights_path())


CONFIG_KEYS = sorted(INT_LIMITS) + [("rendering_kwargs", k) for k in ("ray_start", "ray_end",
                                                                      "box_warp")]  # fmt: skip


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(keys=st.sampled_from(CONFIG_KEYS), value=JSON_SCALARS)
@example(keys=("rendering_kwargs", "depth_resolution"), value=16)  # accepted: built as it says
@example(keys=("neural_rendering_resolution",), value=32)
def test_network_configs_are_refused_or_built_as_they_say(keys, value):
    config, tensors = tiny_config()
    config = json.loads(json.dumps(config))
    target = config
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    try:
        generator = build_generator(config, tensors, GENERATOR_CLASSES)
    except CheckpointError:
        return
    if keys == ("neural_rendering_resolution",):
        assert generator.neural_rendering_resolution == value
    elif keys[0] == "rendering_kwargs":
        assert generator.rendering_kwargs[keys[-1]] == value
    if keys in INT_LIMITS and value is not None:  # None: not given, the constructor's default
        low, high = INT_LIMITS[keys]
        assert isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
