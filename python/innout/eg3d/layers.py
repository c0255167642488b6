"""StyleGAN2 building blocks used by EG3D, in plain PyTorch (float32, any device).

This module holds the stateless operators (``normalize_2nd_moment``, ``bias_act``,
``conv2d_resample`` and ``modulated_conv2d``; the FIR filter operators ``upfirdn2d`` /
``upsample2d`` / ``downsample2d`` / ``filter2d`` / ``setup_filter`` live in
:mod:`innout.eg3d.filters` and are re-exported here) and the two plain layers
``FullyConnectedLayer`` and ``Conv2dLayer``.

The operators follow the semantics of the *reference* (non-CUDA) paths of NVIDIA's ``torch_utils``
ops, which is what EG3D itself runs on CPU, and they use the same elementary torch operations in
the same order, so a float32 CPU run reproduces EG3D's numbers to rounding. See docs/eg3d.md
§2.3-2.7.

The network modules live in :mod:`innout.eg3d.mapping` (``MappingNetwork``) and
:mod:`innout.eg3d.synthesis` (``SynthesisLayer``, ``ToRGBLayer``, ``SynthesisBlock``,
``SynthesisNetwork``, ``Generator``); they are re-exported here lazily so that
``from innout.eg3d.layers import Generator`` works too.

Constructor arguments, attribute names and parameter/buffer names mirror EG3D's classes of the
same name, so ``module.load_state_dict(official.state_dict())`` works and a checkpoint loader can
rebuild a module from the official ``init_kwargs``.
"""

from __future__ import annotations

import importlib
import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F  # noqa: N812

# The FIR filter ops live in filters.py; they are part of this module's interface too.
from innout.eg3d.filters import (
    FilterLike,
    Padding,
    _filter_size,
    _parse_padding,
    downsample2d,
    filter2d,
    setup_filter,
    upfirdn2d,
    upsample2d,
)

# The network modules (MappingNetwork, SynthesisLayer, ..., Generator) are also reachable from
# here through the lazy __getattr__ at the end of this file.
__all__ = [
    "ACTIVATIONS",
    "Conv2dLayer",
    "FilterLike",
    "FullyConnectedLayer",
    "Padding",
    "bias_act",
    "conv2d_resample",
    "downsample2d",
    "filter2d",
    "modulated_conv2d",
    "normalize_2nd_moment",
    "setup_filter",
    "upfirdn2d",
    "upsample2d",
]


