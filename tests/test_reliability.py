"""Nothing lost, nothing silently wrong: hostile and damaged inputs, failures recorded in run.json,
a full disk, Ctrl-C and SIGKILL at random points (inversion, edit, scene export)."""

from __future__ import annotations

import errno
import json
import os
import pickle
import random
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from innout import atomic
from innout.cli import main as cli_main
from innout.eg3d.checkpoint import CheckpointError, read_converted, write_converted
from innout.eg3d.loading import load_generator
from innout.invert import InputError, invert, run_folder
from innout.invert import engine as engine_module
from innout.invert import object_init as object_init_module
from innout.invert.clip import read_cameras, read_masks
from innout.media import write_png
from innout.media.read import read_image
from innout.tiny.bundle import weights_path
from safetensors.torch import save_file
from test_invert import TINY_RUN, synthetic_clip, write_clip_folder

#: `innout invert` options of a short run on a 4-frame clip (about 20 s on 2 CPU threads).
CLI_RUN = ["--batch-frames", "2", "--init-samples", "2", "--init-frames", "2", "--latent-epochs",
           "4", "--composite-steps", "12", "--sr-epochs", "1", "--checkpoint-every", "2",
           "--object-plane-resolution", "32", "--quiet", "--threads", "1"]  # fmt: skip
RUN_FILES = (run_folder.LATENTS, run_folder.OBJECT, run_folder.SUPERRESOLUTION)


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory) -> Path:
    return write_clip_folder(synthetic_clip(4), tmp_path_factory.mktemp("clip") / "clip")


@pytest.fixture(scope="module")
def cli_run(clip_folder, tmp_path_factory) -> Path:
    """An uninterrupted command-line run: the result every interrupted run must reach."""
    out = tmp_path_factory.mktemp("straight") / "run"
    result = _innout("invert", str(clip_folder), "--out", str(out), *CLI_RUN)
    assert result.returncode == 0, result.stderr
    return out


def _innout(*arguments: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "innout", *arguments], capture_output=True,
                          text=True, **kwargs)  # fmt: skip


