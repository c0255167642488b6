"""Builds the C++ core alone (no Python, no CUDA) and runs its ctest suite in this pytest run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import build_against_installed

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    shutil.which("cmake") is None or shutil.which("ctest") is None, reason="needs cmake and ctest"
)
def test_ctest_suite_passes(tmp_path):
    build = tmp_path / "build"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    configure = subprocess.run(
        [
            "cmake",
            "-S",
            str(ROOT),
            "-B",
            str(build),
            *generator,
            "-DINNOUT_BUILD_TESTS=ON",
            "-DINNOUT_BUILD_PYTHON=OFF",
            "-DINNOUT_CUDA=OFF",
            "-DCMAKE_BUILD_TYPE=Release",
        ],
        capture_output=True,
        text=True,
    )
    assert configure.returncode == 0, configure.stdout + configure.stderr
    compile_ = subprocess.run(
        ["cmake", "--build", str(build), "-j", "2"], capture_output=True, text=True
    )
    assert compile_.returncode == 0, compile_.stdout + compile_.stderr
    run = subprocess.run(
        ["ctest", "--output-on-failure"], cwd=build, capture_output=True, text=True
    )
    print(run.stdout)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "100% tests passed" in run.stdout


def test_installed_package_is_found_and_linked_by_another_project(installed_innout, tmp_path):
    consumer = tmp_path / "consumer"
    build_against_installed(ROOT / "tests" / "cpp" / "consumer", consumer, installed_innout)
    result = subprocess.run([str(consumer / "consumer")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "composite 1.0000" in result.stdout
