"""Editing an inverted video (METHOD.md section 3.3): latent edits, temporal smoothing, object
removal and novel views, rendered from a run folder without inverting again.

Edits change only the face latents w_t; the object field, its per-frame codes and the fine-tuned
super-resolution stay as they are, so the object looks the same in the edited video.

An edit is written ``SPEC[@A-B]=STRENGTH`` (:func:`parse_edit`); several are added together. SPEC
is a direction shipped with the network (innout-tiny: ``smile``, ``hair_color``, ...; strength in
attribute units), a direction ``.safetensors`` file (attribute units), an InterfaceGAN boundary
``.npy`` ([1, w_dim] or [num_ws, w_dim], normalised per row; latent units), a latent delta
``*.delta.npy`` (multiplied by the strength) or ``ganspace:K``, the generator's K-th principal
component of W (:mod:`innout.edit.ganspace`; strength in standard deviations). ``@A-B`` restricts
the edit to W+ layers A..B (inclusive, from 0), GANSpace's layer-wise edits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from innout.eg3d import camera
from innout.eg3d.directions import Direction, load_direction

#: The research code's causal filter on w_t (frames t-2, t-1, t) and innout's centred variant.
SMOOTHING = {
    "none": None,
    "causal": (0.125, 0.375, 0.5),
    "centered": (0.25, 0.5, 0.25),
}
#: Object opacity above which a pixel counts as object when no masks are given.
AUTO_MASK_THRESHOLD = 0.3


class EditError(ValueError):
    """An edit that cannot be applied; the message says what was expected."""


@dataclass(frozen=True)
class Edit:
    """One latent edit: `spec` moved by `strength`, on W+ layers `layers` (inclusive; None: all)."""

    spec: str
    strength: float
    layers: tuple[int, int] | None = None

    def __str__(self) -> str:
        layers = f"@{self.layers[0]}-{self.layers[1]}" if self.layers else ""
        return f"{self.spec}{layers}={self.strength:g}"


_LAYERS = re.compile(r"^(?P<spec>.+?)@(?P<first>\d+)-(?P<last>\d+)$")


def parse_edit(text: str, strength: float | None = None) -> Edit:
    """``SPEC[@A-B]=STRENGTH`` (or ``SPEC[@A-B]`` with `strength` given) -> Edit."""
    spec = text
    if strength is None:
        spec, equals, value = text.rpartition("=")
        try:
            strength = float(value) if equals else None
        except ValueError:
            strength = None
        if strength is None or not spec:
            raise EditError(f"edit {text!r}: expected SPEC=STRENGTH, e.g. smile=0.5 or "
                            "ganspace:2@0-5=-1.5")  # fmt: skip
    if not math.isfinite(strength):
        raise EditError(f"edit {text!r}: the strength must be a finite number")
    layers = None
    match = _LAYERS.match(spec)
    if match:
        spec = match["spec"]
        layers = (int(match["first"]), int(match["last"]))
        if layers[0] > layers[1]:
            raise EditError(f"edit {text!r}: layer range {layers[0]}-{layers[1]} is reversed")
    return Edit(spec, float(strength), layers)


def network_file(network: str) -> Path | None:
    """The weights file behind a run's network name ("tiny" or a path), if it can be found."""
    if network == "tiny":
        from innout.tiny.bundle import weights_path

        return weights_path()
    path = Path(network) if network else None
    return path if path is not None and path.is_file() else None


def _ganspace_offset(spec: str, strength: float, generator, network: str) -> torch.Tensor:
    from innout.edit.ganspace import components_for

    index_text = spec.split(":", 1)[1]
    if not index_text.isdigit():
        raise EditError(f"{spec!r}: expected ganspace:K with a component number K >= 0")
    if generator is None:
        raise EditError(f"{spec!r}: GANSpace edits need the generator")
    components = components_for(generator, network_file(network))
    try:
        return components.offset(int(index_text), strength)
    except IndexError as error:
        raise EditError(str(error)) from None


