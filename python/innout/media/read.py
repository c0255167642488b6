"""Reading what users give: images and videos (PyAV), decoded upright, as arrays or tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


class InputError(ValueError):
    """An input (image, video, ...) is unusable; the message says what was expected."""


#: The largest image or video frame innout decodes (8K UHD is 33 M pixels): sizes come from the
#: file's header and are checked before any pixel is decoded, so a hostile header cannot make
#: innout allocate gigabytes.
MAX_IMAGE_PIXELS = 8192 * 8192
MAX_IMAGE_SIDE = 16384


def check_image_size(path: Path, width: int, height: int) -> None:
    """InputError unless a `width` x `height` image is within innout's decoding limits."""
    if width < 1 or height < 1:
        raise InputError(f"{path}: the image is {width}x{height} pixels")
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise InputError(f"{path}: the image is {width}x{height} pixels; innout decodes at most "
                         f"{MAX_IMAGE_PIXELS} pixels, {MAX_IMAGE_SIDE} a side")  # fmt: skip


def upright(pixels: np.ndarray, rotation: float) -> np.ndarray:
    """A decoded frame [H, W, C] turned as players show it. `rotation` is the display matrix's
    angle as PyAV reports it (degrees counter-clockwise; phones' portrait videos say -90)."""
    quarter_turns = round(rotation / 90.0) % 4
    if abs(rotation - 90.0 * round(rotation / 90.0)) > 1.0:
        raise ValueError(f"only multiples of 90 degrees are supported, got rotation {rotation}")
    return np.ascontiguousarray(np.rot90(pixels, k=quarter_turns)) if quarter_turns else pixels


def image_tensor(pixels: np.ndarray) -> torch.Tensor:
    """[H, W, 3] uint8 pixels -> a [3, H, W] float image in [-1, 1]."""
    return torch.from_numpy(np.array(pixels)).permute(2, 0, 1).float() / 127.5 - 1


def read_image(path: Path) -> np.ndarray:
    """An image file as [H, W, 3] uint8 RGB."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            check_image_size(path, *image.size)
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise InputError(f"{path}: not a readable image ({error})") from error


def read_video(path: Path) -> tuple[list[np.ndarray], float]:
    """Decodes every frame of a video file ([H, W, 3] uint8, timestamp order, turned upright as
    its rotation metadata says: phones store portrait videos sideways) and its fps."""
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as error:
        raise InputError(f"{path}: not a readable video ({error})") from error
    with container:
        if not container.streams.video:
            raise InputError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width and height:  # 0 when the container leaves it to the decoder
            check_image_size(path, width, height)
        fps = float(stream.average_rate) if stream.average_rate else 30.0
        decoded = []
        try:
            for frame in container.decode(stream):
                check_image_size(path, frame.width, frame.height)
                decoded.append((frame.pts if frame.pts is not None else len(decoded), frame))
        except av.error.FFmpegError as error:
            raise InputError(f"{path}: decoding failed ({error})") from error
        decoded.sort(key=lambda item: item[0])
        frames = [upright(frame.to_ndarray(format="rgb24"), frame.rotation) for _, frame in decoded]
    if not frames:
        raise InputError(f"{path}: the video has no frames")
    return frames, fps


def video_fps(path: Path, default: float = 30.0) -> float:
    """The frame rate of a video file's first video stream (`default` if unknown/unreadable)."""
    import av

    try:
        with av.open(str(path)) as container:
            rate = container.streams.video[0].average_rate if container.streams.video else None
    except (av.error.FFmpegError, OSError):
        return default
    return float(rate) if rate else default
