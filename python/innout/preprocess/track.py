"""Landmark tracks over a video: frames without a usable face are filled from their neighbours
and flagged, and the track is smoothed over time.

In-N-Out is for videos where something hides the face, so a detector failing on some frames is
the normal case, not an error: those frames get landmarks interpolated linearly between the
nearest frames that have a face (held constant before the first and after the last one) and are
flagged, so that the preview and `landmarks.json` show which frames were guessed.
"""

from __future__ import annotations

import numpy as np


class TrackError(ValueError):
    """A track that cannot be completed (no face in any frame, bad shapes)."""


def fill_missing(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(filled [T, N, D], interpolated [T] bool) from landmarks [T, N, D] with NaN rows for
    frames where no face was found."""
    track = np.asarray(landmarks, dtype=np.float64)
    if track.ndim != 3:
        raise TrackError(f"landmarks must have shape [T, N, D], got {track.shape}")
    missing = ~np.isfinite(track).all(axis=(1, 2))
    if missing.all():
        raise TrackError("no face was found in any frame")
    if not missing.any():
        return track.copy(), missing
    frames = np.arange(track.shape[0])
    known = frames[~missing]
    flat = track.reshape(track.shape[0], -1)
    filled = np.empty_like(flat)
    for column in range(flat.shape[1]):
        # np.interp holds the end values outside the known range.
        filled[:, column] = np.interp(frames, known, flat[known, column])
    return filled.reshape(track.shape), missing


def smooth_track(track: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing over time (sigma in frames; 0 = none) of a complete track [T, ...].

    The kernel is cut at 3 sigma and renormalised at the ends (no padding bias), so a constant
    track stays constant and a linear one stays linear away from the ends.
    """
    if sigma < 0:
        raise TrackError(f"sigma must be >= 0, got {sigma}")
    values = np.asarray(track, dtype=np.float64)
    if sigma == 0 or values.shape[0] < 2:
        return values.copy()
    if not np.isfinite(values).all():
        raise TrackError("fill missing frames before smoothing")
    radius = max(1, int(np.ceil(3 * sigma)))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    count = values.shape[0]
    out = np.empty_like(values)
    for t in range(count):
        index = t + offsets
        inside = (index >= 0) & (index < count)
        weights = kernel[inside] / kernel[inside].sum()
        out[t] = np.tensordot(weights, values[index[inside]], axes=1)
    return out


def flagged_ranges(flags: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True in flags [T] as inclusive (first, last) frame pairs."""
    ranges = []
    start = None
    for t, flag in enumerate(np.asarray(flags, dtype=bool).tolist() + [False]):
        if flag and start is None:
            start = t
        elif not flag and start is not None:
            ranges.append((start, t - 1))
            start = None
    return ranges


#: A face is the tracked one only if its centre is within this many face sizes of the tracked
#: face's last centre (per frame since then, up to MAX_JUMP_FRAMES), and its size within a
#: factor SIZE_CHANGE of the last size: a second person or a false detection elsewhere fails.
MAX_JUMP = 0.35
MAX_JUMP_FRAMES = 4
SIZE_CHANGE = 1.5
#: Faces smaller than this share of the largest face of the video are background faces.
MIN_RELATIVE_SIZE = 0.4


#: Frames whose largest face starts a candidate track (spread evenly over the video).
TRACK_STARTS = 16


def _grow(candidates: list[list], start: int, anchor) -> tuple[list, float]:
    """The faces [T] (None where none fits) of the track through `anchor` in frame `start`, and
    its weight (the sum of its faces' sizes)."""
    chosen = [None] * len(candidates)
    chosen[start] = anchor
    for direction in (1, -1):
        last, last_t = anchor, start
        t = start + direction
        while 0 <= t < len(candidates):
            gap = min(abs(t - last_t), MAX_JUMP_FRAMES)
            best = None
            for face in candidates[t]:
                distance = float(np.linalg.norm(face.centre - last.centre)) / last.size
                ratio = face.size / last.size
                near = distance <= MAX_JUMP * gap
                if near and 1 / SIZE_CHANGE <= ratio <= SIZE_CHANGE:
                    if best is None or distance < best[0]:
                        best = (distance, face)
            if best is not None:
                chosen[t] = best[1]
                last, last_t = best[1], t
            t += direction
    return chosen, sum(face.size for face in chosen if face is not None)


def select_faces(faces: list[list]) -> tuple[list, list[str]]:
    """One face per frame: (the chosen detection of each frame or None, reasons [T]).

    `faces[t]` lists the detections of frame t (objects with ``points`` [5, 2], ``size`` and
    ``centre`` [2], as :class:`innout.preprocess.detect.Face`). Detections much smaller than the
    largest face of the video are ignored. A track grows from a starting face forward and
    backward through time, each frame taking the detection nearest to the track's last face if
    it is near enough and about as large (MAX_JUMP, SIZE_CHANGE); tracks are started from the
    largest face of up to TRACK_STARTS frames, and the one whose faces are largest in total -
    the face that is big *and* there most of the time - is kept. The reason of a frame is ""
    when it has a face, else why not ("no face detected", "only a different or spurious face").
    """
    count = len(faces)
    reasons = ["no face detected" if not frame else "" for frame in faces]
    sizes = [face.size for frame in faces for face in frame]
    if not sizes:
        return [None] * count, reasons
    largest = max(sizes)
    candidates = [[f for f in frame if f.size >= MIN_RELATIVE_SIZE * largest] for frame in faces]
    with_faces = [t for t in range(count) if candidates[t]]
    picks = np.linspace(0, len(with_faces) - 1, min(TRACK_STARTS, len(with_faces)))
    best_track, best_weight = None, -1.0
    for start in sorted({with_faces[round(i)] for i in picks}):
        anchor = max(candidates[start], key=lambda f: f.size)
        chosen, weight = _grow(candidates, start, anchor)
        if weight > best_weight:
            best_track, best_weight = chosen, weight
    for t, face in enumerate(best_track):
        if face is None and faces[t]:
            reasons[t] = "only a different or spurious face"
    return best_track, reasons


def select_track(faces: list[list]) -> tuple[np.ndarray, list[str]]:
    """`select_faces` as landmarks: (points [T, 5, 2] with NaN rows where no face fits,
    reasons [T])."""
    chosen, reasons = select_faces(faces)
    track = np.full((len(faces), 5, 2), np.nan)
    for t, face in enumerate(chosen):
        if face is not None:
            track[t] = face.points
    return track, reasons
