"""Small EG3D generators with random weights for tests (the official architecture, tiny sizes)."""

from __future__ import annotations

import torch
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
    return {
        "image_resolution": SR_RESOLUTION[superresolution_module],
        "disparity_space_sampling": False,
        "clamp_mode": "softplus",
        "superresolution_module": superresolution_module,
        "c_gen_conditioning_zero": False,
        "gpc_reg_prob": 0.5,
        "c_scale": 1.0,
        "superresolution_noise_mode": "none",
        "density_reg": 0.25,
        "density_reg_p_dist": 0.004,
        "reg_type": "l1",
        "decoder_lr_mul": 1.0,
        "sr_antialias": True,
        "depth_resolution": samples,
        "depth_resolution_importance": samples,
        "ray_start": 2.25,
        "ray_end": 3.3,
        "box_warp": 1,
        "avg_camera_radius": 2.7,
        "avg_camera_pivot": [0, 0, 0.2],
    }


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
