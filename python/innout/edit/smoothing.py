"""Temporal smoothing of an edited video (docs/method.md section 3.3): a filter over frames applied
to the face latents, the object codes and the first super-resolution block's outputs."""

from __future__ import annotations

import torch

from innout.edit.specs import EditError

#: The research code's causal filter on w_t (frames t-2, t-1, t) and innout's centred variant.
SMOOTHING = {
    "none": None,
    "causal": (0.125, 0.375, 0.5),
    "centered": (0.25, 0.5, 0.25),
}


def smooth(values: torch.Tensor, mode: str) -> torch.Tensor:
    """Temporal filter of per-frame values [T, ...] (edges repeat the first / last frame)."""
    if mode not in SMOOTHING:
        raise EditError(f"smoothing must be one of {', '.join(SMOOTHING)}, got {mode!r}")
    taps = SMOOTHING[mode]
    if taps is None or values.shape[0] < 2:
        return values
    count = values.shape[0]
    offsets = (-2, -1, 0) if mode == "causal" else (-1, 0, 1)
    out = torch.zeros_like(values)
    for weight, offset in zip(taps, offsets):
        index = (torch.arange(count, device=values.device) + offset).clamp(0, count - 1)
        out = out + weight * values[index]
    return out


@torch.no_grad()
def superresolve_smoothed(
    superresolution: torch.nn.Module,
    rgb: torch.Tensor,
    features: torch.Tensor,
    ws: torch.Tensor,
    mode: str,
) -> torch.Tensor:
    """Super-resolves frames [T, ...] with the temporal filter `mode` applied to the first SR
    block's outputs (docs/method.md 3.3), frame by frame with a sliding window of block0 outputs."""
    if mode not in SMOOTHING:
        raise EditError(f"smoothing must be one of {', '.join(SMOOTHING)}, got {mode!r}")
    count = rgb.shape[0]
    taps = SMOOTHING[mode] or (1.0,)
    offsets = {"causal": (-2, -1, 0), "centered": (-1, 0, 1)}.get(mode, (0,))
    window: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def first(index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if index not in window:
            # A copy of the raw image goes in: the block adds into it in place.
            window[index] = superresolution.first_block(
                rgb[index : index + 1].clone(), features[index : index + 1],
                ws[index : index + 1], noise_mode="none",
            )  # fmt: skip
        return window[index]

    images = []
    for t in range(count):
        x = skip = None
        for weight, offset in zip(taps, offsets):
            x_i, skip_i = first(min(max(t + offset, 0), count - 1))
            x = weight * x_i if x is None else x + weight * x_i
            skip = weight * skip_i if skip is None else skip + weight * skip_i
        images.append(superresolution.second_block(x, skip, ws[t : t + 1], noise_mode="none"))
        for index in [i for i in window if i < t + min(offsets)]:
            del window[index]
    return torch.cat(images)
