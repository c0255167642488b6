"""composite_march / ray_march: volume rendering of one (EG3D) or two blended (In-N-Out) fields.

The maths is in cpp/include/innout/composite_march.h, the specification in
:func:`innout.ops.reference.composite_march` and :func:`innout.ops.reference.ray_march`.
"""

from __future__ import annotations

import torch

from innout.ops import _native
from innout.ops._checks import check_blend_values, check_composite_march

_OP = "composite_march"
_GRAD_NAMES = (
    "grad_depths",
    "grad_density_in",
    "grad_features_in",
    "grad_density_out",
    "grad_features_out",
    "grad_blend",
)


def _buffers(depths, density_in, features_in, density_out, features_out, blend) -> dict:
    batch, rays, samples = depths.shape
    return {
        "num_rays": batch * rays,
        "num_samples": samples,
        "channels": features_in.shape[-1],
        "depths": depths,
        "density_in": density_in,
        "features_in": features_in,
        "density_out": density_out,
        "features_out": features_out,
        "blend": blend,
    }


def _contiguous(*tensors):
    return [t.contiguous() if t is not None else None for t in tensors]


def _empty_outputs(depths: torch.Tensor, channels: int, record_intervals: bool):
    batch, rays, samples = depths.shape
    return (
        depths.new_empty(batch, rays, channels),
        depths.new_empty(batch, rays),
        depths.new_empty(batch, rays, samples - 1),
        depths.new_empty(batch, rays, samples - 1),
        depths.new_empty(batch, rays, samples - 1, 4) if record_intervals else depths.new_empty(0),
    )


