"""StyleGAN2 synthesis network and generator as EG3D uses them (docs/eg3d.md §1.2-1.3, §2.4-2.5).

innout computes in the dtype of the module's parameters (float32 unless the module was converted
with ``.double()``). ``use_fp16`` and ``fp16_channels_last`` are accepted and stored but do not
change the compute dtype: that is what EG3D does on CPU, where it forces float32.
"""

from __future__ import annotations

import math
from typing import Any, Union

import torch

from innout.eg3d.layers import (
    ACTIVATIONS,
    Conv2dLayer,
    FilterLike,
    FullyConnectedLayer,
    bias_act,
    modulated_conv2d,
    setup_filter,
    upsample2d,
)
from innout.eg3d.mapping import MappingNetwork

NOISE_MODES = ("random", "const", "none")
FusedModconv = Union[bool, str, None]


class SynthesisLayer(torch.nn.Module):
    """Modulated 3x3 convolution + noise + bias + lrelu (docs/eg3d.md §2.5).

    Registration order (as in EG3D): buffer ``resample_filter`` [4,4], child ``affine``
    (FC w_dim -> in_channels, bias 1), ``weight`` [out, in, k, k], buffer ``noise_const``
    [res, res] and ``noise_strength`` [] (if ``use_noise``), ``bias`` [out].
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        activation: str = "lrelu",
        resample_filter: FilterLike = (1, 3, 3, 1),
        conv_clamp: float | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.channels_last = channels_last  # stored only; weights stay contiguous
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = ACTIVATIONS[activation].def_gain

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        )
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        noise_mode: str = "random",
        fused_modconv: bool = True,
        gain: float = 1,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """[N, in, res/up, res/up], w [N, w_dim] -> [N, out, res, res].

        Args:
            noise_mode: 'random' (fresh N(0,1) noise [N,1,res,res], drawn from ``generator``
                when one is given), 'const' (the stored ``noise_const``) or 'none'. The noise is
                scaled by ``noise_strength`` and added after the convolution, before the bias.
            fused_modconv: grouped-convolution path (same numbers up to rounding).
            gain: extra output gain (sqrt(0.5) in 'resnet' blocks); it scales the clamp too.
            generator: optional torch.Generator for 'random' noise.
        """
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        in_res = self.resolution // self.up
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.in_channels, in_res, in_res):
            raise ValueError(
                f"expected x [N, {self.in_channels}, {in_res}, {in_res}], got {tuple(x.shape)}"
            )
        styles = self.affine(w)

        noise = None
        if self.use_noise and noise_mode == "random":
            shape = [x.shape[0], 1, self.resolution, self.resolution]
            draw = torch.randn(shape, device=x.device, dtype=x.dtype, generator=generator)
            noise = draw * self.noise_strength
        if self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength

        # up=1 correlates like torch's conv2d; the up=2 path (transposed convolution) is written
        # for a true convolution. The trained weights depend on this choice.
        x = modulated_conv2d(
            x,
            self.weight,
            styles,
            noise=noise,
            up=self.up,
            padding=self.padding,
            resample_filter=self.resample_filter,
            flip_weight=(self.up == 1),
            fused_modconv=fused_modconv,
        )
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(
            x, self.bias.to(x.dtype), act=self.activation, gain=act_gain, clamp=act_clamp
        )

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels:d}, out_channels={self.out_channels:d}, "
            f"w_dim={self.w_dim:d}, resolution={self.resolution:d}, up={self.up}, "
            f"activation={self.activation:s}"
        )


class ToRGBLayer(torch.nn.Module):
    """1x1 modulated convolution without demodulation, plus bias (docs/eg3d.md §2.5).

    Parameters: ``weight`` [out, in, k, k], ``bias`` [out]; child ``affine`` (bias 1).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        kernel_size: int = 1,
        conv_clamp: float | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.conv_clamp = conv_clamp
        self.channels_last = channels_last  # stored only
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        )
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * (kernel_size**2))

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        """[N, in, H, W], w [N, w_dim] -> [N, out, H, W] (no activation)."""
        # Without demodulation the equalised-lr gain has to be applied explicitly; it goes on
        # the styles. EG3D pads by 0 whatever the kernel size (ToRGB kernels are always 1x1).
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels:d}, out_channels={self.out_channels:d}, "
            f"w_dim={self.w_dim:d}"
        )


