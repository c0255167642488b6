"""Shared fixtures: devices (CUDA tests skip cleanly without a GPU) and comparison helpers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from innout.ops import _native


def cuda_usable() -> bool:
    return torch.cuda.is_available() and _native.cuda_compiled()


CUDA_SKIP_REASON = (
    "needs a CUDA GPU, a CUDA build of PyTorch and innout built with its CUDA backend"
)

#: Parametrise a test over every device this machine can run: cpu always, cuda when usable.
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[pytest.mark.cuda, pytest.mark.skipif(not cuda_usable(), reason=CUDA_SKIP_REASON)],
    ),
]

#: Tolerances for comparing innout with the reference. The kernels and the reference sum the same
#: terms in a different order, so float32 results differ by a few ulp of the largest term.
TOLERANCE = {
    torch.float32: {"rtol": 1e-4, "atol": 2e-5},
    torch.float64: {"rtol": 1e-10, "atol": 1e-12},
}


def assert_close(
    actual: torch.Tensor, expected: torch.Tensor, name: str, atol_scale: float = 1.0
) -> None:
    tol = TOLERANCE[expected.dtype]
    torch.testing.assert_close(
        actual,
        expected,
        rtol=tol["rtol"],
        atol=tol["atol"] * atol_scale,
        equal_nan=True,
        msg=lambda m: f"{name}: {m}",
    )


def grads_of(outputs, inputs, upstream):
    """d(sum upstream * outputs)/d inputs; None for inputs that do not require grad."""
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    wanted = [x for x in inputs if x is not None and x.requires_grad]
    grads = iter(torch.autograd.grad(outputs, wanted, upstream, allow_unused=False))
    return [next(grads) if (x is not None and x.requires_grad) else None for x in inputs]


@pytest.fixture(scope="session")
def installed_innout(tmp_path_factory):
    """An install prefix holding innout's C++ package (CPU build), as a C++ user would install it:
    cmake configure, build, install. Skips without cmake."""
    if shutil.which("cmake") is None:
        pytest.skip("needs cmake")
    root = Path(__file__).resolve().parents[1]
    base = tmp_path_factory.mktemp("installed")
    build, prefix = base / "build", base / "prefix"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    steps = [
        ["cmake", "-S", str(root), "-B", str(build), *generator, "-DINNOUT_CUDA=OFF",
         "-DINNOUT_BUILD_PYTHON=OFF", f"-DCMAKE_INSTALL_PREFIX={prefix}"],
        ["cmake", "--build", str(build), "-j", "2"],
        ["cmake", "--install", str(build)],
    ]  # fmt: skip
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True)
        assert result.returncode == 0, " ".join(step) + "\n" + result.stdout + result.stderr
    return prefix


def build_against_installed(source, build, prefix) -> None:
    """Configures and builds the CMake project `source` in `build` against the install `prefix`."""
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    steps = [
        ["cmake", "-S", str(source), "-B", str(build), *generator,
         f"-DCMAKE_PREFIX_PATH={prefix}"],
        ["cmake", "--build", str(build)],
    ]  # fmt: skip
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True)
        assert result.returncode == 0, " ".join(step) + "\n" + result.stdout + result.stderr
