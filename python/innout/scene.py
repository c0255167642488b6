"""Exported scenes: one frame of an inverted video as a self-contained, dependency-free file.

`innout export-scene` (:mod:`innout.edit.scene_export`) writes everything the raw (neural-rendering)
image of one frame depends on: the frame's EG3D tri-plane after edits, EG3D's decoder, the object
tri-plane with its decoder and the frame's code (In-N-Out methods), the camera and the sampling
settings. An application renders it without Python or PyTorch; :func:`render_scene` is the reference
it must match.

File layout (format ``innout-scene/1``): a safetensors file - an 8-byte little-endian header
length, a JSON header, then the raw little-endian data - whose tensors are all float32 and
C-contiguous. F = 32 features, C = plane channels (32), K = object code size (32):

=====================  ===================  =======================================================
tensor                 shape                meaning
=====================  ===================  =======================================================
camera                 [25]                 EG3D label: cam2world 4x4 (row-major, OpenCV axes),
                                            then the normalised intrinsics 3x3
face.planes            [3, C, H, W]         the frame's tri-plane (xy, xz, zx planes, EG3D order)
face.hidden.weight     [64, C]              y = x W^T + b, equalised-lr gains already folded in
face.hidden.bias       [64]
face.output.weight     [1 + F, 64]          row 0: raw density; rows 1..F: feature logits
face.output.bias       [1 + F]
object.planes          [3, C, R, R]         optional: every object.* tensor or none
object.code            [K]                  the frame's code
object.hidden.weight   [64, C + K]          input: [mean plane feature, code]
object.hidden.bias     [64]
object.output.weight   [2 + F, 64]          row 0 density, rows 1..F features, row F+1 blend logit
object.output.bias     [2 + F]
=====================  ===================  =======================================================

Header metadata (strings): ``format``, ``resolution`` (raw image side), ``coarse_samples``,
``fine_samples``, ``ray_start``, ``ray_end``, ``box_warp``, ``sigmoid_pad``, and for the record
``source``, ``frame``, ``method``, ``edits``.

Rendering (docs/method.md 3.1, :mod:`innout.render.pipeline`): one ray per pixel centre through the
camera; ``coarse_samples`` evenly spaced depths from ``ray_start`` to ``ray_end``; at every point
the mean of the three bilinear plane samples (grid_sample semantics, zero padding, coordinates
scaled by 2 / box_warp) goes through ``softplus(hidden) -> output``; features are ``sigmoid * (1 +
2 pad) - pad``, the object's blend ``sigmoid``; ``fine_samples`` more depths are drawn from the
composite weights at evenly spaced quantiles (EG3D's importance sampling, deterministic); both sets
are merged, sorted and marched by the composite volume renderer. Outputs: F feature channels (RGB
are the first three, in [-1, 1]) and the depth, each [resolution, resolution].
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch

from innout import ops
from innout.eg3d import camera as cameras
from innout.eg3d.renderer import triplane_field
from innout.render.pipeline import Field, FieldSamples, render_rays
from innout.render.settings import RenderSettings

SCENE_FORMAT = "innout-scene/1"
FACE_KEYS = ("face.planes", "face.hidden.weight", "face.hidden.bias", "face.output.weight",
             "face.output.bias")  # fmt: skip
OBJECT_KEYS = ("object.planes", "object.code", "object.hidden.weight", "object.hidden.bias",
               "object.output.weight", "object.output.bias")  # fmt: skip
SETTING_KEYS = ("resolution", "coarse_samples", "fine_samples", "ray_start", "ray_end", "box_warp",
                "sigmoid_pad")  # fmt: skip
INTEGER_SETTINGS = ("resolution", "coarse_samples", "fine_samples")

# ---- Limits of the reader -----------------------------------------------------------------------
# A scene file is untrusted: every size it gives is bounded before anything is allocated, so that a
# damaged or hostile file costs at most its own size in memory and a render of it stays feasible.
# The C++ reader (cpp/include/innout/scene.h, the kScene* constants) uses the same values; the
# tests check that they agree.
MAX_HEADER_BYTES = 1048576  # the JSON header (an exported scene's is under 4 KiB)
MAX_TENSORS = 64  # tensor entries in the header (a scene has 6, or 12 with the object)
MAX_DIMS = 8  # dimensions of one tensor
MAX_JSON_DEPTH = 64  # nesting of arrays and objects in the header, the header object included
MAX_RESOLUTION = 4096  # rendering resolution (side of the raw image)
MAX_SAMPLES = 1024  # coarse_samples, and fine_samples, per ray
MAX_PLANE_SIZE = 2048  # height and width of a tri-plane (face and object)
MAX_CHANNELS = 1024  # plane channels, decoder hidden widths, features F, object code size K
MIN_FOCAL_LENGTH = 0.001  # normalised fx and fy (0.001: a field of view of 179.9 degrees)
CAMERA_TOLERANCE = 0.001  # orthonormality of cam2world's rotation, and the label's fixed entries

_INT64_MAX = (1 << 63) - 1
_UINT64_MAX = (1 << 64) - 1
_FLOAT32_MAX = 3.4028234663852886e38
# Settings are strings (safetensors metadata) holding a JSON number: no whitespace, sign on
# integers, underscores, hexadecimal or inf/nan spellings, so both readers parse them alike.
_JSON_INTEGER = re.compile(r"0|[1-9][0-9]*")
_JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


class SceneError(ValueError):
    """A scene file that is not a valid innout scene (the message says what was expected)."""


@dataclass
class Scene:
    """A loaded scene: its tensors by name and its settings."""

    tensors: dict[str, torch.Tensor]
    resolution: int
    coarse_samples: int
    fine_samples: int
    ray_start: float
    ray_end: float
    box_warp: float
    sigmoid_pad: float
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def has_object(self) -> bool:
        return "object.planes" in self.tensors


class _Invalid(Exception):  # noqa: N818  (private: load_scene turns it into SceneError)
    """What is wrong with a scene file (load_scene prefixes the path)."""


class _Unreadable(_Invalid):  # noqa: N818
    """The safetensors container itself is broken (header length, JSON, offsets)."""


@dataclass
class _Entry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def camera_problem(label: Sequence[float]) -> str | None:
    """What makes 25 floats unusable as an EG3D camera label (None if nothing): non-finite values,
    a cam2world whose rotation is not orthonormal or whose last row is not [0, 0, 0, 1], focal
    lengths below MIN_FOCAL_LENGTH, or intrinsics whose last rows are not [0, fy, cy], [0, 0, 1].
    Such a camera renders NaN (or a mirrored, sheared image) without any other error."""
    values = [float(v) for v in label]
    if len(values) != 25:
        return f"expected 25 floats (cam2world 4x4, intrinsics 3x3), got {len(values)}"
    bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
    if bad:
        return f"expected finite values, element {bad[0]} is {values[bad[0]]}"
    m, k, tol = values[:16], values[16:], CAMERA_TOLERANCE
    # Double precision, and the same order of operations as the C++ reader, so that both decide
    # alike even next to the tolerance.
    error = 0.0
    for i in range(3):
        for j in range(3):
            dot = m[i * 4] * m[j * 4] + m[i * 4 + 1] * m[j * 4 + 1] + m[i * 4 + 2] * m[j * 4 + 2]
            error = max(error, abs(dot - (1.0 if i == j else 0.0)))
    if error > tol:
        return (f"expected a cam2world whose rotation (top-left 3x3) is orthonormal to within "
                f"{tol}, got |R R^T - I| = {error:.6g}")  # fmt: skip
    if max(abs(m[12]), abs(m[13]), abs(m[14]), abs(m[15] - 1.0)) > tol:
        return f"expected cam2world's last row [0, 0, 0, 1], got {m[12:16]}"
    if not (k[0] >= MIN_FOCAL_LENGTH and k[4] >= MIN_FOCAL_LENGTH):
        return (f"expected normalised focal lengths fx, fy >= {MIN_FOCAL_LENGTH}, got fx={k[0]} "
                f"fy={k[4]}")  # fmt: skip
    if max(abs(k[3]), abs(k[6]), abs(k[7]), abs(k[8] - 1.0)) > tol:
        return f"expected intrinsics rows [0, fy, cy] and [0, 0, 1], got {k[3:9]}"
    return None


def _json_int(text: str) -> int:
    # Only literals of non-negative int64 values are used (shapes, offsets); a negative literal
    # (-0 included, which safetensors refuses too) becomes -1 and one of more than 19 digits 2^64,
    # so that the range checks refuse them without Python parsing thousands of digits.
    if text.startswith("-"):
        return -1
    return 1 << 64 if len(text) > 19 else int(text)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _parse_header(data: bytes) -> dict:
    """The header as strict JSON (RFC 8259: no NaN, no duplicate keys, no lone surrogates), nested
    at most MAX_JSON_DEPTH deep: what the C++ reader accepts."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _Unreadable(f"header is not valid UTF-8 (byte {error.start})") from None
    try:
        root = json.loads(text, object_pairs_hook=_unique_keys, parse_int=_json_int,
                          parse_constant=_no_constant)  # fmt: skip
    except RecursionError:
        raise _Unreadable(f"header nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as error:
        raise _Unreadable(f"header is not valid JSON: {error}") from None
    stack: list[tuple[object, int]] = [(root, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise _Unreadable("header has a lone surrogate in a \\u escape") from None
        elif isinstance(value, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise _Unreadable(f"header nests deeper than {MAX_JSON_DEPTH} levels")
            items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
    if not isinstance(root, dict):
        raise _Unreadable("header must be a JSON object")
    return root


def _index(value: object) -> bool:
    """A JSON integer >= 0 that fits int64 (bool is an int in Python, but not in JSON)."""
    return type(value) is int and 0 <= value <= _INT64_MAX


def _entries(header: dict, buffer_size: int) -> tuple[dict[str, str], list[_Entry]]:
    """The metadata and the tensor entries of a safetensors header, their offsets tiling the
    byte buffer exactly."""
    metadata: dict[str, str] = {}
    entries: list[_Entry] = []
    for name, value in header.items():
        if name == "__metadata__":
            if value is None:
                continue
            if not isinstance(value, dict):
                raise _Invalid("__metadata__ must be an object of strings")
            for key, text in value.items():
                if not isinstance(text, str):
                    raise _Invalid(f"__metadata__ entry {key!r} must be a string")
            metadata.update(value)
            continue
        if len(entries) == MAX_TENSORS:
            raise _Invalid(f"more than {MAX_TENSORS} tensors in the header")
        if not isinstance(value, dict):
            raise _Invalid(f"header entry of tensor {name} must be an object with dtype, shape "
                           "and data_offsets")  # fmt: skip
        dtype, shape, offsets = value.get("dtype"), value.get("shape"), value.get("data_offsets")
        if not isinstance(dtype, str):
            raise _Invalid(f"dtype of {name} must be a string")
        if not isinstance(shape, list):
            raise _Invalid(f"shape of {name} must be an array of non-negative integers")
        if len(shape) > MAX_DIMS:
            raise _Invalid(f"shape of {name} has {len(shape)} dimensions, at most {MAX_DIMS} are "
                           "supported")  # fmt: skip
        if not all(_index(d) for d in shape):
            raise _Invalid(f"shape of {name} must be an array of non-negative integers")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_index, offsets))):
            raise _Invalid(f"data_offsets of {name} must be two non-negative integers [begin, end]")
        begin, end = offsets
        if not begin <= end <= buffer_size:
            raise _Unreadable(f"data_offsets of {name} are [{begin}, {end}], expected begin <= end "
                              f"<= the byte buffer's size ({buffer_size})")  # fmt: skip
        entries.append(_Entry(name, dtype, tuple(shape), begin, end))
    covered = 0
    for entry in sorted(entries, key=lambda e: (e.begin, e.end)):
        if entry.begin != covered:
            raise _Unreadable(f"data of {entry.name} starts at byte {entry.begin} of the buffer, "
                              f"expected {covered} (tensors must be contiguous)")  # fmt: skip
        covered = entry.end
    if covered != buffer_size:
        raise _Unreadable(f"the tensors cover {covered} bytes but the byte buffer holds "
                          f"{buffer_size}")  # fmt: skip
    return metadata, entries


def _byte_count(shape: tuple[int, ...]) -> int | None:
    """4 x elements, or None where the product passes 2^64 - 1 (multiplied left to right, as
    safetensors and the C++ reader do: [2^62, 2^62, 0] is refused though it has no elements)."""
    n = 1
    for d in shape:
        if d != 0 and n > _UINT64_MAX // d:
            return None
        n *= d
    return None if n > _UINT64_MAX // 4 else 4 * n


def _rows(shape: tuple[int, ...]) -> int:
    """Rows of a weight matrix (0 for a scalar, which then fails the checks)."""
    return shape[0] if shape else 0


def _check_sizes(shapes: dict[str, tuple[int, ...]]) -> None:
    """Shapes consistent with each other and every size within the limits."""

    def within(name: str, what: str, value: int, low: int, high: int) -> None:
        if not low <= value <= high:
            raise _Invalid(f"{name} has {what} {value}, expected {low} to {high}")

    planes = shapes["face.planes"]
    if len(planes) != 4 or planes[0] != 3:
        raise _Invalid(f"face.planes must have shape [3, C, H, W], got {list(planes)}")
    channels = planes[1]
    within("face.planes", "C =", channels, 1, MAX_CHANNELS)
    within("face.planes", "H =", planes[2], 1, MAX_PLANE_SIZE)
    within("face.planes", "W =", planes[3], 1, MAX_PLANE_SIZE)
    hidden = _rows(shapes["face.hidden.weight"])
    within("face.hidden.weight", "rows (hidden width)", hidden, 1, MAX_CHANNELS)
    outputs = _rows(shapes["face.output.weight"])  # 1 + F
    within("face.output.weight", "rows (1 + F features)", outputs, 2, MAX_CHANNELS + 1)
    expected = {
        "camera": (25,),
        "face.hidden.weight": (hidden, channels),
        "face.hidden.bias": (hidden,),
        "face.output.weight": (outputs, hidden),
        "face.output.bias": (outputs,),
    }
    if "object.planes" in shapes:
        object_planes, code = shapes["object.planes"], shapes["object.code"]
        if len(object_planes) != 4 or object_planes[:2] != (3, channels):
            raise _Invalid(f"object.planes must have shape [3, {channels}, R, R], got "
                           f"{list(object_planes)}")  # fmt: skip
        within("object.planes", "height", object_planes[2], 1, MAX_PLANE_SIZE)
        within("object.planes", "width", object_planes[3], 1, MAX_PLANE_SIZE)
        if len(code) != 1:
            raise _Invalid(f"object.code must have shape [K], got {list(code)}")
        within("object.code", "K =", code[0], 1, MAX_CHANNELS)
        object_hidden = _rows(shapes["object.hidden.weight"])
        within("object.hidden.weight", "rows (hidden width)", object_hidden, 1, MAX_CHANNELS)
        expected.update({
            "object.hidden.weight": (object_hidden, channels + code[0]),
            "object.hidden.bias": (object_hidden,),
            "object.output.weight": (outputs + 1, object_hidden),
            "object.output.bias": (outputs + 1,),
        })  # fmt: skip
    for name, shape in expected.items():
        if shapes[name] != shape:
            raise _Invalid(f"{name} must have shape {list(shape)}, got {list(shapes[name])}")


def _float32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


def _settings(metadata: dict[str, str]) -> dict[str, int | float]:
    """The sampling settings, from metadata strings holding JSON numbers, within the limits."""
    settings: dict[str, int | float] = {}
    for key in SETTING_KEYS:
        if key not in metadata:
            raise _Invalid(f"header metadata lacks {key!r}")
        text = metadata[key]
        if key in INTEGER_SETTINGS:
            if not _JSON_INTEGER.fullmatch(text):
                raise _Invalid(f"{key} must be an integer (JSON syntax, e.g. '64'), got {text!r}")
            settings[key] = int(text) if len(text) <= 19 else _INT64_MAX
        else:
            if not _JSON_NUMBER.fullmatch(text):
                raise _Invalid(f"{key} must be a number (JSON syntax, e.g. '2.25'), got {text!r}")
            settings[key] = float(text)
    for key, low, high in (("resolution", 1, MAX_RESOLUTION), ("coarse_samples", 2, MAX_SAMPLES),
                           ("fine_samples", 0, MAX_SAMPLES)):  # fmt: skip
        if not low <= settings[key] <= high:
            raise _Invalid(f"{key} must be in [{low}, {high}], got {metadata[key]!r}")
    if settings["fine_samples"] > 0 and settings["coarse_samples"] < 4:
        # EG3D's importance sampling draws from a pdf of K - 3 bins.
        raise _Invalid(f"coarse_samples must be >= 4 when fine_samples > 0, got "
                       f"{settings['coarse_samples']}")  # fmt: skip
    for key in ("ray_start", "ray_end", "box_warp", "sigmoid_pad"):
        if not math.isfinite(settings[key]):
            raise _Invalid(f"settings contain NaN or infinity: {key} is {metadata[key]!r}")
        if abs(settings[key]) > _FLOAT32_MAX:
            raise _Invalid(f"{key} is out of the float32 range")
    start, end, warp = settings["ray_start"], settings["ray_end"], settings["box_warp"]
    if not (0 < start < end) or not warp > 0:
        raise _Invalid(f"0 < ray_start < ray_end and box_warp > 0 are required, got ray_start "
                       f"{start}, ray_end {end}, box_warp {warp}")  # fmt: skip
    # The renderers compute in float32: the order must survive the rounding.
    settings.update({k: _float32(settings[k]) for k in ("ray_start", "ray_end", "box_warp",
                                                        "sigmoid_pad")})  # fmt: skip
    if not (0 < settings["ray_start"] < settings["ray_end"]) or not settings["box_warp"] > 0:
        raise _Invalid("ray_start < ray_end and box_warp > 0 must hold in float32")
    return settings


def _read(file: BinaryIO, size: int) -> tuple[dict[str, torch.Tensor], dict[str, str], dict]:
    """Tensors, metadata and settings of an open scene file of `size` bytes. Every check that
    does not need the tensor data runs before any tensor is allocated."""
    prefix = file.read(8)
    if len(prefix) < 8:
        raise _Unreadable(f"file too short ({size} bytes): a scene starts with an 8-byte header "
                          "length")  # fmt: skip
    header_length = int.from_bytes(prefix, "little")
    if header_length > MAX_HEADER_BYTES:
        raise _Unreadable(f"header length {header_length} exceeds the limit of {MAX_HEADER_BYTES} "
                          "bytes")  # fmt: skip
    if header_length > size - 8:
        raise _Unreadable(f"header length {header_length} exceeds the file ({size} bytes)")
    header = file.read(header_length)
    if len(header) != header_length:
        raise _Unreadable("the file ended inside the header")
    buffer_size = size - 8 - header_length
    metadata, entries = _entries(_parse_header(header), buffer_size)
    if metadata.get("format") != SCENE_FORMAT:
        raise _Invalid(f"format {metadata.get('format')!r}, expected {SCENE_FORMAT!r}")
    names = [entry.name for entry in entries]
    missing = [k for k in ("camera", *FACE_KEYS) if k not in names]
    object_keys = [k for k in OBJECT_KEYS if k in names]
    if object_keys and len(object_keys) != len(OBJECT_KEYS):
        missing += [k for k in OBJECT_KEYS if k not in names]
    if missing:
        raise _Invalid(f"missing tensor(s) {', '.join(missing)}")
    for entry in entries:
        if entry.dtype != "F32":
            raise _Invalid(f"{entry.name} must be float32 (F32), got {entry.dtype}")
    for entry in entries:
        nbytes = _byte_count(entry.shape)
        if nbytes is None:
            raise _Invalid(f"shape {list(entry.shape)} of {entry.name} is too large")
        if entry.end - entry.begin != nbytes:
            span, shape = entry.end - entry.begin, list(entry.shape)
            raise _Unreadable(f"data_offsets of {entry.name} span {span} bytes, but shape "
                                   f"{shape} of F32 needs {nbytes}")  # fmt: skip
    _check_sizes({entry.name: entry.shape for entry in entries})
    settings = _settings(metadata)
    # Every size is now bounded and matches the file's own bytes: read the data.
    file.seek(8 + header_length)
    data = file.read(buffer_size)
    if len(data) != buffer_size:
        raise _Unreadable("the file changed while it was read")
    tensors = {}
    for entry in entries:
        if entry.end == entry.begin:
            tensor = torch.zeros(entry.shape)
        else:
            values = torch.frombuffer(bytearray(data[entry.begin : entry.end]), dtype=torch.float32)
            tensor = values.reshape(entry.shape)
        finite = torch.isfinite(tensor.reshape(-1))
        if not bool(finite.all()):
            index = int((~finite).nonzero()[0])
            raise _Invalid(f"{entry.name} contains NaN or infinity (element {index})")
        tensors[entry.name] = tensor
    problem = camera_problem(tensors["camera"].double().tolist())
    if problem is not None:
        raise _Invalid(f"camera is degenerate: {problem}")
    return tensors, metadata, settings


def load_scene(path: str | os.PathLike) -> Scene:
    """Reads and validates a scene file (SceneError naming the file and what is wrong otherwise).

    The file is untrusted: its header is parsed as strict JSON, every size is checked against the
    limits above and against the file's size before anything is allocated, the tensors must be
    finite and the camera a usable one (camera_problem)."""
    if sys.byteorder != "little":
        raise SceneError(f"{path}: scene files can only be read on a little-endian host")
    path = Path(path)
    if not path.is_file():
        raise SceneError(f"{path}: no such scene file")
    try:
        with open(path, "rb") as file:
            tensors, metadata, settings = _read(file, os.fstat(file.fileno()).st_size)
    except _Unreadable as error:
        raise SceneError(f"{path}: not a readable safetensors file ({error})") from None
    except _Invalid as error:
        raise SceneError(f"{path}: {error}") from None
    except OSError as error:
        raise SceneError(f"{path}: cannot read the scene file ({error})") from error
    extra = {k: v for k, v in metadata.items() if k not in SETTING_KEYS}
    return Scene(tensors=tensors, metadata=extra, **settings)


class _SceneDecoder(torch.nn.Module):
    """EG3D's decoder from a scene's folded weights (the interface of OSGDecoder)."""

    def __init__(self, tensors: dict[str, torch.Tensor], prefix: str, pad: float) -> None:
        super().__init__()
        self.tensors, self.prefix, self.pad = tensors, prefix, pad

    def layers(self, x: torch.Tensor) -> torch.Tensor:
        t, p = self.tensors, self.prefix
        x = torch.nn.functional.linear(x, t[f"{p}.hidden.weight"], t[f"{p}.hidden.bias"])
        return torch.nn.functional.linear(
            torch.nn.functional.softplus(x), t[f"{p}.output.weight"], t[f"{p}.output.bias"]
        )

    def forward(self, features: torch.Tensor, ray_directions=None) -> dict[str, torch.Tensor]:
        x = self.layers(features)
        rgb = torch.sigmoid(x[..., 1:]) * (1 + 2 * self.pad) - self.pad
        return {"sigma": x[..., 0:1], "rgb": rgb}


def _scene_object(scene: Scene) -> Field:
    """The object field of a scene, with its frame's code, as a pipeline field."""
    decoder = _SceneDecoder(scene.tensors, "object", scene.sigmoid_pad)
    planes, code = scene.tensors["object.planes"][None], scene.tensors["object.code"]
    pad = scene.sigmoid_pad

    def field(points: torch.Tensor, kernels: ops.Backend) -> FieldSamples:
        features = kernels.triplane_sample(planes, points, scene.box_warp)
        x = torch.cat([features, code.expand(*features.shape[:-1], code.shape[0])], dim=-1)
        x = decoder.layers(x)
        colour = torch.sigmoid(x[..., 1:-1]) * (1 + 2 * pad) - pad
        return FieldSamples(x[..., 0], colour, torch.sigmoid(x[..., -1]))

    return field


@torch.no_grad()
def render_scene(
    scene: Scene, camera: torch.Tensor | None = None, backend: str = "innout"
) -> dict[str, torch.Tensor]:
    """The scene's raw image: {"features": [F, R, R], "image_raw": [3, R, R], "depth": [R, R]}
    and, with an object, "object_opacity" [R, R] (the object layer's alpha).

    `camera` [25] replaces the scene's; `backend` "reference" uses the pure-PyTorch ops."""
    label = scene.tensors["camera"] if camera is None else torch.as_tensor(camera).float()
    if camera is not None:
        problem = camera_problem(label.reshape(-1).double().tolist())
        if problem is not None:
            raise SceneError(f"camera: {problem}")
    settings = RenderSettings(
        depth_resolution=scene.coarse_samples,
        depth_resolution_importance=scene.fine_samples,
        ray_start=scene.ray_start,
        ray_end=scene.ray_end,
        box_warp=scene.box_warp,
        deterministic=True,
        backend=backend,
    )
    size = scene.resolution
    origins, directions = cameras.pixel_rays(label.reshape(1, 25), size)
    decoder = _SceneDecoder(scene.tensors, "face", scene.sigmoid_pad)
    face = triplane_field(scene.tensors["face.planes"][None], decoder, scene.box_warp)
    obj = _scene_object(scene) if scene.has_object else None
    rays = render_rays(face, origins, directions, settings, object_field=obj)
    features = rays.features[0].T.reshape(-1, size, size)
    out = {
        "features": features,
        "image_raw": features[:3],
        "depth": rays.depth[0].reshape(size, size),
    }
    if rays.object_opacity is not None:
        out["object_opacity"] = rays.object_opacity[0].reshape(size, size)
    return out