def _start(*arguments: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "innout", *arguments], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def _one_error_line(stderr: str, *fragments: str) -> str:
    """The `innout: error:` line of a failed command (no traceback), checked for `fragments`."""
    lines = [line for line in stderr.splitlines() if line.startswith("innout: error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _run_error(capsys, arguments: list[str], *fragments: str) -> str:
    assert cli_main(arguments) == 2
    return _one_error_line(capsys.readouterr().err, *fragments)


def _same_tensors(a: Path, b: Path) -> None:
    from safetensors.torch import load_file

    for name in RUN_FILES:
        expected, got = load_file(str(a / name)), load_file(str(b / name))
        assert expected.keys() == got.keys()
        for key in expected:
            assert torch.equal(expected[key], got[key]), f"{name}: {key}"


def _copy_clip(clip_folder: Path, into: Path) -> Path:
    import shutil

    return Path(shutil.copytree(clip_folder, into))


# ---- inputs that are not what they claim ---------------------------------------------------------

NOT_CAMERAS = {
    "all zeros": (lambda label: [0.0] * 25, "not a rotation"),
    "scaled rotation": (lambda label: [2 * v for v in label[:12]] + label[12:], "not a rotation"),
    "mirrored": (lambda label: [-v for v in label[:3]] + label[3:], "not a rotation"),
    "zero focal length": (lambda label: label[:16] + [0.0] + label[17:], "focal"),
    "bad last row": (lambda label: label[:12] + [0, 0, 1, 1] + label[16:], "last row"),
    "true as a value": (lambda label: label[:16] + [True] + label[17:], "non-numeric"),
}


@pytest.mark.parametrize("case", list(NOT_CAMERAS))
def test_camera_labels_that_are_not_cameras_are_refused(clip_folder, tmp_path, capsys, case):
    folder = _copy_clip(clip_folder, tmp_path / "clip")
    dataset = json.loads((folder / "dataset.json").read_text())
    change, fragment = NOT_CAMERAS[case]
    dataset["labels"][2][1] = change(dataset["labels"][2][1])
    (folder / "dataset.json").write_text(json.dumps(dataset))
    with pytest.raises(InputError, match=fragment):
        read_cameras(folder / "dataset.json")
    out = tmp_path / "run"
    _run_error(capsys, ["invert", str(folder), "--out", str(out)], "label 2", fragment)
    assert not out.exists()


def test_grey_masks_are_refused_and_anti_aliased_edges_accepted(tmp_path):
    names = ["a.png"]
    grey = np.full((32, 32), 127, np.uint8)
    write_png(tmp_path / "grey" / "a.png", grey)
    with pytest.raises(InputError, match="100% of the mask's pixels are grey"):
        read_masks(tmp_path / "grey", names, (32, 32))
    edged = np.full((32, 32), 255, np.uint8)
    edged[8:24, 8:24] = 0
    edged[8, 8:24] = 128  # an anti-aliased edge: 16 of 1024 pixels grey
    write_png(tmp_path / "edged" / "a.png", edged)
    masks = read_masks(tmp_path / "edged", names, (32, 32))
    assert masks[0, 0, 8, 10] == 1 and masks[0, 0, 12, 12] == 0 and masks[0, 0, 0, 0] == 1


def test_a_mask_linked_from_outside_its_folder_is_not_read(clip_folder, tmp_path, capsys):
    folder = _copy_clip(clip_folder, tmp_path / "clip")
    secret = tmp_path / "elsewhere.png"
    (folder / "masks" / "00001.png").rename(secret)
    (folder / "masks" / "00001.png").symlink_to(secret)
    _run_error(capsys, ["invert", str(folder), "--out", str(tmp_path / "run")],
               "00001.png", "outside its folder")  # fmt: skip


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height pixels (no image data): what a decompression
    bomb looks like before anything is decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("side", [9000, 14000])
def test_huge_frames_are_refused_before_decoding(clip_folder, tmp_path, capsys, side):
    # 9000^2 passes PIL's own guard (89 M pixels) but not innout's limit; 14000^2 trips PIL's.
    with pytest.raises(InputError, match="pixels"):
        read_image(_png_header_only(tmp_path / "bomb.png", side, side))
    folder = _copy_clip(clip_folder, tmp_path / "clip")
    _png_header_only(folder / "frames" / "00000.png", side, side)
    _run_error(capsys, ["invert", str(folder), "--out", str(tmp_path / "run")], "00000.png")


def test_network_configs_with_absurd_sizes_are_refused_before_building(tmp_path):
    config, tensors = read_converted(weights_path())
    cases = {
        "neural_rendering_resolution": (10**9, "neural_rendering_resolution is 1000000000"),
        "depth_resolution": (10**6, "depth_resolution is 1000000"),
        "image_resolution": (64.7, "expected an integer"),
        "box_warp": (float("inf"), "box_warp"),
        "ray_end": (1.0, "ray_start"),
    }
    for key, (value, message) in cases.items():
        changed = json.loads(json.dumps(config))
        if key == "neural_rendering_resolution":
            changed[key] = value
        else:
            changed["rendering_kwargs"][key] = value
        path = write_converted(tmp_path / f"{key}.safetensors", changed, tensors)
        started = time.perf_counter()
        with pytest.raises(CheckpointError, match=message):
            load_generator(path)
        assert time.perf_counter() - started < 5


# ---- damaged run folders -------------------------------------------------------------------------


def _run_copy(source: Path, into: Path) -> Path:
    import shutil

    return Path(shutil.copytree(source, into))


def _rehash(run: Path) -> None:
    """Records the files' current sha256 in run.json, as a hand-edited manifest would."""
    manifest = json.loads((run / run_folder.MANIFEST).read_text())
    manifest["files"] = run_folder.checksums(run, list(manifest["files"]))
    (run / run_folder.MANIFEST).write_text(json.dumps(manifest))


def test_damaged_tensor_files_are_refused_even_with_matching_hashes(cli_run, tmp_path, capsys):
    run = _run_copy(cli_run, tmp_path / "garbage")
    (run / run_folder.LATENTS).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header")
    out = tmp_path / "e.mp4"
    _run_error(capsys, ["edit", str(run), "--out", str(out)], "sha256 differs")
    _rehash(run)
    _run_error(capsys, ["edit", str(run), "--out", str(out)],
               run_folder.LATENTS, "not a readable safetensors file")  # fmt: skip
    run = _run_copy(cli_run, tmp_path / "nan")
    from safetensors.torch import load_file

    latents = load_file(str(run / run_folder.LATENTS))
    latents["ws"][1, 3, 7] = float("nan")
    save_file(latents, str(run / run_folder.LATENTS))
    _rehash(run)
    _run_error(capsys, ["export-scene", str(run), "--frame", "0", "--out", str(tmp_path / "s")],
               run_folder.LATENTS, "NaN")  # fmt: skip
    run = _run_copy(cli_run, tmp_path / "shape")
    latents["ws"] = latents["ws"][2:].clone()  # three frames' latents (without the NaN) for four
    save_file(latents, str(run / run_folder.LATENTS))
    _rehash(run)
    _run_error(capsys, ["edit", str(run), "--out", str(out)], run_folder.LATENTS, "expected")
    assert not out.exists()


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch innout-pickle-ran",))


def test_a_pickle_checkpoint_is_refused_on_resume_and_never_run(cli_run, tmp_path, capsys,
                                                                monkeypatch):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    run = _run_copy(cli_run, tmp_path / "run")
    manifest = json.loads((run / run_folder.MANIFEST).read_text())
    manifest["status"] = "running"
    (run / run_folder.MANIFEST).write_text(json.dumps(manifest))
    (run / run_folder.CHECKPOINT).write_bytes(pickle.dumps({"state": _Payload()}))
    source = manifest["input"]["source"]
    _run_error(capsys, ["invert", source, "--out", str(run), "--resume", *CLI_RUN],
               run_folder.CHECKPOINT, "not an innout inversion checkpoint")  # fmt: skip
    assert not (tmp_path / "innout-pickle-ran").exists()


def test_a_checkpoint_of_an_earlier_format_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / run_folder.CHECKPOINT
    torch.save({"format": run_folder.CHECKPOINT_FORMAT - 1, "stage_index": 1, "step": 4}, path)
    with pytest.raises(InputError, match="earlier innout .* run the inversion again with --force"):
        run_folder.load_checkpoint(path)


# ---- failures recorded, runs resumable -----------------------------------------------------------

SHORT = dict(TINY_RUN, composite_steps=5)


@pytest.fixture(scope="module")
def straight(clip_folder, tmp_path_factory):
    """An uninterrupted in-process run of the 4-frame clip with SHORT settings."""
    out = tmp_path_factory.mktemp("straight_api") / "run"
    return clip_folder, invert(clip_folder, method="innout", out=out, progress=False, **SHORT)


def test_a_failed_run_says_so_in_run_json_and_resumes_to_the_same_result(straight, tmp_path,
                                                                          monkeypatch):  # fmt: skip
    folder, expected = straight
    original = object_init_module.object_init_stage

    def failing(*args, **kwargs):
        raise RuntimeError("the object fit broke\nsecond line")

    monkeypatch.setattr(object_init_module, "object_init_stage", failing)
    with pytest.raises(RuntimeError, match="object fit broke"):
        invert(folder, method="innout", out=tmp_path / "run", progress=False, **SHORT)
    manifest = json.loads((tmp_path / "run" / run_folder.MANIFEST).read_text())
    assert manifest["status"] == "failed: the object fit broke"
    monkeypatch.setattr(object_init_module, "object_init_stage", original)
    resumed = invert(folder, method="innout", out=tmp_path / "run", resume=True, progress=False,
                     **SHORT)  # fmt: skip
    _same_tensors(expected.folder, resumed.folder)


def test_a_run_stopped_before_its_first_checkpoint_starts_again(straight, tmp_path, monkeypatch):
    folder, expected = straight
    original = engine_module.frame_generator

    def interrupt(seed, stage_index, step, slot):
        if stage_index == 0 and step == 0:
            raise KeyboardInterrupt
        return original(seed, stage_index, step, slot)

    monkeypatch.setattr(engine_module, "frame_generator", interrupt)
    with pytest.raises(KeyboardInterrupt):
        invert(folder, method="innout", out=tmp_path / "run", progress=False, **SHORT)
    assert not (tmp_path / "run" / run_folder.CHECKPOINT).exists()
    assert json.loads((tmp_path / "run/run.json").read_text())["status"] == "interrupted"
    monkeypatch.setattr(engine_module, "frame_generator", original)
    resumed = invert(folder, method="innout", out=tmp_path / "run", resume=True, progress=False,
                     **SHORT)  # fmt: skip
    _same_tensors(expected.folder, resumed.folder)


def test_stage_seconds_count_the_time_before_an_interruption(clip_folder, tmp_path, monkeypatch):
    original = engine_module.frame_generator

    def slow_then_stop(seed, stage_index, step, slot):
        if step < 3 and slot == 0:
            time.sleep(1.0)
        if step == 2:
            engine_module._interrupt_requested.set()  # what Ctrl-C does
        return original(seed, stage_index, step, slot)

    monkeypatch.setattr(engine_module, "frame_generator", slow_then_stop)
    with pytest.raises(engine_module.Interrupted):
        invert(clip_folder, method="w", out=tmp_path / "run", progress=False, **SHORT)
    checkpoint = run_folder.load_checkpoint(tmp_path / "run" / run_folder.CHECKPOINT)
    assert (checkpoint["stage_index"], checkpoint["step"]) == (0, 3)
    before = checkpoint["metadata"]["stage_seconds"]
    assert before >= 3.0
    monkeypatch.setattr(engine_module, "frame_generator", original)
    started = time.time()
    invert(clip_folder, method="w", out=tmp_path / "run", resume=True, progress=False, **SHORT)
    after = time.time() - started
    seconds = json.loads((tmp_path / "run/run.json").read_text())["seconds"]
    assert before <= seconds["latent"] <= before + after


# ---- a full disk ---------------------------------------------------------------------------------


def _disk_full_after(monkeypatch, allowed: int, name: str = "") -> None:
    """Atomic writes of files whose name contains `name` fail with ENOSPC after the first
    `allowed`, as when a disk fills up while a large file is written (the space its temporary
    held comes back when it is removed, so small files still fit)."""
    original = atomic.os.fsync
    calls = {"n": 0}

    def fsync(descriptor):
        if name in os.readlink(f"/proc/self/fd/{descriptor}"):
            calls["n"] += 1
            if calls["n"] > allowed:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(descriptor)

    monkeypatch.setattr(atomic.os, "fsync", fsync)


def test_a_full_disk_during_scene_export_keeps_the_old_file(cli_run, tmp_path, capsys,
                                                             monkeypatch):  # fmt: skip
    scene = tmp_path / "scene.safetensors"
    scene.write_bytes(b"an older scene")
    _disk_full_after(monkeypatch, 0)
    _run_error(capsys, ["export-scene", str(cli_run), "--frame", "1", "--out", str(scene)],
               str(scene), "no space left on the device")  # fmt: skip
    assert scene.read_bytes() == b"an older scene"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.safetensors"]


def test_a_full_disk_during_an_inversion_fails_cleanly_and_resumes(straight, tmp_path, capsys,
                                                                    monkeypatch):  # fmt: skip
    folder, expected = straight
    out = tmp_path / "run"
    arguments = ["invert", str(folder), "--out", str(out), "--method", "innout", "--quiet"]
    arguments += [f"--{k.replace('_', '-')}={v}" for k, v in SHORT.items()]
    _disk_full_after(monkeypatch, 2, run_folder.CHECKPOINT)
    _run_error(capsys, arguments, run_folder.CHECKPOINT, "no space left on the device")
    manifest = json.loads((out / run_folder.MANIFEST).read_text())
    assert manifest["status"].startswith("failed: ") and "no space left" in manifest["status"]
    monkeypatch.undo()
    assert cli_main([*arguments, "--resume"]) == 0
    _same_tensors(expected.folder, out)


def test_a_real_full_file_system(cli_run, tmp_path, capsys):
    mount = tmp_path / "small"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                             capture_output=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip("mounting a small tmpfs needs root (the injected-ENOSPC tests cover the rest)")
    try:
        scene = mount / "scene.safetensors"
        _run_error(capsys, ["export-scene", str(cli_run), "--frame", "0", "--out", str(scene)],
                   "no space left on the device")  # fmt: skip
        assert list(mount.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mount)], check=True)


