"""Peak memory of a callable: allocator statistics on CUDA, resident-set high-water mark on CPU.

On the CPU PyTorch keeps no allocation statistics, so the peak is read from the kernel's own
accounting: /proc/self/clear_refs resets VmHWM to the current resident size, the callable runs, and
VmHWM minus the starting VmRSS is the extra memory it touched (every buffer, including the C++
core's workspaces and the reference's temporaries). Freed heap memory is returned to the system
first (malloc_trim) so that one measurement does not hide inside memory freed by the previous one.
"""

from __future__ import annotations

import ctypes
import gc
import re
from collections.abc import Callable
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {field}")
    return int(match.group(1))


def cpu_peak_supported() -> bool:
    """Whether this system lets a process reset and read its own resident-set high-water mark."""
    try:
        _CLEAR_REFS.write_text("5")
        _status_kib("VmHWM")
    except (OSError, RuntimeError):
        return False
    return True


def _release_free_heap() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def peak_bytes(function: Callable[[], object], device: torch.device) -> int | None:
    """Extra bytes `function` holds at its peak over what was live before it ran (None if unknown).

    The callable's return value is dropped before the measurement ends, but it counts at the peak.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        result = function()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - start
        del result
        return peak
    if not cpu_peak_supported():
        return None
    _release_free_heap()
    _CLEAR_REFS.write_text("5")
    start = _status_kib("VmRSS")
    result = function()
    peak = _status_kib("VmHWM") - start
    del result
    return max(peak, 0) * 1024
