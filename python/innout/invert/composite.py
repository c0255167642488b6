"""In-N-Out's composite renderer: EG3D's field of each frame and the object field, through the ray
pipeline (docs/method.md section 3.1).

Both fields are evaluated at the same sorted samples; the fine samples follow the composite
weights (see :mod:`innout.render.pipeline` for the decision and the outputs). With no object field
this is exactly EG3D's renderer.
"""

from __future__ import annotations

import torch

from innout import ops
from innout.eg3d.renderer import Decoder, triplane_field
from innout.invert.object_field import ObjectField
from innout.render.pipeline import CompositeRays, Field, FieldSamples, render_rays
from innout.render.settings import RenderSettings, RenderUniforms


def object_field_at(field: ObjectField, frame_index: torch.Tensor, box_warp: float) -> Field:
    """The object field of frames `frame_index` [B] as a pipeline field (samples with blend)."""

    def evaluate(points: torch.Tensor, kernels: ops.Backend) -> FieldSamples:
        return FieldSamples(*field.evaluate(points, frame_index, box_warp, kernels))

    return evaluate


def render_composite(
    planes: torch.Tensor,
    decoder: Decoder,
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
        field: the object field (anything with ObjectField's `evaluate`), or None for EG3D's
            renderer alone.
        frame_index: [B] long, which frame (object code) each batch item is.
        origins, directions: [B, M, 3] rays (unit directions).
        settings: EG3D's sampling settings (sample counts, depth range, backend, chunking).
        blend_scale: optional [B, M] factor in [0, 1] on every blend weight of a ray (0 removes the
            object from that ray: object removal).
        uniforms / generator: the random draws (see `innout.render.pipeline.render_rays`).
    """
    batch = origins.shape[0]
    if frame_index.shape != (batch,):
        raise ValueError(f"frame_index must have shape [{batch}], got {tuple(frame_index.shape)}")
    object_field = None
    if field is not None:
        object_field = object_field_at(field, frame_index, settings.box_warp)
    return render_rays(
        triplane_field(planes, decoder, settings.box_warp),
        origins,
        directions,
        settings,
        object_field=object_field,
        blend_scale=blend_scale,
        uniforms=uniforms,
        generator=generator,
    )
