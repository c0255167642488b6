"""`innout bench invert`: one In-N-Out composite optimisation step with innout's ops and with the
reference ops, side by side in one process.

A step of the composite stage (docs/method.md 3.2 step 2) on a batch of frames: the face tri-planes
of each frame's latents, the composite rendering of the face and object fields on every ray of a
`resolution`^2 raw image, super-resolution, every loss, and the backward pass. The frames are
random images with a random object mask (the cost does not depend on their content).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import torch

from innout.bench.memory import peak_bytes
from innout.eg3d import camera
from innout.eg3d.generator import TriPlaneGenerator
from innout.eg3d.loading import load_generator
from innout.invert import stages
from innout.invert.clip import Clip
from innout.invert.run import prepare_targets
from innout.invert.settings import FAST, PAPER
from innout.invert.state import InversionState
from innout.lpips import PerceptualLoss

#: Profiler labels of a step's two halves (see innout.bench.profile).
FORWARD, BACKWARD = "bench.forward", "bench.backward"


def load_benchmark_generator(network: str = "tiny", device: str = "cpu") -> TriPlaneGenerator:
    """The frozen generator the composite step runs on."""
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: PyTorch sees no CUDA device on this machine")
    return load_generator(network).to(device).eval().requires_grad_(False)


def composite_step(
    generator: TriPlaneGenerator,
    frames: int = 4,
    resolution: int = 64,
    backend: str = "innout",
    paper_step: bool = False,
) -> Callable[[], None]:
    """One composite step of the `fast` preset (forward, every loss, backward) on random
    frames, ready to call. `paper_step`: the `paper` preset's kind of step instead (the face
    latents optimised too, the super-resolution in the loss), at the same size."""
    torch_device = generator.backbone.mapping.w_avg.device
    seeded = torch.Generator().manual_seed(0)
    size = generator.img_resolution
    images = torch.rand(frames, 3, size, size, generator=seeded) * 2 - 1
    masks = torch.ones(frames, 1, size, size)
    masks[..., size // 4 : size // 2, size // 4 : size // 2] = 0
    clip = Clip(images, camera.frontal_labels(frames), masks, [f"{i}" for i in range(frames)])
    perceptual = PerceptualLoss(required=False).to(torch_device)
    settings = dataclasses.replace(
        FAST, batch_frames=frames, render_resolution=resolution, backend=backend,
    )  # fmt: skip
    if paper_step:
        settings = dataclasses.replace(
            settings, latent_lr_ratio=PAPER.latent_lr_ratio, sr_l2_weight=PAPER.sr_l2_weight
        )
    targets = prepare_targets(clip, generator, torch_device, resolution)
    state = InversionState(generator, "innout", frames, settings.object_plane_resolution, 0,
                           settings.object_residual_resolution)  # fmt: skip
    state = state.to(torch_device).requires_grad_(False)
    state.object.requires_grad_(True)
    state.ws.requires_grad_(settings.latent_lr_ratio > 0)
    stage = stages.composite_stage(generator, state, targets, settings, perceptual,
                                   targets.masks_raw)  # fmt: skip

    def step() -> None:
        state.zero_grad(set_to_none=True)
        with torch.profiler.record_function(FORWARD):
            index = stage.frames_fn(0)
            draws = [torch.Generator().manual_seed(slot) for slot in range(len(index))]
            loss = stage.step_fn(index, draws)["loss"]
        with torch.profiler.record_function(BACKWARD):
            loss.backward()

    return step


def run_composite_benchmark(
    network: str = "tiny",
    frames: int = 4,
    resolution: int = 64,
    steps: int = 3,
    device: str = "cpu",
    paper_step: bool = False,
) -> dict:
    """Seconds per composite step and peak memory for both backends; returns a report dict."""
    torch_device = torch.device(device)
    generator = load_benchmark_generator(network, device)
    report: dict = {"network": network, "device": device, "frames": frames,
                    "resolution": resolution, "steps": steps, "paper_step": paper_step}  # fmt: skip
    for backend in ("innout", "reference"):
        step = composite_step(generator, frames, resolution, backend, paper_step)
        step()  # warm-up
        if torch_device.type == "cuda":
            torch.cuda.synchronize(torch_device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        if torch_device.type == "cuda":
            torch.cuda.synchronize(torch_device)
        report[f"{backend}_seconds_per_step"] = (time.perf_counter() - start) / steps
        report[f"{backend}_peak_bytes"] = peak_bytes(step, torch_device)
    report["speedup"] = report["reference_seconds_per_step"] / report["innout_seconds_per_step"]
    innout_peak, reference_peak = report["innout_peak_bytes"], report["reference_peak_bytes"]
    report["memory_ratio"] = (
        reference_peak / innout_peak if innout_peak and reference_peak else None
    )
    return report


def step_kind(report: dict) -> str:
    """How a step report's step was set up, in words."""
    if report.get("paper_step"):
        return "paper's kind of step: face trained, super-resolution in the loss"
    return "fast preset's step: face frozen, no super-resolution"


def format_composite_report(report: dict) -> str:
    def mib(value: int | None) -> str:
        return "-" if value is None else f"{value / 2**20:.0f} MiB"

    memory = report["memory_ratio"]
    return (
        f"In-N-Out composite step ({report['network']}, {report['frames']} frames x "
        f"{report['resolution']}^2 rays, {step_kind(report)}, {report['device']}): innout "
        f"{report['innout_seconds_per_step']:.3f} s, {mib(report['innout_peak_bytes'])}; "
        f"reference {report['reference_seconds_per_step']:.3f} s, "
        f"{mib(report['reference_peak_bytes'])}; speed-up {report['speedup']:.2f}x"
        + (f", memory reference/innout {memory:.2f}x" if memory else "")
    )
