"""The optimisation loop shared by every stage: checkpoints, resume and non-finite recovery.

A stage optimises some parameters of the run's state module with Adam for a fixed number of
steps. Every random draw of step s comes from a generator seeded by (seed, stage, s), and frame
batches from a permutation seeded by (seed, stage, epoch), so a resumed run draws exactly what an
uninterrupted one would.

Every `checkpoint_every` steps the whole state (tensors, optimiser, step, learning-rate scale,
loss history) is written atomically to ``checkpoint.pt`` (tensors and plain containers only, read
back with ``weights_only=True``) and kept in memory as the last good state. A step whose loss,
gradients or updated parameters are not finite is undone: the last good state is restored, the
learning rate halved, and the stage goes on from there; after `max_retries` such failures the run
stops with `DivergedError` and writes no result.

Ctrl-C (SIGINT) while a stage runs under `stop_on_interrupt` finishes the current step, writes a
checkpoint and raises `Interrupted`, so that `--resume` continues exactly there; a second Ctrl-C
stops at once (the last periodic checkpoint is then the resume point).

Data parallel (several ranks of one job, `innout.distributed`): every rank holds the same
parameters; each step's frames are split into contiguous shares, one per rank; a rank's terms
are means over its frames, weighted by its share of the step, so the sum over ranks is the
single-process mean. Gradients (of per-frame tensors only the rows of the step's frames: the
others are zero everywhere), the terms and the Ctrl-C flag go through one all-reduce, after
which every rank takes the same decisions. Each frame's random draws come from its own
generator, seeded by (seed, stage, step, position in the step), so a frame is rendered with
the same draws whichever rank renders it. Only rank 0 writes checkpoints.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from innout import distributed
from innout.distributed import SINGLE, Group
from innout.invert.run_folder import save_checkpoint


class DivergedError(RuntimeError):
    """The optimisation kept producing non-finite values."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run after a step; a checkpoint of that step was written."""


class TerminatedError(RuntimeError):
    """SIGTERM stopped the run at once (torchrun sends it to every rank when one fails); the
    last periodic checkpoint is the resume point."""


_interrupt_requested = threading.Event()