class SynthesisBlock(torch.nn.Module):
    """One resolution of the synthesis network: (const |) conv0 (up x2), conv1, ToRGB.

    Children: ``const`` [C, res, res] (first block only, ``in_channels == 0``), ``conv0`` (not in
    the first block), ``conv1``, ``torgb`` (if 'skip' or ``is_last``), ``skip`` (Conv2dLayer 1x1,
    'resnet' only); buffer ``resample_filter`` used to upsample the incoming image.
    """

    #: Factor by which conv0 and the skip image are upsampled (1 in SynthesisBlockNoUp).
    _block_up = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        architecture: str = "skip",
        resample_filter: FilterLike = (1, 3, 3, 1),
        conv_clamp: float | None = 256,
        use_fp16: bool = False,
        fp16_channels_last: bool = False,
        fused_modconv_default: FusedModconv = True,
        **layer_kwargs: Any,
    ) -> None:
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet', got {architecture}")
        super().__init__()
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16  # stored only: innout computes in float32
        self.channels_last = use_fp16 and fp16_channels_last
        self.fused_modconv_default = fused_modconv_default
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0

        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(
                in_channels,
                out_channels,
                w_dim=w_dim,
                resolution=resolution,
                up=self._block_up,
                resample_filter=resample_filter,
                conv_clamp=conv_clamp,
                channels_last=self.channels_last,
                **layer_kwargs,
            )
            self.num_conv += 1
        self.conv1 = SynthesisLayer(
            out_channels,
            out_channels,
            w_dim=w_dim,
            resolution=resolution,
            conv_clamp=conv_clamp,
            channels_last=self.channels_last,
            **layer_kwargs,
        )
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(
                out_channels,
                img_channels,
                w_dim=w_dim,
                conv_clamp=conv_clamp,
                channels_last=self.channels_last,
            )
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            # EG3D builds the skip with up=2 in SynthesisBlockNoUp too (so 'resnet' does not run
            # there); the parameter shapes are what matters for loading.
            self.skip = Conv2dLayer(
                in_channels,
                out_channels,
                kernel_size=1,
                bias=False,
                up=2,
                resample_filter=resample_filter,
                channels_last=self.channels_last,
            )

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        force_fp32: bool = False,
        fused_modconv: FusedModconv = None,
        update_emas: bool = False,
        **layer_kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Runs the block.

        Args:
            x: [N, in_channels, res/up, res/up] features (None for the first block).
            img: [N, img_channels, res/up, res/up] running image of the skip branch, or None.
                **SynthesisBlockNoUp adds its ToRGB output to ``img`` in place** (docs/eg3d.md
                §2.14).
            ws: [N, num_conv + num_torgb, w_dim].
            force_fp32, update_emas: accepted for signature compatibility; unused.
            fused_modconv: None = ``fused_modconv_default``; 'inference_only' = fused in eval mode.
            **layer_kwargs: passed to conv0/conv1 (``noise_mode``, ``generator``).

        Returns:
            (x [N, out_channels, res, res], img [N, img_channels, res, res] or None).
        """
        del force_fp32, update_emas
        expected = self.num_conv + self.num_torgb
        if ws.ndim != 3 or ws.shape[1] != expected or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must be [N, {expected}, {self.w_dim}], got {tuple(ws.shape)}")
        w_iter = iter(ws.unbind(dim=1))
        dtype = self.conv1.weight.dtype
        if fused_modconv is None:
            fused_modconv = self.fused_modconv_default
        if fused_modconv == "inference_only":
            fused_modconv = not self.training

        in_res = self.resolution // self._block_up
        if self.in_channels == 0:
            x = self.const.to(dtype=dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            if x is None or tuple(x.shape[1:]) != (self.in_channels, in_res, in_res):
                got = None if x is None else tuple(x.shape)
                raise ValueError(
                    f"expected x [N, {self.in_channels}, {in_res}, {in_res}], got {got}"
                )
            x = x.to(dtype=dtype)

        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(
                x, next(w_iter), fused_modconv=fused_modconv, gain=math.sqrt(0.5), **layer_kwargs
            )
            x = y.add_(x)
        else:
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)

        if img is not None and self._block_up != 1:
            if tuple(img.shape[1:]) != (self.img_channels, in_res, in_res):
                raise ValueError(f"img has shape {tuple(img.shape)}, expected res {in_res}")
            img = upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=img.dtype if img is not None else dtype)
            # In place, as EG3D: harmless after upsample2d (a fresh tensor), but in
            # SynthesisBlockNoUp it writes into the caller's tensor.
            img = img.add_(y) if img is not None else y
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution:d}, architecture={self.architecture:s}"


class SynthesisNetwork(torch.nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, img_channels, img_resolution, img_resolution].

    Blocks ``b4``, ``b8``, ... ``b{img_resolution}`` with ``min(channel_base // res, channel_max)``
    channels. Block k reads ``ws[:, i : i + num_conv + num_torgb]`` and advances i by ``num_conv``,
    so each ToRGB shares its w with the next block's conv0 (docs/eg3d.md §2.4).
    """

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 4,
        **block_kwargs: Any,
    ) -> None:
        if img_resolution < 4 or img_resolution & (img_resolution - 1) != 0:
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(math.log2(img_resolution))
        self.img_channels = img_channels
        self.num_fp16_res = num_fp16_res
        self.block_resolutions = [2**i for i in range(2, self.img_resolution_log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)

        self.num_ws = 0
        for res in self.block_resolutions:
            is_last = res == self.img_resolution
            block = SynthesisBlock(
                channels[res // 2] if res > 4 else 0,
                channels[res],
                w_dim=w_dim,
                resolution=res,
                img_channels=img_channels,
                is_last=is_last,
                use_fp16=res >= fp16_resolution,
                **block_kwargs,
            )
            self.num_ws += block.num_conv
            if is_last:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def forward(self, ws: torch.Tensor, **block_kwargs: Any) -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> [N, img_channels, img_resolution, img_resolution].

        ``block_kwargs``: ``noise_mode`` ('random' | 'const' | 'none'), ``generator``,
        ``fused_modconv``, ``update_emas``, ``force_fp32``.
        """
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        ws = ws.to(self.b4.conv1.weight.dtype)
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            cur_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(x, img, cur_ws, **block_kwargs)
        return img

    def extra_repr(self) -> str:
        return (
            f"w_dim={self.w_dim:d}, num_ws={self.num_ws:d}, "
            f"img_resolution={self.img_resolution:d}, img_channels={self.img_channels:d}, "
            f"num_fp16_res={self.num_fp16_res:d}"
        )


class Generator(torch.nn.Module):
    """StyleGAN2 generator (EG3D's tri-plane ``backbone``): ``mapping`` + ``synthesis``.

    EG3D builds it with ``img_resolution=256, img_channels=96`` (three 32-channel planes).
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        mapping_kwargs: dict[str, Any] | None = None,
        **synthesis_kwargs: Any,
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(
            w_dim=w_dim,
            img_resolution=img_resolution,
            img_channels=img_channels,
            **synthesis_kwargs,
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **(mapping_kwargs or {})
        )

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor,
        truncation_psi: float = 1,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
        **synthesis_kwargs: Any,
    ) -> torch.Tensor:
        """z [N, z_dim], c [N, c_dim] -> [N, img_channels, img_resolution, img_resolution]."""
        ws = self.mapping(
            z,
            c,
            truncation_psi=truncation_psi,
            truncation_cutoff=truncation_cutoff,
            update_emas=update_emas,
        )
        return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)
