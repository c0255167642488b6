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
"""

from __future__ import annotations

import contextlib
import copy
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from innout.invert.run_folder import save_checkpoint


class DivergedError(RuntimeError):
    """The optimisation kept producing non-finite values."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run after a step; a checkpoint of that step was written."""


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

    _interrupt_requested.clear()
    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _interrupt_requested.clear()


@dataclass
class Stage:
    """One optimisation stage.

    Attributes:
        name: shown in progress bars, logs and checkpoints.
        steps: optimiser steps.
        groups: Adam parameter groups: {"params": [tensors], "lr": base learning rate}.
        step_fn: (step, generator) -> {"loss": scalar tensor to minimise, other terms...}.
        lr_fn: (base lr, step) -> this step's learning rate (default: constant).
    """

    name: str
    steps: int
    groups: list[dict]
    step_fn: Callable[[int, torch.Generator], dict[str, torch.Tensor]]
    lr_fn: Callable[[float, int], float] = field(default=lambda base, step: base)


def step_generator(seed: int, stage_index: int, step: int) -> torch.Generator:
    """The random draws of one step (independent of what ran before: resumable)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + stage_index * 100_003 + step)


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
    ) -> None:
        self.state = state
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
        if self.checkpoint_path is not None:
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
        bar = tqdm(total=stage.steps, initial=start, desc=stage.name, unit="step",
                   disable=not self.progress, leave=False)  # fmt: skip
        step = start
        while step < stage.steps:
            for group in optimizer.param_groups:
                group["lr"] = stage.lr_fn(group["base_lr"], step) * lr_scale
            optimizer.zero_grad(set_to_none=True)
            terms = stage.step_fn(step, step_generator(self.seed, stage_index, step))
            loss = terms["loss"]
            ok = _finite([loss])
            if ok:
                loss.backward()
                params = [p for g in optimizer.param_groups for p in g["params"]]
                ok = _finite(p.grad for p in params if p.grad is not None)
                if ok:
                    optimizer.step()
                    ok = _finite(params)
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
            record = {name: float(value.detach()) for name, value in terms.items()}
            log.append(record)
            bar.update(1)
            bar.set_postfix({k: f"{v:.4g}" for k, v in list(record.items())[:4]})
            step += 1
            if step % self.checkpoint_every == 0 or step == stage.steps:
                good = self._snapshot(step, optimizer)
                self.checkpoint(stage_index, step, optimizer, lr_scale, retries)
            elif _interrupt_requested.is_set():
                self.checkpoint(stage_index, step, optimizer, lr_scale, retries)
            if _interrupt_requested.is_set():
                bar.close()
                raise Interrupted(f"stage {stage.name!r} stopped after step {step}")
        bar.close()

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
