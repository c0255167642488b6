"""innout's differentiable rendering ops (torch.library custom ops over the C++/CUDA core).

Each op has a pure-PyTorch specification of the same name and signature in
:mod:`innout.ops.reference`; :func:`backend` picks one of the two implementations by name.
"""

from innout.ops import reference
from innout.ops.backend import BACKENDS, Backend, backend
from innout.ops.composite_march import composite_march, ray_march
from innout.ops.importance_sample import importance_sample
from innout.ops.stratified_sample import stratified_sample
from innout.ops.triplane_sample import triplane_sample

__all__ = [
    "BACKENDS",
    "Backend",
    "backend",
    "composite_march",
    "importance_sample",
    "ray_march",
    "reference",
    "stratified_sample",
    "triplane_sample",
]
