"""Editing an inverted video (METHOD.md section 3.3): latent edits, temporal smoothing, object
removal and novel views, rendered from a run folder without inverting again.

Edits change only the face latents w_t; the object field, its per-frame codes and the fine-tuned
super-resolution stay as they are, so the object looks the same in the edited video.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from innout.edit.directions import Direction, load_direction
from innout.eg3d import camera

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


def latent_offset(
    spec: str, strength: float, num_ws: int, w_dim: int, network: str
) -> torch.Tensor:
    """The latent step [num_ws, w_dim] of an edit.

    `spec` is a direction shipped with the network (e.g. "smile" for innout-tiny; strength in
    attribute units), a Direction .safetensors file (attribute units), an InterfaceGAN boundary
    .npy of shape [1, w_dim] or [num_ws, w_dim] (normalised per row; strength in latent units) or
    a latent delta .pt/.npy of shape [num_ws, w_dim] named ``*.delta.npy`` (added times strength).
    """
    path = Path(spec)
    if path.suffix == ".npy" and path.is_file():
        array = np.load(path, allow_pickle=False)
        if array.ndim != 2 or array.shape[1] != w_dim or array.shape[0] not in (1, num_ws):
            raise EditError(f"{path}: expected a [1, {w_dim}] or [{num_ws}, {w_dim}] array, got "
                            f"{list(array.shape)}")  # fmt: skip
        vector = torch.from_numpy(array.astype(np.float32))
        if not path.name.endswith(".delta.npy"):
            vector = vector / vector.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return (strength * vector).expand(num_ws, w_dim).clone()
    if path.suffix == ".safetensors" and path.is_file():
        direction = load_direction(path)
    elif network == "tiny" and path.suffix == "":
        from innout.tiny.directions import SHIPPED_DIRECTIONS, load_tiny_direction

        if spec not in SHIPPED_DIRECTIONS:
            raise EditError(f"unknown direction {spec!r}; innout-tiny ships "
                            f"{', '.join(SHIPPED_DIRECTIONS)}")  # fmt: skip
        direction = load_tiny_direction(spec)
    else:
        raise EditError(
            f"direction {spec!r}: not a file, and only innout-tiny ships named directions "
            "(pass a .safetensors direction or a .npy boundary)"
        )
    if not isinstance(direction, Direction) or direction.unit.shape[0] != w_dim:
        raise EditError(f"direction {spec!r} does not have {w_dim} dimensions")
    return direction.offset(strength).expand(num_ws, w_dim).clone()


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


def _object_masks(result, clip, dilation: int) -> torch.Tensor:
    """[T, 1, R, R] object masks at raw resolution: the clip's masks when it has them, else the
    learned object field's own opacity (> AUTO_MASK_THRESHOLD)."""
    resolution = result.generator.neural_rendering_resolution
    if clip is not None and clip.masks is not None:
        return F.interpolate(1 - clip.masks, size=(resolution, resolution), mode="area")
    opacity = torch.cat([render.object_opacity for _, render in result.render()])
    return (opacity > AUTO_MASK_THRESHOLD).float().cpu()


@torch.no_grad()
def edit_frames(
    result,
    *,
    direction: str | None = None,
    strength: float = 0.0,
    remove_object: bool = False,
    clip=None,
    dilation: int = 5,
    smoothing: str = "none",
    cameras: torch.Tensor | None = None,
    samples_multiplier: float | None = None,
) -> torch.Tensor:
    """Renders the edited video of an InversionResult: images [T, 3, H, W] in [-1, 1].

    Args:
        direction, strength: a latent edit (see `latent_offset`); strength 0 = no edit.
        remove_object: show the face where the object was (blend 0 inside the dilated masks of
            `clip`, or of the object field's own opacity when the clip has none).
        smoothing: "none", "causal" or "centered" filter of the face latents and object codes.
        cameras: [T, 25] novel views (default: the frames' own cameras).
    """
    import copy

    from innout.invert.result import InversionResult

    if not isinstance(result, InversionResult):
        raise EditError("edit_frames needs an InversionResult (innout.invert / .load)")
    latents = result.latents
    if direction is not None and strength != 0:
        offset = latent_offset(
            direction, strength, latents.shape[1], latents.shape[2], result.network_name
        )
        latents = latents + offset.to(latents)
    latents = smooth(latents, smoothing)
    target = result
    if smoothing != "none" and result.state.object is not None:
        state = copy.deepcopy(result.state)
        state.object.codes.data.copy_(smooth(state.object.codes.data, smoothing))
        target = InversionResult(result.generator, state, result.cameras, result.method,
                                 result.settings)  # fmt: skip
    scale = None
    if remove_object and result.state.object is not None:
        masks = _object_masks(result, clip, dilation)
        scale = removal_scale(masks, result.generator.neural_rendering_resolution, dilation)
    images = [
        render.image
        for _, render in target.render(
            latents=latents,
            cameras=cameras,
            blend_scale=scale,
            samples_multiplier=samples_multiplier,
        )  # fmt: skip
    ]
    return torch.cat(images).clamp(-1, 1)
