"""Small EG3D generators with random weights for tests (the official architecture, tiny sizes)."""

from __future__ import annotations

import torch
from innout.eg3d import configs
from innout.eg3d.generator import TriPlaneGenerator

SR_RESOLUTION = {
    "training.superresolution.SuperresolutionHybrid2X": 128,
    "training.superresolution.SuperresolutionHybrid4X": 256,
    "training.superresolution.SuperresolutionHybrid8X": 512,
    "training.superresolution.SuperresolutionHybrid8XDC": 512,
}


def rendering_kwargs(
    superresolution_module: str = "training.superresolution.SuperresolutionHybrid2X",
    samples: int = 6,
) -> dict:
    short_name = superresolution_module.rsplit(".", 1)[-1]
    return configs.rendering_kwargs(SR_RESOLUTION[superresolution_module], short_name, samples)


def init_kwargs(
    superresolution_module: str = "training.superresolution.SuperresolutionHybrid2X",
    samples: int = 6,
) -> dict:
    """Official-style constructor arguments at a tiny size (channel_base 256, channel_max 16)."""
    return {
        "z_dim": 16,
        "w_dim": 512,  # EG3D's super-resolution hard-codes w_dim 512
        "mapping_kwargs": {"num_layers": 2},
        "channel_base": 256,
        "channel_max": 16,
        "fused_modconv_default": "inference_only",
        "rendering_kwargs": rendering_kwargs(superresolution_module, samples),
        "num_fp16_res": 0,
        "sr_num_fp16_res": 4,
        "sr_kwargs": {
            "channel_base": 256,
            "channel_max": 16,
            "fused_modconv_default": "inference_only",
        },
        "conv_clamp": None,
        "c_dim": 25,
        "img_resolution": SR_RESOLUTION[superresolution_module],
        "img_channels": 3,
    }


def small_generator(seed: int = 0, resolution: int = 16, **kwargs) -> TriPlaneGenerator:
    torch.manual_seed(seed)
    generator = TriPlaneGenerator(**init_kwargs(**kwargs)).eval().requires_grad_(False)
    generator.neural_rendering_resolution = resolution
    with torch.no_grad():  # non-trivial buffers, as a trained checkpoint has
        generator.backbone.mapping.w_avg.normal_()
    return generator
