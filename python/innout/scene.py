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
import math
import os
from dataclasses import dataclass
from pathlib import Path

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


def _rows(tensor: torch.Tensor) -> int:
    """Rows of a weight matrix (0 for a scalar, which then fails the shape check)."""
    return tensor.shape[0] if tensor.dim() else 0


def _expected_shapes(tensors: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    planes = tensors["face.planes"]
    if planes.dim() != 4 or planes.shape[0] != 3:
        raise SceneError(f"face.planes must be [3, C, H, W], got {list(planes.shape)}")
    channels = planes.shape[1]
    hidden = _rows(tensors["face.hidden.weight"])
    features = _rows(tensors["face.output.weight"]) - 1
    shapes = {
        "camera": (25,),
        "face.hidden.weight": (hidden, channels),
        "face.hidden.bias": (hidden,),
        "face.output.weight": (features + 1, hidden),
        "face.output.bias": (features + 1,),
    }
    if "object.planes" in tensors:
        object_planes, code = tensors["object.planes"], tensors["object.code"]
        if object_planes.dim() != 4 or object_planes.shape[:2] != (3, channels):
            raise SceneError(f"object.planes must be [3, {channels}, R, R], got "
                             f"{list(object_planes.shape)}")  # fmt: skip
        if code.dim() != 1:
            raise SceneError(f"object.code must be [K], got {list(code.shape)}")
        object_hidden = _rows(tensors["object.hidden.weight"])
        shapes.update({
            "object.hidden.weight": (object_hidden, channels + code.shape[0]),
            "object.hidden.bias": (object_hidden,),
            "object.output.weight": (features + 2, object_hidden),
            "object.output.bias": (features + 2,),
        })  # fmt: skip
    return shapes


def load_scene(path: str | os.PathLike) -> Scene:
    """Reads and validates a scene file (SceneError naming what is wrong otherwise)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise SceneError(f"{path}: no such scene file")
    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
            tensors = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise SceneError(f"{path}: not a readable safetensors file ({error})") from error
    if metadata.get("format") != SCENE_FORMAT:
        raise SceneError(f"{path}: format {metadata.get('format')!r}, expected {SCENE_FORMAT!r}")
    missing = [k for k in ("camera", *FACE_KEYS) if k not in tensors]
    object_keys = [k for k in OBJECT_KEYS if k in tensors]
    if object_keys and len(object_keys) != len(OBJECT_KEYS):
        missing += [k for k in OBJECT_KEYS if k not in tensors]
    if missing:
        raise SceneError(f"{path}: missing tensor(s) {', '.join(missing)}")
    for key, tensor in tensors.items():
        if tensor.dtype != torch.float32:
            raise SceneError(f"{path}: {key} must be float32, got {tensor.dtype}")
    for key, shape in _expected_shapes(tensors).items():
        if tuple(tensors[key].shape) != shape:
            raise SceneError(f"{path}: {key} must have shape {list(shape)}, got "
                             f"{list(tensors[key].shape)}")  # fmt: skip
    settings = {}
    for key in SETTING_KEYS:
        if key not in metadata:
            raise SceneError(f"{path}: header metadata lacks {key!r}")
        try:
            value = float(metadata[key])
        except ValueError as error:
            raise SceneError(f"{path}: {key} must be a number, got {metadata[key]!r}") from error
        settings[key] = int(value) if key in ("resolution", "coarse_samples", "fine_samples") \
            else value  # fmt: skip
    if settings["resolution"] < 1 or settings["coarse_samples"] < 2 or settings["fine_samples"] < 0:
        raise SceneError(f"{path}: resolution >= 1, coarse_samples >= 2 and fine_samples >= 0 "
                         "are required")  # fmt: skip
    if not (0 < settings["ray_start"] < settings["ray_end"]) or settings["box_warp"] <= 0:
        raise SceneError(f"{path}: 0 < ray_start < ray_end and box_warp > 0 are required")
    if not all(torch.isfinite(t).all() for t in tensors.values()):
        raise SceneError(f"{path}: tensors contain NaN or infinity")
    if not all(math.isfinite(v) for v in settings.values()):
        raise SceneError(f"{path}: settings contain NaN or infinity")
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
