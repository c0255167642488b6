"""Reading what `innout invert` is given: frames, their EG3D cameras and optional object masks.

Inputs (see `load_clip`):

* a video file (decoded with PyAV, in timestamp order);
* a folder with an EG3D ``dataset.json`` (``{"labels": [[file name, [25 floats]], ...]}``) whose
  names point at its frames - the layout of EG3D's dataset tool, of `innout synth video` (frames
  in ``frames/``, masks in ``masks/``) and of `innout preprocess`.

Masks are greyscale images with the frames' names: 255 (white) = face, 0 = object.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from innout.eg3d import camera
from innout.media import InputError, image_tensor, read_image, read_video, video_fps

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class Clip:
    """Frames [T, 3, H, W] in [-1, 1], cameras [T, 25], masks [T, 1, H, W] (1 = face) or None."""

    frames: torch.Tensor
    cameras: torch.Tensor
    masks: torch.Tensor | None
    names: list[str]
    fps: float = 30.0
    source: str = ""
    cameras_from: str = "dataset.json"
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        count = self.frames.shape[0]
        if self.frames.dim() != 4 or self.frames.shape[1] != 3 or count == 0:
            raise InputError(f"frames must be [T >= 1, 3, H, W], got {tuple(self.frames.shape)}")
        if self.frames.shape[2] != self.frames.shape[3]:
            raise InputError(
                f"frames must be square face crops (EG3D's alignment), got "
                f"{self.frames.shape[3]}x{self.frames.shape[2]}; run `innout preprocess` first"
            )
        if self.cameras.shape != (count, 25):
            raise InputError(f"expected {count} cameras of 25 floats ([{count}, 25]) for {count} "
                             f"frames, got {tuple(self.cameras.shape)}")  # fmt: skip
        if self.masks is not None and self.masks.shape != (count, 1, *self.frames.shape[2:]):
            raise InputError(f"masks must be [T, 1, H, W] = [{count}, 1, "
                             f"{self.frames.shape[2]}, {self.frames.shape[3]}], got "
                             f"{tuple(self.masks.shape)}")  # fmt: skip
        if len(self.names) != count:
            raise InputError(f"{len(self.names)} names for {count} frames")
        problems = camera.label_problems(self.cameras)
        if problems:
            index, problem = problems[0]
            raise InputError(f"camera label {index} ({self.names[index]}, from "
                             f"{self.cameras_from}) {problem}: expected an EG3D camera, a 4x4 "
                             "cam2world and normalised 3x3 intrinsics")  # fmt: skip

    def __len__(self) -> int:
        return self.frames.shape[0]


def read_cameras(path: Path) -> list[tuple[str, list[float]]]:
    """The (name, label) pairs of an EG3D dataset.json, validated."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not a readable dataset.json ({error})") from error
    labels = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(labels, list) or not labels:
        raise InputError(f'{path}: expected {{"labels": [[file name, [25 floats]], ...]}}')
    pairs = []
    for i, entry in enumerate(labels):
        ok = isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
        values = entry[1] if ok else None
        if not ok or not isinstance(values, list) or len(values) != 25:
            raise InputError(f"{path}: label {i} must be [file name, [25 floats]] (a 4x4 "
                             f"cam2world and 3x3 intrinsics), got {str(entry)[:80]}")  # fmt: skip
        if not all(_is_number(v) and math.isfinite(v) for v in values):
            raise InputError(f"{path}: label {i} ({entry[0]}) has non-numeric or non-finite "
                             "values (expected 25 numbers)")  # fmt: skip
        pairs.append((entry[0], [float(v) for v in values]))
    problems = camera.label_problems(torch.tensor([values for _, values in pairs]))
    if problems:
        index, problem = problems[0]
        raise InputError(f"{path}: label {index} ({pairs[index][0]}) {problem}: expected an EG3D "
                         "camera, a 4x4 cam2world and normalised 3x3 intrinsics")  # fmt: skip
    return pairs


def _is_number(value: object) -> bool:
    # JSON's true/false arrive as Python bools, which are ints: not a camera value.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: Masks are binary: 0 (object) and 255 (face). Anti-aliased or compressed masks have grey
#: pixels along edges; a mask with more grey than this share was not meant as a mask (a photo, an
#: all-127 image) and is refused rather than thresholded into a silent guess.
MAX_GREY_SHARE = 0.10
GREY_LEVELS = (32, 223)