@contextlib.contextmanager
def stop_on_interrupt() -> Iterator[None]:
    """Within: the first SIGINT asks running stages to stop after their current step (see the
    module docstring), a second raises KeyboardInterrupt at once. Does nothing outside the main
    thread (signal handlers can only be installed there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum, frame) -> None:
        if _interrupt_requested.is_set():
            raise KeyboardInterrupt
        _interrupt_requested.set()
        print("\ninnout: stopping after this step (Ctrl-C again to stop at once)", file=sys.stderr)

    def terminate(signum, frame) -> None:
        if distributed.peer_failure_seen.is_set():
            return  # already ending with the error that names the failed rank
        raise TerminatedError("stopped by SIGTERM (under torchrun: another rank failed; torchrun's "
                              "report names it)")  # fmt: skip

    _interrupt_requested.clear()
    previous = signal.signal(signal.SIGINT, handle)
    previous_term = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
        _interrupt_requested.clear()


@dataclass
class Stage:
    """One optimisation stage.

    Attributes:
        name: shown in progress bars, logs and checkpoints.
        steps: optimiser steps.
        groups: Adam parameter groups: {"params": [tensors], "lr": base learning rate}.
        frames_fn: step -> the frames [B] (long) the step optimises, on every rank.
        step_fn: (frames [b], draws) -> {"loss": scalar tensor to minimise, other terms...}, each
            a mean over the given frames (b of the step's B on this rank); draws holds one
            torch.Generator per given frame, for its random draws.
        lr_fn: (base lr, step) -> this step's learning rate (default: constant).
        per_frame: parameters whose first dimension is the frame; only the rows of a step's
            frames have gradients (the others are zero on every rank and are not all-reduced).
    """

    name: str
    steps: int
    groups: list[dict]
    frames_fn: Callable[[int], torch.Tensor]
    step_fn: Callable[[torch.Tensor, list[torch.Generator]], dict[str, torch.Tensor]]
    lr_fn: Callable[[float, int], float] = field(default=lambda base, step: base)
    per_frame: tuple[torch.Tensor, ...] = ()


def frame_generator(seed: int, stage_index: int, step: int, slot: int) -> torch.Generator:
    """The random draws of the frame at position `slot` of step `step` (independent of what ran
    before, and of the rank that renders it: resumable and data parallel)."""
    digest = hashlib.blake2b(f"{seed}/{stage_index}/{step}/{slot}".encode(), digest_size=8)
    return torch.Generator().manual_seed(int.from_bytes(digest.digest(), "little") >> 1)


def frame_batch(seed: int, stage_index: int, step: int, frames: int, batch: int) -> torch.Tensor:
    """Frames of step `step`: consecutive slices of a per-epoch permutation of all frames."""
    batch = min(batch, frames)
    per_epoch = -(-frames // batch)
    epoch, slot = divmod(step, per_epoch)
    generator = torch.Generator().manual_seed(seed * 7_919 + stage_index * 104_729 + epoch)
    order = torch.randperm(frames, generator=generator)
    chosen = order[slot * batch : (slot + 1) * batch]
    if chosen.numel() < batch:  # the last slice of an epoch is topped up from its start
        chosen = torch.cat([chosen, order[: batch - chosen.numel()]])
    return chosen


def steps_for_epochs(epochs: int, frames: int, batch: int) -> int:
    return epochs * -(-frames // min(batch, frames))


def _finite(values) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in values)


class Engine:
    """Runs stages over a state module, checkpointing to `checkpoint_path` (None: no files).

    Args:
        state: the module holding every tensor the run optimises (its state_dict is saved).
        seed, checkpoint_every, max_retries: see InversionSettings.
        checkpoint_path: where checkpoints go.
        progress: show progress bars.
    """

    def __init__(
        self,
        state: torch.nn.Module,
        seed: int,
        checkpoint_every: int,
        max_retries: int,
        checkpoint_path: Path | None,
        progress: bool = True,
        group: Group = SINGLE,
    ) -> None:
        self.state = state
        self.group = group
        #: Per stage, what this launch measured of its steps: {"steps", "seconds" (wall time of
        #: the steps), "reduce_seconds" (of it, in the all-reduce), "reduced_bytes" (per step
        #: and rank; 0 for a single process)}.
        self.step_costs: dict[str, dict[str, float]] = {}
        self.seed = seed
        self.checkpoint_every = checkpoint_every
        self.max_retries = max_retries
        self.checkpoint_path = checkpoint_path
        self.progress = progress
        self.history: dict[str, list[dict[str, float]]] = {}
        self.recoveries: list[dict] = []
        self.metadata: dict = {}
        #: time.time() at which the running stage started, its earlier runs' time included (a
        #: resumed stage's clock starts in the past); None between stages.
        self.stage_clock: float | None = None

    def stage_seconds(self) -> float:
        """Seconds the running stage has taken so far, over all its runs."""
        return time.time() - self.stage_clock if self.stage_clock is not None else 0.0

    def _payload(self, stage_index, step, optimizer, lr_scale, retries) -> dict:
        return {
            "stage_index": stage_index,
            "step": step,
            "state": self.state.state_dict(),
            "optimizer": optimizer.state_dict() if optimizer is not None else {},
            "lr_scale": lr_scale,
            "retries": retries,
            "history": self.history,
            "recoveries": self.recoveries,
            "metadata": {**self.metadata, "stage_seconds": self.stage_seconds()},
        }

    def checkpoint(self, stage_index, step, optimizer=None, lr_scale=1.0, retries=0) -> None:
        if self.checkpoint_path is not None and self.group.is_main:
            payload = self._payload(stage_index, step, optimizer, lr_scale, retries)
            save_checkpoint(self.checkpoint_path, payload)

    def run(self, stage_index: int, stage: Stage, resume: dict | None = None) -> None:
        """Runs `stage` (index `stage_index` of the run), from `resume` (a loaded checkpoint of
        this stage) if given."""
        optimizer = torch.optim.Adam(
            [{"params": g["params"], "lr": g["lr"], "base_lr": g["lr"]} for g in stage.groups]
        )
        start, lr_scale, retries = 0, 1.0, 0
        if resume is not None:
            optimizer.load_state_dict(resume["optimizer"])
            start, lr_scale, retries = resume["step"], resume["lr_scale"], resume["retries"]
        log = self.history.setdefault(stage.name, [])
        del log[start:]
        good = self._snapshot(start, optimizer)
        params = [p for g in optimizer.param_groups for p in g["params"]]
        costs = self.step_costs.setdefault(
            stage.name, {"steps": 0, "seconds": 0.0, "reduce_seconds": 0.0, "reduced_bytes": 0}
        )
        bar = tqdm(total=stage.steps, initial=start, desc=stage.name, unit="step",
                   disable=not self.progress or not self.group.is_main, leave=False)  # fmt: skip
        step = start
        while step < stage.steps:
            for group in optimizer.param_groups:
                group["lr"] = stage.lr_fn(group["base_lr"], step) * lr_scale
            optimizer.zero_grad(set_to_none=True)
            began = time.perf_counter()
            record, stop = self._step(stage, stage_index, step, params)
            ok = record is not None
            if ok:
                optimizer.step()
                ok = _finite(params)
            costs["steps"] += 1
            costs["seconds"] += time.perf_counter() - began
            if not ok:
                retries += 1
                self.recoveries.append({"stage": stage.name, "step": step, "restored": good[0]})
                if retries > self.max_retries:
                    bar.close()
                    raise DivergedError(
                        f"stage {stage.name!r}: non-finite loss or parameters at step {step}, "
                        f"{retries} times (each restored the last good state and halved the "
                        "learning rate); try a lower learning rate or check the input"
                    )
                lr_scale *= 0.5
                step = self._restore(good, optimizer)
                del log[step:]
                bar.n = step
                continue
            log.append(record)
            bar.update(1)
            bar.set_postfix({k: f"{v:.4g}" for k, v in list(record.items())[:4]})
            step += 1
            if step % self.checkpoint_every == 0 or step == stage.steps:
                good = self._snapshot(step, optimizer)
                self.checkpoint(stage_index, step, optimizer, lr_scale, retries)
            elif stop:
                self.checkpoint(stage_index, step, optimizer, lr_scale, retries)
            if stop:
                bar.close()
                raise Interrupted(f"stage {stage.name!r} stopped after step {step}")
        bar.close()

    def _step(self, stage: Stage, stage_index: int, step: int, params: list[torch.Tensor]):
        """Runs this rank's share of one step and leaves the step's gradients in `params`.

        Returns (the step's terms, or None when the loss or a gradient is not finite; whether
        Ctrl-C asks every rank to stop after this step)."""
        frames = stage.frames_fn(step)
        group = self.group
        if group.data_parallel and len(frames) < group.world_size:
            raise ValueError(
                f"stage {stage.name!r} optimises {len(frames)} frame(s) a step, fewer than the "
                f"{group.world_size} ranks: raise batch_frames to at least {group.world_size}"
            )
        mine = group.shard(len(frames))
        draws = [frame_generator(self.seed, stage_index, step, slot) for slot in mine]
        terms = stage.step_fn(frames[mine.start : mine.stop], draws)
        share = len(mine) / len(frames)
        loss = terms["loss"]
        values = torch.stack([value.detach().reshape(()) for value in terms.values()]) * share
        stop = _interrupt_requested.is_set()
        if not group.data_parallel:
            if not _finite([loss]):
                return None, stop
            loss.backward()
        else:
            if loss.requires_grad:
                (loss * share).backward()
            stop = self._all_reduce(stage, frames, values, params, stop)
        if not _finite([values]) or not _finite(p.grad for p in params if p.grad is not None):
            return None, stop
        return dict(zip(terms, values.tolist())), stop

    def _all_reduce(self, stage, frames, values, params, stop: bool) -> bool:
        """Sums the terms (in place), the gradients and the stop flags of every rank in one
        all-reduce; returns whether any rank asked to stop."""
        per_frame = {id(p) for p in stage.per_frame}
        rows = frames.unique()
        dtype = functools.reduce(torch.promote_types, [p.dtype for p in params], values.dtype)
        parts = [values.to(dtype), values.new_tensor([float(stop)], dtype=dtype)]
        parts.append(values.new_tensor([float(p.grad is not None) for p in params], dtype=dtype))
        for p in params:
            grad = p.grad if p.grad is not None else torch.zeros_like(p)
            if id(p) in per_frame:
                grad = grad[rows.to(grad.device)]
            parts.append(grad.reshape(-1).to(dtype))
        flat = torch.cat(parts)
        began = time.perf_counter()
        self.group.all_reduce(flat)
        costs = self.step_costs[stage.name]
        costs["reduce_seconds"] += time.perf_counter() - began
        costs["reduced_bytes"] = flat.numel() * flat.element_size()
        offset = len(values)
        values.copy_(flat[:offset])
        stop = bool(flat[offset] > 0)
        used = flat[offset + 1 : offset + 1 + len(params)] > 0
        offset += 1 + len(params)
        for p, has_grad in zip(params, used.tolist()):
            if not has_grad:
                p.grad = None
                offset += (len(rows) * p[0].numel()) if id(p) in per_frame else p.numel()
                continue
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            if id(p) in per_frame:
                count = len(rows) * p[0].numel()
                target = rows.to(p.device)
                p.grad[target] = flat[offset : offset + count].view_as(p.grad[target]).to(p.dtype)
            else:
                count = p.numel()
                p.grad.copy_(flat[offset : offset + count].view_as(p))
            offset += count
        return stop

    def _snapshot(self, step: int, optimizer: torch.optim.Optimizer) -> tuple:
        state = {k: v.detach().clone() for k, v in self.state.state_dict().items()}
        return step, state, copy.deepcopy(optimizer.state_dict())

    def _restore(self, good: tuple, optimizer: torch.optim.Optimizer) -> int:
        step, state, optimizer_state = good
        self.state.load_state_dict(state)
        lrs = [g["lr"] for g in optimizer.param_groups]
        optimizer.load_state_dict(copy.deepcopy(optimizer_state))
        for group, lr in zip(optimizer.param_groups, lrs):
            group["lr"] = lr
        return step
