"""EG3D's volume renderer: its tri-plane field run through innout's ray pipeline.

`render_rays` is EG3D's ImportanceRenderer (docs/method.md section 2, docs/eg3d.md sections
2.9-2.13) - :func:`innout.render.pipeline.render_rays` with the face field alone - and with the
pipeline's additions: the rays are processed in chunks so that a render fits a memory budget, the
uniform numbers of the stratified jitter and of the importance sampling can be passed in (so a
render can be matched draw for draw with another implementation) or come from an explicit
torch.Generator, and `deterministic=True` renders without any random draw (no flicker in video).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from innout import ops
from innout.profiling import region
from innout.render.pipeline import Field, FieldSamples
from innout.render.pipeline import render_rays as render_fields
from innout.render.settings import RenderSettings, RenderUniforms

#: Signature of the decoder: mean tri-plane features [N, P, 32] -> {"sigma": [N, P, 1],
#: "rgb": [N, P, C]} (EG3D's OSGDecoder; ray directions are not used).
Decoder = Callable[[torch.Tensor], dict]


def triplane_field(planes: torch.Tensor, decoder: Decoder, box_warp: float) -> Field:
    """EG3D's radiance field: tri-planes [N, 3, 32, H, W] sampled at the points, then decoded."""

    def field(points: torch.Tensor, kernels: ops.Backend) -> FieldSamples:
        features = kernels.triplane_sample(planes, points, box_warp)
        with region("face_decoder"):
            out = decoder(features)
        return FieldSamples(out["sigma"][..., 0], out["rgb"])

    return field


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
    rays = render_fields(
        triplane_field(planes, decoder, settings.box_warp),
        origins,
        directions,
        settings,
        uniforms=uniforms,
        generator=generator,
    )
    return {"features": rays.features, "depth": rays.depth, "weight_total": rays.weight_total}
