"""`innout bench generator`: one full-size EG3D forward with innout's ops and with the reference.

Builds the official ffhq512-128 architecture with random weights, renders the same latents and
cameras with the same random draws through both backends in one process, and reports time, peak
memory and the largest difference between the two images.
"""

from __future__ import annotations

import time

import torch

from innout.bench.memory import peak_bytes
from innout.eg3d import camera
from innout.eg3d.configs import architecture
from innout.eg3d.generator import TriPlaneGenerator
from innout.render.settings import draw_uniforms


def run_generator_benchmark(name: str = "ffhq512-128", device: str = "cpu", batch: int = 1) -> dict:
    """Times innout vs reference rendering of one batch; returns a report dict."""
    torch_device = torch.device(device)
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: PyTorch sees no CUDA device on this machine")
    kwargs, resolution = architecture(name)
    torch.manual_seed(0)
    generator = TriPlaneGenerator(**kwargs).eval().requires_grad_(False).to(torch_device)
    generator.neural_rendering_resolution = resolution
    cameras = camera.frontal_labels(batch).to(torch_device)
    with torch.no_grad():
        ws = generator.mapping(torch.randn(batch, generator.z_dim, device=torch_device), cameras)
        settings = generator.render_settings()
        uniforms = draw_uniforms(
            batch,
            resolution**2,
            settings,
            torch_device,
            torch.Generator(device=torch_device).manual_seed(1),
        )
        report: dict = {"architecture": name, "device": device, "batch": batch}
        images = {}
        for backend in ("innout", "reference"):

            def render(backend=backend):
                return generator.render(ws, cameras, uniforms=uniforms, backend=backend)

            render()  # warm-up
            if torch_device.type == "cuda":
                torch.cuda.synchronize(torch_device)
            start = time.perf_counter()
            images[backend] = render()
            if torch_device.type == "cuda":
                torch.cuda.synchronize(torch_device)
            report[f"{backend}_seconds"] = time.perf_counter() - start
            report[f"{backend}_peak_bytes"] = peak_bytes(render, torch_device)
        reference_image = images["reference"]["image"]
        report["max_abs_difference_relative"] = float(
            (images["innout"]["image"] - reference_image).abs().max() / reference_image.abs().max()
        )
        report["speedup"] = report["reference_seconds"] / report["innout_seconds"]
    return report


def format_report(report: dict) -> str:
    def mib(value: int | None) -> str:
        return "-" if value is None else f"{value / 2**20:.0f} MiB"

    return (
        f"EG3D {report['architecture']} forward (batch {report['batch']}, {report['device']}): "
        f"innout {report['innout_seconds']:.2f} s, {mib(report['innout_peak_bytes'])}; "
        f"reference {report['reference_seconds']:.2f} s, {mib(report['reference_peak_bytes'])}; "
        f"speed-up {report['speedup']:.2f}x; max |image difference| / max |image| = "
        f"{report['max_abs_difference_relative']:.1e}"
    )
