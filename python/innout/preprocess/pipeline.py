"""`innout preprocess`: a phone or web video in, a folder `innout invert` takes out.

1. Decode (PyAV; upright, a time range, frames numbered in the whole video) and find the faces
   of every frame (:mod:`innout.preprocess.detect`).
2. Keep one face through the video (:func:`innout.preprocess.track.select_track`); frames with
   no usable face - occluded, turned away, only someone else - get landmarks interpolated from
   their neighbours and are flagged (a warning lists them); no face anywhere is an error.
3. Smooth the five-point tracks over time (Gaussian, sigma in frames).
4. Per frame: the EG3D FFHQ crop (:mod:`innout.preprocess.align`), the head pose of the
   five-point template (a 3-D similarity fit to the landmarks with the detector's depth, else
   a weak-perspective fit to the 2-D points) and its EG3D camera label
   (:mod:`innout.preprocess.pose`).
5. Decode again to write the crops (memory stays bounded on long videos), then the preview.

An existing EG3D-format folder (frames + dataset.json, as EG3D's own tools write) is imported
instead: validated and copied into the same layout (without transforms.json: there is no source
video to paste back into).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from innout.preprocess.align import (
    FIVE_POINT_TEMPLATE,
    OUTPUT_SIZE,
    AlignmentError,
    crop_matrix,
    fit_template,
    warp_crop,
)
from innout.preprocess.decode import VideoError, check_time_range, iter_frames, probe_video
from innout.preprocess.detect import Face, FaceDetector
from innout.preprocess.output import write_preprocessed
from innout.preprocess.pose import (
    angles_from_rotation,
    eg3d_label,
    rigid_pose,
    weak_perspective_pose,
)
from innout.preprocess.track import fill_missing, flagged_ranges, select_faces, smooth_track

#: Default temporal smoothing of the landmark tracks (Gaussian sigma, frames).
DEFAULT_SMOOTHING = 1.5


class PreprocessError(ValueError):
    """A video or folder that cannot be preprocessed; the message says what was expected."""


@dataclass
class PreprocessResult:
    """What a run wrote and found.

    Attributes:
        out: the output folder. frames: frames written.
        interpolated_ranges: inclusive (first, last) output frame ranges without a usable face.
        poses: [T, 3] yaw, pitch, roll in degrees (empty for an imported folder).
        preview: the preview video, if written.
    """

    out: Path
    frames: int
    interpolated_ranges: list[tuple[int, int]] = field(default_factory=list)
    poses: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    preview: Path | None = None


def _usable(face: Face, height: float) -> bool:
    """Whether a detection can define an EG3D crop (eyes and mouth corners in left-right order,
    not all at one point)."""
    try:
        fit_template(face.points, height)  # refuses non-finite and misordered points too
    except AlignmentError:
        return False
    return True


def _ranges_text(ranges: list[tuple[int, int]]) -> str:
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def preprocess(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    start: float | None = None,
    end: float | None = None,
    smooth: float = DEFAULT_SMOOTHING,
    size: int = OUTPUT_SIZE,
    detector: FaceDetector | None = None,
    preview: bool = True,
    progress: bool = True,
) -> PreprocessResult:
    """Preprocesses a video (or imports an EG3D folder) into the folder `out` (module docstring).

    Args:
        source: a video file, or a folder with frames and an EG3D dataset.json.
        out: the output folder; it must not exist.
        start, end: the time range in seconds (default: the whole video).
        smooth: Gaussian sigma, in frames, of the landmark smoothing (0 = none).
        size: crop size in pixels (EG3D's checkpoints: 512).
        detector: finds faces in a frame (default: MediaPipe's face mesh, the optional extra).
        preview: also write ``preview.mp4``.
        progress: progress bars.
    """
    source, out = Path(source), Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; choose a new output folder")
    if not isinstance(size, int) or size < 16:
        raise ValueError(f"size must be an integer >= 16 pixels, got {size}")
    if not (smooth >= 0 and math.isfinite(smooth)):
        raise ValueError(f"smooth must be a sigma >= 0 frames, got {smooth}")
    if source.is_dir():
        return import_eg3d_folder(source, out, progress=progress)
    check_time_range(start, end)
    info = probe_video(source)
    width, height = info.size
    own_detector = detector is None
    if own_detector:
        from innout.preprocess.detect import MediapipeFaceMesh

        detector = MediapipeFaceMesh()
    try:
        indices, times, faces = [], [], []
        bar = tqdm(total=info.frame_count or None, desc="landmarks", unit="frame",
                   disable=not progress)  # fmt: skip
        with bar:
            for index, time, frame in iter_frames(source, start, end):
                indices.append(index)
                times.append(time)
                faces.append([f for f in detector(frame) if _usable(f, height)])
                bar.update()
    finally:
        if own_detector:
            detector.close()
    if not indices:
        where = "" if start is None and end is None else f" between {start} s and {end} s"
        raise PreprocessError(f"{source}: no frames{where}")
    chosen, reasons = select_faces(faces)
    found = np.array([face is not None for face in chosen])
    if not found.any():
        raise PreprocessError(
            f"{source}: no face found in any of its {len(indices)} frames (the face must be "
            "visible, roughly frontal and upright in at least one frame)"
        )
    # Depth, where the detector gives it, is tracked, filled and smoothed with the points.
    with_depth = all(face.depth is not None for face in chosen if face is not None)
    track = np.full((len(chosen), 5, 3 if with_depth else 2), np.nan)
    for t, face in enumerate(chosen):
        if face is not None:
            track[t, :, :2] = face.points
            if with_depth:
                track[t, :, 2] = face.depth
    filled, interpolated = fill_missing(track)
    smoothed = smooth_track(filled, smooth)
    landmarks = smoothed[..., :2]
    matrices = np.stack([crop_matrix(p, height, size) for p in landmarks])
    poses = [head_pose(p, height) for p in smoothed]
    labels = np.stack([eg3d_label(rotation) for rotation, _ in poses])
    angles = np.degrees([angles_from_rotation(rotation) for rotation, _ in poses])
    ranges = flagged_ranges(interpolated)
    if ranges:
        warnings.warn(
            f"{source}: no usable face in frames {_ranges_text(ranges)} (of {len(indices)}); "
            "their landmarks and cameras were interpolated from their neighbours "
            "(landmarks.json flags them)",
            stacklevel=2,
        )

    def crops():
        frames = tqdm(iter_frames(source, start, end), total=len(indices), desc="crops",
                      unit="frame", disable=not progress)  # fmt: skip
        for t, (_, _, frame) in enumerate(frames):
            yield warp_crop(frame, matrices[t], size)

    record = {
        "source": str(source.resolve()),
        "time_range": [times[0], times[-1]],
        "requested_range": [start, end],
        "fps": info.fps,
        "size": size,
        "smooth_sigma_frames": smooth,
        "detector": _describe(detector),
        "frames": len(indices),
        "interpolated_ranges": [list(r) for r in ranges],
        "missing_reasons": {str(t): reasons[t] for t in range(len(indices)) if not found[t]},
        "yaw_pitch_roll_degrees": np.round(angles, 2).tolist(),
    }
    write_preprocessed(
        out, crops(), labels, matrices, landmarks, interpolated, source, info.size, indices,
        info.fps, record=record,
    )  # fmt: skip
    result = PreprocessResult(out=out, frames=len(indices), interpolated_ranges=ranges,
                              poses=angles)  # fmt: skip
    if preview:
        result.preview = _write_preview(
            out / "preview.mp4", source, start, end, landmarks, matrices, size, poses,
            interpolated, indices, info.fps, progress,
        )  # fmt: skip
    return result


def head_pose(points: np.ndarray, height: float) -> tuple[np.ndarray, float]:
    """(rotation M, scale) of the five-point template seen at `points` [5, 2] (image pixels,
    y down) or [5, 3] (with depth, larger = farther): a similarity fit in 3-D when there is
    depth, else a weak-perspective fit to the 2-D points."""
    if points.shape[1] == 3:
        # To the template's axes: y up, z toward the viewer.
        model_space = points * np.array([1.0, -1.0, -1.0])
        return rigid_pose(model_space, FIVE_POINT_TEMPLATE)
    return weak_perspective_pose(points, FIVE_POINT_TEMPLATE, height)


def _describe(detector) -> dict:
    name = type(detector).__name__
    version = getattr(detector, "version", None)
    return {"name": name, "version": version} if version else {"name": name}


def _write_preview(
    path, source, start, end, landmarks, matrices, size, poses, interpolated, indices, fps,
    progress,
) -> Path:  # fmt: skip
    from innout.media import write_video
    from innout.preprocess.preview import draw_preview

    def frames():
        decoded = tqdm(iter_frames(source, start, end), total=len(indices), desc="preview",
                       unit="frame", disable=not progress)  # fmt: skip
        for t, (index, _, frame) in enumerate(decoded):
            rotation, scale = poses[t]
            yield draw_preview(frame, landmarks[t], matrices[t], size, rotation, scale,
                               bool(interpolated[t]), f"{t} (source {index})")  # fmt: skip

    write_video(path, frames(), fps=fps)
    return path


def import_eg3d_folder(
    folder: str | os.PathLike, out: str | os.PathLike, progress: bool = True
) -> PreprocessResult:
    """Copies an EG3D-format folder (square frames + dataset.json) into the preprocessed layout.

    The labels are validated (25 finite floats each, frames present inside the folder, one
    square size); frames are renumbered ``frames/00000.png`` ... in the labels' order.
    """
    from innout.invert.clip import read_cameras
    from innout.media import InputError, read_image, write_png

    folder, out = Path(folder), Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; choose a new output folder")
    dataset = folder / "dataset.json"
    if not dataset.is_file():
        raise PreprocessError(
            f"{folder}: a folder is imported only with its EG3D dataset.json (not found); give a "
            "video file to preprocess from scratch"
        )
    try:
        pairs = read_cameras(dataset)
    except InputError as error:
        raise PreprocessError(str(error)) from error
    staging = out.with_name(f".{out.name}.partial{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        labels, shape = [], None
        for t, (name, label) in enumerate(tqdm(pairs, desc="import", disable=not progress)):
            path = (folder / name).resolve()
            if folder.resolve() not in path.parents or not path.is_file():
                raise PreprocessError(f"{dataset}: frame {name!r} is not a file in {folder}")
            try:
                pixels = read_image(path)
            except InputError as error:
                raise PreprocessError(str(error)) from error
            shape = pixels.shape if shape is None else shape
            if pixels.shape != shape or shape[0] != shape[1]:
                raise PreprocessError(
                    f"{path}: {pixels.shape[1]}x{pixels.shape[0]}; the frames of an EG3D folder "
                    f"are square aligned crops of one size (the first is {shape[1]}x{shape[0]})"
                )
            labels.append([f"frames/{t:05d}.png", label])
            write_png(staging / labels[-1][0], pixels)
        (staging / "dataset.json").write_text(json.dumps({"labels": labels}))
        record = {"imported_from": str(folder.resolve()), "frames": len(labels)}
        (staging / "preprocess.json").write_text(json.dumps(record, indent=1))
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return PreprocessResult(out=out, frames=len(labels))


__all__ = ["PreprocessError", "PreprocessResult", "VideoError", "import_eg3d_folder", "preprocess"]
