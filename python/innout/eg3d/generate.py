"""`innout generate`: images, depth maps and orbit videos of random faces from an EG3D network."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from innout.eg3d import camera
from innout.eg3d.generator import TriPlaneGenerator
from innout.eg3d.mapping import latent
from innout.media import depth_to_uint8, to_uint8, write_png, write_video


def parse_seeds(text: str) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]."""
    seeds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if match is None:
            raise ValueError(f"seeds must look like '0-3,7', got {text!r}")
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if last < first:
            raise ValueError(f"seed range {part!r} runs backwards")
        seeds.extend(range(first, last + 1))
    return seeds


def orbit_cameras(generator: TriPlaneGenerator, frames: int, focal: float) -> torch.Tensor:
    """[frames, 25] cameras of EG3D's video path (yaw and pitch swinging around the front)."""
    pivot = tuple(generator.rendering_kwargs.get("avg_camera_pivot", camera.FFHQ_PIVOT))
    radius = float(generator.rendering_kwargs.get("avg_camera_radius", camera.FFHQ_RADIUS))
    t = torch.arange(frames, dtype=torch.float32) / frames
    yaw = math.pi / 2 + 0.35 * torch.sin(2 * math.pi * t)
    pitch = math.pi / 2 - 0.05 + 0.25 * torch.cos(2 * math.pi * t)
    poses = camera.look_at_cam2world(yaw, pitch, radius=radius, pivot=pivot)
    return camera.camera_labels(poses, camera.intrinsics(focal))


def orbit_frames_of(
    generator: TriPlaneGenerator, ws: torch.Tensor, cameras: torch.Tensor, progress: bool = True
) -> Iterator[np.ndarray]:
    """Frames [H, W, 3] uint8 of latents ws [1, num_ws, w_dim] seen from each camera [F, 25]."""
    planes = generator.planes(ws, noise_mode="const")  # one backbone pass for every view
    # Un-jittered samples: no sampling flicker from frame to frame.
    settings = generator.render_settings(deterministic=True)
    for index in tqdm(range(len(cameras)), desc="orbit", leave=False, disable=not progress):
        view = cameras[index : index + 1]
        result = generator.render_planes(planes, ws, view, settings=settings, noise_mode="const")
        yield to_uint8(result["image"][0])


def generate(
    generator: TriPlaneGenerator,
    seeds: list[int],
    out: Path,
    *,
    truncation_psi: float = 0.7,
    truncation_cutoff: int = 14,
    focal: float = camera.FFHQ_FOCAL,
    orbit: bool = False,
    orbit_frames: int = 60,
    fps: float = 30.0,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> list[Path]:
    """Writes seed%04d.png, seed%04d_depth.png (and seed%04d_orbit.mp4) per seed; returns paths."""
    device = torch.device(device)
    out.mkdir(parents=True, exist_ok=True)
    pivot = tuple(generator.rendering_kwargs.get("avg_camera_pivot", camera.FFHQ_PIVOT))
    radius = float(generator.rendering_kwargs.get("avg_camera_radius", camera.FFHQ_RADIUS))
    frontal = camera.camera_labels(
        camera.look_at_cam2world(math.pi / 2, math.pi / 2, radius=radius, pivot=pivot),
        camera.intrinsics(focal),
    ).to(device)
    written: list[Path] = []
    with torch.no_grad():
        for seed in tqdm(seeds, desc="generate", unit="seed", disable=not progress):
            z = latent(seed, generator.z_dim).to(device)
            ws = generator.mapping(z, frontal, truncation_psi, truncation_cutoff)
            result = generator.render(ws, frontal, seed=seed)
            image_path, depth_path = out / f"seed{seed:04d}.png", out / f"seed{seed:04d}_depth.png"
            write_png(image_path, to_uint8(result["image"][0]))
            write_png(
                depth_path, depth_to_uint8(result["image_depth"][0], result["weight_total"][0])
            )
            written += [image_path, depth_path]
            if orbit:
                cameras = orbit_cameras(generator, orbit_frames, focal).to(device)
                video_path = out / f"seed{seed:04d}_orbit.mp4"
                write_video(video_path, orbit_frames_of(generator, ws, cameras, progress), fps=fps)
                written.append(video_path)
    return written
