"""Runs a small float64 optimisation through innout's engine, in one process or as one rank of
a torchrun job, and (rank 0) saves its parameters and loss history to the file given.

The stage has what the inversion's stages have: a shared parameter, a per-frame parameter
(rows of the step's frames only), a parameter only some frames use (so some ranks have no
gradient for it), one no frame uses (no gradient anywhere: Adam must skip it), per-frame
random draws, and a step of 3 frames of 5 (uneven shares on 2 ranks).

Used by tests/test_distributed.py: python distributed_toy_engine.py OUT.pt
"""

from __future__ import annotations

import sys

import torch
from innout import distributed
from innout.invert.engine import Engine, Stage, frame_batch

FRAMES, BATCH, STEPS = 5, 3, 7


class Toy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        seeded = torch.Generator().manual_seed(3)
        self.shared = torch.nn.Parameter(torch.randn(4, generator=seeded, dtype=torch.float64))
        self.per_frame = torch.nn.Parameter(
            torch.randn(FRAMES, 4, generator=seeded, dtype=torch.float64)
        )
        self.odd_only = torch.nn.Parameter(torch.randn(4, generator=seeded, dtype=torch.float64))
        self.unused = torch.nn.Parameter(torch.randn(4, generator=seeded, dtype=torch.float64))


def main(out: str) -> None:
    torch.set_num_threads(1)
    with distributed.join("cpu") as group:
        toy = Toy()
        targets = torch.linspace(-1, 1, FRAMES * 4, dtype=torch.float64).view(FRAMES, 4)

        def step_fn(index: torch.Tensor, draws: list[torch.Generator]) -> dict:
            noise = torch.stack([torch.rand(4, generator=g, dtype=torch.float64) for g in draws])
            x = toy.shared * toy.per_frame[index] + 0.1 * noise
            odd = (index % 2 == 1).to(torch.float64)[:, None]
            if bool(odd.any()):  # the graph reaches odd_only only through odd frames
                x = x + odd * toy.odd_only.sin()
            fit = (x - targets[index]).square().mean(1)
            norm = toy.per_frame[index].norm(dim=1)
            return {"loss": (fit + 0.01 * norm).mean(), "fit": fit.mean(), "norm": norm.mean()}

        stage = Stage(
            name="toy",
            steps=STEPS,
            groups=[{"params": list(toy.parameters()), "lr": 0.05}],
            frames_fn=lambda step: frame_batch(0, 0, step, FRAMES, BATCH),
            step_fn=step_fn,
            per_frame=(toy.per_frame,),
        )
        engine = Engine(toy, seed=11, checkpoint_every=100, max_retries=0, checkpoint_path=None,
                        progress=False, group=group)  # fmt: skip
        engine.run(0, stage)
        if group.is_main:
            torch.save({"state": toy.state_dict(), "history": engine.history,
                        "costs": engine.step_costs}, out)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1])
