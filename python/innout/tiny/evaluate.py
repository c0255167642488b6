"""Held-out quality of innout-tiny: PSNR of its renders against the analytic head world.

Held-out heads come from a seed that training never uses (`HELDOUT_SEED`); their cameras are drawn
like the training cameras. Raw images (64^2) are compared with the analytic render at 64^2, the
super-resolved images (128^2) with the analytic render at 128^2; PSNR is per image (images in
[-1, 1], peak-to-peak 2), then averaged.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from tqdm import tqdm

from innout.eg3d.generator import TriPlaneGenerator
from innout.media import to_uint8, write_png
from innout.metrics import psnr_from_mse
from innout.tiny.heads import ground_truth_images, sample_heads

#: Seed of the held-out heads (training uses seed, seed + 1 and seed + 2 of its config).
HELDOUT_SEED = 1_000_003


@torch.no_grad()
def evaluate_heldout(
    generator: TriPlaneGenerator,
    heads: int = 16,
    gt_samples: int = 64,
    progress: bool = False,
    seed: int = HELDOUT_SEED,
    images_out: str | os.PathLike | None = None,
) -> dict:
    """{"psnr_raw", "psnr_sr", "psnr_raw_upsampled", "heads", ...} on `heads` held-out pairs.

    `psnr_raw_upsampled` compares the raw image, bilinearly upsampled, with the 128^2 ground truth:
    the baseline the super-resolution network has to beat. With `images_out`, writes
    `heldout_XX.png` per head: analytic truth | raw (upsampled) | super-resolved.
    """
    rng = torch.Generator().manual_seed(seed)
    z, labels = sample_heads(heads, rng, generator.z_dim)
    raw_res = generator.neural_rendering_resolution
    out_res = generator.img_resolution
    raw_scores, sr_scores, up_scores = [], [], []
    for i in tqdm(range(heads), desc="evaluate", unit="head", disable=not progress):
        ws = generator.mapping(z[i : i + 1], labels[i : i + 1])
        rendered = generator.render(ws, labels[i : i + 1], seed=i)
        truth_raw = ground_truth_images(z[i : i + 1], labels[i : i + 1], raw_res, gt_samples)
        truth_out = ground_truth_images(z[i : i + 1], labels[i : i + 1], out_res, gt_samples)
        raw = rendered["image_raw"]
        upsampled = torch.nn.functional.interpolate(
            raw, size=(out_res, out_res), mode="bilinear", align_corners=False
        )
        raw_scores.append(psnr_from_mse((raw - truth_raw).square().mean()))
        sr_scores.append(psnr_from_mse((rendered["image"] - truth_out).square().mean()))
        up_scores.append(psnr_from_mse((upsampled - truth_out).square().mean()))
        if images_out is not None:
            row = torch.cat([truth_out[0], upsampled[0], rendered["image"][0]], dim=-1)
            write_png(Path(images_out) / f"heldout_{i:02d}.png", to_uint8(row))

    def mean(values: list[float]) -> float:
        return round(sum(values) / len(values), 3)

    return {
        "heads": heads,
        "heldout_seed": seed,
        "raw_resolution": raw_res,
        "output_resolution": out_res,
        "psnr_raw": mean(raw_scores),
        "psnr_sr": mean(sr_scores),
        "psnr_raw_upsampled": mean(up_scores),
        "psnr_sr_min": round(min(sr_scores), 3),
    }
