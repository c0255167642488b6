"""Where a result came from: versions, source commit and machine, recorded the same way by the
inversion's manifest, the benchmarks' reports and the training record of innout-tiny."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch


def source_commit() -> str | None:
    """The git commit of innout's sources when they are a checkout ("+modified" when they differ
    from it), else None (an installed package)."""
    folder = Path(__file__).resolve().parent
    try:

        def git(*arguments: str) -> str:
            return subprocess.run(["git", "-C", str(folder), *arguments], check=True,
                                  capture_output=True, text=True, timeout=10).stdout  # fmt: skip

        commit = git("rev-parse", "HEAD").strip()
        dirty = git("status", "--porcelain", "--", ".")
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+modified" if dirty.strip() else "")


def short_commit(commit: str | None) -> str:
    """A commit as reports print it: its first 7 hex digits (and "+modified"), or "unknown"."""
    if not commit:
        return "unknown"
    digits, _, modified = commit.partition("+")
    return digits[:7] + ("+" + modified if modified else "")


def device_name(device: torch.device | str | None = None) -> str:
    """The GPU's name for a CUDA device, else the processor and the thread count."""
    device = torch.device(device or "cpu")
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def provenance(device: torch.device | str | None = None) -> dict:
    """Versions, commit and machine: {"innout", "commit", "torch", "python", "machine",
    "processor", "threads", "cuda", "device"} (`device`: what the work ran on)."""
    import innout

    return {
        "innout": innout.__version__,
        "commit": source_commit(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs",
        "processor": platform.processor() or None,
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "device": device_name(device),
    }
