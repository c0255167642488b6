"""The C++ scene reader and renderer under AddressSanitizer and UBSan: the ctest suite, and scene
files written by Python read (or refused) as Python reads them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from innout import scene as scenes
from innout.scene import SCENE_FORMAT, SceneError, load_scene
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    shutil.which("cmake") is None or shutil.which("ctest") is None, reason="needs cmake and ctest"
)


_build: dict[str, object] = {}


def build_sanitized(tmp_path_factory, targets: tuple[str, ...] = ("test_scene",)) -> Path:
    """The C++ tests built with the sanitizers: configured once per test session, and each
    target built when first asked for (several test modules run tests/cpp/test_scene)."""
    if "dir" not in _build:
        build = tmp_path_factory.mktemp("asan") / "build"
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        _sanitized_step(["cmake", "-S", str(ROOT), "-B", str(build), *generator,
                         "-DINNOUT_BUILD_TESTS=ON", "-DINNOUT_BUILD_PYTHON=OFF",
                         "-DINNOUT_CUDA=OFF", "-DINNOUT_SANITIZE=ON",
                         "-DCMAKE_BUILD_TYPE=Debug"])  # fmt: skip
        _build.update(dir=build, targets=set())
    build, built = _build["dir"], _build["targets"]
    missing = [t for t in targets if t not in built]
    if missing:
        _sanitized_step(["cmake", "--build", str(build), "-j", "2", "--target", *missing])
        built.update(missing)
    return build


def _sanitized_step(step: list[str]) -> None:
    result = subprocess.run(step, capture_output=True, text=True)
    assert result.returncode == 0, " ".join(step) + "\n" + result.stdout + result.stderr


@pytest.fixture(scope="module")
def sanitized_build(tmp_path_factory) -> Path:
    return build_sanitized(tmp_path_factory, ("test_scene", "test_core", "test_render"))


def run_test_scene(build: Path, *paths: Path) -> subprocess.CompletedProcess:
    """tests/cpp/test_scene FILE...: a line per file, "loaded: PATH ..." or "refused: MESSAGE"."""
    # Leaks count as errors too; the reader owns nothing it does not free.
    env = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0", "PATH": "/usr/bin:/bin"}
    return subprocess.run([str(build / "tests" / "cpp" / "test_scene"), *map(str, paths)],
                          capture_output=True, text=True, env=env)  # fmt: skip


_run = run_test_scene


def test_the_ctest_suite_passes_under_the_sanitizers(sanitized_build):
    run = subprocess.run(["ctest", "--output-on-failure"], cwd=sanitized_build,
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "100% tests passed" in run.stdout


def _scene_tensors(with_object: bool) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    tensors = {
        "camera": torch.tensor(FRONTAL_CAMERA),
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


#: EG3D's frontal FFHQ camera label (cam2world, then normalised intrinsics).
FRONTAL_CAMERA = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, -1.0, 2.7, 0.0, 0.0, 0.0, 1.0,
                  4.2647, 0.0, 0.5, 0.0, 4.2647, 0.5, 0.0, 0.0, 1.0]  # fmt: skip

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


def _limit_cases() -> dict[str, tuple[dict[str, torch.Tensor], dict[str, str], str]]:
    """Files one past each limit (and degenerate cameras, non-integer sizes): (tensors,
    metadata, what both readers must name)."""
    cases = {}
    for key, limit in (("resolution", scenes.MAX_RESOLUTION),
                       ("coarse_samples", scenes.MAX_SAMPLES),
                       ("fine_samples", scenes.MAX_SAMPLES)):  # fmt: skip
        cases[f"{key}_past_limit"] = (_scene_tensors(True), {**METADATA, key: str(limit + 1)}, key)
    for text in ("64.7", "6.4e1", '"64"', "true", " 64"):
        cases[f"resolution {text}"] = (_scene_tensors(False), {**METADATA, "resolution": text},
                                       "resolution must be an integer")  # fmt: skip
    wide = _scene_tensors(False)
    wide["face.planes"] = torch.zeros(3, 32, 1, scenes.MAX_PLANE_SIZE + 1)
    cases["plane_past_limit"] = (wide, METADATA, "W = 2049")
    channels = scenes.MAX_CHANNELS + 1
    many = _scene_tensors(False)
    many["face.planes"] = torch.zeros(3, channels, 1, 1)
    many["face.hidden.weight"] = torch.zeros(64, channels)
    cases["channels_past_limit"] = (many, METADATA, "C = 1025")
    code = _scene_tensors(True)
    code["object.code"] = torch.zeros(channels)
    code["object.hidden.weight"] = torch.zeros(64, 32 + channels)
    cases["code_past_limit"] = (code, METADATA, "K = 1025")
    for name, change in (("zero_camera", lambda c: c.zero_()),
                         ("zero_focal", lambda c: c.__setitem__(16, 0.0)),
                         ("stretched_rotation", lambda c: c.__setitem__(5, -1.01)),
                         ("nan_camera", lambda c: c.__setitem__(3, float("nan")))):  # fmt: skip
        tensors = _scene_tensors(True)
        change(tensors["camera"])
        cases[name] = (tensors, METADATA, "camera")
    nan = _scene_tensors(True)
    nan["object.output.weight"][3, 7] = float("inf")
    cases["inf_weight"] = (nan, METADATA, "object.output.weight contains NaN or infinity")
    return cases


@pytest.mark.parametrize("case", sorted(_limit_cases()))
def test_both_readers_refuse_the_same_out_of_bound_files(sanitized_build, tmp_path, case):
    tensors, metadata, what = _limit_cases()[case]
    path = tmp_path / "scene.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(SceneError, match=re.escape(str(path))) as refused:
        load_scene(path)
    assert what in str(refused.value)
    run = _run(sanitized_build, path)
    assert run.returncode == 1 and run.stdout.startswith(f"refused: {path}: "), run.stdout
    assert what in run.stdout and "ERROR: AddressSanitizer" not in run.stderr


def test_the_limits_are_the_same_constants_in_python_and_cpp():
    header = (ROOT / "cpp" / "include" / "innout" / "scene.h").read_text(encoding="utf-8")
    found = re.findall(r"constexpr (?:int64_t|double) kScene(\w+) = ([0-9.]+);", header)
    assert len(found) == 10, found
    for name, value in found:
        python_name = re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()
        assert float(getattr(scenes, python_name)) == float(value), python_name
