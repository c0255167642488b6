"""`load_generator`: an EG3D generator from an official .pkl or a converted .safetensors file.

Official pickles are read by innout's restricted unpickler (innout.eg3d.checkpoint), which records
what the file contains and executes none of it; the generator is then built from innout's own
classes. Converted files hold the same tensors and a JSON config, no pickle at all.
"""

from __future__ import annotations

from pathlib import Path

import torch

from innout.eg3d.checkpoint import (
    CheckpointError,
    build_generator,
    read_checkpoint,
    read_converted,
    recorded_tree_to_state,
)
from innout.eg3d.generator import TriPlaneGenerator
from innout.eg3d.networks import network_file

#: Persistent classes a checkpoint may name for its generator, by short class name.
GENERATOR_CLASSES = {"TriPlaneGenerator": TriPlaneGenerator}


def load_generator(
    network: str | Path,
    device: str | torch.device | None = None,
    *,
    key: str = "G_ema",
) -> TriPlaneGenerator:
    """Loads an EG3D generator, in eval mode, on `device` (default: CPU).

    Args:
        network: path to an official EG3D .pkl or to a .safetensors file written by
            `innout convert`, or a registered name (:mod:`innout.eg3d.networks`) such as "tiny"
            for the bundled innout-tiny model (a local file named tiny is "./tiny").
        device: where to put the generator.
        key: which network of a .pkl snapshot ("G_ema", or "G").

    Raises:
        CheckpointError: a missing, corrupt, unsafe or incompatible file (the message says what).
    """
    try:
        path = network_file(network)
    except FileNotFoundError as error:
        raise CheckpointError(str(error)) from None
    if not path.is_file():
        raise CheckpointError(f"network file not found: {path}")
    if path.suffix == ".safetensors":
        config, tensors = read_converted(path)
    else:
        config, tensors = recorded_tree_to_state(read_checkpoint(path, key=key))
    generator = build_generator(config, tensors, GENERATOR_CLASSES)
    return generator.eval().requires_grad_(False).to(device or "cpu")
