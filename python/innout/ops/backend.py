"""Choosing the implementation of innout's ops: one lookup, the same signatures either way.

``ops.backend("innout")`` gives the compiled C++/CUDA ops, ``ops.backend("reference")`` their
pure-PyTorch specifications (:mod:`innout.ops.reference`). Both take exactly the arguments of the
public functions in :mod:`innout.ops`, so a renderer written against one runs on the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from innout.ops import reference
from innout.ops.composite_march import composite_march, ray_march
from innout.ops.importance_sample import importance_sample
from innout.ops.stratified_sample import stratified_sample
from innout.ops.triplane_sample import triplane_sample

#: The names `backend` accepts.
BACKENDS = ("innout", "reference")


@dataclass(frozen=True)
class Backend:
    """The five ops of one implementation (see the functions of the same names in innout.ops)."""

    name: str
    triplane_sample: Callable
    composite_march: Callable
    ray_march: Callable
    stratified_sample: Callable
    importance_sample: Callable


_BACKENDS = {
    "innout": Backend(
        "innout", triplane_sample, composite_march, ray_march, stratified_sample, importance_sample
    ),
    "reference": Backend(
        "reference",
        reference.triplane_sample,
        reference.composite_march,
        reference.ray_march,
        reference.stratified_sample,
        reference.importance_sample,
    ),
}


def backend(name: str) -> Backend:
    """The ops of backend `name`: "innout" (C++/CUDA) or "reference" (pure PyTorch)."""
    try:
        return _BACKENDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {name!r}") from None
