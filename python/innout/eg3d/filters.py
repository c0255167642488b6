"""FIR filtering of image batches: ``upfirdn2d`` and its wrappers (docs/eg3d.md §2.6-2.7).

Semantics and elementary torch operations follow the reference (non-CUDA) path of NVIDIA's
``upfirdn2d`` op, which is what EG3D runs on CPU, so float32 results match it to rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import torch
import torch.nn.functional as F  # noqa: N812

FilterLike = Union[None, float, Sequence[float], Sequence[Sequence[float]], torch.Tensor]
Padding = Union[int, Sequence[int]]


def setup_filter(
    f: FilterLike,
    device: str | torch.device = "cpu",
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1,
    separable: bool | None = None,
) -> torch.Tensor:
    """Turns a list of taps into the float32 FIR filter tensor ``upfirdn2d`` expects.

    A 1-D list of fewer than 8 taps becomes its 2-D outer product ([1,3,3,1] gives a 4x4 filter
    whose entries are multiples of 1/64); with ``normalize`` the filter is divided by its sum so a
    constant signal keeps its value.

    Returns:
        [fh, fw] (non-separable) or [taps] (separable) float32 tensor.
    """
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim not in (0, 1, 2) or f.numel() == 0:
        raise ValueError(f"a filter must be a non-empty scalar, 1-D or 2-D; got {tuple(f.shape)}")
    if f.ndim == 0:
        f = f.reshape(1)
    if separable is None:
        # Long 1-D filters are cheaper as two 1-D passes.
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if f.ndim != (1 if separable else 2):
        raise ValueError("a separable filter must be 1-D")
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)


def _parse_scaling(scaling: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(scaling, int):
        scaling = [scaling, scaling]
    sx, sy = (int(s) for s in scaling)
    if sx < 1 or sy < 1:
        raise ValueError(f"up/down factors must be >= 1, got {scaling}")
    return sx, sy


def _parse_padding(padding: Padding) -> tuple[int, int, int, int]:
    """int -> all sides; [x, y] -> [x, x, y, y]; [x0, x1, y0, y1] as given."""
    if isinstance(padding, int):
        padding = [padding, padding]
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        px, py = padding
        return px, px, py, py
    if len(padding) != 4:
        raise ValueError(f"padding must have 1, 2 or 4 entries, got {padding}")
    px0, px1, py0, py1 = padding
    return px0, px1, py0, py1


def _filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(fw, fh) of a filter; a 1-D (separable) filter has the same size on both axes."""
    if f is None:
        return 1, 1
    return int(f.shape[-1]), int(f.shape[0])


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1,
) -> torch.Tensor:
    """Upsample, pad, FIR-filter and downsample a batch of images (docs/eg3d.md §2.7).

    1. insert ``up - 1`` zeros after every sample (a trailing zero too): H -> H*up;
    2. zero-pad by (x0, x1, y0, y1); negative values crop;
    3. convolve (true convolution unless ``flip_filter``) with ``f * gain^(f.ndim/2)``;
    4. keep every ``down``-th sample.

    Args:
        x: [N, C, H, W] float tensor.
        f: [fh, fw] filter, [taps] separable filter, or None (identity).
        up: integer factor, or [ux, uy].
        down: integer factor, or [dx, dy].
        padding: int, [x, y] or [x0, x1, y0, y1], in upsampled pixels.
        flip_filter: False = convolution, True = correlation.
        gain: overall scale of the signal.

    Returns:
        [N, C, (H*uy + py0 + py1 - fh) // dy + 1, (W*ux + px0 + px1 - fw) // dx + 1].
    """
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects [N, C, H, W], got {tuple(x.shape)}")
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    if f.ndim not in (1, 2):
        raise ValueError(f"filter must be 1-D or 2-D, got {tuple(f.shape)}")
    batch, channels, height, width = x.shape
    upx, upy = _parse_scaling(up)
    downx, downy = _parse_scaling(down)
    px0, px1, py0, py1 = _parse_padding(padding)
    if width * upx + px0 + px1 < f.shape[-1] or height * upy + py0 + py1 < f.shape[0]:
        raise ValueError("the padded, upsampled image is smaller than the filter")

    # Zero insertion: view each pixel as a 1x1 cell and pad it to up x up.
    x = x.reshape(batch, channels, height, 1, width, 1)
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
    x = x.reshape(batch, channels, height * upy, width * upx)

    # Pad the positive sides, then crop the negative ones.
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]

    # conv2d correlates, so a true convolution needs the flipped filter.
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f[None, None].repeat([channels, 1] + [1] * f.ndim)
    if f.ndim == 4:
        x = F.conv2d(x, f, groups=channels)
    else:
        x = F.conv2d(x, f.unsqueeze(2), groups=channels)
        x = F.conv2d(x, f.unsqueeze(3), groups=channels)
    return x[:, :, ::downy, ::downx]


def filter2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1,
) -> torch.Tensor:
    """FIR-filters ``x`` keeping its size (``padding`` is added on top); see :func:`upfirdn2d`."""
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _filter_size(f)
    pad = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=pad, flip_filter=flip_filter, gain=gain)


def upsample2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int | Sequence[int] = 2,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1,
) -> torch.Tensor:
    """Upsamples [N, C, H, W] to [N, C, H*up, W*up] (plus ``padding``) with FIR filter ``f``.

    With a 4x4 filter and up=2 this is ``upfirdn2d(up=2, padding=(2,1,2,1), gain=4)``: the gain
    up^2 makes up for the zeros inserted between the samples.
    """
    upx, upy = _parse_scaling(up)
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _filter_size(f)
    pad = [
        px0 + (fw + upx - 1) // 2,
        px1 + (fw - upx) // 2,
        py0 + (fh + upy - 1) // 2,
        py1 + (fh - upy) // 2,
    ]
    return upfirdn2d(
        x, f, up=(upx, upy), padding=pad, flip_filter=flip_filter, gain=gain * upx * upy
    )


def downsample2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    down: int | Sequence[int] = 2,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1,
) -> torch.Tensor:
    """Downsamples [N, C, H, W] to [N, C, H/down, W/down] (plus ``padding``) with filter ``f``."""
    downx, downy = _parse_scaling(down)
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _filter_size(f)
    pad = [
        px0 + (fw - downx + 1) // 2,
        px1 + (fw - downx) // 2,
        py0 + (fh - downy + 1) // 2,
        py1 + (fh - downy) // 2,
    ]
    return upfirdn2d(x, f, down=(downx, downy), padding=pad, flip_filter=flip_filter, gain=gain)
