"""The installed package: import without GPU, build information, the command line, benchmarks."""

from __future__ import annotations

import json
import subprocess
import sys

import innout
import torch
from innout import _C
from innout.bench import kernels
from innout.cli import main


def test_build_info_reports_backends_devices_and_threads():
    info = _C.build_info()
    assert info["version"] == innout.__version__
    assert isinstance(info["cuda_compiled"], bool)
    assert info["openmp_threads"] >= 1
    if info["cuda_device_count"] == 0:
        assert info["cuda_unavailable_reason"], "no device must come with a reason"


def test_import_works_without_a_gpu_in_a_fresh_interpreter():
    code = "import innout, json; print(json.dumps(innout.build_info()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)
    assert info["core"] is True
    assert info["torch_version"] == torch.__version__


def test_info_command(capsys):
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert f"innout {innout.__version__}" in text and "OpenMP" in text and "CUDA" in text
    assert main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == innout.__version__


def test_kernel_benchmark_compares_both_implementations(tmp_path, monkeypatch):
    small = {"rays": 64, "samples": 16, "channels": 4, "plane_size": 8}
    monkeypatch.setitem(kernels.WORKLOADS, "tiny", small)
    target = tmp_path / "bench.json"
    assert (
        main(["bench", "kernels", "--workload", "tiny", "--repeats", "1", "--json", str(target)])
        == 0
    )
    report = json.loads(target.read_text())
    assert {r["op"] for r in report["results"]} == set(kernels.ALL_OPS)
    for result in report["results"]:
        assert result["innout_forward_ms"] > 0 and result["reference_forward_ms"] > 0
        assert result["forward_speedup"] > 0
    marched = next(r for r in report["results"] if r["op"] == "composite_march")
    assert marched["innout_total_ms"] > 0 and marched["total_speedup"] > 0


def test_benchmark_on_a_missing_device_fails_with_a_message(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["bench", "kernels", "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err
