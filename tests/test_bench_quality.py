"""`innout bench quality`: masked metrics, the report's averages and claims, determinism, resume."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from innout import metrics
from innout.bench.quality import BenchmarkError, QualitySuite, run_quality_benchmark
from innout.bench.quality_report import claims, format_markdown, summarize, write_html
from innout.cli import main

#: Inversion settings small enough for a test (a few seconds per method on innout-tiny).
QUICK = (
    ("latent_epochs", 2),
    ("init_samples", 2),
    ("pti_epochs", 2),
    ("composite_steps", 3),
    ("sr_epochs", 1),
)


def test_masked_ssim_matches_hand_computed_values():
    # Left half: a constant pair (SSIM from the means only); right half: identical (SSIM 1).
    a = torch.zeros(1, 1, 32, 32, dtype=torch.float64)
    b = torch.zeros(1, 1, 32, 32, dtype=torch.float64)
    b[..., :16] = 0.1
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :, :11] = 1  # window centres at columns 5..10: every window lies inside the left half
    mx, my = 0.5, 0.55
    expected = (2 * mx * my + 0.01**2) / (mx**2 + my**2 + 0.01**2)
    assert metrics.ssim(a, b, mask).item() == pytest.approx(expected, abs=1e-9)
    right = torch.zeros_like(mask)
    right[..., 21:] = 1  # centres at columns 21..26: windows within columns 16..31
    assert metrics.ssim(a, b, right).item() == pytest.approx(1.0, abs=1e-9)
    # The unmasked mean also counts the windows across the edge, whose structure term is low.
    assert metrics.ssim(a, b).item() < expected
    assert math.isnan(metrics.ssim(a, b, torch.zeros_like(mask)).item())
    with pytest.raises(ValueError, match="mask must be"):
        metrics.ssim(a, b, mask[..., :8])


def _pair(video: str, method: str, psnr: list, edit: list, removal=None, seconds=2.0) -> dict:
    return {
        "video": video,
        "method": method,
        "seconds_per_frame": seconds,
        "per_frame": {
            "reconstruction_psnr": psnr,
            "reconstruction_ssim": [0.5 for _ in psnr],
            "edit_psnr": edit,
            "novel_view_psnr": psnr,
            "removal_psnr_in_object": removal,
            "removal_psnr_outside_object": removal,
        },
    }


def test_summary_averages_frames_then_videos_and_checks_the_claims():
    pairs = [
        _pair("a", "wplus", [20.0, 22.0], [19.0, 19.0]),  # video mean 21
        _pair("b", "wplus", [24.0, 24.0], [20.0, 20.0]),  # video mean 24
        _pair("a", "innout", [25.0, 27.0], [22.0, 22.0], [30.0, None]),  # None: empty mask
        _pair("b", "innout", [27.0, 29.0], [21.0, 21.0], [18.0, 18.0]),
        _pair("a", "pti", [30.0, 30.0], [23.0, 23.0]),
    ]
    summary = summarize(pairs, ("wplus", "innout", "pti"))
    wplus = summary["methods"]["wplus"]["reconstruction_psnr"]
    assert wplus == {"mean": 22.5, "std": 1.5, "videos": 2}
    innout = summary["methods"]["innout"]
    assert innout["reconstruction_psnr"]["mean"] == 27.0  # 26 and 28
    assert innout["removal_psnr_in_object"]["mean"] == 24.0  # 30 (None skipped) and 18
    assert "removal_psnr_in_object" not in summary["methods"]["wplus"]
    assert summary["methods"]["pti"]["edit_psnr"] == {"mean": 23.0, "std": 0.0, "videos": 1}
    verdicts = {c["claim"]: c["holds"] for c in summary["claims"]}
    assert verdicts == {
        "innout reconstruction PSNR >= wplus + 3 dB": True,  # 27 vs 22.5
        "innout edit fidelity PSNR > pti": False,  # 21.5 vs 23
        "innout removal PSNR inside the object >= 20 dB": True,  # 24
        "innout novel view PSNR >= wplus + 1 dB": True,  # same numbers as reconstruction
        "innout s / frame <= 2.5 x wplus": True,  # 2 s vs 2 s
    }
    # Without the methods a claim compares, it is not checked.
    assert claims({"w": summary["methods"]["wplus"]}) == []


def test_a_bad_suite_is_refused_with_what_was_expected(tmp_path):
    with pytest.raises(BenchmarkError, match="methods must be among"):
        QualitySuite(methods=("wplus", "gan-fairy"))
    with pytest.raises(BenchmarkError, match="objects must be among"):
        QualitySuite(objects=("anvil",))
    with pytest.raises(BenchmarkError, match="same number of entries"):
        QualitySuite(identities=(0, 1), objects=("ball", "visor", "stick"))
    with pytest.raises(BenchmarkError, match="unknown inversion setting"):
        QualitySuite(overrides=(("composite_stepz", 3),))
    product = QualitySuite(identities=(0, 1), objects=("ball", "visor"), pairing="product")
    assert product.videos() == [(0, "ball", 0), (0, "visor", 0), (1, "ball", 0), (1, "visor", 0)]
    assert QualitySuite(identities=(4, 5), objects=("ball",)).videos() == [
        (4, "ball", 0), (5, "ball", 0)
    ]  # fmt: skip
    report = tmp_path / "q.json"
    assert main(["bench", "quality", "--methods", "wplus,nope", "--json", str(report)]) == 2
    assert not report.exists()


def _numbers(report: dict) -> list[float]:
    values = []
    for pair in report["pairs"]:
        for series in pair["per_frame"].values():
            if isinstance(series, list):
                values.extend(series)
    return values


def test_the_suite_is_deterministic_resumable_and_reported(tmp_path):
    suite = QualitySuite(identities=(1,), objects=("visor",), frames=2,
                         methods=("w", "innout-auto"), overrides=QUICK)  # fmt: skip

    def lpips(a, b):  # any per-image distance can stand in for LPIPS
        return (a - b).abs().flatten(1).mean(1)

    first = run_quality_benchmark(suite, tmp_path / "one", progress=False, lpips=lpips)
    # The clip is reused (its rendering's determinism is test_synth's): the inversions and the
    # measurements run again from scratch.
    shutil.copytree(tmp_path / "one/clips", tmp_path / "two/clips")
    second = run_quality_benchmark(suite, tmp_path / "two", progress=False, lpips=lpips)
    assert [p["method"] for p in first["pairs"]] == ["w", "innout-auto"]
    a, b = _numbers(first), _numbers(second)
    assert len(a) == len(b) > 0 and all(v is not None for v in a)
    assert a == pytest.approx(b, abs=0.02)  # same seed, same numbers (float summation order aside)
    w, auto = first["pairs"][0]["per_frame"], first["pairs"][1]["per_frame"]
    assert len(auto["removal_psnr_in_object"]) == len(auto["reconstruction_lpips"]) == 2
    # Without an object field "removal" is the reconstruction, compared with the head-only render.
    assert len(w["removal_psnr_in_object"]) == 2
    assert first["pairs"][0]["panels"] == [
        "input", "reconstruction", "edited", "edited (truth)", "novel view", "novel view (truth)"
    ]  # fmt: skip
    assert first["pairs"][1]["panels"][-2:] == ["object removed", "head only (truth)"]
    # Every number is saved with the settings; a re-run reuses the finished pairs.
    stored = json.loads((tmp_path / "one/runs/id1-visor-0/w/quality.json").read_text())
    assert stored["per_frame"] == first["pairs"][0]["per_frame"]
    assert set(stored["stage_seconds"]) == {"latent"} and stored["seconds"] > 0
    again = run_quality_benchmark(suite, tmp_path / "one", progress=False, lpips=lpips)
    assert [p["reused"] for p in again["pairs"]] == [True, True]
    assert _numbers(again) == a
    # Pairs measured by an older version are measured again from their run folders.
    stored["metrics_version"] = 1
    (tmp_path / "one/runs/id1-visor-0/w/quality.json").write_text(json.dumps(stored))
    remeasured = run_quality_benchmark(suite, tmp_path / "one", progress=False, lpips=lpips)
    assert [p["reused"] for p in remeasured["pairs"]] == ["measured again", True]
    assert _numbers(remeasured) == pytest.approx(a, abs=1e-3)
    # A changed setting runs the pair again.
    changed = QualitySuite(identities=(1,), objects=("visor",), frames=2, methods=("w",),
                           overrides=QUICK + (("latent_lr", 0.03),))  # fmt: skip
    assert (
        run_quality_benchmark(changed, tmp_path / "one", progress=False)["pairs"][0]["reused"]
        is False
    )
    # A clip made for other settings is made again: here one frame instead of two.
    shorter = QualitySuite(identities=(1,), objects=("visor",), frames=1, methods=("w",),
                           overrides=QUICK)  # fmt: skip
    assert (
        run_quality_benchmark(shorter, tmp_path / "one", progress=False)["pairs"][0]["frames"] == 1
    )
    # The outputs a user looks at.
    assert (tmp_path / "one/videos/id1-visor-0-innout-auto.mp4").stat().st_size > 0
    table = format_markdown(first)
    assert "| w |" in table and "| innout-auto |" in table and "removal PSNR in object" in table
    assert "innout-auto removal PSNR inside the object" in table
    page = tmp_path / "report.html"
    write_html(first, page)
    text = page.read_text()
    assert "one/videos/id1-visor-0-w.mp4" in text and "reconstruction LPIPS" in text
    assert first["environment"]["torch"] == torch.__version__


def test_the_command_writes_json_markdown_and_html(tmp_path):
    report = tmp_path / "bench/quality.json"
    quick = [f"--set={name}={value}" for name, value in QUICK]
    outputs = ["--json", str(report), "--markdown", str(tmp_path / "q.md"),
               "--html", str(tmp_path / "q.html")]  # fmt: skip
    video = ["--identities", "2", "--objects", "ball", "--frames", "1", "--methods", "w"]
    rc = main(["bench", "quality", *video, "--edit", "skin_tone=0.2", "--quiet", *outputs, *quick])
    assert rc == 0
    payload = json.loads(report.read_text())
    assert payload["suite"]["edit"] == "skin_tone" and payload["suite"]["edit_delta"] == 0.2
    assert payload["suite"]["settings"]["latent_epochs"] == 2
    assert (tmp_path / "bench/quality/clips/id2-ball-0/gt/edited").is_dir()
    assert "| w |" in (tmp_path / "q.md").read_text()
    assert (tmp_path / "q.html").read_text().startswith("<!doctype html>")
