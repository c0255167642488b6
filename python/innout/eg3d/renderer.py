"""EG3D's volume renderer over innout's ops: coarse + importance samples, decoder, ray marching.

`render_rays` is EG3D's ImportanceRenderer (METHOD.md section 2, EG3D.md sections 2.9-2.13) with
three additions: the rays are processed in chunks so that a render fits a memory budget, the
uniform numbers of the stratified jitter and of the importance sampling can be passed in (so a
render can be matched draw for draw with another implementation) or come from an explicit
torch.Generator, and `deterministic=True` renders without any random draw (no flicker in video).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from innout import ops
from innout.ops import reference

#: Signature of the decoder: mean tri-plane features [N, P, 32] -> {"sigma": [N, P, 1],
#: "rgb": [N, P, C]} (EG3D's OSGDecoder; ray directions are not used).
Decoder = Callable[[torch.Tensor], dict]


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
        backend: "innout" (C++/CUDA ops) or "reference" (pure PyTorch, for comparison).
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
    generator: torch.Generator | None = None,
) -> RenderUniforms:
    """Draws the render's uniforms in EG3D's order and shapes (torch.rand, float32)."""
    if settings.deterministic:
        return RenderUniforms(None, None)
    stratified = torch.rand(
        (batch, rays, settings.coarse_samples), generator=generator, device=device
    )
    importance = None
    if settings.fine_samples > 0:
        importance = torch.rand(
            (batch, rays, settings.fine_samples), generator=generator, device=device
        )
    return RenderUniforms(stratified, importance)


def coarse_depths(
    batch: int,
    rays: int,
    settings: RenderSettings,
    uniforms: torch.Tensor | None,
    like: torch.Tensor,
) -> torch.Tensor:
    """Stratified coarse depths [N, M, D] in [ray_start, ray_end] (dtype/device of `like`)."""
    samples = settings.coarse_samples
    if settings.disparity_space_sampling:
        steps = torch.linspace(0, 1, samples, dtype=like.dtype, device=like.device)
        s = steps.expand(batch, rays, samples)
        if uniforms is not None:
            s = s + uniforms.to(like.dtype) / (samples - 1)
        return 1.0 / ((1.0 / settings.ray_start) * (1 - s) + (1.0 / settings.ray_end) * s)
    near = torch.full((batch, rays), settings.ray_start, dtype=like.dtype, device=like.device)
    far = torch.full_like(near, settings.ray_end)
    if settings.backend == "reference":
        return reference.stratified_sample(near, far, samples, uniforms)
    return ops.stratified_sample(
        near, far, samples, uniforms=uniforms, deterministic=uniforms is None
    )


def evaluate_field(planes, decoder, origins, directions, depths, settings):
    """Decoder outputs at o + t d: sigma [N, M, K], rgb [N, M, K, C]."""
    batch, rays, samples = depths.shape
    points = (origins.unsqueeze(2) + depths.unsqueeze(-1) * directions.unsqueeze(2)).reshape(
        batch, rays * samples, 3
    )
    sample = reference.triplane_sample if settings.backend == "reference" else ops.triplane_sample
    features = sample(planes, points, settings.box_warp)
    out = decoder(features)
    sigma = out["sigma"].reshape(batch, rays, samples)
    rgb = out["rgb"].reshape(batch, rays, samples, -1)
    return sigma, rgb


def _march(depths, sigma, rgb, settings):
    march = reference.ray_march if settings.backend == "reference" else ops.ray_march
    composite, depth, weights = march(depths, sigma, rgb)
    if settings.white_back:
        # EG3D adds (1 - sum W) before mapping F -> 2F - 1.
        composite = composite + 2 * (1 - weights.sum(-1, keepdim=True))
    return composite, depth, weights


def _render_chunk(planes, decoder, origins, directions, settings, stratified, importance):
    batch, rays, _ = origins.shape
    depths = coarse_depths(batch, rays, settings, stratified, origins)
    sigma, rgb = evaluate_field(planes, decoder, origins, directions, depths, settings)
    if settings.fine_samples > 0:
        with torch.no_grad():
            _, _, weights = _march(depths, sigma, rgb, settings)
            if settings.backend == "reference":
                if importance is None:
                    spread = torch.linspace(0, 1, settings.fine_samples, device=depths.device)
                    importance = spread.expand(batch, rays, settings.fine_samples)
                fine = reference.importance_sample(depths, weights, importance.to(depths.dtype))
            else:
                fine = ops.importance_sample(
                    depths,
                    weights,
                    settings.fine_samples,
                    uniforms=importance,
                    deterministic=importance is None,
                )
        sigma_fine, rgb_fine = evaluate_field(planes, decoder, origins, directions, fine, settings)
        depths = torch.cat([depths, fine], dim=-1)
        depths, order = torch.sort(depths, dim=-1)
        sigma = torch.gather(torch.cat([sigma, sigma_fine], dim=-1), -1, order)
        rgb_all = torch.cat([rgb, rgb_fine], dim=-2)
        rgb = torch.gather(rgb_all, -2, order.unsqueeze(-1).expand_as(rgb_all))
    composite, depth, weights = _march(depths, sigma, rgb, settings)
    return composite, depth, weights.sum(-1)


def render_rays(
    planes: torch.Tensor,
    decoder: Decoder,
    origins: torch.Tensor,
    directions: torch.Tensor,
    settings: RenderSettings,
    *,
    uniforms: RenderUniforms | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Renders rays through EG3D tri-planes.

    Args:
        planes: [N, 3, 32, H, W] tri-planes.
        decoder: the OSGDecoder (features [N, P, 32] -> sigma, rgb).
        origins, directions: [N, M, 3] rays (unit directions).
        settings: sample counts, depth range, backend, chunking, determinism.
        uniforms: the render's random draws (see RenderUniforms); drawn from `generator` (or the
            global generator) when None, and unused with settings.deterministic.
        generator: torch.Generator for the draws.

    Returns:
        {"features": [N, M, C] (2F - 1), "depth": [N, M], "weight_total": [N, M]}.
    """
    batch, rays, _ = origins.shape
    if settings.backend not in ("innout", "reference"):
        raise ValueError(f"backend must be 'innout' or 'reference', got {settings.backend!r}")
    if uniforms is None:
        uniforms = draw_uniforms(batch, rays, settings, origins.device, generator)
    chunk = settings.chunk_rays or rays
    if chunk <= 0:
        raise ValueError(f"chunk_rays must be positive, got {settings.chunk_rays}")
    outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    for start in range(0, rays, chunk):
        part = slice(start, start + chunk)
        outputs.append(
            _render_chunk(
                planes,
                decoder,
                origins[:, part],
                directions[:, part],
                settings,
                None if uniforms.stratified is None else uniforms.stratified[:, part],
                None if uniforms.importance is None else uniforms.importance[:, part],
            )
        )
    features, depth, weight_total = (torch.cat(parts, dim=1) for parts in zip(*outputs))
    return {"features": features, "depth": depth, "weight_total": weight_total}