@torch.library.custom_op("innout::composite_march", mutates_args=())
def _composite_march(
    depths: torch.Tensor,
    density_in: torch.Tensor,
    features_in: torch.Tensor,
    density_out: torch.Tensor | None,
    features_out: torch.Tensor | None,
    blend: torch.Tensor | None,
    record_intervals: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    check_composite_march(depths, density_in, features_in, density_out, features_out, blend)
    if blend is not None:
        # Here, on real data, rather than in the public function, which torch.compile traces: a
        # check of values there would break the graph. The backward reuses the checked inputs.
        check_blend_values(_OP, blend)
    inputs = _contiguous(depths, density_in, features_in, density_out, features_out, blend)
    outputs = _empty_outputs(depths, features_in.shape[-1], record_intervals)
    composite, depth, weights, transmittance, interval_record = outputs
    if depth.numel() > 0:
        buffers = _buffers(*inputs)
        buffers.update(
            composite=composite,
            depth=depth,
            weights=weights,
            transmittance=transmittance,
            interval_record=interval_record,
        )
        _native.call("composite_march_forward", depths.device, depths.dtype, buffers)
    return outputs


@_composite_march.register_fake
def _(depths, density_in, features_in, density_out, features_out, blend, record_intervals):
    check_composite_march(depths, density_in, features_in, density_out, features_out, blend)
    return _empty_outputs(depths, features_in.shape[-1], record_intervals)


@torch.library.custom_op("innout::composite_march_backward", mutates_args=())
def _composite_march_backward(
    grad_composite: torch.Tensor,
    grad_depth: torch.Tensor,
    grad_weights: torch.Tensor,
    depths: torch.Tensor,
    density_in: torch.Tensor,
    features_in: torch.Tensor,
    density_out: torch.Tensor | None,
    features_out: torch.Tensor | None,
    blend: torch.Tensor | None,
    weights: torch.Tensor,
    transmittance: torch.Tensor,
    interval_record: torch.Tensor,
    needs_grad: list[bool],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    check_composite_march(depths, density_in, features_in, density_out, features_out, blend)
    inputs = _contiguous(depths, density_in, features_in, density_out, features_out, blend)
    grads = [
        _native.empty(source.shape, source) if need and source is not None else depths.new_empty(0)
        for need, source in zip(needs_grad, inputs)
    ]
    if depths.shape[0] * depths.shape[1] > 0 and any(g.numel() > 0 for g in grads):
        dtype = depths.dtype
        buffers = _buffers(*inputs)
        buffers.update(
            weights=weights.contiguous(),
            transmittance=transmittance.contiguous(),
            interval_record=interval_record.contiguous(),
            grad_composite=grad_composite.to(dtype).contiguous(),
            grad_depth=grad_depth.to(dtype).contiguous(),
            grad_weights=grad_weights.to(dtype).contiguous(),
        )
        buffers.update(dict(zip(_GRAD_NAMES, grads)))
        _native.call("composite_march_backward", depths.device, dtype, buffers)
    return tuple(grads)


@_composite_march_backward.register_fake
def _(
    grad_composite,
    grad_depth,
    grad_weights,
    depths,
    density_in,
    features_in,
    density_out,
    features_out,
    blend,
    weights,
    transmittance,
    interval_record,
    needs_grad,
):
    inputs = (depths, density_in, features_in, density_out, features_out, blend)
    return tuple(
        torch.empty_like(source) if (need and source is not None) else depths.new_empty(0)
        for need, source in zip(needs_grad, inputs)
    )


def _setup_context(ctx, inputs, output) -> None:
    _, _, weights, transmittance, interval_record = output
    ctx.mark_non_differentiable(transmittance, interval_record)
    ctx.save_for_backward(*inputs[:6], weights, transmittance, interval_record)


def _backward(ctx, grad_composite, grad_depth, grad_weights, _grad_transmittance, _grad_record):
    *inputs, weights, transmittance, interval_record = ctx.saved_tensors
    needs = [bool(n) for n in ctx.needs_input_grad[:6]]
    grads = _composite_march_backward(
        grad_composite,
        grad_depth,
        grad_weights,
        *inputs,
        weights,
        transmittance,
        interval_record,
        needs,
    )
    return (*(g if need else None for g, need in zip(grads, needs)), None)


_composite_march.register_autograd(_backward, setup_context=_setup_context)


def composite_march(
    depths: torch.Tensor,
    density_in: torch.Tensor,
    features_in: torch.Tensor,
    density_out: torch.Tensor | None = None,
    features_out: torch.Tensor | None = None,
    blend: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """In-N-Out's composite volume rendering of an InD and an OOD field (docs/method.md section
    3.1).

    Both fields are sampled at the same sorted depths; with midpoint values on the K-1 intervals,
    ``T_i = prod_{j<i} [(1 - b_j a^O_j)(1 - (1 - b_j) a^I_j) + 1e-10]``,
    ``F = sum_i T_i [b_i a^O_i c^O_i + (1 - b_i) a^I_i c^I_i]`` and
    ``W_i = T_i [b_i a^O_i + (1 - b_i) a^I_i]`` where ``a = 1 - exp(-softplus(raw - 1) delta)``.

    Args:
        depths: [B, R, K] sorted depths along unit rays (K >= 2). Sorting is not checked: other
            depths give the formulas' values, as the reference does.
        density_in: [B, R, K] raw InD density (any real; NaN propagates to its ray).
        features_in: [B, R, K, C] InD features, nominally in [0, 1] (EG3D's padded sigmoid gives
            [-0.001, 1.001]); not checked, the composite is linear in them.
        density_out, features_out, blend: the OOD field's raw density [B, R, K], features
            [B, R, K, C] and blend weight b [B, R, K]; all None for EG3D's ray marcher. Every b
            must lie in [0, 1] (ValueError otherwise, NaN included): outside it weights turn
            negative and the transmittance can grow past 1.

    Returns:
        composite [B, R, C] (already mapped to 2F - 1), depth [B, R] (weighted mean of midpoint
        depths, clamped to the ray's [t_first, t_last]) and weights [B, R, K-1]. Differentiable with
        respect to every input (depths included).
    """
    check_composite_march(depths, density_in, features_in, density_out, features_out, blend)
    inputs = (depths, density_in, features_in, density_out, features_out, blend)
    # Recording sigma and the softplus slope per interval (16 bytes each) spares the backward two
    # thirds of its transcendental calls; without autograd nothing is recorded.
    record = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs)
    composite, depth, weights, _, _ = _composite_march(*inputs, record)
    return composite, depth, weights


def ray_march(
    depths: torch.Tensor, density: torch.Tensor, features: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """EG3D's MipRayMarcher2: :func:`composite_march` without an OOD field.

    Args:
        depths: [B, R, K] sorted depths; density: [B, R, K] raw; features: [B, R, K, C].

    Returns:
        composite [B, R, C] (2F - 1), depth [B, R], weights [B, R, K-1].
    """
    return composite_march(depths, density, features)
