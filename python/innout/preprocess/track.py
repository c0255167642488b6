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
