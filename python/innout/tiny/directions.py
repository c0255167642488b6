"""innout-tiny's edit directions: fitted in W from the world's parameters, shipped, and measured.

Fitting (docs/synthetic-world.md, "Edit directions"): for many z, w = mapping(z) and the labels are
the head parameters p(z) (:func:`innout.synth.params_from_z`); :func:`innout.edit.fit_direction`
regresses each attribute on w. Strength 1.0 then means "about one unit of the attribute".

Measuring (:func:`measure_direction`): the generator's rendering after a step along a direction
is compared with analytic renders of the head whose parameters are varied one at a time; the value
that matches best is the world's parameter "fitted back" from the image. The edited attribute
should move by about the strength, the others by about nothing. The same fit on the unedited
rendering is subtracted, so that the model's own small errors cancel.

:func:`measure_model_response` separates the direction from the model: it fits back the model's
rendering of the head whose parameter really is p + strength (z changed, not w). Where both
numbers fall short of the strength alike, the direction does what the model's own latent space
does and the shortfall is the model's rendering of that attribute.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from tqdm import tqdm

from innout.eg3d.directions import Direction, fit_direction, load_direction
from innout.eg3d.generator import TriPlaneGenerator
from innout.synth.head import (
    PARAMETER_RANGES,
    Z_PARAMETERS,
    HeadParams,
    params_from_z,
    z_with_parameter,
)
from innout.tiny.bundle import direction_path
from innout.tiny.heads import head_image

#: The attributes innout-tiny ships directions for.
SHIPPED_DIRECTIONS = (
    "smile",
    "mouth_open",
    "eye_size",
    "hair_color",
    "skin_tone",
    "face_width",
    "hairline",
    "brow_height",
    "iris_color",
    "nose_size",
)
#: Seed of the latents the shipped directions are fitted on.
DIRECTION_SEED = 2024


@torch.no_grad()
def latents_and_labels(
    generator: TriPlaneGenerator, samples: int, seed: int = DIRECTION_SEED
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """w [samples, w_dim] of z ~ N(0, I) and the world's parameters of each z by name."""
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(samples, generator.z_dim, generator=rng)
    cameras = torch.zeros(samples, generator.c_dim)  # innout-tiny ignores the conditioning camera
    w = torch.cat(
        [
            generator.mapping(z[i : i + 256], cameras[i : i + 256])[:, 0]
            for i in range(0, samples, 256)
        ]
    )
    params = [params_from_z(z[i]).as_dict() for i in range(samples)]
    labels = {name: torch.tensor([p[name] for p in params]) for name in Z_PARAMETERS}
    return w, labels


def fit_tiny_directions(
    generator: TriPlaneGenerator,
    samples: int = 4096,
    names: tuple[str, ...] = SHIPPED_DIRECTIONS,
    out: str | os.PathLike | None = None,
) -> dict[str, Direction]:
    """Fits one direction per attribute in `names`; writes `<out>/<name>.safetensors` if given."""
    w, labels = latents_and_labels(generator, samples)
    directions = {name: fit_direction(name, w, labels[name]) for name in names}
    if out is not None:
        for name, direction in directions.items():
            direction.save(Path(out) / f"{name}.safetensors")
    return directions


def load_tiny_direction(name: str) -> Direction:
    """A direction bundled with innout-tiny (ValueError listing the bundled names otherwise)."""
    return load_direction(direction_path(name))


#: Samples per ray (coarse and fine) of the analytic renders the edits are compared with.
MEASURE_SAMPLES = 48


def _fit_parameter(
    image: torch.Tensor, params: HeadParams, name: str, cameras: torch.Tensor, grid: int
) -> float:
    """The value of parameter `name` (others fixed at `params`) whose render best matches
    `image`: a grid over the parameter's range, refined by a parabola through the best three."""
    low, high = PARAMETER_RANGES[name]
    values = torch.linspace(low, high, grid).tolist()
    errors = []
    for value in values:
        candidate = HeadParams(**{**params.as_dict(), name: value})
        truth = head_image(candidate, cameras, image.shape[-1], MEASURE_SAMPLES)
        errors.append(float((truth - image).square().mean()))
    best = min(range(grid), key=errors.__getitem__)
    if 0 < best < grid - 1:
        e0, e1, e2 = errors[best - 1], errors[best], errors[best + 1]
        curvature = e0 - 2 * e1 + e2
        if curvature > 0:
            step = values[1] - values[0]
            return values[best] + 0.5 * step * (e0 - e2) / curvature
    return values[best]


@torch.no_grad()
def measure_direction(
    generator: TriPlaneGenerator,
    direction: Direction,
    z: torch.Tensor,
    strength: float,
    cameras: torch.Tensor,
    others: tuple[str, ...] = Z_PARAMETERS,
    grid: int = 21,
    progress: bool = False,
) -> dict[str, float]:
    """Parameter changes, fitted back from renders, of one head z [1, z_dim] moved by `strength`.

    Returns {parameter: fitted change} for the edited attribute and every name in `others`.
    """
    params = params_from_z(z)
    ws = generator.mapping(z, torch.zeros(1, generator.c_dim))
    edited = direction.apply(ws, strength)
    base_image = generator.render(ws, cameras, deterministic=True)["image_raw"][0]
    edit_image = generator.render(edited, cameras, deterministic=True)["image_raw"][0]
    names = (direction.name,) + tuple(n for n in others if n != direction.name)
    changes = {}
    for name in tqdm(names, desc=f"measure {direction.name}", disable=not progress):
        before = _fit_parameter(base_image, params, name, cameras, grid)
        after = _fit_parameter(edit_image, params, name, cameras, grid)
        changes[name] = after - before
    return changes


@torch.no_grad()
def measure_model_response(
    generator: TriPlaneGenerator,
    z: torch.Tensor,
    name: str,
    strength: float,
    cameras: torch.Tensor,
    grid: int = 21,
) -> float | None:
    """Fitted-back change of `name` in the model's rendering of the head z [1, z_dim] whose
    parameter is p + strength (None when that leaves the parameter's range)."""
    params = params_from_z(z)
    low, high = PARAMETER_RANGES[name]
    target = getattr(params, name) + strength
    if not low <= target <= high:
        return None
    conditioning = torch.zeros(1, generator.c_dim)
    images = [
        generator.render(generator.mapping(latent, conditioning), cameras, deterministic=True)
        for latent in (z, z_with_parameter(z, name, target))
    ]
    base, edited = (_fit_parameter(i["image_raw"][0], params, name, cameras, grid) for i in images)
    return edited - base
