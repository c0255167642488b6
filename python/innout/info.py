"""What this installation of innout is: version, compiled backends, devices, threads."""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch


def build_info() -> dict[str, Any]:
    """Build and runtime facts: innout's C++ core (version, OpenMP threads, CUDA compiled in or not,
    the CUDA runtime's device count or the reason it has none) and the PyTorch it runs with."""
    try:
        from innout import _C
    except ImportError as error:
        info: dict[str, Any] = {"core": False, "core_error": str(error)}
    else:
        info = {"core": True, **_C.build_info()}
    info["torch_version"] = torch.__version__
    info["torch_cuda_available"] = torch.cuda.is_available()
    info["torch_num_threads"] = torch.get_num_threads()
    return info


def format_build_info(info: dict[str, Any]) -> str:
    """Human-readable lines for `innout info`."""
    if not info.get("core"):
        lines = [f"innout core: NOT importable ({info.get('core_error')})"]
    else:
        lines = [f"innout {info['version']}"]
        lines.append(
            f"OpenMP: {'yes' if info['openmp'] else 'no'}, {info['openmp_threads']} threads"
        )
        if info["cuda_compiled"]:
            runtime = info["cuda_runtime_version"]
            lines.append(
                f"CUDA: compiled in (architectures {info['cuda_architectures']}, "
                f"runtime {runtime // 1000}.{(runtime % 1000) // 10})"
            )
            if info["cuda_device_count"] > 0:
                lines.append(f"CUDA devices: {info['cuda_device_count']}")
            else:
                lines.append(f"CUDA devices: none ({info['cuda_unavailable_reason']})")
        else:
            lines.append("CUDA: not compiled in")
    lines.append(
        f"PyTorch {info['torch_version']} (CUDA available: {info['torch_cuda_available']}, "
        f"{info['torch_num_threads']} threads)"
    )
    return "\n".join(lines)


def _cmd_info(args: argparse.Namespace) -> int:
    info = build_info()
    print(json.dumps(info, indent=2) if args.json else format_build_info(info))
    return 0


def add_info_command(commands: argparse._SubParsersAction) -> None:
    info = commands.add_parser("info", help="version, compiled backends, devices and threads")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    info.set_defaults(handler=_cmd_info)
