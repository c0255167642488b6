"""The C++ renderer (innout/innout.h) from an installed package: examples/cpp/render_scene built
as a separate CMake project renders exported scenes as innout's Python renderer does, writes an
orbit of PPM images with timings, and refuses bad files with a message."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CUDA_SKIP_REASON, build_against_installed, cuda_usable
from innout.edit.scene_export import export_scene
from innout.scene import load_scene, render_scene
from safetensors import safe_open
from safetensors.torch import save_file
from test_scene import innout_run  # noqa: F401  (the fixture: a short In-N-Out run)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def example(installed_innout, tmp_path_factory) -> Path:
    build = tmp_path_factory.mktemp("example") / "build"
    build_against_installed(ROOT / "examples" / "cpp", build, installed_innout)
    return build / "render_scene"


def _run(example: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(example), *map(str, args)], capture_output=True, text=True)


def _without_object(source: Path, target: Path) -> Path:
    with safe_open(str(source), framework="pt") as file:
        metadata = file.metadata()
        tensors = {k: file.get_tensor(k) for k in file.keys() if not k.startswith("object.")}  # noqa: SIM118
    save_file(tensors, str(target), metadata=metadata)
    return target


def _read_raw(path: Path, channels: int, size: int, with_object: bool) -> dict[str, torch.Tensor]:
    values = torch.from_numpy(np.fromfile(path, dtype=np.float32))
    pixels = size * size
    expected = (channels + 1 + (1 if with_object else 0)) * pixels
    assert values.numel() == expected, f"{path}: {values.numel()} floats, expected {expected}"
    out = {
        "features": values[: channels * pixels].reshape(channels, size, size),
        "depth": values[channels * pixels : (channels + 1) * pixels].reshape(size, size),
    }
    if with_object:
        out["object_opacity"] = values[(channels + 1) * pixels :].reshape(size, size)
    return out


def _read_ppm(path: Path) -> torch.Tensor:
    magic, dimensions, maximum, pixels = path.read_bytes().split(b"\n", 3)
    assert magic == b"P6" and maximum == b"255"
    width, height = map(int, dimensions.split())
    pixels = np.frombuffer(pixels, dtype=np.uint8).reshape(height, width, 3)
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)


@pytest.mark.parametrize("with_object", [True, False], ids=["face+object", "face"])
def test_cpp_render_equals_the_python_render_of_an_exported_scene(
    example,
    innout_run,  # noqa: F811
    tmp_path,
    with_object,
):
    path = export_scene(innout_run, 1, tmp_path / "frame1.safetensors")
    if not with_object:
        path = _without_object(path, tmp_path / "face_only.safetensors")
    scene = load_scene(path)
    assert scene.has_object == with_object
    result = _run(example, path, "--views", "1", "--out", tmp_path, "--raw", tmp_path / "raw.f32")
    assert result.returncode == 0, result.stdout + result.stderr
    cpp = _read_raw(tmp_path / "raw.f32", 32, scene.resolution, with_object)
    python = render_scene(scene)
    # The whole composite feature image (its first three channels are the raw RGB image), the
    # depth and the object's opacity.
    torch.testing.assert_close(cpp["features"], python["features"], atol=1e-4, rtol=0)
    torch.testing.assert_close(cpp["depth"], python["depth"], atol=1e-4, rtol=0)
    assert python["features"].std() > 0.1  # a real image, not a constant
    if with_object:
        torch.testing.assert_close(
            cpp["object_opacity"], python["object_opacity"], atol=1e-4, rtol=0
        )
        assert float(python["object_opacity"].max()) > 0.1, "the object covers some pixels"


def test_the_example_renders_an_orbit_to_ppm_with_timings(example, innout_run, tmp_path):  # noqa: F811
    path = export_scene(innout_run, 0, tmp_path / "frame0.safetensors")
    scene = load_scene(path)
    out = tmp_path / "orbit"
    out.mkdir()
    result = _run(example, path, "--views", "3", "--yaw", "20", "--out", out, "--threads", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ms per view" in result.stdout and "view 3/3" in result.stdout
    images = [_read_ppm(out / f"view_{i:03d}.ppm") for i in range(3)]
    assert all(image.shape == (3, scene.resolution, scene.resolution) for image in images)
    # The middle view is the scene's own camera: the Python render, quantised to 8 bits.
    expected = ((render_scene(scene)["image_raw"] + 1) * 127.5).clamp(0, 255)
    assert (images[1].float() - expected).abs().max() <= 1.0
    # The first view is the camera turned by -20 degrees about the vertical through (0, 0, 0.2).
    label = scene.tensors["camera"].clone()
    pose = label[:16].reshape(4, 4)
    angle = math.radians(-20.0)
    c, s = math.cos(angle), math.sin(angle)
    rotation = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    pivot = torch.tensor([0.0, 0.0, 0.2])
    turned = pose.clone()
    turned[:3, :3] = rotation @ pose[:3, :3]
    turned[:3, 3] = rotation @ (pose[:3, 3] - pivot) + pivot
    label[:16] = turned.reshape(-1)
    expected_turned = ((render_scene(scene, camera=label)["image_raw"] + 1) * 127.5).clamp(0, 255)
    assert (images[0].float() - expected_turned).abs().max() <= 1.0
    assert (images[0].float() - images[1].float()).abs().mean() > 2.0, "the views differ"


def test_the_example_reports_bad_scene_files_without_crashing(example, innout_run, tmp_path):  # noqa: F811
    good = export_scene(innout_run, 0, tmp_path / "good.safetensors").read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good[: len(good) // 2])
    result = _run(example, truncated, "--out", tmp_path)
    assert result.returncode == 1 and "error:" in result.stderr and str(truncated) in result.stderr
    missing = _run(example, tmp_path / "absent.safetensors", "--out", tmp_path)
    assert missing.returncode == 1 and "error:" in missing.stderr
    usage = _run(example)
    assert usage.returncode == 2 and "usage:" in usage.stderr
    assert not list(tmp_path.glob("*.ppm")), "no image is written for a refused scene"


def test_the_embedding_guide_example_builds_and_renders(installed_innout, innout_run, tmp_path):  # noqa: F811
    guide = (ROOT / "docs" / "embedding.md").read_text(encoding="utf-8")
    source = guide.split("```cpp\n", 1)[1].split("```", 1)[0]
    assert len(source.strip().splitlines()) <= 30, "the guide's example stays short"
    project = tmp_path / "guide"
    project.mkdir()
    (project / "main.cpp").write_text(source, encoding="utf-8")
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.24)\nproject(guide LANGUAGES CXX)\n"
        "set(CMAKE_CXX_STANDARD 17)\nfind_package(innout CONFIG REQUIRED)\n"
        "add_executable(guide main.cpp)\ntarget_link_libraries(guide PRIVATE innout::core)\n",
        encoding="utf-8",
    )
    build_against_installed(project, tmp_path / "build", installed_innout)
    scene = export_scene(innout_run, 0, tmp_path / "frame0.safetensors")
    assert _run(tmp_path / "build" / "guide", scene).returncode == 0
    refused = _run(tmp_path / "build" / "guide", tmp_path / "absent.safetensors")
    assert refused.returncode == 1 and "no such" in refused.stderr.lower() + refused.stdout.lower()


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_usable(), reason=CUDA_SKIP_REASON)
def test_the_cuda_renderer_matches_the_cpu_renderer(tmp_path):
    """Builds the ctest suite with the CUDA backend for this GPU and runs the renderer's tests,
    which compare innout::cuda::render with innout::cpu::render (within 1e-4)."""
    major, minor = torch.cuda.get_device_capability()
    build = tmp_path / "build"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    steps = [
        ["cmake", "-S", str(ROOT), "-B", str(build), *generator, "-DINNOUT_BUILD_TESTS=ON",
         "-DINNOUT_BUILD_PYTHON=OFF", "-DINNOUT_CUDA=ON",
         f"-DINNOUT_CUDA_ARCHITECTURES={major}{minor}"],
        ["cmake", "--build", str(build), "-j", "8", "--target", "test_render"],
        [str(build / "tests" / "cpp" / "test_render")],
    ]  # fmt: skip
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True)
        assert result.returncode == 0, " ".join(step) + "\n" + result.stdout + result.stderr
    assert "CUDA vs CPU render (object 1)" in result.stdout
