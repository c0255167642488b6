"""A time-boxed libFuzzer campaign of the C++ scene reader and renderer
(cpp/fuzz/scene_reader_fuzzer.cpp, built with clang, AddressSanitizer and UBSan), seeded with real
exported scenes and hand-made edge cases; and the inputs of past findings, replayed.

`python3 tests/test_fuzz_scene.py DIR` writes the seed corpus to DIR for a longer campaign
(docs/embedding.md, "Fuzzing the scene reader")."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save
from test_scene import innout_run  # noqa: F401  (the fixture: a short In-N-Out run)

ROOT = Path(__file__).resolve().parents[1]
FUZZ_SECONDS = 60
#: An execution parses a scene and renders 16 rays: far more than this many fit in a minute even
#: under the sanitizers on a slow machine; fewer would mean the campaign did not really run.
MIN_EXECUTIONS = 2000

pytestmark = pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake")

FRONTAL_CAMERA = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, -1.0, 2.7, 0.0, 0.0, 0.0, 1.0,
                  4.2647, 0.0, 0.5, 0.0, 4.2647, 0.5, 0.0, 0.0, 1.0]  # fmt: skip
SETTINGS = {"format": "innout-scene/1", "resolution": "4", "coarse_samples": "4",
            "fine_samples": "2", "ray_start": "2.25", "ray_end": "3.3", "box_warp": "1.0",
            "sigmoid_pad": "0.001"}  # fmt: skip

#: Inputs of past findings, replayed by test_past_findings_stay_fixed. The long campaign (docs/
#: embedding.md) found none so far; an entry is the crashing file's bytes, minimised.
FINDINGS: dict[str, bytes] = {}


def fuzzer_build(build: Path) -> Path:
    """Configures and builds the fuzzer in `build` (incremental when it exists); its path."""
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    steps = [
        ["cmake", "-S", str(ROOT), "-B", str(build), *generator, "-DCMAKE_CXX_COMPILER=clang++",
         "-DINNOUT_BUILD_FUZZERS=ON", "-DINNOUT_BUILD_PYTHON=OFF", "-DINNOUT_CUDA=OFF",
         "-DCMAKE_BUILD_TYPE=RelWithDebInfo"],
        ["cmake", "--build", str(build), "-j", "2", "--target", "scene_reader_fuzzer"],
    ]  # fmt: skip
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True)
        assert result.returncode == 0, " ".join(step) + "\n" + result.stdout + result.stderr
    return build / "cpp" / "fuzz" / "scene_reader_fuzzer"


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory) -> Path:
    if shutil.which("clang++") is None:
        pytest.skip("needs clang++ with libFuzzer (Debian: apt-get install clang)")
    return fuzzer_build(tmp_path_factory.mktemp("fuzz") / "build")


def _file(header: str, buffer: bytes = b"") -> bytes:
    """A safetensors file: 8-byte little-endian header length, header, byte buffer."""
    data = header.encode("utf-8")
    return struct.pack("<Q", len(data)) + data + buffer


def _tiny_tensors(with_object: bool, channels: int = 2, code: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(channels * 10 + code)
    tensors = {
        "camera": torch.tensor(FRONTAL_CAMERA),
        "face.planes": torch.randn(3, channels, 2, 3, generator=g),
        "face.hidden.weight": torch.randn(3, channels, generator=g),
        "face.hidden.bias": torch.randn(3, generator=g),
        "face.output.weight": torch.randn(4, 3, generator=g),
        "face.output.bias": torch.randn(4, generator=g),
    }
    if with_object:
        tensors.update({
            "object.planes": torch.randn(3, channels, 1, 2, generator=g),
            "object.code": torch.randn(code, generator=g),
            "object.hidden.weight": torch.randn(2, channels + code, generator=g),
            "object.hidden.bias": torch.randn(2, generator=g),
            "object.output.weight": torch.randn(5, 2, generator=g),
            "object.output.bias": torch.randn(5, generator=g),
        })  # fmt: skip
    return tensors


def hand_made_seeds() -> dict[str, bytes]:
    """Small scenes at the edges of what the reader accepts, and a few it refuses."""
    seeds = {
        "tiny_face": save(_tiny_tensors(False), metadata=SETTINGS),
        "tiny_object": save(_tiny_tensors(True), metadata=SETTINGS),
        "object_k3_c1": save(_tiny_tensors(True, channels=1, code=3), metadata=SETTINGS),
        "no_fine_samples": save(_tiny_tensors(True),
                                metadata={**SETTINGS, "coarse_samples": "2", "fine_samples": "0"}),
        "settings_at_limits": save(_tiny_tensors(False),
                                   metadata={**SETTINGS, "resolution": "4096",
                                             "coarse_samples": "1024", "fine_samples": "1024"}),
        "extra_tensors": save({**_tiny_tensors(False), "empty": torch.zeros(0),
                               "deep": torch.ones([1] * 8)}, metadata=SETTINGS),
        "empty_header": _file("{}"),
        "truncated": save(_tiny_tensors(True), metadata=SETTINGS)[:-5],
    }  # fmt: skip
    # The header written by hand: escapes, a surrogate pair, spaces, metadata after the tensors.
    tensors = _tiny_tensors(False)
    buffer, entries = b"", {}
    for name, tensor in tensors.items():
        data = tensor.numpy().tobytes()
        entries[name] = {"dtype": "F32", "shape": list(tensor.shape),
                         "data_offsets": [len(buffer), len(buffer) + len(data)]}  # fmt: skip
        buffer += data
    metadata = {**SETTINGS, "edits": '["smile=0.5"]', "source": "caf\u00e9 \U0001f600"}
    header = json.dumps({**entries, "__metadata__": metadata}, ensure_ascii=True, indent=1)
    seeds["escaped_header"] = _file(header + "  \n", buffer)
    return seeds


def exported_seeds(result) -> dict[str, bytes]:
    """Frames of an inversion exported by `innout export-scene`'s code, with and without the
    object, the tri-planes cropped to a few texels so that the files stay small (the decoders,
    camera and settings are the exported ones)."""
    from innout.edit.scene_export import scene_tensors

    seeds = {}
    for frame in range(min(result.frames, 2)):
        tensors, metadata = scene_tensors(result, frame)
        tensors["face.planes"] = tensors["face.planes"][:, :, :3, :4].contiguous()
        if "object.planes" in tensors:
            tensors["object.planes"] = tensors["object.planes"][:, :, :2, :2].contiguous()
        seeds[f"exported_frame{frame}"] = save(tensors, metadata=metadata)
        face = {k: v for k, v in tensors.items() if not k.startswith("object.")}
        seeds[f"exported_frame{frame}_face"] = save(face, metadata=metadata)
    return seeds


def write_seed_corpus(directory: Path, result=None) -> list[Path]:
    """Writes the seeds (the exported ones when `result`, an InversionResult, is given)."""
    directory.mkdir(parents=True, exist_ok=True)
    seeds = hand_made_seeds()
    if result is not None:
        seeds.update(exported_seeds(result))
    paths = []
    for name, data in seeds.items():
        paths.append(directory / f"seed_{name}")
        paths[-1].write_bytes(data)
    return paths


def _run_fuzzer(fuzzer: Path, *args: str) -> subprocess.CompletedProcess:
    # Leaks are findings too; a sanitizer report must abort with a non-zero status.
    env = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1", "PATH": "/usr/bin:/bin",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}  # fmt: skip
    return subprocess.run([str(fuzzer), *args], capture_output=True, text=True, env=env)


def test_the_seeds_are_accepted_or_refused_without_a_finding(fuzzer, tmp_path):
    paths = write_seed_corpus(tmp_path / "seeds")
    run = _run_fuzzer(fuzzer, *map(str, paths))
    assert run.returncode == 0, run.stderr[-4000:]
    assert run.stderr.count("Executed ") == len(paths)


def test_past_findings_stay_fixed(fuzzer, tmp_path):
    if not FINDINGS:
        pytest.skip("no finding recorded")
    paths = []
    for name, data in FINDINGS.items():
        paths.append(tmp_path / name)
        paths[-1].write_bytes(data)
    run = _run_fuzzer(fuzzer, *map(str, paths))
    assert run.returncode == 0, run.stderr[-4000:]


def test_a_time_boxed_campaign_finds_nothing(fuzzer, innout_run, tmp_path):  # noqa: F811
    corpus, artifacts = tmp_path / "corpus", tmp_path / "artifacts"
    artifacts.mkdir()
    seeds = write_seed_corpus(corpus, innout_run)
    run = _run_fuzzer(
        fuzzer, str(corpus), f"-max_total_time={FUZZ_SECONDS}", "-rss_limit_mb=2048",
        "-timeout=10", f"-dict={ROOT / 'cpp' / 'fuzz' / 'scene.dict'}", "-print_final_stats=1",
        f"-artifact_prefix={artifacts}/", "-seed=1",
    )  # fmt: skip
    log = run.stderr
    found = sorted(p.name for p in artifacts.iterdir())
    assert run.returncode == 0 and not found, f"findings {found}:\n{log[-6000:]}"
    assert not any(p.name.startswith(("crash-", "leak-", "timeout-")) for p in corpus.iterdir())
    done = re.search(r"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+)", log)
    assert done, log[-3000:]
    executions, coverage = int(done.group(1)), int(done.group(2))
    assert executions >= MIN_EXECUTIONS, f"only {executions} executions:\n{log[-3000:]}"
    # The seeds alone reach the reader, the checks and the renderer: many edges.
    assert coverage > 500, log[-3000:]
    assert len(list(corpus.iterdir())) > len(seeds), "the campaign added inputs to the corpus"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 tests/test_fuzz_scene.py CORPUS_DIR")
    sys.path.insert(0, str(ROOT / "tests"))
    from innout.invert import invert
    from test_invert import TINY_RUN, synthetic_clip

    out = Path(sys.argv[1])
    run = invert(synthetic_clip(2), method="innout", out=out / ".run", progress=False, **TINY_RUN)
    written = write_seed_corpus(out, run)
    shutil.rmtree(out / ".run")
    print(f"wrote {len(written)} seeds to {out}")
