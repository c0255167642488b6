"""Attribute directions in a latent space, fitted from labelled latents by linear regression.

A direction is stored as a unit vector n and a slope k (attribute units per latent unit along n),
so that "strength s" means "change the attribute by about s": the latent moves by (s / k) n. This is
InterfaceGAN's idea with a calibrated length; it works for any labelled latents (W of EG3D, W of
innout-tiny with the synthetic world's parameters, ...).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file


@dataclass(frozen=True)
class Direction:
    """An attribute direction.

    Attributes:
        name: the attribute ("smile", ...).
        unit: [D] unit vector in latent space.
        slope: attribute units per latent unit along `unit` (> 0).
        r2: coefficient of determination of the fit (how linear the attribute is in the latents).
        samples: number of labelled latents used.
    """

    name: str
    unit: torch.Tensor
    slope: float
    r2: float
    samples: int

    def offset(self, strength: float | torch.Tensor) -> torch.Tensor:
        """Latent step [D] (or [..., D] for a tensor of strengths) changing the attribute by it."""
        strength = torch.as_tensor(strength, dtype=self.unit.dtype, device=self.unit.device)
        return strength.unsqueeze(-1) * self.unit / self.slope

    def apply(self, latents: torch.Tensor, strength: float | torch.Tensor) -> torch.Tensor:
        """Moves latents [..., D] (W [N, D] or W+ [N, L, D]: every layer moves) by `strength`."""
        if latents.shape[-1] != self.unit.shape[0]:
            raise ValueError(
                f"direction {self.name!r} has {self.unit.shape[0]} dimensions, latents have "
                f"{latents.shape[-1]}"
            )
        step = self.offset(strength).to(latents)
        if step.dim() == 2 and latents.dim() == 3:  # one strength per item of a W+ batch
            step = step.unsqueeze(1)
        return latents + step

    def save(self, path: str | os.PathLike) -> None:
        """Writes a .safetensors file (the unit vector; name, slope, r2, samples as metadata),
        atomically."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        metadata = {
            "innout_direction": json.dumps(
                {"name": self.name, "slope": self.slope, "r2": self.r2, "samples": self.samples}
            )
        }
        temporary = target.with_name(f".{target.name}.tmp")
        save_file({"unit": self.unit.detach().cpu().contiguous()}, str(temporary), metadata)
        temporary.replace(target)


def load_direction(path: str | os.PathLike) -> Direction:
    """Reads a direction written by :meth:`Direction.save`."""
    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
        tensors = load_file(str(path))
    except (OSError, ValueError, SafetensorError) as error:  # missing, truncated, not safetensors
        raise ValueError(f"cannot read direction file {path}: {error}") from error
    if "innout_direction" not in metadata or "unit" not in tensors:
        raise ValueError(f"{path} is not an innout direction file (no 'unit' tensor / metadata)")
    info = json.loads(metadata["innout_direction"])
    return Direction(info["name"], tensors["unit"], float(info["slope"]), float(info["r2"]),
                     int(info["samples"]))  # fmt: skip


def fit_direction(name: str, latents: torch.Tensor, labels: torch.Tensor) -> Direction:
    """Fits the direction along which the latents move when the attribute grows.

    The latents are regressed on the label, latent ~ a + label * v (v = Cov(latent, label) /
    Var(label), the mean latent step per unit of the attribute), and the direction is v / |v| with
    slope 1 / |v|. Unlike regressing the label on the latents, v stays on the latents' manifold:
    when the latents fill only a few dimensions (as W of a generator does), the label regression's
    coefficients point along directions the generator ignores. `r2` is how much of the label's
    variance the projection on the direction explains.

    Args:
        name: the attribute's name.
        latents: [N, D] latents (e.g. W of N samples).
        labels: [N] attribute values of those samples.

    Raises:
        ValueError: mismatched sizes, fewer than 3 samples, or labels that do not vary.
    """
    if latents.dim() != 2:
        raise ValueError(f"latents must have shape [N, D], got {tuple(latents.shape)}")
    if labels.shape != (latents.shape[0],):
        raise ValueError(
            f"labels must have shape [N] = ({latents.shape[0]},), got {tuple(labels.shape)}"
        )
    if latents.shape[0] < 3:
        raise ValueError(f"need at least 3 labelled latents, got {latents.shape[0]}")
    x = latents.double()
    y = labels.double()
    if float(y.std()) == 0.0:
        raise ValueError(f"labels of {name!r} do not vary: nothing to fit")
    x_centred = x - x.mean(0)
    y_centred = y - y.mean()
    step = x_centred.T @ y_centred / y_centred.square().sum()
    length = float(step.norm())
    if length == 0.0:
        raise ValueError(f"labels of {name!r} do not depend on the latents")
    unit = step / length
    projection = x_centred @ unit
    r2 = float(torch.corrcoef(torch.stack([projection, y_centred]))[0, 1] ** 2)
    return Direction(name, unit.to(latents.dtype), 1.0 / length, r2, int(latents.shape[0]))
