"""Writing what users look at: PNG images and depth maps, and mp4 videos (PyAV)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from innout.atomic import raise_if_full, temporary_path, write_atomically


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """[3, H, W] image in [-1, 1] -> [H, W, 3] uint8 (x * 127.5 + 128, as EG3D's scripts)."""
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected an image of shape [3, H, W], got {tuple(image.shape)}")
    pixels = (image.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return pixels.permute(1, 2, 0).cpu().numpy()


def depth_to_uint8(depth: torch.Tensor, weight: torch.Tensor | None = None) -> np.ndarray:
    """[1, H, W] depth -> [H, W] uint8, near = bright, normalised over the rays that hit something.

    Rays with less than half opacity (weight < 0.5) are background and drawn black.
    """
    depth = depth.detach().float().squeeze(0).cpu()
    mask = torch.ones_like(depth, dtype=torch.bool)
    if weight is not None:
        mask = weight.detach().float().squeeze(0).cpu() >= 0.5
    if not mask.any():
        return np.zeros(depth.shape, dtype=np.uint8)
    near, far = depth[mask].min(), depth[mask].max()
    scaled = 1 - (depth - near) / (far - near).clamp_min(1e-8)
    scaled = torch.where(mask, scaled.clamp(0, 1), torch.zeros_like(scaled))
    return (scaled * 255).round().to(torch.uint8).numpy()


def _atomic_target(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return temporary_path(path)


def write_png(path: str | Path, pixels: np.ndarray) -> None:
    """Writes an [H, W] or [H, W, 3] uint8 array as PNG, atomically (temp file + rename)."""
    from PIL import Image

    write_atomically(path, lambda file: Image.fromarray(pixels).save(file, format="PNG"))


def frame_rate(fps: float) -> Fraction:
    """`fps` as the exact rational rate containers store (29.97 -> 30000/1001, 25 -> 25)."""
    if not (fps > 0 and fps < 1000):
        raise ValueError(f"fps must be in (0, 1000), got {fps}")
    return Fraction(fps).limit_denominator(1001)


def _copy_audio(reader, container, start: float, duration: float) -> list:
    """Adds the first audio stream of the open `reader` to `container` (no re-encoding) and
    returns the packets to mux: those overlapping [start, start + duration) seconds, moved so
    that `start` is 0. `reader` must stay open until they are muxed (the stream's parameters
    are read from it when the header is written)."""
    if not reader.streams.audio:
        return []
    audio = reader.streams.audio[0]
    stream = container.add_stream_from_template(audio)
    packets = []
    shift = None
    for packet in reader.demux(audio):
        if packet.dts is None or packet.pts is None:
            continue  # the demuxer's flush packet
        # Packets ending more than one packet before `start` are dropped; the one just before
        # stays (with a negative time, so players decode but do not play it): AAC needs it to
        # decode the next one, as it needs the encoder's priming packet at the very start.
        end = packet.pts + 2 * (packet.duration or 0)
        if float(end * packet.time_base) <= start:
            continue
        if float(packet.pts * packet.time_base) >= start + duration:
            break
        if shift is None:
            # In stream units; a packet before 0 (the encoder's priming) keeps its offset.
            shift = round(start / packet.time_base)
        packet.pts -= shift
        packet.dts -= shift
        packet.stream = stream
        packets.append(packet)
    return packets


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float = 30.0,
    audio_from: str | Path | None = None,
    audio_start: float = 0.0,
    frame_count: int | None = None,
) -> int:
    """Writes [H, W, 3] uint8 frames as an H.264 mp4 (yuv420p), atomically. Returns the count.

    The rate is stored exactly (29.97 stays 30000/1001). With `audio_from`, that file's first
    audio stream is copied through unchanged (cut at the video's length), so edited videos keep
    their sound; `audio_start` (seconds) is where in that file the video's first frame is.
    `frames` may be a generator (frames are encoded as they come, so long videos need not fit
    in memory); copying audio then needs its length up front, `frame_count`.
    """
    import av

    target = Path(path)
    temporary = _atomic_target(target)
    rate = frame_rate(fps)
    if isinstance(frames, Sequence):
        frame_count = len(frames)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError("no frames to write")
    if audio_from is not None and frame_count is None:
        raise ValueError("copying audio alongside a stream of frames needs frame_count")
    written = 0
    try:
        with contextlib.ExitStack() as stack:
            # The audio source is opened first so that it closes last: the output's trailer
            # still reads the copied stream's parameters (its priming samples) from it.
            reader = stack.enter_context(av.open(str(audio_from))) if audio_from else None
            container = stack.enter_context(av.open(str(temporary), mode="w", format="mp4"))
            stream = container.add_stream("libx264", rate=rate)
            # yuv420p needs even sizes; players expect it.
            height, width = first.shape[0] // 2 * 2, first.shape[1] // 2 * 2
            stream.height, stream.width = height, width
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "18"}
            audio_packets = []
            if reader is not None:
                duration = float(frame_count / rate)
                audio_packets = _copy_audio(reader, container, audio_start, duration)
            for packet in audio_packets:
                container.mux(packet)
            for frame in itertools.chain([first], frames):
                if frame.shape != first.shape:
                    shapes = f"{list(frame.shape)}, the first {list(first.shape)}"
                    raise ValueError(f"frame {written} is {shapes}: frames must share one size")
                image = av.VideoFrame.from_ndarray(
                    np.ascontiguousarray(frame[:height, :width]), format="rgb24"
                )
                for packet in stream.encode(image):
                    container.mux(packet)
                written += 1
            for packet in stream.encode():
                container.mux(packet)
        temporary.replace(target)
    except OSError as error:  # PyAV's errors are OSErrors carrying the errno
        raise_if_full(error, target)
        raise
    finally:
        temporary.unlink(missing_ok=True)
    return written
