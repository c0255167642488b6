"""The synthetic head world: an analytic head family, occluding objects, videos with ground truth.

See docs/synthetic-world.md. Everything lives in EG3D's FFHQ frame and is rendered with innout's own
ops.
"""

from innout.synth.head import PARAMETER_RANGES, Z_PARAMETERS, HeadField, HeadParams, params_from_z
from innout.synth.objects import OBJECT_KINDS, ObjectField, ObjectSpec, make_object
from innout.synth.render import (
    RenderOutput,
    SynthRenderSettings,
    frontal_camera,
    render,
    render_field,
    render_object_only,
)
from innout.synth.video import (
    MASK_THRESHOLD,
    FrameResult,
    VideoSpec,
    generate_video,
    plan_video,
    render_frame,
    write_video_folder,
)

__all__ = [
    "MASK_THRESHOLD",
    "OBJECT_KINDS",
    "PARAMETER_RANGES",
    "Z_PARAMETERS",
    "FrameResult",
    "HeadField",
    "HeadParams",
    "ObjectField",
    "ObjectSpec",
    "RenderOutput",
    "SynthRenderSettings",
    "VideoSpec",
    "frontal_camera",
    "generate_video",
    "make_object",
    "params_from_z",
    "plan_video",
    "render",
    "render_field",
    "render_frame",
    "render_object_only",
    "write_video_folder",
]
