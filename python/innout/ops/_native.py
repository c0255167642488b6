"""Calls into the compiled core (innout._C) with an op's fields, thread count and CUDA stream."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

try:
    from innout import _C
except ImportError as error:  # pragma: no cover - exercised only on a broken install
    _C = None
    _IMPORT_ERROR: ImportError | None = error
else:
    _IMPORT_ERROR = None


def available() -> bool:
    """Whether the compiled core could be imported."""
    return _C is not None


def cuda_compiled() -> bool:
    """Whether the compiled core includes the CUDA backend."""
    return _C is not None and bool(_C.build_info()["cuda_compiled"])


#: Host outputs at least this large are allocated on transparent huge pages when the system allows.
HUGE_PAGE_THRESHOLD_BYTES = 8 << 20


def empty(shape: tuple[int, ...] | torch.Size, like: torch.Tensor) -> torch.Tensor:
    """An uninitialised output tensor with `like`'s dtype and device.

    A large CPU output is advised onto transparent huge pages before anything touches it: the op
    then writes it without a page fault per 4 KiB (on a 2-core machine, faulting in a 200 MB
    gradient costs about as much as computing it).
    """
    tensor = torch.empty(shape, dtype=like.dtype, device=like.device)
    nbytes = tensor.numel() * tensor.element_size()
    if _C is not None and tensor.device.type == "cpu" and nbytes >= HUGE_PAGE_THRESHOLD_BYTES:
        _C.advise_huge_pages(tensor.data_ptr(), nbytes)
    return tensor


def call(function: str, device: torch.device, dtype: torch.dtype, fields: dict[str, Any]) -> None:
    """Runs `_C.<function>` on `fields`: every field of the op's params struct that it reads.

    Fields are named like the struct's members: sizes are ints, scalars floats, and buffers
    tensors, or None where a buffer is absent (no object field, a gradient not needed); an empty
    tensor counts as absent. An unknown or missing field raises ValueError and a value of the wrong
    kind TypeError, both naming the op and the field. Tensors must be contiguous and on `device`;
    the caller validated shapes. CPU ops use torch.get_num_threads() threads; CUDA ops run on the
    current stream of the tensors' device.
    """
    if _C is None:
        raise RuntimeError(
            "innout's compiled core (innout._C) is not importable; reinstall innout with "
            f"`pip install .` or use backend='reference' ({_IMPORT_ERROR})"
        )
    dtype_name = "float64" if dtype == torch.float64 else "float32"
    if device.type == "cuda":
        if not cuda_compiled():
            raise RuntimeError(
                "innout was built without its CUDA backend; reinstall with nvcc available "
                "(INNOUT_CUDA=ON) to run on CUDA tensors, or use backend='reference'"
            )
        if not torch.cuda.is_available():
            raise RuntimeError("CUDA tensors were given but PyTorch sees no usable CUDA device")
        context = torch.cuda.device(device)
        stream = torch.cuda.current_stream(device).cuda_stream
    elif device.type == "cpu":
        context = contextlib.nullcontext()
        stream = 0
    else:
        raise ValueError(f"innout ops run on 'cpu' or 'cuda' tensors, got device '{device}'")
    with context:
        getattr(_C, function)(device.type, dtype_name, torch.get_num_threads(), stream, fields)
