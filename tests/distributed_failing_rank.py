"""`innout` whose rank 1 fails at step 3 of its first stage with an error (as a GPU running out
of memory would): used by tests/test_distributed.py, launched by torchrun with innout's
arguments."""

from __future__ import annotations

import os
import sys

from innout.cli import main
from innout.invert import engine

original = engine.frame_generator


def failing(seed: int, stage_index: int, step: int, slot: int):
    if os.environ.get("RANK") == "1" and stage_index == 0 and step == 3:
        raise RuntimeError("out of memory (simulated)")
    return original(seed, stage_index, step, slot)


if __name__ == "__main__":
    engine.frame_generator = failing
    sys.exit(main(sys.argv[1:]))
