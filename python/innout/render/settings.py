"""How rays are sampled: EG3D's rendering options with innout's additions, and the random draws.

The options are those EG3D keeps in a generator's `rendering_kwargs` (sample counts, depth range,
tri-plane box, background) plus innout's: a multiplier on the sample counts, deterministic
sampling for flicker-free video, chunking to bound memory, and the choice of op backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from innout.ops import BACKENDS


@dataclass(frozen=True)
class RenderSettings:
    """The rendering options EG3D keeps in `rendering_kwargs`, with innout's additions.

    Attributes:
        depth_resolution: coarse samples per ray (D).
        depth_resolution_importance: fine samples per ray (0 disables importance sampling).
        ray_start, ray_end: depth range along unit rays.
        box_warp: side of the tri-plane cube.
        white_back: composite onto white (EG3D's shapenet model).
        disparity_space_sampling: sample the coarse depths uniformly in disparity.
        samples_multiplier: multiplies both sample counts (EG3D's `sample_mult`; 2 removes most
            sampling flicker from videos).
        deterministic: no random draw: un-jittered coarse depths and linspace importance uniforms.
        chunk_rays: rays rendered at once per batch item (bounds memory; None = all).
        backend: "innout" (C++/CUDA ops) or "reference" (pure PyTorch, for comparison); see
            :func:`innout.ops.backend`.
    """

    depth_resolution: int = 48
    depth_resolution_importance: int = 48
    ray_start: float = 2.25
    ray_end: float = 3.3
    box_warp: float = 1.0
    white_back: bool = False
    disparity_space_sampling: bool = False
    samples_multiplier: float = 1.0
    deterministic: bool = False
    chunk_rays: int | None = None
    backend: str = "innout"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.chunk_rays is not None and self.chunk_rays <= 0:
            raise ValueError(f"chunk_rays must be positive, got {self.chunk_rays}")

    @classmethod
    def from_rendering_kwargs(cls, rendering_kwargs: dict, **overrides) -> RenderSettings:
        """Settings from an EG3D `rendering_kwargs` dict (with EG3D's defaults for missing keys)."""
        start, end = rendering_kwargs.get("ray_start"), rendering_kwargs.get("ray_end")
        if start == "auto" or end == "auto":
            raise ValueError(
                "rendering_kwargs ray_start/ray_end = 'auto' (box-clipped rays) is not supported; "
                "no official EG3D model uses it"
            )
        if rendering_kwargs.get("clamp_mode", "softplus") != "softplus":
            raise ValueError(
                f"clamp_mode must be 'softplus' (EG3D's only mode), got "
                f"{rendering_kwargs.get('clamp_mode')!r}"
            )
        values = {
            "depth_resolution": int(rendering_kwargs["depth_resolution"]),
            "depth_resolution_importance": int(
                rendering_kwargs.get("depth_resolution_importance", 0)
            ),
            "ray_start": float(start),
            "ray_end": float(end),
            "box_warp": float(rendering_kwargs["box_warp"]),
            "white_back": bool(rendering_kwargs.get("white_back", False)),
            "disparity_space_sampling": bool(
                rendering_kwargs.get("disparity_space_sampling", False)
            ),
        }
        values.update(overrides)
        return cls(**values)

    @property
    def coarse_samples(self) -> int:
        return int(self.depth_resolution * self.samples_multiplier)

    @property
    def fine_samples(self) -> int:
        return int(self.depth_resolution_importance * self.samples_multiplier)


@dataclass
class RenderUniforms:
    """The two random draws of a render: stratified jitter [N, M, D] then importance [N, M, Ni]."""

    stratified: torch.Tensor | None
    importance: torch.Tensor | None


def draw_uniforms(
    batch: int,
    rays: int,
    settings: RenderSettings,
    device: torch.device,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
) -> RenderUniforms:
    """Draws the render's uniforms in EG3D's order and shapes (torch.rand, float32).

    `generator` is one generator for the whole batch, or one per batch item (each item's draws
    then depend on its own generator only: the same whichever batch it is rendered in). Draws
    are made on the generator's device and moved to `device`."""
    if settings.deterministic:
        return RenderUniforms(None, None)
    if isinstance(generator, Sequence):
        if len(generator) != batch:
            raise ValueError(f"expected {batch} generators (one per batch item), got "
                             f"{len(generator)}")  # fmt: skip
        items = [draw_uniforms(1, rays, settings, device, one) for one in generator]
        importance = None
        if settings.fine_samples > 0:
            importance = torch.cat([item.importance for item in items])
        return RenderUniforms(torch.cat([item.stratified for item in items]), importance)
    source = generator.device if generator is not None else device
    stratified = torch.rand(
        (batch, rays, settings.coarse_samples), generator=generator, device=source
    )
    importance = None
    if settings.fine_samples > 0:
        importance = torch.rand(
            (batch, rays, settings.fine_samples), generator=generator, device=source
        )
    if importance is not None:
        importance = importance.to(device)
    return RenderUniforms(stratified.to(device), importance)
