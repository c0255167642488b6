"""Where the samplers' uniform numbers come from: passed in, a seeded generator, or none at all."""

from __future__ import annotations

import torch


def resolve_uniforms(
    op: str,
    shape: tuple[int, ...],
    like: torch.Tensor,
    uniforms: torch.Tensor | None,
    generator: torch.Generator | None,
    deterministic: bool,
    deterministic_values: torch.Tensor | None,
) -> torch.Tensor | None:
    """Returns the [*, N] uniforms an op uses.

    Precedence: explicit `uniforms` (checked against `shape`), then `deterministic_values` when
    `deterministic` (None meaning "no jitter"), then torch.rand with `generator` - drawn in
    float32 and row-major over `shape`, as EG3D draws them, so a shared seed gives the same draws.
    """
    if uniforms is not None:
        if not isinstance(uniforms, torch.Tensor) or tuple(uniforms.shape) != tuple(shape):
            got = tuple(uniforms.shape) if isinstance(uniforms, torch.Tensor) else type(uniforms)
            raise ValueError(f"{op}: uniforms must have shape {tuple(shape)}, got {got}")
        if uniforms.device != like.device:
            raise ValueError(f"{op}: uniforms are on {uniforms.device}, inputs on {like.device}")
        return uniforms.to(like.dtype)
    if deterministic:
        return None if deterministic_values is None else deterministic_values.expand(shape)
    draws = torch.rand(shape, generator=generator, device=like.device, dtype=torch.float32)
    return draws.to(like.dtype)
