"""pytest-benchmark timings of each op, innout next to its reference (not part of the test run).

    python3 -m pytest benchmarks --benchmark-group-by=param:op --benchmark-columns=median,iqr

Each group holds the innout and the reference implementation of one op on the same inputs, so the
ratio of their medians is the speed-up. `innout bench kernels` prints the same comparison with peak
memory, for the documented workloads.
"""

from __future__ import annotations

import pytest
import torch
from innout.bench import kernels

WORKLOAD = "tiny"


@pytest.mark.parametrize("implementation", ["innout", "reference"])
@pytest.mark.parametrize("op", kernels.ALL_OPS)
def test_forward_backward(benchmark, op, implementation):
    inputs = kernels._inputs(op, kernels.WORKLOADS[WORKLOAD], torch.device("cpu"), seed=0)
    innout_fn, reference_fn, differentiable = kernels._callables(op, inputs)
    function = innout_fn if implementation == "innout" else reference_fn
    if differentiable:
        grad_inputs = [v for v in inputs.values() if v.requires_grad]
        function = kernels._forward_backward(function, grad_inputs, seed=1)
    benchmark.group = f"{op} ({WORKLOAD}, {'fwd+bwd' if differentiable else 'fwd'})"
    benchmark(function)
