"""Constructor arguments of the official EG3D generators (docs/eg3d.md sections 1.1 and 2.15).

Use them to build a generator of an official architecture with random weights (benchmarks, tests)
or to check a checkpoint's configuration. Real weights come from the checkpoint itself, whose own
`init_kwargs` are always the ones used when loading.
"""

from __future__ import annotations

import copy


def rendering_kwargs(
    resolution: int,
    superresolution: str,
    samples: int,
    ray: tuple[float, float] = (2.25, 3.3),
    box_warp: float = 1.0,
) -> dict:
    """EG3D's rendering_kwargs for the FFHQ camera set-up, as train.py builds them.

    Args:
        resolution: output image size; superresolution: the SR class name without its module
        (e.g. "SuperresolutionHybrid8XDC"); samples: coarse and importance samples per ray;
        ray: depth range; box_warp: side of the tri-plane cube.
    """
    return {
        "image_resolution": resolution,
        "disparity_space_sampling": False,
        "clamp_mode": "softplus",
        "superresolution_module": f"training.superresolution.{superresolution}",
        "c_gen_conditioning_zero": False,
        "gpc_reg_prob": 0.8,
        "c_scale": 1.0,
        "superresolution_noise_mode": "none",
        "density_reg": 0.25,
        "density_reg_p_dist": 0.004,
        "reg_type": "l1",
        "decoder_lr_mul": 1.0,
        "sr_antialias": True,
        "depth_resolution": samples,
        "depth_resolution_importance": samples,
        "ray_start": ray[0],
        "ray_end": ray[1],
        "box_warp": box_warp,
        "avg_camera_radius": 2.7,
        "avg_camera_pivot": [0, 0, 0.2],
    }


_FFHQ512 = {
    "z_dim": 512,
    "w_dim": 512,
    "mapping_kwargs": {"num_layers": 2},
    "channel_base": 32768,
    "channel_max": 512,
    "fused_modconv_default": "inference_only",
    "rendering_kwargs": rendering_kwargs(512, "SuperresolutionHybrid8XDC", 48),
    "num_fp16_res": 0,
    "sr_num_fp16_res": 4,
    "sr_kwargs": {
        "channel_base": 32768,
        "channel_max": 512,
        "fused_modconv_default": "inference_only",
    },
    "conv_clamp": None,
    "c_dim": 25,
    "img_resolution": 512,
    "img_channels": 3,
}

#: name -> (init_kwargs, neural rendering resolution)
ARCHITECTURES = {
    "ffhq512-128": (_FFHQ512, 128),
    "ffhq512-64": (_FFHQ512, 64),
}


def architecture(name: str) -> tuple[dict, int]:
    """(init_kwargs, neural_rendering_resolution) of an official architecture, as a fresh copy."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    kwargs, resolution = ARCHITECTURES[name]
    return copy.deepcopy(kwargs), resolution
