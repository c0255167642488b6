"""The innout-tiny architecture: EG3D's generator classes at a size a CPU can train and run.

docs/synthetic-world.md: tri-planes of 128^2 x 96 channels (3 x 32, as EG3D), neural rendering at
64^2 with 32 + 32 samples per ray, `SuperresolutionHybrid2X` to 128^2. The mapping is not
conditioned on the camera (`c_gen_conditioning_zero`): the synthetic world does not depend on the
viewpoint, so there is nothing to learn from it. w is 512-dimensional because EG3D's
super-resolution hard-codes that size.
"""

from __future__ import annotations

import copy

from innout.eg3d import configs

#: The neural rendering resolution (raw images) and the super-resolved output size.
RAW_RESOLUTION = 64
OUTPUT_RESOLUTION = 128

_TINY_KWARGS = {
    "z_dim": 512,
    "w_dim": 512,
    "c_dim": 25,
    "img_resolution": OUTPUT_RESOLUTION,
    "img_channels": 3,
    "plane_resolution": 128,
    "mapping_kwargs": {"num_layers": 2},
    "channel_base": 4096,
    "channel_max": 64,
    "fused_modconv_default": "inference_only",
    "num_fp16_res": 0,
    "conv_clamp": None,
    "sr_num_fp16_res": 0,
    "sr_kwargs": {
        "channel_base": 4096,
        "channel_max": 64,
        "fused_modconv_default": "inference_only",
    },
}


def tiny_init_kwargs() -> dict:
    """Constructor arguments of innout-tiny's TriPlaneGenerator (a fresh copy)."""
    kwargs = copy.deepcopy(_TINY_KWARGS)
    rendering = configs.rendering_kwargs(OUTPUT_RESOLUTION, "SuperresolutionHybrid2X", 32)
    rendering["c_gen_conditioning_zero"] = True
    # EG3D's decoder learning-rate multiplier: densities must grow from ~0 to opaque values
    # (raw ~ 50-100) while everything else moves little; 10x is what regression training needs.
    rendering["decoder_lr_mul"] = 10.0
    kwargs["rendering_kwargs"] = rendering
    return kwargs
