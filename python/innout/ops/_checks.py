"""Input validation shared by innout's ops: every message names what was expected and what came."""

from __future__ import annotations

from collections.abc import Sequence

import torch

FLOAT_DTYPES = (torch.float32, torch.float64)


def check_tensor(op: str, name: str, tensor: object, expected: str, ndim: int) -> torch.Tensor:
    """Checks that `tensor` is a float32/float64 tensor of rank `ndim` (`expected`: shape text)."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a tensor {expected}, got {type(tensor).__name__}")
    if tensor.dim() != ndim:
        raise ValueError(f"{op}: {name} must have shape {expected}, got {tuple(tensor.shape)}")
    if tensor.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: {name} must be float32 or float64, got {tensor.dtype}")
    return tensor


def check_same(op: str, tensors: Sequence[tuple[str, torch.Tensor]]) -> None:
    """All tensors share the first one's dtype and device."""
    first_name, first = tensors[0]
    for name, tensor in tensors[1:]:
        if tensor.dtype != first.dtype:
            raise TypeError(
                f"{op}: {name} has dtype {tensor.dtype} but {first_name} has {first.dtype}; "
                "all inputs must share one dtype"
            )
        if tensor.device != first.device:
            raise ValueError(
                f"{op}: {name} is on {tensor.device} but {first_name} is on {first.device}; "
                "all inputs must be on one device"
            )


def check_shape(op: str, name: str, tensor: torch.Tensor, shape: Sequence[int], text: str) -> None:
    """`tensor` has exactly `shape`; `text` spells the expected shape symbolically."""
    if tuple(tensor.shape) != tuple(shape):
        raise ValueError(
            f"{op}: {name} must have shape {text} = {tuple(shape)}, got {tuple(tensor.shape)}"
        )
