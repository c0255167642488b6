"""Properties of the two scene readers on files made by mutating an exported scene (Hypothesis):
every file is either refused with a SceneError naming it, or accepted and rendered to finite
images that the innout kernels and the pure-PyTorch reference agree on; and the C++ reader
(tests/cpp/test_scene under the sanitizers) accepts exactly the files Python accepts."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import shutil
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from innout.scene import SceneError, load_scene, render_scene
from safetensors.torch import save
from test_cpp_scene import build_sanitized, run_test_scene
from test_scene import innout_run  # noqa: F401  (the fixture: a short In-N-Out run)

pytestmark = pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake")

#: Reproducible in CI: the same examples on every run, nothing remembered between runs.
PROPERTY = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])  # fmt: skip

_count = itertools.count()


@dataclasses.dataclass
class Base:
    """A valid exported scene taken apart: the header as JSON and the byte buffer."""

    header: dict
    buffer: bytes
    directory: Path
    cpp: Path  # the sanitized build holding tests/cpp/test_scene


@pytest.fixture(scope="module")
def base(innout_run, tmp_path_factory) -> Base:  # noqa: F811
    from innout.edit.scene_export import scene_tensors

    tensors, metadata = scene_tensors(innout_run, 1)
    # The frame's tri-planes cropped to a few texels and a small render, so that an example
    # renders in milliseconds; decoders, camera and the rest are as exported.
    tensors["face.planes"] = tensors["face.planes"][:, :, 60:64, 60:65].contiguous()
    tensors["object.planes"] = tensors["object.planes"][:, :, 14:17, 14:17].contiguous()
    metadata.update(resolution="6", coarse_samples="8", fine_samples="4")
    data = save(tensors, metadata=metadata)
    (n,) = struct.unpack("<Q", data[:8])
    cpp = build_sanitized(tmp_path_factory)
    return Base(json.loads(data[8 : 8 + n]), data[8 + n :], tmp_path_factory.mktemp("props"), cpp)


def _file(header: dict | str, buffer: bytes) -> bytes:
    text = (header if isinstance(header, str) else json.dumps(header)).encode("utf-8")
    return struct.pack("<Q", len(text)) + text + buffer


def _tensor(base: Base, header: dict, buffer: bytes, name: str) -> torch.Tensor:
    begin, end = header[name]["data_offsets"]
    return torch.frombuffer(bytearray(buffer[begin:end]), dtype=torch.float32).clone()


def _with_tensor(header: dict, buffer: bytes, name: str, values: torch.Tensor) -> bytes:
    begin, end = header[name]["data_offsets"]
    data = values.numpy().astype("<f4").tobytes()
    assert len(data) == end - begin
    return buffer[:begin] + data + buffer[end:]


def check(base: Base, data: bytes) -> None:
    """The properties, for the file holding `data`."""
    path = base.directory / f"scene{next(_count)}.safetensors"
    path.write_bytes(data)
    try:
        scene = load_scene(path)
    except SceneError as error:
        scene = None
        assert str(error).startswith(f"{path}: "), f"the message names the file: {error}"
    run = run_test_scene(base.cpp, path)
    assert "Sanitizer" not in run.stderr and run.returncode in (0, 1), run.stderr[-3000:]
    cpp_accepts = run.stdout.startswith("loaded: ")
    assert cpp_accepts == (scene is not None), (
        f"Python {'accepts' if scene else 'refuses'}, C++ says: {run.stdout.strip()}"
    )
    event("refused" if scene is None else "accepted")
    if scene is None:
        return
    # A render at most 6 x 6 pixels with up to 16 + 16 samples: the sizes the file gives are
    # within the limits (checked by the readers), only the cost of this check is capped.
    small = dataclasses.replace(scene, resolution=min(scene.resolution, 6),
                                coarse_samples=min(scene.coarse_samples, 16),
                                fine_samples=min(scene.fine_samples, 16))  # fmt: skip
    fast, reference = render_scene(small), render_scene(small, backend="reference")
    for key, image in fast.items():
        assert image.isfinite().all(), f"{key} is not finite"
        # 1e-5 of the image's range: features lie in [-pad, 1 + pad] (sigmoid_pad may be large),
        # depths in [ray_start, ray_end], where float32 resolves no better.
        tolerance = 1e-5 * max(1.0, float(reference[key].abs().max()))
        torch.testing.assert_close(image, reference[key], atol=tolerance, rtol=0, msg=key)


SETTINGS = ("resolution", "coarse_samples", "fine_samples", "ray_start", "ray_end", "box_warp",
            "sigmoid_pad")  # fmt: skip
TEXTS = st.one_of(
    st.integers(-5, 5000).map(str),
    st.integers(0, 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["64.7", "64.0", "6.4e1", "true", '"64"', " 64", "+64", "064", "-0", "1_0",
                     "", "inf", "NaN", "0x10", "1e999", "1e-400", "4096", "4097", "1024", "1025",
                     "3", "2.25", "3.3", "0.5"]),
    st.text(max_size=6),
)  # fmt: skip
#: Values that are not non-negative JSON integers (True is an int in Python, not in JSON).
NOT_INDICES = st.sampled_from([True, False, None, -1, 2**63, 2**64, 1.0, "4", [], {}, [1]])


@PROPERTY
@given(data=st.data())
def test_header_mutations(base, data):
    header = json.loads(json.dumps(base.header))
    metadata = header["__metadata__"]
    names = [k for k in header if k != "__metadata__"]
    kind = data.draw(st.sampled_from(["setting", "drop", "extra", "type", "size", "entry"]))
    if kind == "setting":
        metadata[data.draw(st.sampled_from(SETTINGS))] = data.draw(TEXTS)
    elif kind == "drop":
        key = data.draw(st.sampled_from([*names, *SETTINGS, "format"]))
        (metadata if key in metadata else header).pop(key)
    elif kind == "extra":
        key = data.draw(st.sampled_from(["extra", "__metadata__x", "face.planes2"]))
        place = data.draw(st.sampled_from(["metadata", "top", "member"]))
        if place == "metadata":
            metadata[key] = data.draw(st.text(max_size=8))
        elif place == "top":
            empty = {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}
            header[key] = data.draw(st.sampled_from([1, "x", None, empty]))
        else:
            header[data.draw(st.sampled_from(names))][key] = data.draw(NOT_INDICES)
    elif kind == "type":
        entry = header[data.draw(st.sampled_from(names))]
        field = data.draw(st.sampled_from(["dtype", "shape", "data_offsets"]))
        if field == "dtype":
            entry["dtype"] = data.draw(st.sampled_from(["F64", "F16", "f32", "", 32, None]))
        elif data.draw(st.booleans()):
            entry[field] = data.draw(NOT_INDICES)
        else:
            values = list(entry[field])
            values[data.draw(st.integers(0, len(values) - 1))] = data.draw(NOT_INDICES)
            entry[field] = values
    elif kind == "size":
        # Another size for one dimension, the data_offsets unchanged (or made to match).
        entry = header[data.draw(st.sampled_from(names))]
        shape = entry["shape"]
        shape[data.draw(st.integers(0, len(shape) - 1))] = data.draw(
            st.sampled_from([0, 1, 2, 2049, 4097, 2**31, 2**62, 2**63 - 1]))  # fmt: skip
    else:
        # A tensor entry's offsets moved: overlapping, past the end, reversed.
        entry = header[data.draw(st.sampled_from(names))]
        begin, end = entry["data_offsets"]
        delta = data.draw(st.sampled_from([-4, 4, 1, len(base.buffer)]))
        entry["data_offsets"] = data.draw(st.sampled_from(
            [[begin + delta, end], [begin, end + delta], [end, begin]]))  # fmt: skip
    check(base, _file(header, base.buffer))


@PROPERTY
@given(data=st.data())
def test_byte_mutations(base, data):
    header, buffer = base.header, base.buffer
    kind = data.draw(st.sampled_from(["truncate", "extend", "header_length", "flip"]))
    whole = _file(header, buffer)
    if kind == "truncate":
        blob = whole[: data.draw(st.integers(0, len(whole) - 1))]
    elif kind == "extend":
        blob = whole + data.draw(st.binary(min_size=1, max_size=64))
    elif kind == "header_length":
        blob = struct.pack("<Q", data.draw(st.integers(0, 2**64 - 1))) + whole[8:]
    else:
        # A byte of the header changed: mostly broken JSON, sometimes another valid header.
        at = data.draw(st.integers(8, 8 + len(json.dumps(header)) - 1))
        blob = whole[:at] + bytes([data.draw(st.integers(0, 255))]) + whole[at + 1 :]
    check(base, blob)


@PROPERTY
@given(data=st.data())
def test_tensor_value_mutations(base, data):
    header, buffer = base.header, base.buffer
    names = [k for k in header if k != "__metadata__" and k != "camera"]
    name = data.draw(st.sampled_from(names))
    values = _tensor(base, header, buffer, name)
    index = data.draw(st.integers(0, values.numel() - 1))
    # Non-finite values are refused; finite ones (moderate, so that the decoders cannot overflow
    # float32 on the way: that is arithmetic, not the reader) are accepted and render.
    values[index] = data.draw(st.one_of(
        st.sampled_from([math.nan, math.inf, -math.inf]),
        st.floats(-100, 100, width=32)))  # fmt: skip
    check(base, _file(header, _with_tensor(header, buffer, name, values)))


@PROPERTY
@given(data=st.data())
def test_camera_mutations(base, data):
    header, buffer = base.header, base.buffer
    camera = _tensor(base, header, buffer, "camera")
    kind = data.draw(st.sampled_from(["zero", "element", "scale", "rotate", "focal"]))
    if kind == "zero":
        camera.zero_()
    elif kind == "element":
        camera[data.draw(st.integers(0, 24))] = data.draw(st.one_of(
            st.sampled_from([0.0, 1.0, -1.0, math.nan, math.inf, 1e-4, 1e-40]),
            st.floats(-3, 3, width=32)))  # fmt: skip
    elif kind == "scale":
        # A rotation row scaled: orthonormal within 1e-3 or not.
        row = data.draw(st.integers(0, 2))
        camera[row * 4 : row * 4 + 3] *= data.draw(st.sampled_from([0.0, 0.9, 0.9996, 1.0003,
                                                                    1.01, -1.0]))  # fmt: skip
    elif kind == "rotate":
        # A proper rotation of the pose about the vertical axis: always a valid camera.
        angle = data.draw(st.floats(-math.pi, math.pi))
        c, s = math.cos(angle), math.sin(angle)
        turn = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
        pose = camera[:16].reshape(4, 4).clone()
        pose[:3, :3] = turn @ pose[:3, :3]
        pose[:3, 3] = turn @ pose[:3, 3]
        camera[:16] = pose.reshape(-1)
    else:
        camera[data.draw(st.sampled_from([16, 20]))] = data.draw(st.sampled_from(
            [0.0, -4.0, 1e-4, 1e-3, 0.5, 40.0]))  # fmt: skip
    check(base, _file(header, _with_tensor(header, buffer, "camera", camera)))