# ---- Ctrl-C and SIGKILL at random points ---------------------------------------------------------


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.slow
def test_ctrl_c_stops_an_inversion_which_resumes_to_the_uninterrupted_result(clip_folder, cli_run,
                                                                             tmp_path):  # fmt: skip
    out = tmp_path / "run"
    process = _start("invert", str(clip_folder), "--out", str(out), *CLI_RUN)
    _wait_for(out / run_folder.CHECKPOINT, process)
    time.sleep(random.Random(21).uniform(0.0, 4.0))
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted, resume with --resume" in stderr
    assert json.loads((out / run_folder.MANIFEST).read_text())["status"] == "interrupted"
    result = _innout("invert", str(clip_folder), "--out", str(out), "--resume", *CLI_RUN)
    assert result.returncode == 0, result.stderr
    _same_tensors(cli_run, out)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_sigkill_at_a_random_point_leaves_a_run_that_resumes(clip_folder, cli_run, tmp_path, seed):
    out = tmp_path / "run"
    process = _start("invert", str(clip_folder), "--out", str(out), *CLI_RUN)
    _wait_for(out / run_folder.MANIFEST, process)
    time.sleep(random.Random(seed).uniform(0.0, 15.0))
    process.kill()
    process.communicate()
    manifest = json.loads((out / run_folder.MANIFEST).read_text())
    if manifest["status"] == "complete":  # killed after the last file: complete must mean whole
        run_folder.verify_files(out, manifest)
    else:
        result = _innout("invert", str(clip_folder), "--out", str(out), "--resume", *CLI_RUN)
        assert result.returncode == 0, result.stderr
        # the killed process's half-written temporaries are gone too
        assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
    _same_tensors(cli_run, out)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["edit", "export-scene"])
