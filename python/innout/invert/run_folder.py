"""The run folder: what `innout invert` writes, and the only module that knows its layout.

Layout::

    run.json                 manifest: format, status, versions and machine, input, method,
                             settings, network, timings, metrics, the sha256 of every tensor file
    latents.safetensors      face latents ws [T, num_ws, w_dim] and cameras [T, 25]
    object.safetensors       object tri-plane, decoder and frame codes (In-N-Out methods)
    superresolution.safetensors   fine-tuned super-resolution (In-N-Out methods)
    generator.safetensors    fine-tuned generator weights ("pti")
    history.json, losses.png per-step losses of every stage, and their curves
    preview.mp4              input | reconstruction | object layer
    checkpoint.pt            while running (removed when the run completes)

Every file is written atomically (:mod:`innout.atomic`); the manifest says "running" until the
last file is in place, then "complete".
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import torch

from innout import atomic
from innout.invert.clip import InputError

MANIFEST = "run.json"
CHECKPOINT = "checkpoint.pt"
HISTORY = "history.json"
LOSSES = "losses.png"
PREVIEW = "preview.mp4"
LATENTS = "latents.safetensors"
OBJECT = "object.safetensors"
SUPERRESOLUTION = "superresolution.safetensors"
GENERATOR = "generator.safetensors"
#: Version of run.json's layout (a manifest of another version is refused, not misread).
MANIFEST_FORMAT = 1
#: Version of checkpoint.pt's layout (2: the object fit is a stage of its own, draws per frame).
CHECKPOINT_FORMAT = 2
#: Keys every manifest has.
MANIFEST_KEYS = ("format", "status", "method", "preset", "settings", "network", "input")


def staging_folder(out: Path) -> Path:
    """Where a forced re-run is written until it completes (then it replaces `out`)."""
    return out.with_name(out.name + ".partial")


def replaced_folder(out: Path) -> Path:
    """Where the old run waits while a completed re-run takes its place (`promote`)."""
    return out.with_name(out.name + ".replaced")


def _is_run_folder(folder: Path) -> bool:
    return (folder / MANIFEST).is_file()


def occupied(folder: Path) -> bool:
    """Whether `folder` exists as a file or a folder with something in it."""
    return folder.exists() and (not folder.is_dir() or any(folder.iterdir()))


def check_run_folder(out: Path, resume: bool, force: bool, inputs=()) -> None:
    """Refuses a folder a new run (or a resumed one) must not write into: one that is or holds
    one of the run's `inputs`, an occupied folder without `force`, and, even with `force`, an
    occupied folder that is not a run folder (innout replaces only what it wrote)."""
    if resume and force:
        raise InputError("resume and force exclude each other")
    target = out.resolve()
    for given in inputs:
        if given is None:
            continue
        path = Path(given).resolve()
        if target == path or target in path.parents:
            raise InputError(f"{out}: it is (or holds) the run's input {given}; a run writes "
                             "into a folder of its own")  # fmt: skip
    if resume:
        if not _is_run_folder(out) and not _is_run_folder(staging_folder(out)):
            raise InputError(f"{out}: nothing to resume (no {MANIFEST})")
        return
    if occupied(out):
        if not force:
            raise InputError(f"{out}: the run folder already exists; pass resume to continue it "
                             "or force to replace it")  # fmt: skip
        if not _is_run_folder(out):
            raise InputError(f"{out}: not a run folder (no {MANIFEST}); force replaces only "
                             "run folders that innout wrote - choose another folder")  # fmt: skip
        for aside in (staging_folder(out), replaced_folder(out)):
            if occupied(aside) and not _is_run_folder(aside):
                raise InputError(f"{aside}: exists and is not a run folder (a forced re-run "
                                 "writes there); move it away")  # fmt: skip


def write_target(out: Path, resume: bool) -> Path:
    """The folder a run writes into: `out`, or for a forced re-run of an existing run (and its
    resumption) the staging folder, so that the old run stays whole until the new one completes
    (`promote`)."""
    staging = staging_folder(out)
    if resume:
        return staging if _is_run_folder(staging) else out
    return staging if occupied(out) else out


def create_run_folder(out: Path) -> None:
    """An empty run folder at `out` (emptying what check_run_folder allowed to replace: an
    earlier staging folder or an empty folder; the folder itself stays, with its lock)."""
    out.mkdir(parents=True, exist_ok=True)
    for entry in out.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Holds an exclusive lock on the run folder `out` (created, empty, when missing) for the
    block, so that no other process writes, replaces or resumes it meanwhile (InputError if one
    holds it). The lock dies with the process: a killed run leaves none behind. A folder this
    call created and nothing filled is removed again."""
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    handle = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(handle)
        raise InputError(f"{out}: another innout process is writing this run folder; wait for "
                         "it to finish or stop it first") from None  # fmt: skip
    try:
        yield
    finally:
        os.close(handle)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()


