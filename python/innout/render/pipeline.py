"""The ray pipeline: every volume render in innout goes through `render_rays`.

One pass over a chunk of rays (docs/method.md sections 2 and 3.1):

1. coarse depths: stratified (jittered, or evenly spaced when deterministic) or uniform in
   disparity;
2. every field evaluated at the coarse points;
3. the coarse march - of the face field alone, or the composite of face and object - gives the
   weights that importance sampling draws the fine depths from (no gradient flows through it);
4. every field evaluated at the fine points; coarse and fine samples merged and sorted;
5. the final march: composite features, depth and weights.

Fields are callables ``points [B, P, 3], ops backend -> FieldSamples``. EG3D's renderer is this
pipeline with the face field alone; In-N-Out adds an object field whose blend weights b share each
sample between the two. **Decision:** the fine depths follow the composite weights, not the face
field's alone, so that an object in front of the face gets fine samples too (the research code
draws an independent second set for the object, which misaligns the two fields).

With an object, one march produces the composite features, the depth and - through an extra
channel that is 0 for the face field and 1 for the object field - the object's share of each
pixel (`object_opacity`). The object field is also marched alone (`object_features`,
`object_weight_total`) for the losses and for inspection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch

from innout import ops
from innout.render.settings import RenderSettings, RenderUniforms, draw_uniforms


@dataclass
class FieldSamples:
    """A field at P points per batch item: raw density [B, P] (the marcher applies
    softplus(raw - 1)), features [B, P, C] in [0, 1] and, for an object field, the blend weight
    b [B, P] in [0, 1] (its share of each sample; None for the face field)."""

    density: torch.Tensor
    features: torch.Tensor
    blend: torch.Tensor | None = None


#: A radiance field: world points [B, P, 3] and the ops backend -> its samples there.
Field = Callable[[torch.Tensor, ops.Backend], FieldSamples]


@dataclass
class CompositeRays:
    """What `render_rays` returns for [B, M] rays (K samples per ray, D of them coarse).

    features: [B, M, C] composite features (2F - 1); depth [B, M]; weight_total [B, M]. With an
    object field: object_opacity [B, M] (sum_i T_i b_i alpha^O_i, the object layer's alpha);
    object_features [B, M, C] and object_weight_total [B, M] (the object field marched alone);
    blend [B, M, K] (sorted samples), blend_coarse [B, M, D] and blend_fine [B, M, K - D] (for the
    regularisers), object_weights [B, M, K - 1] (the object field's own march weights of the K - 1
    intervals) and sample_depths [B, M, K] (the sorted depths). Without one these are None.
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
    object_weights: torch.Tensor | None = None
    sample_depths: torch.Tensor | None = None


def coarse_depths(
    batch: int,
    rays: int,
    settings: RenderSettings,
    uniforms: torch.Tensor | None,
    like: torch.Tensor,
) -> torch.Tensor:
    """Coarse depths [N, M, D] in [ray_start, ray_end] (dtype/device of `like`); `uniforms`
    [N, M, D] jitter them, None gives the evenly spaced depths."""
    samples = settings.coarse_samples
    if settings.disparity_space_sampling:
        steps = torch.linspace(0, 1, samples, dtype=like.dtype, device=like.device)
        s = steps.expand(batch, rays, samples)
        if uniforms is not None:
            s = s + uniforms.to(like.dtype) / (samples - 1)
        return 1.0 / ((1.0 / settings.ray_start) * (1 - s) + (1.0 / settings.ray_end) * s)
    near = torch.full((batch, rays), settings.ray_start, dtype=like.dtype, device=like.device)
    far = torch.full_like(near, settings.ray_end)
    kernels = ops.backend(settings.backend)
    return kernels.stratified_sample(
        near, far, samples, uniforms=uniforms, deterministic=uniforms is None
    )


def _evaluate(
    field: Field,
    kernels: ops.Backend,
    origins: torch.Tensor,
    directions: torch.Tensor,
    depths: torch.Tensor,
) -> FieldSamples:
    """The field at o + t d for depths [B, M, K]: density [B, M, K], features [B, M, K, C]."""
    batch, rays, samples = depths.shape
    points = (origins.unsqueeze(2) + depths.unsqueeze(-1) * directions.unsqueeze(2)).reshape(
        batch, rays * samples, 3
    )
    out = field(points, kernels)
    blend = None if out.blend is None else out.blend.reshape(batch, rays, samples)
    # Decoders return the density as a view of their whole output ([B, P, 1 + C] or more); a
    # compact copy lets that buffer go now instead of living as long as the density does.
    density = out.density.reshape(batch, rays, samples).contiguous()
    return FieldSamples(density, out.features.reshape(batch, rays, samples, -1), blend)


def _merge(coarse: torch.Tensor, fine: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Coarse and fine values [B, M, D(, C)] and [B, M, N(, C)] in sorted-depth order."""
    both = torch.cat([coarse, fine], dim=2)
    index = order if both.dim() == 3 else order.unsqueeze(-1).expand_as(both)
    return torch.gather(both, 2, index)


def _march(kernels: ops.Backend, depths: torch.Tensor, face: FieldSamples, obj=None):
    if obj is None:
        return kernels.ray_march(depths, face.density, face.features)
    return kernels.composite_march(
        depths, face.density, face.features, obj.density, obj.features, obj.blend
    )


def _with_share_channel(samples: FieldSamples, share: float) -> FieldSamples:
    """The samples with one more feature channel, constant `share` (0 face, 1 object)."""
    extra = samples.features.new_full((*samples.features.shape[:-1], 1), share)
    return FieldSamples(samples.density, torch.cat([samples.features, extra], -1), samples.blend)


def _render_chunk(
    face: Field,
    obj: Field | None,
    kernels: ops.Backend,
    origins: torch.Tensor,
    directions: torch.Tensor,
    settings: RenderSettings,
    uniforms: RenderUniforms,
    blend_scale: torch.Tensor | None,
) -> CompositeRays:
    batch, rays, _ = origins.shape

    def evaluate(depths: torch.Tensor) -> tuple[FieldSamples, FieldSamples | None]:
        face_samples = _evaluate(face, kernels, origins, directions, depths)
        if obj is None:
            return face_samples, None
        obj_samples = _evaluate(obj, kernels, origins, directions, depths)
        if blend_scale is not None:
            obj_samples.blend = obj_samples.blend * blend_scale.unsqueeze(-1)
        return face_samples, obj_samples

    depths = coarse_depths(batch, rays, settings, uniforms.stratified, origins)
    face_samples, obj_samples = evaluate(depths)
    blend_coarse = blend_fine = None
    if obj_samples is not None:
        blend_coarse, blend_fine = obj_samples.blend, obj_samples.blend[..., :0]
    if settings.fine_samples > 0:
        with torch.no_grad():
            _, _, weights = _march(kernels, depths, face_samples, obj_samples)
            fine_depths = kernels.importance_sample(
                depths,
                weights,
                settings.fine_samples,
                uniforms=uniforms.importance,
                deterministic=uniforms.importance is None,
            )
        face_fine, obj_fine = evaluate(fine_depths)
        depths, order = torch.sort(torch.cat([depths, fine_depths], dim=-1), dim=-1)
        face_samples = FieldSamples(
            _merge(face_samples.density, face_fine.density, order),
            _merge(face_samples.features, face_fine.features, order),
        )
        if obj_samples is not None:
            blend_fine = obj_fine.blend
            obj_samples = FieldSamples(
                _merge(obj_samples.density, obj_fine.density, order),
                _merge(obj_samples.features, obj_fine.features, order),
                _merge(obj_samples.blend, obj_fine.blend, order),
            )
    if obj_samples is None:
        features, depth, weights = _march(kernels, depths, face_samples)
        features = _white_back(features, weights, settings)
        return CompositeRays(features, depth, weights.sum(-1))
    composite, depth, weights = _march(
        kernels,
        depths,
        _with_share_channel(face_samples, 0.0),
        _with_share_channel(obj_samples, 1.0),
    )
    object_features, _, object_weights = _march(kernels, depths, obj_samples)
    return CompositeRays(
        features=_white_back(composite[..., :-1], weights, settings),
        depth=depth,
        weight_total=weights.sum(-1),
        object_opacity=(composite[..., -1] + 1) / 2,
        object_features=object_features,
        object_weight_total=object_weights.sum(-1),
        blend=obj_samples.blend,
        blend_coarse=blend_coarse,
        blend_fine=blend_fine,
        object_weights=object_weights,
        sample_depths=depths,
    )


def _white_back(features: torch.Tensor, weights: torch.Tensor, settings: RenderSettings):
    if not settings.white_back:
        return features
    # EG3D adds the background's share (1 - sum W) before mapping F -> 2F - 1, hence the 2.
    return features + 2 * (1 - weights.sum(-1, keepdim=True))


def render_rays(
    face: Field,
    origins: torch.Tensor,
    directions: torch.Tensor,
    settings: RenderSettings,
    *,
    object_field: Field | None = None,
    blend_scale: torch.Tensor | None = None,
    uniforms: RenderUniforms | None = None,
    generator: torch.Generator | None = None,
) -> CompositeRays:
    """Volume-renders rays through the face field and, optionally, an object field.

    Args:
        face: the in-distribution field (EG3D's tri-planes and decoder), see `Field`.
        origins, directions: [B, M, 3] rays (unit directions).
        settings: sample counts, depth range, determinism, chunking and the ops backend.
        object_field: the object field (its samples carry blend weights), or None for EG3D.
        blend_scale: optional [B, M] factor in [0, 1] on every blend weight of a ray (0 removes the
            object from that ray: object removal).
        uniforms: the render's random draws (see RenderUniforms); drawn from `generator` (or the
            global generator) when None, and unused with settings.deterministic.
        generator: torch.Generator for the draws.
    """
    batch, rays, _ = origins.shape
    if blend_scale is not None and tuple(blend_scale.shape) != (batch, rays):
        raise ValueError(
            f"blend_scale must have shape [{batch}, {rays}], got {tuple(blend_scale.shape)}"
        )
    kernels = ops.backend(settings.backend)
    if uniforms is None:
        uniforms = draw_uniforms(batch, rays, settings, origins.device, generator)
    chunk = settings.chunk_rays or rays
    parts: list[CompositeRays] = []
    for start in range(0, rays, chunk):
        part = slice(start, start + chunk)
        parts.append(
            _render_chunk(
                face,
                object_field,
                kernels,
                origins[:, part],
                directions[:, part],
                settings,
                RenderUniforms(
                    None if uniforms.stratified is None else uniforms.stratified[:, part],
                    None if uniforms.importance is None else uniforms.importance[:, part],
                ),
                None if blend_scale is None else blend_scale[:, part],
            )
        )
    if len(parts) == 1:
        return parts[0]
    merged = {}
    for field in fields(CompositeRays):
        values = [getattr(p, field.name) for p in parts]
        merged[field.name] = None if values[0] is None else torch.cat(values, dim=1)
    return CompositeRays(**merged)