def read_masks(folder: Path, names: list[str], size: tuple[int, int]) -> torch.Tensor:
    """Masks [T, 1, H, W] in {0, 1} (1 = face) from images named like the frames, each inside
    `folder` (a symbolic link pointing out of it is refused) and binary (see MAX_GREY_SHARE)."""
    from PIL import Image

    if not folder.is_dir():
        raise InputError(f"{folder}: masks folder not found")
    root = folder.resolve()
    masks = []
    for name in names:
        stem = Path(name).stem
        found = [folder / f"{stem}{suffix}" for suffix in IMAGE_SUFFIXES]
        path = next((p for p in found if p.is_file()), None)
        if path is None:
            raise InputError(f"{folder}: no mask for frame {name} (expected {stem}.png)")
        if root not in path.resolve().parents:
            raise InputError(f"{path}: the mask points outside its folder {folder} (a symbolic "
                             "link to another place is not read)")  # fmt: skip
        try:
            with Image.open(path) as image:
                if image.size != (size[1], size[0]):
                    raise InputError(f"{path}: mask is {image.size[0]}x{image.size[1]}, its "
                                     f"frame {size[1]}x{size[0]}")  # fmt: skip
                pixels = np.asarray(image.convert("L"))
        except (OSError, Image.DecompressionBombError) as error:
            raise InputError(f"{path}: not a readable mask image ({error})") from error
        grey = float(((pixels >= GREY_LEVELS[0]) & (pixels <= GREY_LEVELS[1])).mean())
        if grey > MAX_GREY_SHARE:
            raise InputError(f"{path}: {grey:.0%} of the mask's pixels are grey; expected a "
                             "binary mask, 255 (white) = face and 0 (black) = object")  # fmt: skip
        masks.append(torch.from_numpy(pixels >= 128).float()[None])
    return torch.stack(masks)


def _frames_of_folder(folder: Path, pairs) -> tuple[list[np.ndarray], list[str]]:
    frames, names = [], []
    for name, _ in pairs:
        path = (folder / name).resolve()
        if folder.resolve() not in path.parents:
            raise InputError(f"{folder}/dataset.json: frame {name!r} points outside the folder")
        if not path.is_file():
            raise InputError(f"{folder}: frame {name} listed in dataset.json does not exist")
        frames.append(read_image(path))
        names.append(name)
    return frames, names


def _folder_fps(folder: Path) -> float:
    """A frames folder's frame rate: the source video's as `innout preprocess` recorded it in
    preprocess.json (null for an imported frames folder), else that of the folder's own video.mp4
    (`innout synth video`), else 30."""
    record = folder / "preprocess.json"
    if record.is_file():
        try:
            fps = json.loads(record.read_text()).get("fps")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as error:
            raise InputError(f"{record}: not a readable preprocessing record ({error})") from error
        if fps is not None:
            if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps < 1000:
                raise InputError(
                    f'{record}: expected "fps", a frame rate in (0, 1000) or null, got {fps!r}'
                )
            return float(fps)
    if (folder / "video.mp4").is_file():
        return video_fps(folder / "video.mp4")
    return 30.0


def load_clip(
    source: str | Path,
    cameras: str | Path | None = None,
    masks: str | Path | None = None,
) -> Clip:
    """Reads a video file or a frames folder (module docstring) into a `Clip`.

    Args:
        source: video file or folder.
        cameras: an EG3D dataset.json (default: the folder's own; a video without one is assumed
            frontal, with a warning).
        masks: folder of masks (default: the folder's ``masks/`` if present).
    """
    source = Path(source)
    if not source.exists():
        raise InputError(f"{source}: no such file or folder")
    extras: dict = {}
    if source.is_dir():
        dataset = Path(cameras) if cameras is not None else source / "dataset.json"
        if not dataset.is_file():
            raise InputError(f"{source}: a frames folder needs an EG3D dataset.json (not found: "
                             f"{dataset})")  # fmt: skip
        pairs = read_cameras(dataset)
        frames, names = _frames_of_folder(source, pairs)
        labels = torch.tensor([values for _, values in pairs])
        cameras_from = str(dataset)
        if masks is None and (source / "masks").is_dir():
            masks = source / "masks"
        for extra in ("params.json", "transforms.json"):
            if (source / extra).is_file():
                extras[extra] = str(source / extra)
        fps = _folder_fps(source)
    else:
        frames, fps = read_video(source)
        names = [f"{i:05d}.png" for i in range(len(frames))]
        if cameras is not None:
            pairs = read_cameras(Path(cameras))
            if len(pairs) != len(frames):
                raise InputError(f"{cameras}: {len(pairs)} cameras for the {len(frames)} frames "
                                 f"of {source}")  # fmt: skip
            labels = torch.tensor([values for _, values in pairs])
            cameras_from = str(cameras)
        else:
            warnings.warn(
                f"{source}: no cameras given; assuming every frame is frontal (run "
                "`innout preprocess` to estimate them)",
                stacklevel=2,
            )
            labels = camera.frontal_labels(len(frames))
            cameras_from = "frontal (assumed)"
    sizes = {f.shape for f in frames}
    if len(sizes) != 1:
        raise InputError(f"{source}: frames differ in size: {sorted(sizes)}")
    frame_tensor = torch.stack([image_tensor(f) for f in frames])
    mask_tensor = None
    if masks is not None:
        mask_tensor = read_masks(Path(masks), names, tuple(frames[0].shape[:2]))
    return Clip(
        frames=frame_tensor,
        cameras=labels.float(),
        masks=mask_tensor,
        names=names,
        fps=fps,
        source=str(source),
        cameras_from=cameras_from,
        extras=extras,
    )