# ------------------------------------------------------------------------------------------------
# Elementwise helpers.


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scales ``x`` so that its mean square along ``dim`` is 1: ``x * rsqrt(mean(x^2) + eps)``.

    Args:
        x: any tensor, typically [N, C] latents.
        dim: the axis whose second moment is normalised.
        eps: added under the square root; keeps all-zero rows finite.
    """
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class ActivationSpec(NamedTuple):
    """An activation function with the default slope and output gain that StyleGAN2 uses."""

    func: Any
    def_alpha: float
    def_gain: float


def _lrelu(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return F.leaky_relu(x, alpha)


#: Activations known to ``bias_act``. The gain sqrt(2) of relu-like activations keeps the
#: activations' second moment at 1 for unit-variance inputs (He initialisation).
ACTIVATIONS: dict[str, ActivationSpec] = {
    "linear": ActivationSpec(lambda x, alpha: x, 0.0, 1.0),
    "relu": ActivationSpec(lambda x, alpha: F.relu(x), 0.0, math.sqrt(2)),
    "lrelu": ActivationSpec(_lrelu, 0.2, math.sqrt(2)),
    "tanh": ActivationSpec(lambda x, alpha: torch.tanh(x), 0.0, 1.0),
    "sigmoid": ActivationSpec(lambda x, alpha: torch.sigmoid(x), 0.0, 1.0),
    "elu": ActivationSpec(lambda x, alpha: F.elu(x), 0.0, 1.0),
    "selu": ActivationSpec(lambda x, alpha: F.selu(x), 0.0, 1.0),
    "softplus": ActivationSpec(lambda x, alpha: F.softplus(x), 0.0, 1.0),
    "swish": ActivationSpec(lambda x, alpha: torch.sigmoid(x) * x, 0.0, math.sqrt(2)),
}


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """Bias, activation, gain and clamp, in this order (docs/eg3d.md §2.3).

    Args:
        x: input of any shape.
        b: optional [x.shape[dim]] bias, broadcast along ``dim``.
        dim: the axis the bias runs along.
        act: a key of :data:`ACTIVATIONS`.
        alpha: slope for 'lrelu' (default 0.2).
        gain: output scale (default: the activation's ``def_gain``); skipped when it is 1.
        clamp: if given, the output is clamped to [-clamp, clamp] after the gain.

    Returns:
        A tensor shaped like ``x``.
    """
    spec = ACTIVATIONS[act]
    alpha = float(alpha if alpha is not None else spec.def_alpha)
    gain = float(gain if gain is not None else spec.def_gain)
    if clamp is not None and clamp < 0:
        raise ValueError(f"clamp must be >= 0, got {clamp}")
    if b is not None:
        if b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias of shape {tuple(b.shape)} does not fit dim {dim} of {x.shape}")
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-float(clamp), float(clamp))
    return x


# ------------------------------------------------------------------------------------------------
# Convolution with resampling.


def _conv(
    x: torch.Tensor,
    w: torch.Tensor,
    stride: int = 1,
    padding: Padding = 0,
    groups: int = 1,
    transpose: bool = False,
    flip_weight: bool = True,
) -> torch.Tensor:
    """conv2d or conv_transpose2d; ``flip_weight=False`` makes torch's correlation a convolution."""
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
) -> torch.Tensor:
    """2-D convolution with optional FIR up/downsampling; ``padding`` refers to the upsampled image.

    The cases EG3D uses, in the same elementary ops EG3D uses (which keeps float rounding equal):

    * up=1, down=1: one ``conv2d`` with symmetric zero padding;
    * up>1 with a kxk kernel: strided ``conv_transpose2d`` (the weight is not flipped when
      ``flip_weight`` is False, so the result is a true convolution), then ``upfirdn2d`` with
      gain up^2 to low-pass the zero-stuffed result (docs/eg3d.md §2.5);
    * up>1 with a 1x1 kernel: convolve first, then ``upsample``-style ``upfirdn2d``;
    * down>1: ``upfirdn2d`` (low-pass) first, then a strided or 1x1 convolution.

    Args:
        x: [N, C_in, H, W].
        w: [C_out, C_in // groups, kh, kw].
        f: low-pass filter from :func:`setup_filter`, or None.
        up, down: integer factors.
        padding: int, [x, y] or [x0, x1, y0, y1].
        groups: grouped convolution (used by the fused modulated convolution).
        flip_weight: True = correlation (torch's conv2d), False = convolution.
        flip_filter: False = convolve with ``f``, True = correlate.

    Returns:
        [N, C_out, H', W'].
    """
    if x.ndim != 4 or w.ndim != 4 or w.dtype != x.dtype:
        raise ValueError("conv2d_resample needs 4-D x and w of the same dtype")
    if not (isinstance(up, int) and up >= 1 and isinstance(down, int) and down >= 1):
        raise ValueError(f"up and down must be integers >= 1, got {up}, {down}")
    out_channels, in_per_group, kh, kw = (int(s) for s in w.shape)
    fw, fh = _filter_size(f)
    px0, px1, py0, py1 = _parse_padding(padding)

    # Extra padding so that the filter's support is centred on the resampled grid.
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    pads = [px0, px1, py0, py1]
    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=pads, flip_filter=flip_filter)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=pads, gain=up**2, flip_filter=flip_filter)
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=pads, flip_filter=flip_filter)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if up > 1:
        # conv_transpose2d wants [C_in, C_out/groups, kh, kw]; swap the axes within each group.
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw)
            w = w.transpose(1, 2).reshape(groups * in_per_group, out_channels // groups, kh, kw)
        # The transposed convolution already grows the image by (k - 1) and (k - up); what is
        # left of the padding goes to the filter step (the part common to both sides, if
        # negative, is cropped by conv_transpose2d's own padding).
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv(
            x,
            w,
            stride=up,
            padding=[pyt, pxt],
            groups=groups,
            transpose=True,
            flip_weight=not flip_weight,
        )
        pads = [px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt]
        x = upfirdn2d(x, f, padding=pads, gain=up**2, flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)
    # General case: asymmetric or negative padding without resampling.
    x = upfirdn2d(x, None, padding=pads, flip_filter=flip_filter)
    return _conv(x, w, groups=groups, flip_weight=flip_weight)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused_modconv: bool = True,
) -> torch.Tensor:
    """StyleGAN2's modulated (and optionally demodulated) convolution, docs/eg3d.md §2.5.

    The per-sample weight is ``weight[o, i] * styles[n, i]``; demodulation rescales each output
    channel by ``rsqrt(sum_{i,kh,kw} w^2 + 1e-8)`` so the output has unit variance again.
    ``noise`` is added after the convolution (and the demodulation).

    Two evaluation orders give the same numbers up to float rounding:
    fused (one grouped convolution with per-sample weights) and non-fused (scale the input by
    the styles, convolve with the shared weight, scale the output by the demodulation factors).

    Float16 inputs are not supported: innout always computes in float32 (EG3D does on CPU too),
    so EG3D's fp16 overflow pre-scaling is not needed.

    Args:
        x: [N, C_in, H, W].
        weight: [C_out, C_in, kh, kw].
        styles: [N, C_in].
        noise: optional tensor broadcastable to the output ([N,1,H',W'] or [H',W']).
        up, down, padding, resample_filter, flip_weight: see :func:`conv2d_resample`.
        demodulate: apply weight demodulation.
        fused_modconv: use the grouped-convolution path.

    Returns:
        [N, C_out, H', W'].
    """
    batch = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    if x.ndim != 4 or x.shape[1] != in_channels or tuple(styles.shape) != (batch, in_channels):
        raise ValueError(
            f"modulated_conv2d: x {tuple(x.shape)}, weight {tuple(weight.shape)} and styles "
            f"{tuple(styles.shape)} do not fit together"
        )

    w = None
    dcoefs = None
    if demodulate or fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(batch, 1, -1, 1, 1)  # [N, O, I, kh, kw]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
    if demodulate and fused_modconv:
        w = w * dcoefs.reshape(batch, -1, 1, 1, 1)

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch, -1, 1, 1)
        x = conv2d_resample(
            x,
            weight.to(x.dtype),
            f=resample_filter,
            up=up,
            down=down,
            padding=padding,
            flip_weight=flip_weight,
        )
        if demodulate and noise is not None:
            # One fused multiply-add, like EG3D's fma op.
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(batch, -1, 1, 1))
        if demodulate:
            return x * dcoefs.to(x.dtype).reshape(batch, -1, 1, 1)
        if noise is not None:
            return x.add_(noise.to(x.dtype))
        return x

    # Fused: fold the batch into the channel axis and run one grouped convolution.
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(
        x,
        w.to(x.dtype),
        f=resample_filter,
        up=up,
        down=down,
        padding=padding,
        groups=batch,
        flip_weight=flip_weight,
    )
    x = x.reshape(batch, -1, *x.shape[2:])
    if noise is not None:
        x = x.add_(noise)
    return x


