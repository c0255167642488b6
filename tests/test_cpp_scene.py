"""The C++ scene reader and renderer under AddressSanitizer and UBSan: the ctest suite, and scene
files written by Python read (or refused) as Python reads them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from innout.scene import SCENE_FORMAT, SceneError, load_scene
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    shutil.which("cmake") is None or shutil.which("ctest") is None, reason="needs cmake and ctest"
)


@pytest.fixture(scope="module")
def sanitized_build(tmp_path_factory) -> Path:
    build = tmp_path_factory.mktemp("asan") / "build"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    steps = [
        ["cmake", "-S", str(ROOT), "-B", str(build), *generator, "-DINNOUT_BUILD_TESTS=ON",
         "-DINNOUT_BUILD_PYTHON=OFF", "-DINNOUT_CUDA=OFF", "-DINNOUT_SANITIZE=ON",
         "-DCMAKE_BUILD_TYPE=Debug"],
        ["cmake", "--build", str(build), "-j", "2", "--target", "test_scene", "test_core",
         "test_render"],
    ]  # fmt: skip
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True)
        assert result.returncode == 0, " ".join(step) + "\n" + result.stdout + result.stderr
    return build


def _run(build: Path, *paths: Path) -> subprocess.CompletedProcess:
    # Leaks count as errors too; the reader owns nothing it does not free.
    env = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0", "PATH": "/usr/bin:/bin"}
    return subprocess.run([str(build / "tests" / "cpp" / "test_scene"), *map(str, paths)],
                          capture_output=True, text=True, env=env)  # fmt: skip


def test_the_ctest_suite_passes_under_the_sanitizers(sanitized_build):
    run = subprocess.run(["ctest", "--output-on-failure"], cwd=sanitized_build,
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "100% tests passed" in run.stdout


def _scene_tensors(with_object: bool) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    tensors = {
        "camera": torch.randn(25, generator=g),
        "face.planes": torch.randn(3, 32, 8, 8, generator=g),
        "face.hidden.weight": torch.randn(64, 32, generator=g),
        "face.hidden.bias": torch.randn(64, generator=g),
        "face.output.weight": torch.randn(33, 64, generator=g),
        "face.output.bias": torch.randn(33, generator=g),
    }
    if with_object:
        tensors.update({
            "object.planes": torch.randn(3, 32, 4, 4, generator=g),
            "object.code": torch.randn(32, generator=g),
            "object.hidden.weight": torch.randn(64, 64, generator=g),
            "object.hidden.bias": torch.randn(64, generator=g),
            "object.output.weight": torch.randn(34, 64, generator=g),
            "object.output.bias": torch.randn(34, generator=g),
        })  # fmt: skip
    return tensors


METADATA = {"format": SCENE_FORMAT, "resolution": "16", "coarse_samples": "8",
            "fine_samples": "8", "ray_start": "2.25", "ray_end": "3.3", "box_warp": "1.0",
            "sigmoid_pad": "0.001", "edits": '["smile=0.5"]'}  # fmt: skip


def test_python_written_scenes_are_read_and_bad_ones_refused_by_both(sanitized_build, tmp_path):
    files = {}
    for with_object in (False, True):
        tensors = _scene_tensors(with_object)
        path = tmp_path / f"object{int(with_object)}.safetensors"
        save_file(tensors, str(path), metadata=METADATA)
        assert load_scene(path).has_object == with_object
        files[path] = (len(tensors), sum(float(t.double().sum()) for t in tensors.values()))
    run = _run(sanitized_build, *files)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    for line, (path, (count, total)) in zip(lines, files.items()):
        assert line.startswith(f"loaded: {path} tensors={count} resolution=16")
        assert float(line.rsplit("sum=", 1)[1]) == pytest.approx(total, abs=1e-3)
    # A file either reader refuses, the other refuses too.
    good = next(iter(files)).read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good[:-7])
    misshapen = tmp_path / "misshapen.safetensors"
    tensors = _scene_tensors(False)
    tensors["face.hidden.bias"] = torch.zeros(63)
    save_file(tensors, str(misshapen), metadata=METADATA)
    reversed_range = tmp_path / "range.safetensors"
    save_file(_scene_tensors(True), str(reversed_range), metadata={**METADATA, "ray_start": "3.5"})
    for path, cpp_says in ((truncated, ""), (misshapen, "face.hidden.bias"),
                           (reversed_range, "ray_start")):  # fmt: skip
        with pytest.raises(SceneError):
            load_scene(path)
        run = _run(sanitized_build, path)
        assert run.returncode == 1 and run.stdout.startswith("refused: "), run.stdout + run.stderr
        assert cpp_says in run.stdout and "ERROR: AddressSanitizer" not in run.stderr