def latent_offset(
    spec: str,
    strength: float,
    num_ws: int,
    w_dim: int,
    network: str,
    generator: torch.nn.Module | None = None,
    layers: tuple[int, int] | None = None,
) -> torch.Tensor:
    """The latent step [num_ws, w_dim] of one edit (see the module docstring for `spec`).

    `generator` is needed for ``ganspace:K``; `layers` (inclusive) zeroes the step elsewhere.
    """
    path = Path(spec)
    if spec.startswith("ganspace:"):
        vector = _ganspace_offset(spec, strength, generator, network).reshape(1, -1)
        if vector.shape[1] != w_dim:
            raise EditError(f"{spec!r}: components have {vector.shape[1]} dimensions, not {w_dim}")
        step = vector.expand(num_ws, w_dim).clone()
    elif path.suffix == ".npy" and path.is_file():
        array = np.load(path, allow_pickle=False)
        if array.ndim != 2 or array.shape[1] != w_dim or array.shape[0] not in (1, num_ws):
            raise EditError(f"{path}: expected a [1, {w_dim}] or [{num_ws}, {w_dim}] array, got "
                            f"{list(array.shape)}")  # fmt: skip
        vector = torch.from_numpy(array.astype(np.float32))
        if not path.name.endswith(".delta.npy"):
            vector = vector / vector.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        step = (strength * vector).expand(num_ws, w_dim).clone()
    else:
        direction = _named_direction(spec, path, network)
        if direction.unit.shape[0] != w_dim:
            raise EditError(f"direction {spec!r} does not have {w_dim} dimensions")
        step = direction.offset(strength).expand(num_ws, w_dim).clone()
    if layers is not None:
        first, last = layers
        if not 0 <= first <= last < num_ws:
            raise EditError(f"layers {first}-{last} of {spec!r}: the generator has W+ layers "
                            f"0-{num_ws - 1}")  # fmt: skip
        keep = torch.zeros(num_ws, 1)
        keep[first : last + 1] = 1
        step = step * keep
    return step


def _named_direction(spec: str, path: Path, network: str) -> Direction:
    if path.suffix == ".safetensors" and path.is_file():
        try:
            return load_direction(path)
        except ValueError as error:
            raise EditError(str(error)) from None
    if network == "tiny" and path.suffix == "":
        from innout.tiny.directions import SHIPPED_DIRECTIONS, load_tiny_direction

        if spec not in SHIPPED_DIRECTIONS:
            raise EditError(f"unknown direction {spec!r}; innout-tiny ships "
                            f"{', '.join(SHIPPED_DIRECTIONS)} (or use ganspace:K)")  # fmt: skip
        return load_tiny_direction(spec)
    raise EditError(
        f"direction {spec!r}: not a file, and only innout-tiny ships named directions "
        "(pass a .safetensors direction, a .npy boundary, a *.delta.npy or ganspace:K)"
    )


def edits_offset(
    edits: Sequence[Edit | str],
    num_ws: int,
    w_dim: int,
    network: str,
    generator: torch.nn.Module | None = None,
) -> torch.Tensor:
    """The summed latent step [num_ws, w_dim] of several edits (strings are parsed)."""
    total = torch.zeros(num_ws, w_dim)
    for edit in edits:
        edit = parse_edit(edit) if isinstance(edit, str) else edit
        total = total + latent_offset(edit.spec, edit.strength, num_ws, w_dim, network,
                                      generator, edit.layers)  # fmt: skip
    return total


def smooth(values: torch.Tensor, mode: str) -> torch.Tensor:
    """Temporal filter of per-frame values [T, ...] (edges repeat the first / last frame)."""
    if mode not in SMOOTHING:
        raise EditError(f"smoothing must be one of {', '.join(SMOOTHING)}, got {mode!r}")
    taps = SMOOTHING[mode]
    if taps is None or values.shape[0] < 2:
        return values
    count = values.shape[0]
    offsets = (-2, -1, 0) if mode == "causal" else (-1, 0, 1)
    out = torch.zeros_like(values)
    for weight, offset in zip(taps, offsets):
        index = (torch.arange(count, device=values.device) + offset).clamp(0, count - 1)
        out = out + weight * values[index]
    return out


