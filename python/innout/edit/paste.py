"""Pasting edited face crops back into the original full-resolution frames.

Preprocessing (`innout preprocess`) crops each frame of a real video to the aligned face and
records the crop in `transforms.json`:

.. code-block:: json

    {"version": 1, "source": "clip.mp4", "source_size": [1920, 1080], "crop_size": 512,
     "frames": [{"source_frame": 0, "crop_from_source": [[a, b, c], [d, e, f]]}, ...]}

`source` is the original video (relative to the transforms file's folder, or absolute),
`source_size` its upright [width, height], `source_frame` the index of the decoded, upright source
frame each crop came from, and `crop_from_source` the 2x3 affine matrix that takes continuous
source pixel coordinates (x right, y down, pixel (i, j) covering [j, j+1) x [i, i+1)) to crop
pixel coordinates in the same convention, at `crop_size`.

Pasting warps the edited crop back with the inverse mapping (bilinear) and blends it in with a
feathered mask: the `region` to paste (by default the pixels the edit changed, so that everything
the edit did not touch stays the source's own pixels), dilated, softened by a box blur and faded
out towards the crop's border. Source pixels the mask does not reach are copied bit for bit.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from innout.preprocess.output import TRANSFORMS_VERSION

#: A pixel counts as changed by an edit when a channel moved by more than this ([-1, 1] units).
CHANGE_THRESHOLD = 0.03


class PasteError(ValueError):
    """Unusable crop transforms or images; the message says what was expected."""


@dataclass(frozen=True)
class CropTransforms:
    """The crops of a preprocessed video (see the module docstring)."""

    source: Path
    source_size: tuple[int, int]
    crop_size: int
    source_frames: list[int]
    crop_from_source: np.ndarray  # [T, 2, 3] float64

    @property
    def frames(self) -> int:
        return len(self.source_frames)


def load_transforms(path: str | os.PathLike) -> CropTransforms:
    """Reads and validates a transforms.json."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise PasteError(f"{path}: not a readable transforms.json ({error})") from error
    if not isinstance(data, dict) or data.get("version") != TRANSFORMS_VERSION:
        raise PasteError(f"{path}: expected a transforms.json of version {TRANSFORMS_VERSION}")
    size = data.get("source_size")
    crop_size = data.get("crop_size")
    frames = data.get("frames")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0
                                                               for v in size)):  # fmt: skip
        raise PasteError(f"{path}: source_size must be [width, height] in pixels, got {size}")
    if not isinstance(crop_size, int) or crop_size < 1:
        raise PasteError(f"{path}: crop_size must be a positive integer, got {crop_size}")
    if not isinstance(frames, list) or not frames:
        raise PasteError(f"{path}: frames must be a non-empty list")
    indices, matrices = [], []
    for i, frame in enumerate(frames):
        matrix = np.asarray(frame.get("crop_from_source") if isinstance(frame, dict) else None,
                            dtype=object)  # fmt: skip
        index = frame.get("source_frame") if isinstance(frame, dict) else None
        ok = matrix.shape == (2, 3) and all(
            isinstance(v, (int, float)) and math.isfinite(v) for v in matrix.flat
        )
        if not ok or not isinstance(index, int) or index < 0:
            raise PasteError(f"{path}: frame {i} needs source_frame (an index >= 0) and "
                             "crop_from_source (a 2x3 matrix of finite numbers)")  # fmt: skip
        matrix = matrix.astype(np.float64)
        if abs(np.linalg.det(matrix[:, :2])) < 1e-12:
            raise PasteError(f"{path}: frame {i}'s crop_from_source is not invertible")
        indices.append(index)
        matrices.append(matrix)
    source = Path(str(data.get("source", "")))
    if not source.is_absolute():
        source = path.parent / source
    return CropTransforms(source, (size[0], size[1]), crop_size, indices, np.stack(matrices))


