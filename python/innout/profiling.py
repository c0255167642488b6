"""Named regions of innout's work, so that a torch.profiler trace says what each op was for.

`region("face_decoder")` marks the code it wraps as ``innout.face_decoder`` in a profile; outside a
profile it costs a few microseconds. `innout bench invert --profile` (:mod:`innout.bench.profile`)
adds the time of every op to the innermost region around it, forward and backward.
"""

from __future__ import annotations

import torch

#: What every region's profiler label starts with.
PREFIX = "innout."

#: The regions the library marks, in the order a composite step runs them.
REGIONS = (
    "face_planes",
    "face_decoder",
    "object_decoder",
    "superresolution",
    "perceptual_loss",
    "losses",
)


def region(name: str) -> torch.profiler.record_function:
    """A context manager that labels its code ``innout.<name>`` in a torch.profiler trace."""
    if name not in REGIONS:
        raise ValueError(f"unknown profiling region {name!r}; expected one of {', '.join(REGIONS)}")
    return torch.profiler.record_function(PREFIX + name)
