"""Writing what users look at: PNG images and depth maps, and mp4 videos (PyAV)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch


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
    return path.with_name(f".{path.name}.tmp{os.getpid()}{path.suffix}")


def write_png(path: str | Path, pixels: np.ndarray) -> None:
    """Writes an [H, W] or [H, W, 3] uint8 array as PNG, atomically (temp file + rename)."""
    from PIL import Image

    target = Path(path)
    temporary = _atomic_target(target)
    Image.fromarray(pixels).save(temporary, format="PNG")
    temporary.replace(target)


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float = 30.0) -> int:
    """Writes [H, W, 3] uint8 frames as an H.264 mp4 (yuv420p), atomically. Returns the count."""
    import av

    target = Path(path)
    temporary = _atomic_target(target)
    count = 0
    try:
        with av.open(str(temporary), mode="w", format="mp4") as container:
            stream = None
            for frame in frames:
                if stream is None:
                    stream = container.add_stream("libx264", rate=round(fps))
                    # yuv420p needs even sizes; players expect it.
                    stream.height, stream.width = frame.shape[0] // 2 * 2, frame.shape[1] // 2 * 2
                    stream.pix_fmt = "yuv420p"
                    stream.options = {"crf": "18"}
                frame = frame[: stream.height, : stream.width]
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
                count += 1
            if stream is not None:
                for packet in stream.encode():
                    container.mux(packet)
        if count == 0:
            raise ValueError("no frames to write")
        temporary.replace(target)
    finally:
        temporary.unlink(missing_ok=True)
    return count
