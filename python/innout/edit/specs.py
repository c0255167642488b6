"""Edit specs and the latent steps they stand for (docs/method.md section 3.3).

An edit is written ``SPEC[@A-B]=STRENGTH`` (:func:`parse_edit`); several are added together. SPEC
is a direction shipped with the network (innout-tiny: ``smile``, ``hair_color``, ...; strength in
attribute units), a direction ``.safetensors`` file (attribute units), an InterfaceGAN boundary
``.npy`` ([1, w_dim] or [num_ws, w_dim], normalised per row; latent units), a latent delta
``*.delta.npy`` (multiplied by the strength) or ``ganspace:K``, the generator's K-th principal
component of W (:mod:`innout.edit.ganspace`; strength in standard deviations). ``@A-B`` restricts
the edit to W+ layers A..B (inclusive, from 0), GANSpace's layer-wise edits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from innout.eg3d import networks
from innout.eg3d.directions import Direction, load_direction


class EditError(ValueError):
    """An edit that cannot be applied; the message says what was expected."""


#: The largest |strength| an edit takes. Directions are calibrated so that a strength of about 1
#: moves an attribute across its range, and GANSpace strengths are in standard deviations of the
#: component: beyond this the generator only saturates (or overflows float32) and the video is
#: a flat colour - never what was meant.
MAX_STRENGTH = 100.0


@dataclass(frozen=True)
class Edit:
    """One latent edit: `spec` moved by `strength`, on W+ layers `layers` (inclusive; None: all)."""

    spec: str
    strength: float
    layers: tuple[int, int] | None = None

    def __str__(self) -> str:
        layers = f"@{self.layers[0]}-{self.layers[1]}" if self.layers else ""
        return f"{self.spec}{layers}={self.strength:g}"


_LAYERS = re.compile(r"^(?P<spec>.+?)@(?P<first>\d+)-(?P<last>\d+)$")


def parse_edit(text: str, strength: float | None = None) -> Edit:
    """``SPEC[@A-B]=STRENGTH`` (or ``SPEC[@A-B]`` with `strength` given) -> Edit."""
    spec = text
    if strength is None:
        spec, equals, value = text.rpartition("=")
        try:
            strength = float(value) if equals else None
        except ValueError:
            strength = None
        if strength is None or not spec:
            raise EditError(f"edit {text!r}: expected SPEC=STRENGTH, e.g. smile=0.5 or "
                            "ganspace:2@0-5=-1.5")  # fmt: skip
    if not math.isfinite(strength) or abs(strength) > MAX_STRENGTH:
        raise EditError(f"edit {text!r}: the strength must be a number within "
                        f"[-{MAX_STRENGTH:g}, {MAX_STRENGTH:g}], got {strength:g}")  # fmt: skip
    layers = None
    match = _LAYERS.match(spec)
    if match:
        spec = match["spec"]
        layers = (int(match["first"]), int(match["last"]))
        if layers[0] > layers[1]:
            raise EditError(f"edit {text!r}: layer range {layers[0]}-{layers[1]} is reversed")
    return Edit(spec, float(strength), layers)


def existing_network_file(network: str) -> Path | None:
    """The weights file behind a run's network name (a registered name or a path), if it exists:
    GANSpace components are cached beside it and keyed by its hash."""
    if not network:
        return None
    try:
        path = networks.network_file(network)
    except FileNotFoundError:
        return None
    return path if path.is_file() else None


def _ganspace_offset(spec: str, strength: float, generator, network: str) -> torch.Tensor:
    from innout.edit.ganspace import components_for

    index_text = spec.split(":", 1)[1]
    if not index_text.isdigit():
        raise EditError(f"{spec!r}: expected ganspace:K with a component number K >= 0")
    if generator is None:
        raise EditError(f"{spec!r}: GANSpace edits need the generator")
    components = components_for(generator, existing_network_file(network))
    try:
        return components.offset(int(index_text), strength)
    except IndexError as error:
        raise EditError(str(error)) from None


def latent_offset(
    spec: str,
    strength: float,
    num_ws: int,
    w_dim: int,
    network: str,
    generator: torch.nn.Module | None = None,
    layers: tuple[int, int] | None = None,
) -> torch.Tensor:
    """The latent step [num_ws, w_dim] of one edit (see the module docstring for `spec`).

    `generator` is needed for ``ganspace:K``; `layers` (inclusive) zeroes the step elsewhere.
    """
    path = Path(spec)
    if spec.startswith("ganspace:"):
        vector = _ganspace_offset(spec, strength, generator, network).reshape(1, -1)
        if vector.shape[1] != w_dim:
            raise EditError(f"{spec!r}: components have {vector.shape[1]} dimensions, not {w_dim}")
        step = vector.expand(num_ws, w_dim).clone()
    elif path.suffix == ".npy" and path.is_file():
        array = np.load(path, allow_pickle=False)
        if array.ndim != 2 or array.shape[1] != w_dim or array.shape[0] not in (1, num_ws):
            raise EditError(f"{path}: expected a [1, {w_dim}] or [{num_ws}, {w_dim}] array, got "
                            f"{list(array.shape)}")  # fmt: skip
        vector = torch.from_numpy(array.astype(np.float32))
        if not path.name.endswith(".delta.npy"):
            vector = vector / vector.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        step = (strength * vector).expand(num_ws, w_dim).clone()
    else:
        direction = _named_direction(spec, path, network)
        if direction.unit.shape[0] != w_dim:
            raise EditError(f"direction {spec!r} does not have {w_dim} dimensions")
        step = direction.offset(strength).expand(num_ws, w_dim).clone()
    if layers is not None:
        first, last = layers
        if not 0 <= first <= last < num_ws:
            raise EditError(f"layers {first}-{last} of {spec!r}: the generator has W+ layers "
                            f"0-{num_ws - 1}")  # fmt: skip
        keep = torch.zeros(num_ws, 1)
        keep[first : last + 1] = 1
        step = step * keep
    return step


def _named_direction(spec: str, path: Path, network: str) -> Direction:
    if path.suffix == ".safetensors" and path.is_file():
        try:
            return load_direction(path)
        except ValueError as error:
            raise EditError(str(error)) from None
    if network == "tiny" and path.suffix == "":
        from innout.tiny.directions import SHIPPED_DIRECTIONS, load_tiny_direction

        if spec not in SHIPPED_DIRECTIONS:
            raise EditError(f"unknown direction {spec!r}; innout-tiny ships "
                            f"{', '.join(SHIPPED_DIRECTIONS)} (or use ganspace:K)")  # fmt: skip
        return load_tiny_direction(spec)
    raise EditError(
        f"direction {spec!r}: not a file, and only innout-tiny ships named directions "
        "(pass a .safetensors direction, a .npy boundary, a *.delta.npy or ganspace:K)"
    )


def edits_offset(
    edits: Sequence[Edit | str],
    num_ws: int,
    w_dim: int,
    network: str,
    generator: torch.nn.Module | None = None,
) -> torch.Tensor:
    """The summed latent step [num_ws, w_dim] of several edits (strings are parsed)."""
    total = torch.zeros(num_ws, w_dim)
    for edit in edits:
        edit = parse_edit(edit) if isinstance(edit, str) else edit
        total = total + latent_offset(edit.spec, edit.strength, num_ws, w_dim, network,
                                      generator, edit.layers)  # fmt: skip
    return total
