"""Decoding the frames of a source video for preprocessing, one at a time.

Preprocessing reads a video twice (landmarks first, then the crops once the landmark tracks are
smoothed), so frames are streamed rather than held in memory: a minute of 1080p is ~20 GB of RGB.
Frames come upright (rotation metadata applied, as players show them) and are numbered by their
position in the whole video, which is what ``transforms.json`` records (``source_frame``) and
what paste-back and the audio pass-through count from, whatever time range was selected.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from innout.media import upright


class VideoError(ValueError):
    """A source video that cannot be preprocessed; the message says what was expected."""


@dataclass(frozen=True)
class VideoInfo:
    """What preprocessing needs to know of a source video before decoding it.

    Attributes:
        path: the file. size: upright (width, height). fps: average frame rate.
        frame_count: the container's frame count estimate (0 when unknown; progress bars only).
        duration: seconds (0 when unknown). has_audio: whether there is an audio stream.
    """

    path: Path
    size: tuple[int, int]
    fps: float
    frame_count: int
    duration: float
    has_audio: bool


def _open(path: Path):
    import av

    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise VideoError(f"{path}: not a readable video ({error})") from error
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: has no video stream (expected a video file such as .mp4)")
    return container


def probe_video(path: str | Path) -> VideoInfo:
    """The size, rate and length of `path`'s first video stream (VideoError if unusable)."""
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate) if stream.average_rate else 30.0
        rotation = 0.0
        width, height = stream.codec_context.width, stream.codec_context.height
        # The display rotation is only known per decoded frame; peek at the first one.
        for frame in container.decode(stream):
            rotation = frame.rotation
            width, height = frame.width, frame.height
            break
        if round(rotation / 90.0) % 2:
            width, height = height, width
        duration = 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        return VideoInfo(
            path=path,
            size=(int(width), int(height)),
            fps=fps,
            frame_count=int(stream.frames or round(duration * fps)),
            duration=duration,
            has_audio=bool(container.streams.audio),
        )


def check_time_range(start: float | None, end: float | None) -> tuple[float, float]:
    """(start, end) in seconds with the defaults filled in (0, infinity); ValueError if empty."""
    low = 0.0 if start is None else float(start)
    high = math.inf if end is None else float(end)
    if not low >= 0:
        raise ValueError(f"start must be a time >= 0 seconds, got {start}")
    if math.isnan(high):
        raise ValueError(f"end must be a time in seconds after start, got {end}")
    if not high > low:
        raise ValueError(f"end ({end} s) must come after start ({low} s)")
    return low, high


def iter_frames(
    path: str | Path, start: float | None = None, end: float | None = None
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yields (index in the whole video, time in seconds, upright [H, W, 3] uint8 frame) for the
    frames whose presentation time lies in [start, end), in presentation order.

    Frames before `start` are decoded (their index must be counted) but not converted to RGB.
    """
    import av

    path = Path(path)
    low, high = check_time_range(start, end)
    with _open(path) as container:
        stream = container.streams.video[0]
        time_base = stream.time_base
        # Times count from the stream's first frame (mp4 edit lists and B-frame delays start
        # presentation times above zero).
        origin = stream.start_time or 0
        rate = float(stream.average_rate) if stream.average_rate else 30.0
        try:
            for index, frame in enumerate(container.decode(stream)):
                if frame.pts is not None and time_base is not None:
                    time = float((frame.pts - origin) * time_base)
                else:
                    time = index / rate
                if time < low - 1e-6:
                    continue
                if time >= high - 1e-6:
                    break
                yield index, time, upright(frame.to_ndarray(format="rgb24"), frame.rotation)
        except av.error.FFmpegError as error:
            raise VideoError(f"{path}: decoding failed ({error})") from error
