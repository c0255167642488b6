"""Volume rendering: the one ray pipeline every renderer of innout runs (EG3D's, In-N-Out's
composite, the synthetic world's and exported scenes'), and its settings."""

from innout.render.pipeline import CompositeRays, Field, FieldSamples, coarse_depths, render_rays
from innout.render.settings import RenderSettings, RenderUniforms, draw_uniforms

__all__ = [
    "CompositeRays",
    "Field",
    "FieldSamples",
    "RenderSettings",
    "RenderUniforms",
    "coarse_depths",
    "draw_uniforms",
    "render_rays",
]
