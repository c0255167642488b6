"""`innout bench invert --profile`: where the time of one In-N-Out composite step goes.

The step (:func:`innout.bench.invert.composite_step`, innout's ops) runs under torch.profiler.
Every profiled op is charged to a part of the step:

- the forward: each op's own time (its children excluded) goes to the innermost labelled code
  around it - one of innout's ops (``innout::triplane_sample``, ...) or a region the library marks
  (:mod:`innout.profiling`: the backbone's tri-planes, the decoders, super-resolution, losses);
- the backward: each autograd node's whole evaluation goes to the part of the forward op that
  created it (matched by the autograd sequence number: the node is made by the last op that
  carries its number);
- what no part claims (ray directions, merging and sorting the samples, views and copies, the
  optimiser's gradient accumulation) is reported as "rest".

On CUDA the device times of the kernels are used instead of the CPU times. The parts add up to the
profiled step's time, minus the profiler's own bookkeeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import torch

from innout.bench.invert import (
    BACKWARD,
    FORWARD,
    composite_step,
    load_benchmark_generator,
    step_kind,
)
from innout.profiling import PREFIX

#: The parts of a composite step, in the order they run, and the labels charged to each.
PARTS: dict[str, tuple[str, ...]] = {
    "face tri-planes (StyleGAN2 backbone)": (PREFIX + "face_planes",),
    "depth sampling (stratified, importance)": (
        "innout::stratified_sample",
        "innout::importance_sample",
    ),
    "tri-plane sampling (face and object)": ("innout::triplane_sample",),
    "face decoder": (PREFIX + "face_decoder",),
    "object decoder": (PREFIX + "object_decoder",),
    "volume rendering (marches)": ("innout::composite_march", "innout::ray_march"),
    "super-resolution": (PREFIX + "superresolution",),
    "perceptual loss": (PREFIX + "perceptual_loss",),
    "other losses": (PREFIX + "losses",),
}
REST = "rest (rays, merge and sort, copies, gradient accumulation)"
_PART_OF_LABEL = {label: part for part, labels in PARTS.items() for label in labels}
_NODE_PREFIX = "autograd::engine::evaluate_function: "


def _own_time(event, cuda: bool) -> float:
    """Microseconds spent in the event itself (its child ops excluded)."""
    if cuda:
        return float(getattr(event, "self_device_time_total", 0.0))
    return float(event.self_cpu_time_total)


def _total_time(event, cuda: bool) -> float:
    if cuda:
        return float(getattr(event, "device_time_total", 0.0))
    return float(event.cpu_time_total)


def _part_of(event) -> str | None:
    """The part of the innermost labelled event around `event` (itself included), else None."""
    while event is not None:
        part = _PART_OF_LABEL.get(event.name)
        if part is not None:
            return part
        event = event.cpu_parent
    return None


def _within(event, label: str) -> bool:
    while event is not None:
        if event.name == label:
            return True
        event = event.cpu_parent
    return False


def attribute(events: Iterable, cuda: bool = False) -> dict[str, dict[str, float]]:
    """{part: {"forward": us, "backward": us}} of a profiled step (module docstring)."""
    events = sorted(events, key=lambda e: e.time_range.start)
    times = {part: {"forward": 0.0, "backward": 0.0} for part in (*PARTS, REST)}
    part_of_node: dict[int, str | None] = {}
    for event in events:
        if not _within(event, FORWARD):
            continue
        times[_part_of(event) or REST]["forward"] += _own_time(event, cuda)
        if event.sequence_nr >= 0:
            part_of_node[event.sequence_nr] = _part_of(event)  # the last op with it made the node
    for event in events:
        if not _within(event, BACKWARD):
            continue
        parent = event.cpu_parent
        if event.name.startswith(_NODE_PREFIX) and (parent is None or parent.name == BACKWARD):
            part = part_of_node.get(event.sequence_nr) if event.sequence_nr >= 0 else None
            times[part or REST]["backward"] += _total_time(event, cuda)
        elif parent is not None and parent.name == BACKWARD:
            times[REST]["backward"] += _total_time(event, cuda)  # engine work outside any node
    return times


def profile_composite_step(
    network: str = "tiny",
    frames: int = 4,
    resolution: int = 64,
    steps: int = 3,
    device: str = "cpu",
    paper_step: bool = False,
) -> dict:
    """Profiles `steps` composite steps after a warm-up; returns a report dict (milliseconds per
    step and part); `paper_step` as in `composite_step`."""
    generator = load_benchmark_generator(network, device)
    step: Callable[[], None] = composite_step(generator, frames, resolution, "innout", paper_step)
    torch_device = torch.device(device)
    cuda = torch_device.type == "cuda"
    step()  # warm-up
    activities = [torch.profiler.ProfilerActivity.CPU]
    if cuda:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
        torch.cuda.synchronize(torch_device)
    start = time.perf_counter()
    with torch.profiler.profile(activities=activities) as profiler:
        for _ in range(steps):
            step()
        if cuda:
            torch.cuda.synchronize(torch_device)
    wall = (time.perf_counter() - start) / steps
    times = attribute(profiler.events(), cuda)
    parts = {
        part: {half: value / 1000 / steps for half, value in halves.items()}
        for part, halves in times.items()
    }
    return {
        "network": network,
        "device": device,
        "frames": frames,
        "resolution": resolution,
        "steps": steps,
        "paper_step": paper_step,
        "wall_ms_per_step": wall * 1000,
        "parts_ms": parts,
    }


def format_profile(report: dict) -> str:
    """The report as a Markdown table, largest parts first."""
    parts = report["parts_ms"]
    total = sum(halves["forward"] + halves["backward"] for halves in parts.values())
    lines = [
        f"In-N-Out composite step profile ({report['network']}, {report['frames']} frames x "
        f"{report['resolution']}^2 rays, {step_kind(report)}, {report['device']}, innout's "
        "ops, mean of "
        f"{report['steps']} profiled steps): {total:.0f} ms attributed, "
        f"{report['wall_ms_per_step']:.0f} ms wall per step under the profiler",
        "",
        "| part | forward ms | backward ms | total ms | share |",
        "|---|---|---|---|---|",
    ]
    ranked = sorted(parts.items(), key=lambda item: -(item[1]["forward"] + item[1]["backward"]))
    for part, halves in ranked:
        both = halves["forward"] + halves["backward"]
        share = both / total if total else 0.0
        lines.append(
            f"| {part} | {halves['forward']:.1f} | {halves['backward']:.1f} | {both:.1f} | "
            f"{100 * share:.1f}% |"
        )
    return "\n".join(lines)
