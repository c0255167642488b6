"""Object removal (docs/method.md section 3.3): per-ray blend factors that hide the object field
inside dilated object masks, so the face behind it shows."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812

from innout.edit.specs import EditError

#: Object opacity above which a pixel counts as object when no masks are given.
AUTO_MASK_THRESHOLD = 0.3


def dilate(masks: torch.Tensor, size: int) -> torch.Tensor:
    """Binary dilation of masks [T, 1, H, W] (1 = object) with a size x size square."""
    if size <= 1:
        return masks
    grown = F.max_pool2d(masks, size, stride=1, padding=size // 2)
    return grown[..., : masks.shape[-2], : masks.shape[-1]]


def removal_scale(object_masks: torch.Tensor, resolution: int, dilation: int = 5) -> torch.Tensor:
    """Per-ray blend factors [T, R*R]: 0 inside the dilated object masks [T, 1, H, W] (1 =
    object), 1 elsewhere (docs/method.md 3.3; innout clamps, so no 1.2 boost outside)."""
    masks = F.interpolate(object_masks.float(), size=(resolution, resolution), mode="area")
    masks = dilate((masks > 0).float(), dilation)
    return (1 - masks).flatten(1)


def object_masks(result, clip, dilation: int, masks: torch.Tensor | None = None) -> torch.Tensor:
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