def promote(staging: Path, out: Path) -> None:
    """Replaces the run folder `out` by the completed run in `staging`: the old run is moved
    aside, the new one renamed into place, then the old one removed."""
    replaced = replaced_folder(out)
    if occupied(replaced) and not _is_run_folder(replaced):
        raise InputError(f"{replaced}: exists and is not a run folder; the completed re-run "
                         f"stays in {staging}")  # fmt: skip
    if replaced.exists():
        shutil.rmtree(replaced)
    out.rename(replaced)
    staging.rename(out)
    shutil.rmtree(replaced)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Removes the temporaries of atomic writes that a killed run left in its run folder (files
    named as innout.atomic names them, whose process is gone); returns them."""
    removed = []
    for path in folder.glob(".*.tmp*"):
        owner = atomic.temporary_owner(path)
        if owner is not None and owner != os.getpid() and not _process_alive(owner):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def write_manifest(folder: Path, manifest: dict) -> None:
    """Writes run.json atomically."""
    atomic.write_json(folder / MANIFEST, manifest)


def read_manifest(folder: str | Path, *, complete: bool = False) -> dict:
    """run.json of a run folder, checked (InputError naming what is wrong otherwise).

    `complete=True` also requires a finished run."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise InputError(f"{folder}: not a run folder (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not a JSON manifest ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise InputError(f"{path}: manifest format {got!r}, expected {MANIFEST_FORMAT}")
    missing = [key for key in MANIFEST_KEYS if key not in manifest]
    if missing:
        raise InputError(f"{path}: the manifest lacks {', '.join(missing)}")
    if complete and manifest["status"] != "complete":
        raise InputError(f"{folder}: the run did not complete (resume it first)")
    return manifest


def write_tensors(folder: Path, name: str, tensors: dict[str, torch.Tensor]) -> None:
    """Writes one of the run's safetensors files atomically."""
    atomic.save_tensors(folder / name, tensors)


def checksums(folder: Path, names: list[str]) -> dict[str, str]:
    """{file name: sha256} of the run's files, for the manifest."""
    return {name: atomic.sha256_of(folder / name) for name in names}


def verify_files(folder: Path, manifest: dict) -> None:
    """Checks every file the manifest lists against its recorded sha256 (InputError naming the
    file otherwise): a changed or damaged tensor file is refused, not rendered."""
    for name, recorded in manifest.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            raise InputError(f"{path}: missing (run.json lists it)")
        if atomic.sha256_of(path) != recorded:
            raise InputError(f"{path}: its sha256 differs from the one run.json recorded; the "
                             "file was changed or damaged")  # fmt: skip


def read_tensors(folder: Path, name: str, expected: dict[str, tuple[int, ...]] | None = None):
    """One of the run's tensor files as {name: tensor}, checked: a readable safetensors file,
    every tensor finite and, where `expected` gives shapes, exactly those tensors and shapes
    (InputError naming the file and what was expected otherwise)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = folder / name
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise InputError(f"{path}: not a readable safetensors file ({error})") from None
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise InputError(f"{path}: tensor {key!r} has NaN or infinite values")
    if expected is not None:
        shapes = {key: tuple(tensor.shape) for key, tensor in tensors.items()}
        if shapes != expected:
            raise InputError(f"{path}: expected tensors {expected}, found {shapes}")
    return tensors


def save_checkpoint(path: Path, payload: dict) -> None:
    """Writes an inversion checkpoint atomically (tensors and plain values only)."""
    atomic.torch_save(path, {**payload, "format": CHECKPOINT_FORMAT})


def load_checkpoint(path: Path) -> dict:
    """Reads a checkpoint written by save_checkpoint (never executes code: weights_only)."""
    import pickle

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as error:
        # weights_only refuses anything but tensors and plain containers: a pickle of other
        # objects, or a damaged file, is reported, never executed.
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        raise InputError(f"{path}: not an innout inversion checkpoint (format "
                         f"{CHECKPOINT_FORMAT}) or damaged: {first_line}") from None  # fmt: skip
    if (
        isinstance(data, dict)
        and isinstance(data.get("format"), int)
        and (data["format"] < CHECKPOINT_FORMAT)
    ):
        raise InputError(f"{path}: a checkpoint of an earlier innout (format {data['format']}, "
                         f"this one resumes format {CHECKPOINT_FORMAT}); run the inversion "
                         "again with --force")  # fmt: skip
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not an innout inversion checkpoint (format "
                         f"{CHECKPOINT_FORMAT})")  # fmt: skip
    return data
