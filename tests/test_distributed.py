"""torch.distributed: one inversion over 2 gloo ranks equals one process; batches and the
benchmark spread over ranks; failures name the rank and leave the run resumable. Every job is a
real torchrun launch on this machine's CPU."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from distributed_toy_engine import STEPS, Toy
from innout.invert import InputError, invert, run_folder
from innout.invert.batch import read_summary
from test_invert import synthetic_clip, write_clip_folder

HERE = Path(__file__).parent
#: A short inversion of a 4-frame clip; 2 frames a step (one per rank).
RUN = ["--batch-frames", "2", "--init-samples", "2", "--init-frames", "2", "--latent-epochs", "4",
       "--composite-steps", "6", "--object-init-steps", "6", "--sr-epochs", "1",
       "--checkpoint-every", "2", "--object-plane-resolution", "32", "--quiet",
       "--threads", "1"]  # fmt: skip
#: What the README claims of a run on several ranks against one process (float32 sums in
#: another order): every step's loss within this relative difference, the PSNR within 0.05 dB.
LOSS_TOLERANCE, PSNR_TOLERANCE = 1e-4, 0.05


def _torchrun(*arguments: str, ranks: int = 2, timeout: float = 600, **kwargs):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={ranks}", *arguments]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)


def _innout(*arguments: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "innout", *arguments], capture_output=True,
                          text=True, timeout=600, **kwargs)  # fmt: skip


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory) -> Path:
    return write_clip_folder(synthetic_clip(4), tmp_path_factory.mktemp("clip") / "clip")


def _history(run: Path) -> dict:
    return json.loads((run / run_folder.HISTORY).read_text())


def _assert_same_run(one: Path, two: Path) -> None:
    """Two runs of one input with the same settings, as the README claims them equal."""
    first, second = _history(one), _history(two)
    assert first.keys() == second.keys()
    for stage, steps in first.items():
        assert len(steps) == len(second[stage]), stage
        for a, b in zip(steps, second[stage]):
            assert abs(a["loss"] - b["loss"]) <= LOSS_TOLERANCE * abs(a["loss"]), (stage, a, b)
    psnr = [json.loads((run / "run.json").read_text())["metrics"]["psnr"] for run in (one, two)]
    assert abs(psnr[0] - psnr[1]) <= PSNR_TOLERANCE, psnr


def test_the_engine_on_two_ranks_equals_one_process_in_float64(tmp_path):
    # Shares, per-frame rows, a parameter some ranks never touch and one nobody touches: in
    # float64 the only difference left is the order of sums.
    script = str(HERE / "distributed_toy_engine.py")
    one = subprocess.run([sys.executable, script, str(tmp_path / "one.pt")], capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert one.returncode == 0, one.stderr
    two = _torchrun(script, str(tmp_path / "two.pt"))
    assert two.returncode == 0, two.stderr
    a, b = (torch.load(tmp_path / name) for name in ("one.pt", "two.pt"))
    assert a["costs"]["toy"]["reduced_bytes"] == 0 and b["costs"]["toy"]["reduced_bytes"] > 0
    for name, value in a["state"].items():
        torch.testing.assert_close(b["state"][name], value, rtol=1e-12, atol=1e-12)
    assert len(a["history"]["toy"]) == len(b["history"]["toy"]) == STEPS
    for x, y in zip(a["history"]["toy"], b["history"]["toy"]):
        assert x == pytest.approx(y, rel=1e-12)
    fresh = Toy().state_dict()  # Adam skipped the parameter no frame uses, moved the others
    for state in (a["state"], b["state"]):
        assert torch.equal(state["unused"], fresh["unused"])
        assert not torch.equal(state["odd_only"], fresh["odd_only"])


@pytest.mark.parametrize("method", ["wplus", "innout"])
def test_two_ranks_invert_like_one_process(clip_folder, tmp_path, method):
    single = _innout("invert", str(clip_folder), "--out", str(tmp_path / "one"),
                     "--method", method, *RUN)  # fmt: skip
    assert single.returncode == 0, single.stderr
    double = _torchrun("-m", "innout", "invert", str(clip_folder), "--out", str(tmp_path / "two"),
                       "--method", method, *RUN)  # fmt: skip
    assert double.returncode == 0, double.stderr
    assert "on 2 ranks" in double.stdout
    _assert_same_run(tmp_path / "one", tmp_path / "two")
    manifest = json.loads((tmp_path / "two/run.json").read_text())
    (launch,) = manifest["launches"]
    assert launch["world_size"] == 2 and launch["backend"] == "gloo"
    assert launch["steps"]["latent"]["all_reduced_bytes_per_step"] > 0


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def _rank_process(launcher: int, rank: int) -> int | None:
    for pid in _children(launcher):
        try:
            environment = (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environment:
            return pid
    return None


def test_a_killed_rank_is_named_and_its_run_resumes_on_one_rank(clip_folder, tmp_path):
    out = tmp_path / "run"
    longer = [*RUN[:7], "16", *RUN[8:]]  # 16 latent epochs: time to kill a rank mid-stage
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node=2", "-m", "innout", "invert", str(clip_folder), "--out",
               str(out), *longer]  # fmt: skip
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while not (out / run_folder.CHECKPOINT).is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    victim = _rank_process(job.pid, 1)
    assert victim is not None and (out / run_folder.CHECKPOINT).is_file()
    os.kill(victim, signal.SIGKILL)
    output, _ = job.communicate(timeout=120)
    assert job.returncode != 0
    # torchrun's report names the rank that died first, and how.
    assert re.search(r"rank\s*:\s*1 \(local_rank: 1\)\s*\n\s*exitcode\s*:\s*-9", output), output
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] != "running" and manifest["status"] != "complete"
    assert (out / run_folder.CHECKPOINT).is_file()
    resumed = _innout("invert", str(clip_folder), "--out", str(out), "--resume", *longer)
    assert resumed.returncode == 0, resumed.stderr
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "complete"
    assert [launch["world_size"] for launch in manifest["launches"]] == [2, 1]


def test_a_rank_that_fails_is_named_by_the_others(clip_folder, tmp_path):
    out = tmp_path / "run"
    result = _torchrun(str(HERE / "distributed_failing_rank.py"), "invert", str(clip_folder),
                       "--out", str(out), "--method", "wplus", *RUN)  # fmt: skip
    assert result.returncode != 0
    message = ("rank 0: all_reduce with the other ranks failed: rank 1 failed: RuntimeError: out "
               "of memory (simulated)")  # fmt: skip
    assert f"innout: error: {message}" in result.stderr, result.stderr
    assert json.loads((out / "run.json").read_text())["status"] == f"failed: {message}"


def test_a_run_stopped_on_one_rank_resumes_on_two(clip_folder, tmp_path):
    longer = [*RUN[:7], "12", *RUN[8:]]
    straight = _innout("invert", str(clip_folder), "--out", str(tmp_path / "straight"),
                       "--method", "wplus", *longer)  # fmt: skip
    assert straight.returncode == 0, straight.stderr
    out = tmp_path / "run"
    job = subprocess.Popen([sys.executable, "-m", "innout", "invert", str(clip_folder), "--out",
                            str(out), "--method", "wplus", *longer], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while not (out / run_folder.CHECKPOINT).is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    job.send_signal(signal.SIGINT)  # Ctrl-C: stops after the step, with a checkpoint
    _, stderr = job.communicate(timeout=120)
    assert job.returncode == 130, stderr
    resumed = _torchrun("-m", "innout", "invert", str(clip_folder), "--out", str(out), "--resume",
                        "--method", "wplus", *longer)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    manifest = json.loads((out / "run.json").read_text())
    assert [launch["world_size"] for launch in manifest["launches"]] == [1, 2]
    _assert_same_run(tmp_path / "straight", out)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_rank_that_never_comes_ends_the_job_within_the_timeout(clip_folder, tmp_path):
    # Launched by hand as rank 0 of 2; rank 1 never starts.
    environment = dict(os.environ, RANK="0", WORLD_SIZE="2", LOCAL_RANK="0",
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
                       INNOUT_DIST_TIMEOUT="5")  # fmt: skip
    started = time.monotonic()
    result = _innout("invert", str(clip_folder), "--out", str(tmp_path / "run"), *RUN,
                     env=environment)  # fmt: skip
    assert time.monotonic() - started < 60
    assert result.returncode == 2
    assert "innout: error: rank 0 of 2: rank 1 did not join the job within 5 s" in result.stderr
    assert not (tmp_path / "run").exists()


def test_fewer_frames_a_step_than_ranks_is_refused(clip_folder, tmp_path):
    result = _torchrun("-m", "innout", "invert", str(clip_folder), "--out", str(tmp_path / "run"),
                       *RUN[2:], "--batch-frames", "1")  # fmt: skip
    assert result.returncode != 0
    assert "batch_frames (1) and the clip's frames (4) must be at least 2" in result.stdout + (
        result.stderr
    )


def test_no_other_process_writes_a_run_folder_being_written(clip_folder, tmp_path):
    out = tmp_path / "run"
    first = invert(clip_folder, out=out, progress=False, method="w", latent_epochs=1,
                   init_samples=1, batch_frames=2)  # fmt: skip
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with run_folder.locked(out):  # what a running job holds
        for options in ({"force": True}, {"resume": True}):
            with pytest.raises(InputError, match="another innout process is writing"):
                invert(clip_folder, out=out, progress=False, method="w", latent_epochs=1,
                       init_samples=1, batch_frames=2, **options)  # fmt: skip
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert first.folder == out


def test_a_batch_spreads_over_ranks_and_resumes(clip_folder, tmp_path):
    inputs = []
    for number in range(3):
        folder = tmp_path / f"clip{number}"
        folder.symlink_to(clip_folder, target_is_directory=True)
        inputs.append(str(folder))
    runs = tmp_path / "runs"
    options = ["--method", "wplus", *RUN]
    batch = _torchrun("-m", "innout", "invert", *inputs[:2], "--out", str(runs), *options)
    assert batch.returncode == 0, batch.stderr
    summary = read_summary(runs)
    assert summary["ranks"] == 2 and summary["complete"] == 2 and summary["failed"] == 0
    kept = {name: (runs / name / run_folder.LATENTS).read_bytes() for name in ("clip0", "clip1")}
    refused = _innout("invert", *inputs, "--out", str(runs), *options)
    assert refused.returncode == 2 and "pass --resume to continue the batch" in refused.stderr
    # A third input joins; the resumed batch keeps the finished runs and inverts the new one.
    resumed = _innout("invert", *inputs, "--out", str(runs), "--resume", *options)
    assert resumed.returncode == 0, resumed.stderr
    summary = read_summary(runs)
    assert summary["ranks"] == 1 and summary["complete"] == 3
    assert [r["run"] for r in summary["runs"]] == ["clip0", "clip1", "clip2"]
    assert [r["skipped"] for r in summary["runs"]] == [True, True, False]
    for name, data in kept.items():
        assert (runs / name / run_folder.LATENTS).read_bytes() == data
    assert json.loads((runs / "clip2" / "run.json").read_text())["status"] == "complete"
    # Every input of the batch is the same clip: a rank's run equals the one-process run.
    _assert_same_run(runs / "clip0", runs / "clip2")


def test_the_quality_benchmark_over_two_ranks_merges_one_report(tmp_path):
    arguments = ["bench", "quality", "--identities", "3", "--objects", "ball", "--frames", "2",
                 "--methods", "w,wplus", "--novel-views", "1", "--set", "latent_epochs=2",
                 "--set", "init_samples=1", "--set", "batch_frames=2", "--json",
                 str(tmp_path / "report.json"), "--quiet", "--threads", "1"]  # fmt: skip
    merged = _torchrun("-m", "innout", *arguments)
    assert merged.returncode == 0, merged.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ranks"] == 2
    assert [(p["video"], p["method"]) for p in report["pairs"]] == [
        (report["pairs"][0]["video"], "w"), (report["pairs"][0]["video"], "wplus")
    ]  # fmt: skip
    # Run again in one process: every pair is reused, the numbers are the merged report's.
    again = _innout(*arguments)
    assert again.returncode == 0, again.stderr
    second = json.loads((tmp_path / "report.json").read_text())
    assert second["ranks"] == 1 and all(p["reused"] is True for p in second["pairs"])
    assert [p["per_frame"] for p in second["pairs"]] == [p["per_frame"] for p in report["pairs"]]
