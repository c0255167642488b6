"""The folder preprocessing writes, ready for `innout invert` and `innout edit --paste-back`.

    frames/00000.png ...   aligned crops (EG3D FFHQ convention), in video order
    dataset.json           EG3D camera labels: {"labels": [["frames/00000.png", [25 floats]], ...]}
    transforms.json        the crops' affine matrices (format: innout.edit.paste)
    landmarks.json         per frame: the five landmarks in source pixels and whether they were
                           interpolated; the interpolated frame ranges
    preprocess.json        how the folder was made (settings, detector, versions, findings)
    preview.mp4            the source with landmarks, crop and head axes drawn (optional)

The folder is assembled under a temporary name and renamed into place, so an interrupted run
never leaves a half-written folder that looks complete.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from innout.media import write_png
from innout.preprocess.track import flagged_ranges

#: Version of the transforms.json layout (written here, read by innout.edit.paste).
TRANSFORMS_VERSION = 1


def write_preprocessed(
    out: str | os.PathLike,
    crops: Iterable[np.ndarray],
    labels: np.ndarray,
    crop_from_source: np.ndarray,
    landmarks: np.ndarray,
    interpolated: np.ndarray,
    source: str | os.PathLike,
    source_size: tuple[int, int],
    source_frames: list[int],
    fps: float,
    record: dict | None = None,
) -> Path:
    """Writes the preprocessed folder `out` (which must not exist) and returns it.

    Args:
        crops: T aligned crops [S, S, 3] uint8 (a generator is fine: each is written as it
            comes, so long videos need not fit in memory).
        labels: [T, 25] EG3D camera labels; crop_from_source: [T, 2, 3].
        landmarks: [T, 5, 2] in source pixels; interpolated: [T] bool.
        source, source_size, source_frames: the upright source video, its [width, height] and
            the index of the decoded frame each crop came from.
        fps: the source's frame rate (recorded for the inversion's outputs).
        record: written as ``preprocess.json`` if given (the run's settings and findings).
    """
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; choose a new folder")
    count = len(source_frames)
    shapes = {
        "labels": (np.shape(labels), (count, 25)),
        "crop_from_source": (np.shape(crop_from_source), (count, 2, 3)),
        "landmarks": (np.shape(landmarks), (count, 5, 2)),
        "interpolated": (np.shape(interpolated), (count,)),
    }
    for name, (shape, expected) in shapes.items():
        if tuple(shape) != expected:
            raise ValueError(f"{name} must have shape {list(expected)}, got {list(shape)}")
    if count == 0:
        raise ValueError("no frames to write")
    staging = out.with_name(f".{out.name}.partial{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        names = []
        size = None
        for t, crop in enumerate(crops):
            size = crop.shape[0] if size is None else size
            if t >= count:
                raise ValueError(f"more crops than the {count} frames")
            if crop.shape != (size, size, 3) or crop.dtype != np.uint8:
                raise ValueError(f"crop {t} must be [{size}, {size}, 3] uint8, got "
                                 f"{crop.dtype} {list(crop.shape)}")  # fmt: skip
            names.append(f"frames/{t:05d}.png")
            write_png(staging / names[-1], crop)
        if len(names) != count:
            raise ValueError(f"{len(names)} crops for {count} frames")
        dataset = {"labels": [[n, [float(v) for v in label]] for n, label in zip(names, labels)]}
        (staging / "dataset.json").write_text(json.dumps(dataset))
        source_path = Path(source).resolve()
        transforms = {
            "version": TRANSFORMS_VERSION,
            "source": str(source_path),
            "source_size": [int(source_size[0]), int(source_size[1])],
            "crop_size": int(size),
            "fps": float(fps),
            "frames": [
                {"source_frame": int(index), "crop_from_source": np.asarray(m).tolist()}
                for index, m in zip(source_frames, crop_from_source)
            ],
        }
        (staging / "transforms.json").write_text(json.dumps(transforms, indent=1))
        flags = np.asarray(interpolated, dtype=bool)
        landmark_record = {
            "order": [
                "left eye",
                "right eye",
                "nose tip",
                "left mouth corner",
                "right mouth corner",
            ],  # fmt: skip
            "frames": [
                {"landmarks": np.asarray(points).round(3).tolist(), "interpolated": bool(flag)}
                for points, flag in zip(landmarks, flags)
            ],
            "interpolated_ranges": [list(r) for r in flagged_ranges(flags)],
        }
        (staging / "landmarks.json").write_text(json.dumps(landmark_record, indent=1))
        if record is not None:
            (staging / "preprocess.json").write_text(json.dumps(record, indent=1))
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
