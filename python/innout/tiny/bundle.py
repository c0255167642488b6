"""Where the bundled innout-tiny files live inside the installed package, and reading them.

The weights (`innout-tiny.safetensors`: tensors + the generator's JSON config, no pickle), the
training record (`innout-tiny.json`: the exact command, settings, timings and held-out metrics)
and the edit directions (`directions/<name>.safetensors`) are package data: they are installed
with innout and read from there, never downloaded.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from innout.eg3d.networks import register_network

#: The name `load_generator` and `--network` accept for the bundled model.
TINY_NETWORK = "tiny"
WEIGHTS_FILE = "innout-tiny.safetensors"
RECORD_FILE = "innout-tiny.json"
DIRECTIONS_FOLDER = "directions"


def data_folder() -> Path:
    """The installed folder holding innout-tiny's files."""
    return Path(str(resources.files("innout.tiny") / "data"))


def weights_path() -> Path:
    """Path of the bundled weights; raises FileNotFoundError naming it when it is missing."""
    path = data_folder() / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"innout-tiny's weights are missing from the installation: {path}")
    return path


def training_record() -> dict:
    """The bundled training record (command, settings, timings, held-out metrics)."""
    return json.loads((data_folder() / RECORD_FILE).read_text(encoding="utf-8"))


def direction_names() -> list[str]:
    """Names of the bundled edit directions, sorted."""
    folder = data_folder() / DIRECTIONS_FOLDER
    return sorted(p.stem for p in folder.glob("*.safetensors")) if folder.is_dir() else []


def direction_path(name: str) -> Path:
    """Path of a bundled direction; ValueError listing the known names when there is none."""
    path = data_folder() / DIRECTIONS_FOLDER / f"{name}.safetensors"
    if not path.is_file():
        known = ", ".join(direction_names()) or "none"
        raise ValueError(f"innout-tiny has no direction {name!r}; bundled: {known}")
    return path


register_network(TINY_NETWORK, weights_path, "innout-tiny, bundled: EG3D at 64^2 (128^2 after SR)")
