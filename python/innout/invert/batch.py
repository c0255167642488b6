"""`innout invert A B C --out RUNS`: many inputs, one run folder each (``RUNS/<input name>``),
spread over the ranks of a torchrun job (each rank inverts whole inputs on its own device;
a rank that finishes early takes the next input) and summed up in ``RUNS/batch.json``.

A failed input does not stop the batch: its run folder says why (run.json) and so does the
summary. With `resume`, finished runs are kept, interrupted ones resumed and missing ones
started, so a stopped batch continues where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from innout import atomic
from innout.distributed import Group
from innout.invert import run_folder
from innout.invert.clip import InputError
from innout.invert.engine import DivergedError

#: The batch's summary, beside its run folders.
SUMMARY = "batch.json"
SUMMARY_FORMAT = 1


@dataclass(frozen=True)
class Job:
    """One input of a batch and the run folder it is inverted into."""

    source: Path
    run: Path


def plan(inputs: list[str | Path], out: str | Path) -> list[Job]:
    """One run folder per input, named after it (InputError when two inputs share a name, or an
    input lies inside the batch's folder)."""
    out = Path(out)
    jobs, seen = [], {}
    for given in inputs:
        source = Path(given)
        name = source.stem if source.is_file() else source.name
        if not name or name in (".", ".."):
            name = source.resolve().name
        if name in seen:
            raise InputError(f"inputs {seen[name]} and {given} would share the run folder "
                             f"{out / name}; give them different names")  # fmt: skip
        seen[name] = given
        if out.resolve() in source.resolve().parents or out.resolve() == source.resolve():
            raise InputError(f"{given}: inside the batch's output folder {out}")
        jobs.append(Job(source, out / name))
    return jobs


def _state(job: Job) -> str:
    """ "complete", "started" (a run folder, not complete) or "new"."""
    for folder in (job.run, run_folder.staging_folder(job.run)):
        if (folder / run_folder.MANIFEST).is_file():
            try:
                status = run_folder.read_manifest(folder)["status"]
            except InputError:
                return "started"
            if status == "complete" and folder == job.run:
                return "complete"
            return "started"
    return "new"


def check_batch(jobs: list[Job], resume: bool, force: bool) -> None:
    """Refuses, before anything runs, a batch whose run folders exist when neither `resume` nor
    `force` allows it (so that no rank stops halfway through the list)."""
    taken = [str(job.run) for job in jobs if _state(job) != "new" or run_folder.occupied(job.run)]
    if taken and not (resume or force):
        shown = ", ".join(taken[:3]) + (" ..." if len(taken) > 3 else "")
        raise InputError(f"run folders exist: {shown}; pass --resume to continue the batch or "
                         "--force to invert those inputs again")  # fmt: skip


def run_job(job: Job, resume: bool, force: bool, invert_options: dict) -> dict:
    """Inverts one input (resuming or skipping as its run folder's state says); its record."""
    from innout.invert.run import invert

    state = _state(job)
    record = {"input": str(job.source), "run": job.run.name}
    if resume and state == "complete":
        manifest = run_folder.read_manifest(job.run)
        return {**record, "status": "complete", "skipped": True, **_numbers(manifest)}
    try:
        invert(job.source, out=job.run, resume=resume and state == "started",
               force=force and state != "new", **invert_options)  # fmt: skip
    except (InputError, DivergedError, ValueError, OSError) as error:
        return {**record, "status": f"failed: {error}".splitlines()[0]}
    manifest = run_folder.read_manifest(job.run)
    return {**record, "status": "complete", "skipped": False, **_numbers(manifest)}


def _numbers(manifest: dict) -> dict:
    return {
        "method": manifest["method"],
        "frames": manifest["input"]["frames"],
        "seconds": round(sum(manifest.get("seconds", {}).values()), 2),
        "metrics": manifest.get("metrics", {}),
    }


def invert_batch(
    inputs: list[str | Path],
    out: str | Path,
    group: Group,
    *,
    resume: bool = False,
    force: bool = False,
    on_job=None,
    **invert_options,
) -> dict | None:
    """Inverts every input into ``out/<name>``; this rank takes inputs until none is left.
    Rank 0 waits for the others and writes (and returns) the summary; other ranks return None.

    `invert_options` go to `innout.invert` (network, method, preset_name, device, ...);
    `on_job(record)` is called after each input this rank finished."""
    if resume and force:
        raise InputError("resume and force exclude each other")
    jobs = plan(inputs, out)
    # Rank 0 checks the folders before any rank starts (a rank that looked later would find the
    # folders the first ones are writing); the others wait for its verdict.
    if group.is_main:
        try:
            check_batch(jobs, resume, force)
        except InputError as error:
            group.post("batch-checked", str(error))
            raise
        Path(out).mkdir(parents=True, exist_ok=True)
        group.post("batch-checked", None)
    else:
        (refusal,) = group.collect(["batch-checked"])
        if refusal is not None:
            raise InputError(refusal)
    records = group.share_work(
        "invert",
        len(jobs),
        lambda number: {**run_job(jobs[number], resume, force, invert_options), "rank": group.rank},
        on_job,
    )
    if records is None:  # rank 0 writes the summary
        return None
    summary = {
        "format": SUMMARY_FORMAT,
        "ranks": group.world_size,
        "runs": records,
        "complete": sum(r["status"] == "complete" for r in records),
        "failed": sum(r["status"] != "complete" for r in records),
    }
    atomic.write_json(Path(out) / SUMMARY, summary, indent=2)
    return summary


def read_summary(out: str | Path) -> dict:
    """A batch's summary (InputError if missing or not one)."""
    path = Path(out) / SUMMARY
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: not a batch summary ({error})") from None
    if not isinstance(summary, dict) or summary.get("format") != SUMMARY_FORMAT:
        raise InputError(f"{path}: not a batch summary of format {SUMMARY_FORMAT}")
    return summary
