"""Image metrics on images in [-1, 1] (innout's convention): PSNR, SSIM and masked variants.

PSNR uses the peak-to-peak range of [-1, 1] (2), so it equals the PSNR of the same images mapped
to [0, 1] with peak 1. SSIM is Wang et al.'s (2004): an 11x11 Gaussian window of sigma 1.5,
K1 = 0.01, K2 = 0.03, computed on images mapped to [0, 1] over the "valid" window positions and
averaged over channels and positions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _check_pair(name: str, a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name}: images must have the same shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")  # fmt: skip
    if a.dim() != 4:
        raise ValueError(f"{name}: expected [N, C, H, W] images, got {tuple(a.shape)}")


def mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error per image [N]; with `mask` [N, 1, H, W] (1 = counted), over the masked
    pixels only (NaN for an image whose mask is empty)."""
    _check_pair("mse", a, b)
    squared = (a.double() - b.double()).square()
    if mask is None:
        return squared.flatten(1).mean(1)
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[2:] != a.shape[2:]:
        raise ValueError(f"mse: mask must be [N, 1, H, W] = [{a.shape[0]}, 1, {a.shape[2]}, "
                         f"{a.shape[3]}], got {tuple(mask.shape)}")  # fmt: skip
    weight = mask.double().expand_as(squared)
    return (squared * weight).flatten(1).sum(1) / weight.flatten(1).sum(1)


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """PSNR in dB per image [N] of images in [-1, 1] (peak-to-peak 2); +inf when identical."""
    return 10 * torch.log10(4.0 / mse(a, b, mask))


def psnr_from_mse(mse: float | torch.Tensor) -> float:
    """PSNR in dB of a mean squared error between images in [-1, 1] (peak-to-peak 2)."""
    return float(10 * torch.log10(4.0 / torch.as_tensor(mse, dtype=torch.float64)))


def _gaussian_window(channels: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    offsets = torch.arange(SSIM_WINDOW, dtype=dtype, device=device) - (SSIM_WINDOW - 1) / 2
    profile = torch.exp(-offsets.square() / (2 * SSIM_SIGMA**2))
    profile = profile / profile.sum()
    window = profile[:, None] * profile[None, :]
    return window.expand(channels, 1, SSIM_WINDOW, SSIM_WINDOW).contiguous()


def ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM at every valid window position, [N, C, H - 10, W - 10] (differentiable)."""
    _check_pair("ssim", a, b)
    if min(a.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"ssim: images must be at least {SSIM_WINDOW}x{SSIM_WINDOW}, got "
                         f"{a.shape[-2]}x{a.shape[-1]}")  # fmt: skip
    x, y = (a + 1) / 2, (b + 1) / 2
    channels = x.shape[1]
    window = _gaussian_window(channels, x.dtype, x.device)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x.square()
    var_y = blur(y * y) - mu_y.square()
    covariance = blur(x * y) - mu_x * mu_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    return ((2 * mu_x * mu_y + c1) * (2 * covariance + c2)) / (
        (mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2)
    )


def ssim(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean SSIM per image [N] of images in [-1, 1]; with `mask` [N, 1, H, W] (1 = counted),
    the mean over the window positions whose centre pixel is masked (NaN if there are none)."""
    values = ssim_map(a, b)
    if mask is None:
        return values.flatten(1).mean(1)
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[2:] != a.shape[2:]:
        raise ValueError(f"ssim: mask must be [N, 1, H, W] = [{a.shape[0]}, 1, {a.shape[2]}, "
                         f"{a.shape[3]}], got {tuple(mask.shape)}")  # fmt: skip
    border = SSIM_WINDOW // 2
    centres = mask[..., border : mask.shape[2] - border, border : mask.shape[3] - border]
    weight = centres.to(values.dtype).expand_as(values)
    return (values * weight).flatten(1).sum(1) / weight.flatten(1).sum(1)