def changed_region(edited: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """[H, W] float mask of the pixels where `edited` differs from `reference` ([3, H, W])."""
    return ((edited - reference).abs().amax(0) > CHANGE_THRESHOLD).float()


def paste_mask(
    region: torch.Tensor | None, crop_size: int, dilation: int = 8, feather: int = 16
) -> torch.Tensor:
    """The blend mask [S, S] in [0, 1] at `crop_size` S: `region` (any size; None = the whole
    crop) dilated by `dilation` px, box-blurred twice over `feather` px, faded to 0 over the
    last `feather` px of the crop's border."""
    if dilation < 0 or feather < 0:
        raise PasteError(f"dilation and feather must be >= 0, got {dilation} and {feather}")
    if region is None:
        mask = torch.ones(1, 1, crop_size, crop_size)
    else:
        mask = F.interpolate(region.float()[None, None], size=(crop_size, crop_size),
                             mode="bilinear", align_corners=False)  # fmt: skip
        mask = (mask > 0).float()
    if dilation > 0 and region is not None:
        size = 2 * dilation + 1
        mask = F.max_pool2d(mask, size, stride=1, padding=dilation)
    if feather > 1:
        for _ in range(2):  # two box blurs: a smooth, compact ramp
            mask = F.avg_pool2d(F.pad(mask, (feather // 2,) * 4, mode="replicate"), feather,
                                stride=1)[..., :crop_size, :crop_size]  # fmt: skip
    ramp = (torch.arange(crop_size) + 0.5).float()
    edge = torch.minimum(ramp, crop_size - ramp) / max(feather, 1)
    border = edge.clamp(0, 1)
    mask = mask[0, 0] * border[:, None] * border[None, :]
    return mask.clamp(0, 1)


def paste_back(
    source: np.ndarray,
    crop: torch.Tensor,
    crop_from_source: np.ndarray,
    crop_size: int,
    mask: torch.Tensor,
) -> np.ndarray:
    """Blends `crop` ([3, s, s] in [-1, 1], any size s) into `source` ([H, W, 3] uint8).

    `crop_from_source` maps source pixels to crop pixels at `crop_size`; `mask` ([S, S] in [0, 1]
    at crop_size, see `paste_mask`) says how much of the crop each crop pixel contributes.
    Returns a new frame; pixels whose blend weight is 0 are the source's, bit for bit.
    """
    if source.dtype != np.uint8 or source.ndim != 3 or source.shape[2] != 3:
        raise PasteError(f"source must be an [H, W, 3] uint8 frame, got {source.dtype} "
                         f"{list(source.shape)}")  # fmt: skip
    if crop.dim() != 3 or crop.shape[0] != 3:
        raise PasteError(f"crop must be a [3, s, s] image, got {list(crop.shape)}")
    height, width = source.shape[:2]
    matrix = np.asarray(crop_from_source, dtype=np.float64)
    source_from_crop = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    corners = np.array([[0, 0, 1], [crop_size, 0, 1], [0, crop_size, 1],
                        [crop_size, crop_size, 1]], dtype=np.float64)  # fmt: skip
    footprint = corners @ source_from_crop.T
    x0 = max(int(np.floor(footprint[:, 0].min())), 0)
    x1 = min(int(np.ceil(footprint[:, 0].max())), width)
    y0 = max(int(np.floor(footprint[:, 1].min())), 0)
    y1 = min(int(np.ceil(footprint[:, 1].max())), height)
    out = source.copy()
    if x0 >= x1 or y0 >= y1:
        return out  # the crop lies outside the frame
    ys, xs = np.meshgrid(np.arange(y0, y1) + 0.5, np.arange(x0, x1) + 0.5, indexing="ij")
    u = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]
    v = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]
    # grid_sample with align_corners=False: -1 and 1 are the outer edges of the crop.
    grid = torch.from_numpy(np.stack([2 * u / crop_size - 1, 2 * v / crop_size - 1], -1))
    grid = grid.float()[None]
    colour = F.grid_sample(crop.float()[None].cpu(), grid, mode="bilinear",
                           padding_mode="border", align_corners=False)[0]  # fmt: skip
    weight = F.grid_sample(mask.float()[None, None].cpu(), grid, mode="bilinear",
                           padding_mode="zeros", align_corners=False)[0, 0]  # fmt: skip
    weight = weight.clamp(0, 1).numpy()[..., None]
    pasted = ((colour.clamp(-1, 1) * 127.5 + 128).clamp(0, 255)).permute(1, 2, 0).numpy()
    region = out[y0:y1, x0:x1].astype(np.float32)
    # Truncation as innout.media.to_uint8, so a fully pasted pixel equals the written crop.
    blended = np.floor(region * (1 - weight) + pasted * weight).clip(0, 255).astype(np.uint8)
    out[y0:y1, x0:x1] = np.where(weight > 0, blended, out[y0:y1, x0:x1])
    return out


def read_source_frames(transforms: CropTransforms) -> list[np.ndarray]:
    """The upright source frames the crops came from, in crop order ([H, W, 3] uint8)."""
    from innout.media import InputError, read_video

    try:
        frames, _ = read_video(transforms.source)
    except InputError as error:
        raise PasteError(f"the source video of the crops: {error}") from error
    width, height = transforms.source_size
    if frames[0].shape[:2] != (height, width):
        found = f"{frames[0].shape[1]}x{frames[0].shape[0]}"
        raise PasteError(
            f"{transforms.source}: frames are {found}, transforms.json says {width}x{height}"
        )
    missing = [i for i in transforms.source_frames if i >= len(frames)]
    if missing:
        raise PasteError(f"{transforms.source} has {len(frames)} frames; transforms.json refers "
                         f"to frame {missing[0]}")  # fmt: skip
    return [frames[i] for i in transforms.source_frames]
