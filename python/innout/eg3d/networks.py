"""Named networks: short names such as "tiny" that `--network` and `load_generator` accept.

A package that bundles a generator registers its name here with a function that locates the
weights file; the loader resolves names through this table and never imports the packages that
registered them. innout registers "tiny" (the bundled innout-tiny, :mod:`innout.tiny.bundle`) when
`innout` is imported.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class NamedNetwork:
    """A registered name: `locate()` returns the weights file (FileNotFoundError if missing)."""

    name: str
    locate: Callable[[], Path]
    description: str = ""


_NETWORKS: dict[str, NamedNetwork] = {}


def register_network(
    name: str, locate: Callable[[], Path], description: str = "", *, replace: bool = False
) -> NamedNetwork:
    """Adds `name` to the table; registering a taken name needs `replace=True`."""
    if not name or os.sep in name or name.startswith("."):
        raise ValueError(f"a network name is a plain word (no path separator), got {name!r}")
    if name in _NETWORKS and not replace and _NETWORKS[name].locate is not locate:
        raise ValueError(f"a network named {name!r} is already registered")
    entry = NamedNetwork(name, locate, description)
    _NETWORKS[name] = entry
    return entry


def named_networks() -> dict[str, NamedNetwork]:
    """The registered names and their entries (a copy)."""
    return dict(_NETWORKS)


def network_file(network: str | os.PathLike) -> Path:
    """The file `network` stands for: a registered name's weights, otherwise the path itself.

    A local file whose path is a registered name is reached as "./tiny". Raises FileNotFoundError
    when a registered network's file is missing from the installation."""
    entry = _NETWORKS.get(str(network)) if isinstance(network, str) else None
    if entry is not None:
        return entry.locate()
    return Path(network)