def test_killing_an_edit_or_export_never_leaves_a_corrupt_output(cli_run, tmp_path, command):
    def arguments(out: Path) -> list[str]:
        if command == "edit":
            return ["edit", str(cli_run), "--out", str(out), "--edit", "smile=1", "--orbit"]
        return ["export-scene", str(cli_run), "--frame", "2", "--out", str(out)]

    suffix = ".mp4" if command == "edit" else ".safetensors"
    reference = tmp_path / f"reference{suffix}"
    started = time.time()
    assert _innout(*arguments(reference)).returncode == 0
    duration = time.time() - started
    # Signals are sent once the command runs: Python itself reports a Ctrl-C that arrives while
    # the interpreter is still importing torch, before innout's code has started.
    started = time.time()
    subprocess.run([sys.executable, "-c", "import innout.cli"], check=True)
    startup = time.time() - started
    draws = random.Random(7)
    for attempt, how in enumerate([signal.SIGKILL, signal.SIGINT, signal.SIGKILL, signal.SIGINT]):
        out = tmp_path / f"out{attempt}{suffix}"
        process = _start(*arguments(out))
        _wait_for_torch(process)  # on a loaded machine the interpreter itself may start late
        time.sleep(draws.uniform(startup + 0.5, max(duration, startup + 1.0)))
        process.send_signal(how)
        _, stderr = process.communicate(timeout=60)
        assert "Traceback" not in stderr, stderr
        if out.exists():  # finished before the signal: then it is the whole output
            same = _same_video if command == "edit" else _same_scene
            assert same(out, reference)
        else:
            assert process.returncode != 0
        if how == signal.SIGINT and process.returncode != 0:
            assert process.returncode == 130 and "innout: interrupted" in stderr
        if how == signal.SIGINT:  # a clean stop leaves no temporary file behind
            assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _wait_for_torch(process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Returns once `process` has loaded PyTorch's library (Python's own signal handling is set
    up long before), or has ended."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if "libtorch" in Path(f"/proc/{process.pid}/maps").read_text():
                return
        except OSError:
            return
        time.sleep(0.02)


def _same_video(a: Path, b: Path) -> bool:
    from innout.media import read_video

    frames_a, fps_a = read_video(a)
    frames_b, fps_b = read_video(b)
    return (
        fps_a == fps_b
        and all(np.array_equal(x, y) for x, y in zip(frames_a, frames_b))
        and (len(frames_a) == len(frames_b))
    )


def _same_scene(a: Path, b: Path) -> bool:
    # Byte equality is too strict: safetensors writes its metadata in hash-map order.
    from safetensors import safe_open

    with safe_open(str(a), "pt") as file_a, safe_open(str(b), "pt") as file_b:
        if file_a.metadata() != file_b.metadata() or set(file_a.keys()) != set(file_b.keys()):
            return False
        return all(torch.equal(file_a.get_tensor(k), file_b.get_tensor(k)) for k in file_a.keys())
