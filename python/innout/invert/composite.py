"""Composite volume rendering of EG3D's field and the object field (METHOD.md section 3.1).

Both fields are evaluated at the same sorted samples: EG3D's stratified coarse depths, then
importance depths drawn from the coarse **composite** weights, merged and sorted. With no object
(b = 0) the composite weights are EG3D's and this is exactly EG3D's renderer.
**Decision:** the importance draw follows the composite weights rather than the face field's
alone, so that an object floating in front of the face gets fine samples as well (the research
code draws a second, independent set for the object instead, which misaligns the two fields).

One `composite_march` produces the composite features, the depth and - through an extra
feature channel that is 0 for the face field and 1 for the object field - the object's share of
each pixel's colour (`object_opacity`, the object layer's alpha). The object field alone is
also marched (`object_features`, `object_weight_total`) for the losses and for inspection.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from innout import ops
from innout.eg3d.renderer import (
    RenderSettings,
    RenderUniforms,
    coarse_depths,
    draw_uniforms,
    evaluate_field,
)
from innout.invert.object_field import ObjectField


@dataclass
class CompositeRays:
    """Outputs of `render_composite` for [B, M] rays (K samples per ray, coarse D of them).

    features: [B, M, 32] composite features (2F - 1); depth [B, M]; weight_total [B, M];
    object_opacity [B, M] (sum_i T_i b_i alpha^O_i); object_features [B, M, 32] and
    object_weight_total [B, M] (the object field marched alone); blend [B, M, K] (sorted samples),
    blend_coarse [B, M, D] and blend_fine [B, M, K - D] (for the regularisers).
    """

    features: torch.Tensor
    depth: torch.Tensor
    weight_total: torch.Tensor
    object_opacity: torch.Tensor | None = None
    object_features: torch.Tensor | None = None
    object_weight_total: torch.Tensor | None = None
    blend: torch.Tensor | None = None
    blend_coarse: torch.Tensor | None = None
    blend_fine: torch.Tensor | None = None


def _points(origins, directions, depths):
    batch, rays, samples = depths.shape
    return (origins.unsqueeze(2) + depths.unsqueeze(-1) * directions.unsqueeze(2)).reshape(
        batch, rays * samples, 3
    )


def _object_at(field, frame_index, origins, directions, depths, settings):
    batch, rays, samples = depths.shape
    sigma, colour, blend = field.evaluate(
        _points(origins, directions, depths), frame_index, settings.box_warp, settings.backend
    )
    return (
        sigma.reshape(batch, rays, samples),
        colour.reshape(batch, rays, samples, -1),
        blend.reshape(batch, rays, samples),
    )


def _march(depths, sigma_in, rgb_in, sigma_out=None, rgb_out=None, blend=None, backend="innout"):
    march = ops.reference.composite_march if backend == "reference" else ops.composite_march
    return march(depths, sigma_in, rgb_in, sigma_out, rgb_out, blend)


def _render_chunk(planes, decoder, field, frame_index, origins, directions, settings, uniforms):
    batch, rays, _ = origins.shape
    backend = settings.backend
    depths = coarse_depths(batch, rays, settings, uniforms.stratified, origins)
    sigma, rgb = evaluate_field(planes, decoder, origins, directions, depths, settings)
    if field is not None:
        sigma_o, rgb_o, blend = _object_at(
            field, frame_index, origins, directions, depths, settings
        )
    if settings.fine_samples > 0:
        with torch.no_grad():
            if field is None:
                _, _, weights = _march(depths, sigma, rgb, backend=backend)
            else:
                _, _, weights = _march(depths, sigma, rgb, sigma_o, rgb_o, blend, backend)
            if backend == "reference":
                importance = uniforms.importance
                if importance is None:
                    spread = torch.linspace(0, 1, settings.fine_samples, device=depths.device)
                    importance = spread.expand(batch, rays, settings.fine_samples)
                fine = ops.reference.importance_sample(depths, weights, importance.to(depths.dtype))
            else:
                fine = ops.importance_sample(
                    depths,
                    weights,
                    settings.fine_samples,
                    uniforms=uniforms.importance,
                    deterministic=uniforms.importance is None,
                )
        sigma_f, rgb_f = evaluate_field(planes, decoder, origins, directions, fine, settings)
        depths, order = torch.sort(torch.cat([depths, fine], dim=-1), dim=-1)

        def merge(coarse: torch.Tensor, fine_values: torch.Tensor) -> torch.Tensor:
            both = torch.cat([coarse, fine_values], dim=2)
            index = order if both.dim() == 3 else order.unsqueeze(-1).expand_as(both)
            return torch.gather(both, 2, index)

        sigma, rgb = merge(sigma, sigma_f), merge(rgb, rgb_f)
        if field is not None:
            sigma_of, rgb_of, blend_f = _object_at(
                field, frame_index, origins, directions, fine, settings
            )
            blend_coarse, blend_fine = blend, blend_f
            sigma_o, rgb_o, blend = (
                merge(sigma_o, sigma_of),
                merge(rgb_o, rgb_of),
                merge(blend, blend_f),
            )
    elif field is not None:
        blend_coarse, blend_fine = blend, blend[..., :0]
    if field is None:
        features, depth, weights = _march(depths, sigma, rgb, backend=backend)
        return CompositeRays(features, depth, weights.sum(-1))
    zeros = rgb.new_zeros(*rgb.shape[:-1], 1)
    composite, depth, weights = _march(
        depths,
        sigma,
        torch.cat([rgb, zeros], -1),
        sigma_o,
        torch.cat([rgb_o, zeros + 1], -1),
        blend,
        backend,
    )
    object_features, _, object_weights = _march(depths, sigma_o, rgb_o, backend=backend)
    return CompositeRays(
        features=composite[..., :-1],
        depth=depth,
        weight_total=weights.sum(-1),
        object_opacity=(composite[..., -1] + 1) / 2,
        object_features=object_features,
        object_weight_total=object_weights.sum(-1),
        blend=blend,
        blend_coarse=blend_coarse,
        blend_fine=blend_fine,
    )


def render_composite(
    planes: torch.Tensor,
    decoder: torch.nn.Module,
    field: ObjectField | None,
    frame_index: torch.Tensor,
    origins: torch.Tensor,
    directions: torch.Tensor,
    settings: RenderSettings,
    *,
    blend_scale: torch.Tensor | None = None,
    uniforms: RenderUniforms | None = None,
    generator: torch.Generator | None = None,
) -> CompositeRays:
    """Renders rays [B, M, 3] through EG3D tri-planes [B, 3, 32, H, W] and the object field.

    Args:
        planes, decoder: the in-distribution field (EG3D's planes of each frame and OSGDecoder).
        field: the object field, or None for EG3D's renderer alone.
        frame_index: [B] long, which frame (object code) each batch item is.
        origins, directions: [B, M, 3] rays (unit directions).
        settings: EG3D's sampling settings (sample counts, depth range, backend, chunking).
        blend_scale: optional [B, M] factor in [0, 1] on every blend weight of a ray (0 removes the
            object from that ray: object removal).
        uniforms / generator: the random draws (see `innout.eg3d.renderer.render_rays`).
    """
    batch, rays, _ = origins.shape
    if frame_index.shape != (batch,):
        raise ValueError(f"frame_index must have shape [{batch}], got {tuple(frame_index.shape)}")
    if uniforms is None:
        uniforms = draw_uniforms(batch, rays, settings, origins.device, generator)
    chunk = settings.chunk_rays or rays
    if field is not None and blend_scale is not None:
        field = _ScaledBlend(field, blend_scale)
    parts: list[CompositeRays] = []
    for start in range(0, rays, chunk):
        part = slice(start, start + chunk)
        chunk_field = field.slice(part) if isinstance(field, _ScaledBlend) else field
        parts.append(
            _render_chunk(
                planes,
                decoder,
                chunk_field,
                frame_index,
                origins[:, part],
                directions[:, part],
                settings,
                RenderUniforms(
                    None if uniforms.stratified is None else uniforms.stratified[:, part],
                    None if uniforms.importance is None else uniforms.importance[:, part],
                ),
            )
        )
    if len(parts) == 1:
        return parts[0]
    merged = {}
    for name in CompositeRays.__dataclass_fields__:
        values = [getattr(p, name) for p in parts]
        merged[name] = None if values[0] is None else torch.cat(values, dim=1)
    return CompositeRays(**merged)


class _ScaledBlend:
    """An object field whose blend weights are multiplied per ray by a factor [B, M]."""

    def __init__(self, field: ObjectField, scale: torch.Tensor) -> None:
        self.field, self.scale = field, scale

    def slice(self, part: slice) -> _ScaledBlend:
        return _ScaledBlend(self.field, self.scale[:, part])

    def evaluate(self, points, frame_index, box_warp, backend="innout"):
        sigma, colour, blend = self.field.evaluate(points, frame_index, box_warp, backend)
        batch, rays = self.scale.shape
        per_ray = blend.reshape(batch, rays, -1) * self.scale.unsqueeze(-1)
        return sigma, colour, per_ray.reshape(batch, -1)
