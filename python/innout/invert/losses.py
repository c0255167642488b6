"""The loss terms and learning-rate schedule of the inversion (docs/method.md section 3.2)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812

#: Clamp of b^2 inside the blend entropy (the research value).
ENTROPY_EPS = 1e-19


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Images [N, C, H, W] resized to size x size (antialiased bilinear; identity if equal)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)  # fmt: skip


def l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image [N]."""
    return (a - b).square().flatten(1).mean(1)


def masked_l2(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Squared error [N] over the pixels where mask [N, 1, H, W] is 1, normalised by their count
    (0 for an image without such pixels)."""
    squared = (a - b).square().mean(1, keepdim=True) * mask
    return squared.flatten(1).sum(1) / mask.flatten(1).sum(1).clamp_min(1)


def layer_delta(ws: torch.Tensor) -> torch.Tensor:
    """sum_{i=1..num_ws-2} ||w[i] - w[0]||_2 per latent [N] (layers 1..12 of EG3D's 14, as the
    research code; the last layer drives only the super-resolution)."""
    last = max(ws.shape[1] - 1, 1)
    return (ws[:, 1:last] - ws[:, :1]).norm(dim=-1).sum(-1)


def blend_entropy(blend: torch.Tensor) -> torch.Tensor:
    """Mean binary entropy of p = b^2 over every sample: pushes each b to 0 or 1.

    The research clamp [1e-19, 1 - 1e-19] is [1e-19, 1] in float32, where log(1 - p) is -inf
    for a saturated b = 1 and the loss NaN; the upper bound here is the largest float below 1."""
    upper = 1 - torch.finfo(blend.dtype).eps
    p = blend.square().clamp(ENTROPY_EPS, upper)
    return -(p * p.log() + (1 - p) * (1 - p).log()).mean()


def blend_area(blend_coarse: torch.Tensor, blend_fine: torch.Tensor) -> torch.Tensor:
    """Mean over rays of (max_k b_k)^2, coarse and fine samples averaged: keeps the object small."""
    terms = [b.amax(-1).square().mean() for b in (blend_coarse, blend_fine) if b.shape[-1] > 0]
    return torch.stack(terms).mean()


def distortion(
    weights: torch.Tensor, depths: torch.Tensor, near: float, far: float
) -> torch.Tensor:
    """mip-NeRF 360's distortion loss of ray weights [..., K - 1] on the intervals between sorted
    depths [..., K], depths normalised to [0, 1] over [near, far]; mean over rays.

    sum_ij w_i w_j |m_i - m_j| + 1/3 sum_i w_i^2 delta_i (m: interval midpoints, delta: lengths)
    is small when a ray's weight sits in one short interval: it removes the thin fog a field
    spreads along a ray to explain a pixel from one view, which shows as floaters in others.
    The pairwise sum is computed in O(K) with prefix sums (the midpoints are sorted).
    """
    scaled = (depths - near) / (far - near)
    mid = (scaled[..., 1:] + scaled[..., :-1]) / 2
    delta = scaled[..., 1:] - scaled[..., :-1]
    before = torch.cumsum(weights, -1) - weights  # sum_{j<i} w_j
    moment_before = torch.cumsum(weights * mid, -1) - weights * mid  # sum_{j<i} w_j m_j
    pairwise = 2 * (weights * (mid * before - moment_before)).sum(-1)
    own = (weights.square() * delta).sum(-1) / 3
    return (pairwise + own).mean()


def ramped_lr(base: float, step: int, steps: int, rampup: float, rampdown: float) -> float:
    """StyleGAN's projector schedule: linear ramp-up over the first `rampup` fraction of the
    steps, cosine ramp-down over the last `rampdown` fraction (t at the middle of the step, so
    that neither the first nor the last step has a zero learning rate)."""
    t = (step + 0.5) / max(steps, 1)
    scale = 1.0
    if rampdown > 0:
        scale = min(1.0, (1 - t) / rampdown)
        scale = 0.5 - 0.5 * math.cos(scale * math.pi)
    if rampup > 0:
        scale *= min(1.0, t / rampup)
    return base * scale