# ------------------------------------------------------------------------------------------------
# Layers.


class FullyConnectedLayer(torch.nn.Module):
    """Dense layer with equalised learning rate (docs/eg3d.md §2.3).

    The stored weight is ``randn / lr_multiplier``; at run time it is scaled by
    ``lr_multiplier / sqrt(in_features)`` and the bias by ``lr_multiplier``, so the effective
    initial weights have unit fan-in variance whatever the learning-rate multiplier.

    Parameters: ``weight`` [out, in], ``bias`` [out] (if ``bias``).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1,
        bias_init: float = 0,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = (
            torch.nn.Parameter(torch.full([out_features], float(bias_init), dtype=torch.float32))
            if bias
            else None
        )
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, in_features] -> [N, out_features]."""
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features:d}, out_features={self.out_features:d}, "
            f"activation={self.activation:s}"
        )


class Conv2dLayer(torch.nn.Module):
    """Convolution with equalised learning rate and optional FIR up/downsampling.

    EG3D uses it only as the 1x1 ``skip`` of 'resnet' synthesis blocks.

    Parameters: ``weight`` [out, in, k, k] and ``bias`` [out] (buffers if not ``trainable``);
    buffer ``resample_filter``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        up: int = 1,
        down: int = 1,
        resample_filter: FilterLike = (1, 3, 3, 1),
        conv_clamp: float | None = None,
        channels_last: bool = False,
        trainable: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        # Memory format does not change the values; innout keeps weights contiguous.
        self.channels_last = channels_last
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * (kernel_size**2))
        self.act_gain = ACTIVATIONS[activation].def_gain

        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        bias_value = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = torch.nn.Parameter(weight)
            self.bias = torch.nn.Parameter(bias_value) if bias_value is not None else None
        else:
            self.register_buffer("weight", weight)
            if bias_value is not None:
                self.register_buffer("bias", bias_value)
            else:
                self.bias = None

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        """[N, in, H, W] -> [N, out, H*up/down, W*up/down]."""
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv2d_resample(
            x,
            w.to(x.dtype),
            f=self.resample_filter,
            up=self.up,
            down=self.down,
            padding=self.padding,
            flip_weight=(self.up == 1),
        )
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=act_gain, clamp=act_clamp)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels:d}, out_channels={self.out_channels:d}, "
            f"activation={self.activation:s}, up={self.up}, down={self.down}"
        )


# ------------------------------------------------------------------------------------------------
# Lazy re-exports (the network modules import this file, so they cannot be imported eagerly).

_REEXPORTS = {
    "MappingNetwork": "innout.eg3d.mapping",
    "SynthesisLayer": "innout.eg3d.synthesis",
    "ToRGBLayer": "innout.eg3d.synthesis",
    "SynthesisBlock": "innout.eg3d.synthesis",
    "SynthesisNetwork": "innout.eg3d.synthesis",
    "Generator": "innout.eg3d.synthesis",
}


def __getattr__(name: str) -> Any:
    if name in _REEXPORTS:
        return getattr(importlib.import_module(_REEXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
