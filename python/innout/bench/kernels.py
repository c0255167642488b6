"""`innout bench kernels`: each op of innout against its PyTorch reference, in one process.

For every op the forward and the forward+backward are timed for innout and for
:mod:`innout.ops.reference` on the same inputs, and their peak memory is measured; the table gives
the ratios. Workloads: ``eg3d`` = 1 x 128x128 rays x 96 samples x 32 channels with
3 x 32 x 256 x 256 planes, ``tiny`` = 64x64 rays x 64 samples with 3 x 32 x 128 x 128 planes. The
tri-plane points lie along the rays of a frontal camera, as in rendering.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from innout import ops
from innout.bench.memory import peak_bytes
from innout.info import build_info
from innout.ops import reference
from innout.provenance import device_name, short_commit, source_commit

WORKLOADS = {
    "eg3d": {"rays": 128 * 128, "samples": 96, "channels": 32, "plane_size": 256},
    "tiny": {"rays": 64 * 64, "samples": 64, "channels": 32, "plane_size": 128},
}
ALL_OPS = ("triplane_sample", "composite_march", "ray_march", "importance_sample")


@dataclass
class OpResult:
    """Timings (milliseconds, median of repeats) and peak memory (bytes) of one op."""

    op: str
    shape: str
    innout_forward_ms: float
    reference_forward_ms: float
    innout_total_ms: float | None  # forward + backward; None for ops without gradient
    reference_total_ms: float | None
    innout_peak_bytes: int | None  # forward + backward
    reference_peak_bytes: int | None
    innout_forward_peak_bytes: int | None  # forward with autograd on: outputs + saved for backward
    reference_forward_peak_bytes: int | None

    @property
    def forward_speedup(self) -> float:
        return self.reference_forward_ms / self.innout_forward_ms

    @property
    def total_speedup(self) -> float | None:
        if self.innout_total_ms is None or self.reference_total_ms is None:
            return None
        return self.reference_total_ms / self.innout_total_ms

    @property
    def memory_ratio(self) -> float | None:
        if not self.innout_peak_bytes or not self.reference_peak_bytes:
            return None
        return self.innout_peak_bytes / self.reference_peak_bytes

    @property
    def forward_memory_ratio(self) -> float | None:
        if not self.innout_forward_peak_bytes or not self.reference_forward_peak_bytes:
            return None
        return self.innout_forward_peak_bytes / self.reference_forward_peak_bytes


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(function: Callable[[], object], device: torch.device, repeats: int) -> float:
    function()  # warm-up: first-call allocations, lazy initialisation
    _synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        _synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _forward_backward(function: Callable[[], tuple], inputs: list[torch.Tensor], seed: int):
    """A closure running function() and backward with fixed random upstream gradients.

    The upstream gradients are drawn once, outside the timed runs (drawing 200 MB of normal
    numbers costs as much as some of the ops), and reused by every call.
    """
    upstream: list[torch.Tensor] = []

    def run():
        outputs = function()
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        if not upstream:
            generator = torch.Generator(device=outputs[0].device).manual_seed(seed)
            upstream.extend(
                torch.randn(o.shape, generator=generator, device=o.device, dtype=o.dtype)
                for o in outputs
            )
        return torch.autograd.grad(outputs, inputs, upstream)

    return run


def _frontal_ray_points(rays: int, depths: torch.Tensor) -> torch.Tensor:
    """[1, rays * K, 3] sample points of a square image's rays, as a renderer produces them.

    A frontal FFHQ camera (radius 2.7 on +z, looking at the origin, normalised focal 4.2647), one
    ray per pixel centre, at the given depths: neighbouring points are neighbours in the planes
    too, so memory is accessed as in real rendering, not as for uniformly scattered points.
    """
    resolution = int(round(rays**0.5))
    pixels = torch.arange(resolution, dtype=depths.dtype, device=depths.device)
    centres = (pixels + 0.5) / resolution
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    focal = 4.2647
    # OpenCV camera (x right, y down, z forward) looking down -z in the world (+y up).
    directions = torch.stack([(u - 0.5) / focal, -(v - 0.5) / focal, -torch.ones_like(u)], -1)
    directions = torch.nn.functional.normalize(directions.reshape(1, -1, 1, 3), dim=-1)
    origin = torch.tensor([0.0, 0.0, 2.7], dtype=depths.dtype, device=depths.device)
    return (origin + depths.unsqueeze(-1) * directions).reshape(1, -1, 3)


def _inputs(op: str, workload: dict, device: torch.device, seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    rays, samples, channels = workload["rays"], workload["samples"], workload["channels"]

    def rand(*shape, scale=1.0, offset=0.0):
        return (torch.rand(shape, generator=generator) * scale + offset).to(device)

    depths = torch.sort(rand(1, rays, samples, scale=1.05, offset=2.25), dim=-1).values
    if op == "triplane_sample":
        size = workload["plane_size"]
        planes = torch.randn(1, 3, channels, size, size, generator=generator).to(device)
        points = _frontal_ray_points(rays, depths)
        return {"planes": planes.requires_grad_(), "points": points.requires_grad_()}
    tensors = {
        "depths": depths,
        "density_in": rand(1, rays, samples, scale=20.0, offset=-8.0),
        "features_in": rand(1, rays, samples, channels),
    }
    if op == "composite_march":
        tensors.update(
            density_out=rand(1, rays, samples, scale=20.0, offset=-8.0),
            features_out=rand(1, rays, samples, channels),
            blend=rand(1, rays, samples),
        )
    if op == "importance_sample":
        weights = reference.ray_march(
            tensors["depths"], tensors["density_in"], tensors["features_in"]
        )[2]
        return {"depths": depths, "weights": weights, "uniforms": rand(1, rays, samples // 2)}
    return {k: v.requires_grad_() for k, v in tensors.items()}


def _callables(op: str, inputs: dict) -> tuple[Callable, Callable, bool]:
    """(innout, reference, differentiable) for one op: the same call on both backends."""

    def bound(kernels: ops.Backend) -> Callable:
        if op == "triplane_sample":
            return lambda: kernels.triplane_sample(inputs["planes"], inputs["points"])
        if op == "importance_sample":
            n = inputs["uniforms"].shape[-1]
            return lambda: kernels.importance_sample(
                inputs["depths"], inputs["weights"], n, uniforms=inputs["uniforms"]
            )
        names = ["depths", "density_in", "features_in", "density_out", "features_out", "blend"]
        args = [inputs[k] for k in names if k in inputs]
        if op == "ray_march":
            return lambda: kernels.ray_march(*args)
        return lambda: kernels.composite_march(*args)

    differentiable = op != "importance_sample"
    return bound(ops.backend("innout")), bound(ops.backend("reference")), differentiable


def _shape_text(op: str, workload: dict) -> str:
    rays, samples, channels = workload["rays"], workload["samples"], workload["channels"]
    if op == "triplane_sample":
        size = workload["plane_size"]
        return f"{rays * samples} pts, 3x{channels}x{size}x{size}"
    return f"{rays} rays x {samples} x {channels}"


def benchmark_op(op: str, workload_name: str, device: torch.device, repeats: int) -> OpResult:
    """Times and measures one op and its reference on the same inputs."""
    workload = WORKLOADS[workload_name]
    inputs = _inputs(op, workload, device, seed=0)
    innout_fn, reference_fn, differentiable = _callables(op, inputs)
    with torch.no_grad():
        innout_forward = _median_ms(innout_fn, device, repeats)
        reference_forward = _median_ms(reference_fn, device, repeats)
    innout_total = reference_total = None
    measured_innout, measured_reference = innout_fn, reference_fn
    if differentiable:
        grad_inputs = [v for v in inputs.values() if v.requires_grad]
        measured_innout = _forward_backward(innout_fn, grad_inputs, seed=1)
        measured_reference = _forward_backward(reference_fn, grad_inputs, seed=1)
        innout_total = _median_ms(measured_innout, device, repeats)
        reference_total = _median_ms(measured_reference, device, repeats)
    return OpResult(
        op=op,
        shape=_shape_text(op, workload),
        innout_forward_ms=innout_forward,
        reference_forward_ms=reference_forward,
        innout_total_ms=innout_total,
        reference_total_ms=reference_total,
        innout_peak_bytes=peak_bytes(measured_innout, device),
        reference_peak_bytes=peak_bytes(measured_reference, device),
        innout_forward_peak_bytes=peak_bytes(innout_fn, device),
        reference_forward_peak_bytes=peak_bytes(reference_fn, device),
    )


def run_kernel_benchmarks(
    workload: str = "eg3d", device: str = "cpu", repeats: int = 3, ops: list[str] | None = None
) -> dict:
    """Runs the benchmark of every op (or `ops`) and returns results with their context."""
    if workload not in WORKLOADS:
        raise ValueError(f"workload must be one of {sorted(WORKLOADS)}, got {workload!r}")
    torch_device = torch.device(device)
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: PyTorch sees no CUDA device on this machine")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    selected = list(ops) if ops else list(ALL_OPS)
    results = [benchmark_op(op, workload, torch_device, repeats) for op in selected]
    return {
        "workload": workload,
        "device": device,
        "machine": device_name(torch_device),
        "commit": source_commit() or "unknown",
        "repeats": repeats,
        "build": build_info(),
        "results": results,
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f}"


def format_table(report: dict) -> str:
    """A Markdown table of the results (times in ms, memory in MiB)."""
    lines = [
        f"innout bench kernels: workload {report['workload']}, {report['device']} "
        f"({report['machine']}), commit {short_commit(report['commit'])}, "
        f"median of {report['repeats']}",
        "",
        "| op | shape | fwd innout | fwd ref | fwd speedup | fwd+bwd innout | fwd+bwd ref "
        "| fwd+bwd speedup | fwd+bwd peak MiB innout / ref | ratio "
        "| fwd (autograd) peak MiB innout / ref | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r.op} | {r.shape} | {_ms(r.innout_forward_ms)} | {_ms(r.reference_forward_ms)} "
            f"| {_ratio(r.forward_speedup)} | {_ms(r.innout_total_ms)} "
            f"| {_ms(r.reference_total_ms)} "
            f"| {_ratio(r.total_speedup)} | {_mib(r.innout_peak_bytes)} / "
            f"{_mib(r.reference_peak_bytes)} | {_ratio(r.memory_ratio)} "
            f"| {_mib(r.innout_forward_peak_bytes)} / {_mib(r.reference_forward_peak_bytes)} "
            f"| {_ratio(r.forward_memory_ratio)} |"
        )
    return "\n".join(lines)


def json_payload(report: dict) -> dict:
    """The kernel benchmark report as plain JSON data (results with their ratios)."""
    payload = dict(report)
    payload["results"] = [
        {
            **asdict(r),
            "forward_speedup": r.forward_speedup,
            "total_speedup": r.total_speedup,
            "memory_ratio": r.memory_ratio,
            "forward_memory_ratio": r.forward_memory_ratio,
        }
        for r in report["results"]
    ]
    return payload