def dilate(masks: torch.Tensor, size: int) -> torch.Tensor:
    """Binary dilation of masks [T, 1, H, W] (1 = object) with a size x size square."""
    if size <= 1:
        return masks
    grown = F.max_pool2d(masks, size, stride=1, padding=size // 2)
    return grown[..., : masks.shape[-2], : masks.shape[-1]]


def removal_scale(object_masks: torch.Tensor, resolution: int, dilation: int = 5) -> torch.Tensor:
    """Per-ray blend factors [T, R*R]: 0 inside the dilated object masks [T, 1, H, W] (1 =
    object), 1 elsewhere (METHOD.md 3.3; innout clamps, so no 1.2 boost outside)."""
    masks = F.interpolate(object_masks.float(), size=(resolution, resolution), mode="area")
    masks = dilate((masks > 0).float(), dilation)
    return (1 - masks).flatten(1)


def view_cameras(
    frames: int,
    yaw: float = 0.0,
    pitch: float = 0.0,
    orbit: bool = False,
    focal: float | None = None,
) -> torch.Tensor:
    """[T, 25] cameras at radius 2.7 around the FFHQ pivot: a fixed view at yaw/pitch (degrees)
    or, with `orbit`, a full left-right sweep of +-yaw (default 30 degrees) over the frames."""
    focal = focal or camera.FFHQ_FOCAL
    if orbit:
        amplitude = math.radians(yaw or 30.0)
        yaws = [amplitude * math.sin(2 * math.pi * t / frames) for t in range(frames)]
    else:
        yaws = [math.radians(yaw)] * frames
    pitches = torch.full((frames,), math.pi / 2 + math.radians(pitch))
    pose = camera.look_at_cam2world(math.pi / 2 + torch.tensor(yaws), pitches)
    return camera.camera_labels(pose, camera.intrinsics(focal).expand(frames, 3, 3))


def _object_masks(result, clip, dilation: int, masks: torch.Tensor | None = None) -> torch.Tensor:
    """[T, 1, R, R] object masks (1 = object) at raw resolution: `masks` [T, 1, H, W] (1 =
    object) when given, else the clip's (255 = face), else the learned object field's own opacity
    (> AUTO_MASK_THRESHOLD)."""
    resolution = result.generator.neural_rendering_resolution
    if masks is not None:
        if masks.dim() != 4 or masks.shape[0] != result.frames or masks.shape[1] != 1:
            raise EditError(f"object masks must have shape [{result.frames}, 1, H, W], got "
                            f"{list(masks.shape)}")  # fmt: skip
        return F.interpolate(masks.float().cpu(), size=(resolution, resolution), mode="area")
    if clip is not None and clip.masks is not None:
        return F.interpolate(1 - clip.masks, size=(resolution, resolution), mode="area")
    opacity = torch.cat([render.object_opacity for _, render in result.render()])
    return (opacity > AUTO_MASK_THRESHOLD).float().cpu()


def view_of(frames: int, view) -> torch.Tensor | None:
    """Cameras [T, 25] for a `view`: None (the frames' own), "orbit", (yaw, pitch) in degrees,
    or cameras [T, 25] / [1, 25] as they are."""
    if view is None or isinstance(view, torch.Tensor):
        return view
    if view == "orbit":
        return view_cameras(frames, orbit=True)
    if isinstance(view, (tuple, list)) and len(view) == 2:
        return view_cameras(frames, float(view[0]), float(view[1]))
    raise EditError(f"view must be None, 'orbit', (yaw, pitch) in degrees or [T, 25] cameras, "
                    f"got {view!r}")  # fmt: skip


def render_options(
    result,
    edit=None,
    view=None,
    remove_object: bool | torch.Tensor = False,
    dilation: int = 5,
    clip=None,
) -> dict:
    """The `latents`, `cameras` and `blend_scale` arguments of InversionResult.render for an
    edit (an Edit, a ``SPEC=S`` string or a list of them), a view (see `view_of`) and object
    removal (True: the clip's masks or the automatic ones; a tensor: object masks [T, 1, H, W])."""
    latents = result.latents
    if edit is not None:
        edits = [edit] if isinstance(edit, (str, Edit)) else list(edit)
        if edits:
            offset = edits_offset(edits, latents.shape[1], latents.shape[2], result.network_name,
                                  result.generator)  # fmt: skip
            latents = latents + offset.to(latents)
    scale = None
    removing = remove_object is not False and remove_object is not None
    if removing and result.state.object is not None:
        masks = remove_object if isinstance(remove_object, torch.Tensor) else None
        object_masks = _object_masks(result, clip, dilation, masks)
        scale = removal_scale(object_masks, result.generator.neural_rendering_resolution,
                              dilation)  # fmt: skip
    return {"latents": latents, "cameras": view_of(result.frames, view), "blend_scale": scale}


@torch.no_grad()
def superresolve_smoothed(
    superresolution: torch.nn.Module,
    rgb: torch.Tensor,
    features: torch.Tensor,
    ws: torch.Tensor,
    mode: str,
) -> torch.Tensor:
    """Super-resolves frames [T, ...] with the temporal filter `mode` applied to the first SR
    block's outputs (METHOD.md 3.3), frame by frame with a sliding window of block0 outputs."""
    if mode not in SMOOTHING:
        raise EditError(f"smoothing must be one of {', '.join(SMOOTHING)}, got {mode!r}")
    count = rgb.shape[0]
    taps = SMOOTHING[mode] or (1.0,)
    offsets = {"causal": (-2, -1, 0), "centered": (-1, 0, 1)}.get(mode, (0,))
    window: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def first(index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if index not in window:
            # A copy of the raw image goes in: the block adds into it in place.
            window[index] = superresolution.first_block(
                rgb[index : index + 1].clone(), features[index : index + 1],
                ws[index : index + 1], noise_mode="none",
            )  # fmt: skip
        return window[index]

    images = []
    for t in range(count):
        x = skip = None
        for weight, offset in zip(taps, offsets):
            x_i, skip_i = first(min(max(t + offset, 0), count - 1))
            x = weight * x_i if x is None else x + weight * x_i
            skip = weight * skip_i if skip is None else skip + weight * skip_i
        images.append(superresolution.second_block(x, skip, ws[t : t + 1], noise_mode="none"))
        for index in [i for i in window if i < t + min(offsets)]:
            del window[index]
    return torch.cat(images)


@torch.no_grad()
def edit_frames(
    result,
    *,
    edits: Sequence[Edit | str] = (),
    direction: str | None = None,
    strength: float = 0.0,
    remove_object: bool | torch.Tensor = False,
    clip=None,
    dilation: int = 5,
    smoothing: str = "none",
    cameras=None,
    samples_multiplier: float | None = None,
) -> torch.Tensor:
    """Renders the edited video of an InversionResult: images [T, 3, H, W] in [-1, 1].

    Args:
        edits: edits added together (Edit or ``SPEC[@A-B]=S`` strings; module docstring).
        direction, strength: one more edit (``SPEC[@A-B]`` and its strength; 0 = no edit).
        remove_object: show the face where the object was: blend 0 inside the dilated object
            masks (a [T, 1, H, W] tensor, 1 = object; True: the masks of `clip`, or the object
            field's own opacity when there are none).
        smoothing: "none", "causal" or "centered" filter of the face latents, the object codes
            and the first super-resolution block's features.
        cameras: novel views: [T, 25] cameras, "orbit" or (yaw, pitch) degrees (see `view_of`).
    """
    import copy

    from innout.invert.result import InversionResult
    from innout.invert.state import superresolution_of

    if not isinstance(result, InversionResult):
        raise EditError("edit_frames needs an InversionResult (innout.invert / .load)")
    edits = [parse_edit(e) if isinstance(e, str) else e for e in edits]
    if direction is not None and strength != 0:
        edits.append(parse_edit(direction, strength))
    options = render_options(result, edits, cameras, remove_object, dilation, clip)
    options["latents"] = smooth(options["latents"], smoothing)
    target = result
    if smoothing != "none" and result.state.object is not None:
        state = copy.deepcopy(result.state)
        state.object.codes.data.copy_(smooth(state.object.codes.data, smoothing))
        target = InversionResult(result.generator, state, result.cameras, result.method,
                                 result.settings)  # fmt: skip
        target.network_name = result.network_name
    smooth_features = smoothing != "none" and result.frames > 1
    renders = [
        render
        for _, render in target.render(
            **options, samples_multiplier=samples_multiplier, superresolve=not smooth_features
        )
    ]
    if not smooth_features:
        return torch.cat([render.image for render in renders]).clamp(-1, 1)
    images = superresolve_smoothed(
        superresolution_of(target.generator, target.state),
        torch.cat([render.image_raw for render in renders]),
        torch.cat([render.features for render in renders]),
        options["latents"].to(renders[0].features.device),
        smoothing,
    )
    return images.clamp(-1, 1)
