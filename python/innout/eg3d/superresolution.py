"""EG3D's super-resolution networks (docs/eg3d.md §1.2 table and §2.14).

Each module turns the neural rendering (``rgb`` [N, 3, R, R] and the 32-channel feature image
``x`` [N, 32, R, R]) into the final image with two StyleGAN2 synthesis blocks, both conditioned on
the **last** w of the backbone's ``ws`` (repeated 3 times: conv0, conv1, torgb).

Quirks reproduced on purpose:

* The channel counts and ``w_dim=512`` are hard-coded; ``num_fp16_res``, ``conv_clamp``,
  ``channel_base`` and ``channel_max`` are accepted and ignored. With ``sr_num_fp16_res > 0``
  every block is marked fp16 and gets ``conv_clamp=256`` (innout still computes in float32, as
  EG3D does on CPU, but the clamp applies).
* **In-place write into ``rgb`` (2X and 4X).** When block0 is a :class:`SynthesisBlockNoUp` and no
  resize happened, the ``rgb`` passed in is used as block0's running image without a copy, and
  block0 adds its ToRGB output to it *in place*. In EG3D ``rgb`` is ``feature_image[:, :3]``, a view
  of the rendered feature image, so the returned ``image_raw`` (and the feature image itself)
  ends up as raw rgb + block0's ToRGB output. This is what EG3D's shapenetcars128-64 produces, so
  innout does the same; pass ``rgb.clone()`` to avoid it. 8XDC and 8X upsample the image into a new
  tensor first, so they leave ``rgb`` untouched; a resize also breaks the aliasing.
* The ``resample_filter`` buffer of 8X/4X/2X/Deepfp32 exists only so checkpoints load; it is never
  used in the forward pass.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from innout.eg3d.layers import setup_filter
from innout.eg3d.synthesis import SynthesisBlock

#: EG3D's SR blocks are built for this w dimensionality only.
SR_W_DIM = 512


class SynthesisBlockNoUp(SynthesisBlock):
    """A :class:`SynthesisBlock` that keeps the resolution: conv0 has no upsampling and the
    incoming image is used as is (and, like in EG3D, the ToRGB output is added to it in place).

    Same constructor arguments, children and parameter names as SynthesisBlock; ``x`` and ``img``
    come in at ``resolution`` instead of ``resolution / 2``.
    """

    _block_up = 1


def _resize(t: torch.Tensor, size: int, antialias: bool) -> torch.Tensor:
    return F.interpolate(
        t, size=(size, size), mode="bilinear", align_corners=False, antialias=antialias
    )


class _SuperresolutionBase(torch.nn.Module):
    """Two synthesis blocks conditioned on the last w; subclasses only declare their layout.

    Constructor arguments are EG3D's (the same for every variant): ``channels`` (feature image
    channels, 32), ``img_resolution`` (must be the variant's output size), ``sr_num_fp16_res``,
    ``sr_antialias``; ``num_fp16_res``, ``conv_clamp``, ``channel_base`` and ``channel_max`` are
    accepted and ignored as in EG3D; ``**block_kwargs`` go to both blocks.
    """

    #: Output size, the size block0 expects its inputs at, and the two blocks' output channels.
    output_resolution: int
    input_resolution: int
    block0_channels: int
    block1_channels: int
    #: Whether block0 keeps the resolution (SynthesisBlockNoUp) instead of doubling it.
    block0_keeps_resolution = False
    #: '!=' resizes any input of another size; '<' only smaller inputs (4X and Deepfp32).
    _resize_only_smaller = False
    #: 8X/4X/2X/Deepfp32 carry an unused ``resample_filter`` buffer in their checkpoints.
    _has_resample_filter = True

    def __init__(
        self,
        channels: int,
        img_resolution: int,
        sr_num_fp16_res: int,
        sr_antialias: bool = False,
        num_fp16_res: int = 4,
        conv_clamp: float | None = None,
        channel_base: int | None = None,
        channel_max: int | None = None,
        **block_kwargs: Any,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if img_resolution != self.output_resolution:
            size = self.output_resolution
            raise ValueError(f"{name} makes {size}x{size} images, not {img_resolution}")
        use_fp16 = sr_num_fp16_res > 0
        options = {"use_fp16": use_fp16, "conv_clamp": 256 if use_fp16 else None, **block_kwargs}
        self.sr_antialias = sr_antialias
        block0_class = SynthesisBlockNoUp if self.block0_keeps_resolution else SynthesisBlock
        block0_resolution = self.input_resolution * (1 if self.block0_keeps_resolution else 2)
        self.block0 = block0_class(
            channels, self.block0_channels, w_dim=SR_W_DIM, resolution=block0_resolution,
            img_channels=3, is_last=False, **options,
        )  # fmt: skip
        self.block1 = SynthesisBlock(
            self.block0_channels, self.block1_channels, w_dim=SR_W_DIM,
            resolution=self.output_resolution, img_channels=3, is_last=True, **options,
        )  # fmt: skip
        if self._has_resample_filter:
            self.register_buffer("resample_filter", setup_filter([1, 3, 3, 1]))

    def forward(
        self, rgb: torch.Tensor, x: torch.Tensor, ws: torch.Tensor, **block_kwargs: Any
    ) -> torch.Tensor:
        """Super-resolves a neural rendering.

        Args:
            rgb: [N, 3, R, R] raw image (may be modified in place, see the module docstring).
            x: [N, C, R, R] feature image (C = ``channels``).
            ws: [N, num_ws, 512]; only ``ws[:, -1]`` is used.
            **block_kwargs: ``noise_mode``, ``generator``, ``fused_modconv``, ...

        Returns:
            [N, 3, img_resolution, img_resolution], nominally in [-1, 1] (no tanh).
        """
        x, rgb = self.first_block(rgb, x, ws, **block_kwargs)
        return self.second_block(x, rgb, ws, **block_kwargs)

    def first_block(
        self, rgb: torch.Tensor, x: torch.Tensor, ws: torch.Tensor, **block_kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """block0 alone (inputs as `forward`): its features and skip image. Split out so that
        video editing can filter them over time between the two blocks (docs/method.md 3.3)."""
        size = x.shape[-1]
        wrong_size = (
            size < self.input_resolution
            if self._resize_only_smaller
            else size != self.input_resolution
        )
        if wrong_size:
            x = _resize(x, self.input_resolution, self.sr_antialias)
            rgb = _resize(rgb, self.input_resolution, self.sr_antialias)
        return self.block0(x, rgb, self._block_ws(ws), **block_kwargs)

    def second_block(
        self, x: torch.Tensor, rgb: torch.Tensor, ws: torch.Tensor, **block_kwargs: Any
    ) -> torch.Tensor:
        """block1 on `first_block`'s outputs: the super-resolved image."""
        _, rgb = self.block1(x, rgb, self._block_ws(ws), **block_kwargs)
        return rgb

    @staticmethod
    def _block_ws(ws: torch.Tensor) -> torch.Tensor:
        return ws[:, -1:, :].repeat(1, 3, 1)


class SuperresolutionHybrid8XDC(_SuperresolutionBase):
    """128 -> 512 with wider blocks: block0 32->256 @256, block1 256->128 @512 (ffhq/afhq)."""

    output_resolution, input_resolution = 512, 128
    block0_channels, block1_channels = 256, 128
    _has_resample_filter = False


class SuperresolutionHybrid8X(_SuperresolutionBase):
    """128 -> 512: block0 32->128 @256, block1 128->64 @512."""

    output_resolution, input_resolution = 512, 128
    block0_channels, block1_channels = 128, 64


class SuperresolutionHybrid4X(_SuperresolutionBase):
    """128 -> 256: block0 NoUp 32->128 @128, block1 128->64 @256. Resizes only smaller inputs."""

    output_resolution, input_resolution = 256, 128
    block0_channels, block1_channels = 128, 64
    block0_keeps_resolution = True
    _resize_only_smaller = True


class SuperresolutionHybrid2X(_SuperresolutionBase):
    """64 -> 128: block0 NoUp 32->128 @64, block1 128->64 @128 (shapenet cars)."""

    output_resolution, input_resolution = 128, 64
    block0_channels, block1_channels = 128, 64
    block0_keeps_resolution = True


class SuperresolutionHybridDeepfp32(_SuperresolutionBase):
    """Legacy 128 -> 256 variant (no ``sr_antialias`` in its signature; never antialiases)."""

    output_resolution, input_resolution = 256, 128
    block0_channels, block1_channels = 128, 64
    block0_keeps_resolution = True
    _resize_only_smaller = True

    def __init__(
        self,
        channels: int,
        img_resolution: int,
        sr_num_fp16_res: int,
        num_fp16_res: int = 4,
        conv_clamp: float | None = None,
        channel_base: int | None = None,
        channel_max: int | None = None,
        **block_kwargs: Any,
    ) -> None:
        super().__init__(
            channels, img_resolution, sr_num_fp16_res, False, num_fp16_res, conv_clamp,
            channel_base, channel_max, **block_kwargs,
        )  # fmt: skip


#: EG3D's super-resolution class names, as rendering_kwargs["superresolution_module"] stores
#: them, of the variants the released generators use -> innout's classes.
SUPERRESOLUTION_MODULES = {
    "training.superresolution.SuperresolutionHybrid8XDC": SuperresolutionHybrid8XDC,
    "training.superresolution.SuperresolutionHybrid8X": SuperresolutionHybrid8X,
    "training.superresolution.SuperresolutionHybrid4X": SuperresolutionHybrid4X,
    "training.superresolution.SuperresolutionHybrid2X": SuperresolutionHybrid2X,
}
