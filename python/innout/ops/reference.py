"""Pure-PyTorch reference implementations of innout's ops: the specification of the fast kernels.

Every function here computes exactly what the corresponding op in :mod:`innout.ops` computes, with
plain PyTorch (``grid_sample``, ``cumprod``, ``searchsorted``), following EG3D's and In-N-Out's
published formulas (see docs/method.md). They are slow and memory hungry on purpose - nothing is
fused - and serve as the test oracle, as the fallback where the compiled core is missing
(``backend="reference"``) and as readable documentation. They refuse exactly the inputs the ops
refuse, with the same errors (:mod:`innout.ops._checks`), so either backend can stand in for the
other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812

from innout.ops._checks import (
    check_blend_values,
    check_composite_march,
    check_count,
    check_importance_sample,
    check_pdf_weights,
    check_ray_bounds,
    check_stratified_sample,
    check_tensor,
    check_triplane_sample,
    check_uniform_values,
)
from innout.ops._uniforms import resolve_uniforms

#: EG3D's floor on each interval's transmittance factor (1 - alpha + 1e-10).
TRANSMITTANCE_FLOOR = 1e-10
#: Added to the smoothed coarse weights before importance sampling (EG3D).
IMPORTANCE_WEIGHT_BIAS = 0.01
#: Added to the pdf weights and used as the cdf-gap floor in EG3D's sample_pdf.
IMPORTANCE_PDF_EPSILON = 1e-5


def triplane_project(points: torch.Tensor, box_warp: float) -> torch.Tensor:
    """Projects world points onto EG3D's three planes.

    Args:
        points: [B, M, 3] world coordinates.
        box_warp: side of the cube [-box_warp/2, box_warp/2]^3 spanned by the planes.

    Returns:
        [B, 3, M, 2] grid_sample coordinates in [-1, 1]: (x, y), (x, z) and (z, x). The third
        pair is what EG3D's projection matrices produce (not (y, z)); pretrained weights depend
        on it.
    """
    coords = points * (2.0 / box_warp)
    return torch.stack(
        [coords[..., [0, 1]], coords[..., [0, 2]], coords[..., [2, 0]]],
        dim=1,
    )


def triplane_sample(
    planes: torch.Tensor, points: torch.Tensor, box_warp: float = 1.0
) -> torch.Tensor:
    """Mean of the bilinear samples of the three planes at each point.

    Args:
        planes: [B or 1, 3, C, H, W] tri-planes (a batch of 1 is shared by every item).
        points: [B, M, 3] world coordinates.
        box_warp: side of the cube the planes span.

    Returns:
        [B, M, C] features (grid_sample: bilinear, zero padding, align_corners=False). Points whose
        grid coordinates are not finite get NaN (grid_sample's NaN interpolation weights).
    """
    box_warp = check_triplane_sample(planes, points, box_warp)
    batch, num_points, _ = points.shape
    _, _, channels, height, width = planes.shape
    planes = planes.expand(batch, 3, channels, height, width)
    grid = triplane_project(points, box_warp).reshape(batch * 3, 1, num_points, 2)
    sampled = F.grid_sample(
        planes.reshape(batch * 3, channels, height, width),
        grid,
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )  # [B * 3, C, 1, M]
    return sampled.reshape(batch, 3, channels, num_points).permute(0, 1, 3, 2).mean(dim=1)


def _interval_alpha(raw_density: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """alpha = 1 - exp(-softplus(raw_mid - 1) delta) per interval: [..., K] -> [..., K-1]."""
    raw_mid = (raw_density[..., :-1] + raw_density[..., 1:]) / 2
    return 1 - torch.exp(-F.softplus(raw_mid - 1) * deltas)


def _mid(values: torch.Tensor) -> torch.Tensor:
    """Midpoints along the sample axis (dim -2 of [B, R, K, C])."""
    return (values[..., :-1, :] + values[..., 1:, :]) / 2


def _ray_depth(weights: torch.Tensor, depths: torch.Tensor) -> torch.Tensor:
    """sum W m / sum W, NaN (no weight) -> +inf, clamped to each ray's [t_first, t_last]."""
    depths_mid = (depths[..., :-1] + depths[..., 1:]) / 2
    weight_total = weights.sum(-1)
    numerator = (weights * depths_mid).sum(-1)
    # EG3D computes 0/0 = NaN and then nan_to_num(inf); the `where` gives the same values without
    # sending 0/0 through the division's gradient (which would be NaN, not 0).
    has_weight = weight_total > 0
    safe_total = torch.where(has_weight, weight_total, torch.ones_like(weight_total))
    depth = torch.where(
        has_weight, numerator / safe_total, torch.full_like(numerator, float("inf"))
    )
    return torch.clamp(depth, depths[..., 0], depths[..., -1])


def ray_march(
    depths: torch.Tensor, density: torch.Tensor, features: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """EG3D's MipRayMarcher2 (softplus clamp mode), literally.

    Args:
        depths: [B, R, K] sorted sample depths along unit rays.
        density: [B, R, K] raw densities (before softplus(. - 1)).
        features: [B, R, K, C] features in [0, 1].

    Returns:
        features [B, R, C] (mapped to 2F - 1), depth [B, R], weights [B, R, K-1].
    """
    check_composite_march(depths, density, features, None, None, None)
    deltas = depths[..., 1:] - depths[..., :-1]
    alpha = _interval_alpha(density, deltas)
    shifted = torch.cat([torch.ones_like(alpha[..., :1]), 1 - alpha + TRANSMITTANCE_FLOOR], dim=-1)
    weights = alpha * torch.cumprod(shifted, dim=-1)[..., :-1]
    composite = (weights.unsqueeze(-1) * _mid(features)).sum(-2)
    return composite * 2 - 1, _ray_depth(weights, depths), weights


def composite_march(
    depths: torch.Tensor,
    density_in: torch.Tensor,
    features_in: torch.Tensor,
    density_out: torch.Tensor | None = None,
    features_out: torch.Tensor | None = None,
    blend: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """In-N-Out's composite volume rendering of an InD and an OOD field (docs/method.md 3.1).

    Args:
        depths: [B, R, K] sorted sample depths shared by both fields.
        density_in, features_in: [B, R, K] raw density and [B, R, K, C] features of the InD field.
        density_out, features_out: the same for the OOD field, or None for EG3D's marcher.
        blend: [B, R, K] blend weights b in [0, 1] (OOD share of each sample; ValueError outside,
            NaN included), or None.

    Returns:
        composite features [B, R, C] (2F - 1), depth [B, R], weights [B, R, K-1] with
        T_i = prod_{j<i} [(1 - b_j a^O_j)(1 - (1 - b_j) a^I_j) + 1e-10] and
        W_i = T_i [b_i a^O_i + (1 - b_i) a^I_i] (midpoint values of every input).
    """
    check_composite_march(depths, density_in, features_in, density_out, features_out, blend)
    if density_out is None:
        return ray_march(depths, density_in, features_in)
    check_blend_values("composite_march", blend)
    deltas = depths[..., 1:] - depths[..., :-1]
    blend_mid = (blend[..., :-1] + blend[..., 1:]) / 2
    a_out = blend_mid * _interval_alpha(density_out, deltas)
    a_in = (1 - blend_mid) * _interval_alpha(density_in, deltas)
    factor = (1 - a_out) * (1 - a_in) + TRANSMITTANCE_FLOOR
    transmittance = torch.cumprod(
        torch.cat([torch.ones_like(factor[..., :1]), factor], dim=-1), dim=-1
    )[..., :-1]
    contribution = a_out.unsqueeze(-1) * _mid(features_out) + a_in.unsqueeze(-1) * _mid(features_in)
    composite = (transmittance.unsqueeze(-1) * contribution).sum(-2)
    weights = transmittance * (a_out + a_in)
    return composite * 2 - 1, _ray_depth(weights, depths), weights


def stratified_sample(
    near: torch.Tensor,
    far: torch.Tensor,
    num_samples: int,
    *,
    generator: torch.Generator | None = None,
    uniforms: torch.Tensor | None = None,
    deterministic: bool = False,
) -> torch.Tensor:
    """EG3D's stratified coarse depths (the signature of :func:`innout.ops.stratified_sample`).

    Args:
        near, far: [B, R] depth range of each ray: finite, near <= far (ValueError otherwise).
        num_samples: K.
        generator: the torch.Generator the jitter is drawn from (float32, shape [B, R, K]).
        uniforms: [B, R, K] jitter in [0, 1) to use instead of drawing (ValueError outside [0, 1]).
        deterministic: no jitter (u = 0).

    Returns:
        [B, R, K] depths near + (k + u_k) (far - near) / (K - 1).
    """
    check_stratified_sample(near, far, num_samples, None)
    shape = (near.shape[0], near.shape[1], num_samples)
    u = resolve_uniforms("stratified_sample", shape, near, uniforms, generator, deterministic, None)
    if uniforms is not None:
        check_uniform_values("stratified_sample", u)
    check_stratified_sample(near, far, num_samples, u)
    check_ray_bounds("stratified_sample", near, far)
    steps = torch.linspace(0, 1, num_samples, dtype=near.dtype, device=near.device)
    span = (far - near).unsqueeze(-1)
    depths = near.unsqueeze(-1) + steps * span
    if u is not None:
        depths = depths + u * span / (num_samples - 1)
    return depths


def importance_sample(
    depths: torch.Tensor,
    weights: torch.Tensor,
    num_importance: int,
    *,
    generator: torch.Generator | None = None,
    uniforms: torch.Tensor | None = None,
    deterministic: bool = False,
) -> torch.Tensor:
    """EG3D's sample_importance + sample_pdf (signature of :func:`innout.ops.importance_sample`).

    Args:
        depths: [B, R, K] coarse depths (K >= 4).
        weights: [B, R, K-1] coarse weights from the marcher (not differentiated): finite and
            >= 0 (ValueError otherwise).
        num_importance: N, fine samples per ray.
        generator: the torch.Generator the uniforms are drawn from (float32, shape [B, R, N]).
        uniforms: [B, R, N] uniforms in [0, 1] to use instead of drawing (ValueError outside).
        deterministic: linspace(0, 1, N) for every ray (EG3D's det=True).

    Returns:
        [B, R, N] fine depths (unsorted).
    """
    check_count("importance_sample", "num_importance", num_importance, 0)
    check_tensor("importance_sample", "depths", depths, "[B, R, K]", 3)
    shape = (depths.shape[0], depths.shape[1], num_importance)
    spread = torch.linspace(0, 1, num_importance, dtype=depths.dtype, device=depths.device)
    explicit = uniforms is not None
    uniforms = resolve_uniforms(
        "importance_sample", shape, depths, uniforms, generator, deterministic, spread
    )
    check_importance_sample(depths, weights, uniforms)
    if explicit:
        check_uniform_values("importance_sample", uniforms)
    check_pdf_weights("importance_sample", weights)
    depths, weights = depths.detach(), weights.detach()
    batch, rays, samples = depths.shape
    if batch * rays * num_importance == 0:  # nothing to draw (and no row to reshape to)
        return depths.new_empty(batch, rays, num_importance)
    flat_weights = weights.reshape(batch * rays, 1, samples - 1)
    smoothed = F.max_pool1d(flat_weights, 2, 1, padding=1)
    smoothed = F.avg_pool1d(smoothed, 2, 1).reshape(batch * rays, samples - 1)
    smoothed = smoothed + IMPORTANCE_WEIGHT_BIAS
    bins = 0.5 * (depths[..., :-1] + depths[..., 1:]).reshape(batch * rays, samples - 1)
    pdf_weights = smoothed[:, 1:-1] + IMPORTANCE_PDF_EPSILON  # K-3 bins
    pdf = pdf_weights / pdf_weights.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1)  # K-2 entries
    u = uniforms.reshape(batch * rays, -1).contiguous()
    indices = torch.searchsorted(cdf, u, right=True)
    below = torch.clamp_min(indices - 1, 0)
    above = torch.clamp_max(indices, pdf.shape[-1])
    cdf_below, cdf_above = torch.gather(cdf, 1, below), torch.gather(cdf, 1, above)
    bins_below, bins_above = torch.gather(bins, 1, below), torch.gather(bins, 1, above)
    denom = cdf_above - cdf_below
    denom = torch.where(denom < IMPORTANCE_PDF_EPSILON, torch.ones_like(denom), denom)
    samples_out = bins_below + (u - cdf_below) / denom * (bins_above - bins_below)
    return samples_out.reshape(batch, rays, -1)
