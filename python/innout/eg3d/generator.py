"""EG3D's TriPlaneGenerator in innout: StyleGAN2 backbone -> tri-planes -> volume rendering -> SR.

The constructor takes the official `init_kwargs` (docs/eg3d.md section 1.1) and creates parameters
and buffers with the official names, so official checkpoints load with `load_state_dict`. The
renderer is innout's (`innout.eg3d.renderer`), on innout's ops, with `backend="reference"` for
the pure-PyTorch path.
"""

from __future__ import annotations

import dataclasses

import torch

from innout.eg3d import camera
from innout.eg3d.decoder import OSGDecoder
from innout.eg3d.renderer import render_rays
from innout.eg3d.superresolution import SUPERRESOLUTION_MODULES
from innout.eg3d.synthesis import Generator as StyleGAN2Backbone
from innout.render.settings import RenderSettings, RenderUniforms

#: Tri-plane layout: the backbone's 96 channels are 3 planes of 32.
PLANE_CHANNELS = 32


class TriPlaneGenerator(torch.nn.Module):
    """EG3D's generator: G(z, c) = synthesis(mapping(z, c), c).

    Args (the official constructor's):
        z_dim, c_dim, w_dim: latent, camera-label and W sizes (512, 25, 512 for FFHQ).
        img_resolution, img_channels: output image size and channels.
        sr_num_fp16_res: SR blocks in float16 on GPU in EG3D; innout computes in float32.
        mapping_kwargs: mapping network options (num_layers).
        rendering_kwargs: EG3D's rendering options (sample counts, depth range, box_warp, SR
            module name, c_scale, ...; docs/eg3d.md section 2.15).
        sr_kwargs: super-resolution options (fused_modconv_default, ...).
        plane_resolution: side of the tri-planes (innout's addition for small models; EG3D
            always uses 256, the default, and official checkpoints never set it).
        **synthesis_kwargs: backbone options (channel_base, channel_max, num_fp16_res, ...).
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        sr_num_fp16_res: int = 0,
        mapping_kwargs: dict | None = None,
        rendering_kwargs: dict | None = None,
        sr_kwargs: dict | None = None,
        plane_resolution: int = 256,
        **synthesis_kwargs,
    ) -> None:
        super().__init__()
        if plane_resolution < 4 or plane_resolution & (plane_resolution - 1):
            raise ValueError(
                f"plane_resolution must be a power of two >= 4, got {plane_resolution}"
            )
        mapping_kwargs = dict(mapping_kwargs or {})
        rendering_kwargs = dict(rendering_kwargs or {})
        sr_kwargs = dict(sr_kwargs or {})
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.rendering_kwargs = rendering_kwargs
        self.backbone = StyleGAN2Backbone(
            z_dim,
            c_dim,
            w_dim,
            img_resolution=plane_resolution,
            img_channels=3 * PLANE_CHANNELS,
            mapping_kwargs=mapping_kwargs,
            **synthesis_kwargs,
        )
        module_name = rendering_kwargs.get("superresolution_module")
        if module_name not in SUPERRESOLUTION_MODULES:
            raise ValueError(
                f"unknown superresolution_module {module_name!r}; supported: "
                f"{', '.join(SUPERRESOLUTION_MODULES)}"
            )
        self.superresolution = SUPERRESOLUTION_MODULES[module_name](
            channels=PLANE_CHANNELS,
            img_resolution=img_resolution,
            sr_num_fp16_res=sr_num_fp16_res,
            sr_antialias=rendering_kwargs.get("sr_antialias", True),
            **sr_kwargs,
        )
        self.decoder = OSGDecoder(
            PLANE_CHANNELS,
            {
                "decoder_lr_mul": rendering_kwargs.get("decoder_lr_mul", 1),
                "decoder_output_dim": PLANE_CHANNELS,
            },
        )
        # Official checkpoints also carry this buffer (registered by EG3D's training loop); the
        # forward pass never reads it.
        self.register_buffer("dataset_label_std", torch.zeros(c_dim))
        # Pickled checkpoints store the resolution training ended with (128 for the -128 models);
        # the loader overwrites this default.
        self.neural_rendering_resolution = 64
        self._last_planes: torch.Tensor | None = None

    # ---- EG3D's API ----------------------------------------------------------------------------

    def mapping(
        self,
        z: torch.Tensor,
        c: torch.Tensor,
        truncation_psi: float = 1,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """[N, num_ws, w_dim] latents from z [N, z_dim] and conditioning labels c [N, 25]."""
        if self.rendering_kwargs.get("c_gen_conditioning_zero", False):
            c = torch.zeros_like(c)
        # EG3D's default c_scale is 0 when the key is missing: the conditioning is then all zeros.
        c = c * self.rendering_kwargs.get("c_scale", 0)
        return self.backbone.mapping(
            z,
            c,
            truncation_psi=truncation_psi,
            truncation_cutoff=truncation_cutoff,
            update_emas=update_emas,
        )

    def planes(
        self, ws: torch.Tensor, update_emas: bool = False, **synthesis_kwargs
    ) -> torch.Tensor:
        """[N, 3, 32, 256, 256] tri-planes of latents ws [N, num_ws, w_dim]."""
        planes = self.backbone.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)
        return planes.view(planes.shape[0], 3, PLANE_CHANNELS, planes.shape[-2], planes.shape[-1])

    def render_settings(self, **overrides) -> RenderSettings:
        """The renderer settings of this generator's rendering_kwargs, with `overrides`."""
        return RenderSettings.from_rendering_kwargs(self.rendering_kwargs, **overrides)

    def synthesis(
        self,
        ws: torch.Tensor,
        c: torch.Tensor,
        neural_rendering_resolution: int | None = None,
        update_emas: bool = False,
        cache_backbone: bool = False,
        use_cached_backbone: bool = False,
        *,
        settings: RenderSettings | None = None,
        uniforms: RenderUniforms | None = None,
        generator: torch.Generator | None = None,
        **synthesis_kwargs,
    ) -> dict[str, torch.Tensor]:
        """Renders latents ws [N, num_ws, w_dim] from cameras c [N, 25] (EG3D's synthesis).

        Returns EG3D's dict - "image" [N, 3, img_res, img_res] (super-resolved), "image_raw"
        [N, 3, R, R], "image_depth" [N, 1, R, R] - plus "features" [N, 32, R, R] (the composite
        feature image, 2F - 1) and "weight_total" [N, 1, R, R]. Unlike EG3D, a given
        `neural_rendering_resolution` is used for this call only (EG3D also stores it).
        """
        if use_cached_backbone and self._last_planes is not None:
            planes = self._last_planes
        else:
            planes = self.planes(ws, update_emas=update_emas, **synthesis_kwargs)
        if cache_backbone:
            self._last_planes = planes
        return self.render_planes(
            planes,
            ws,
            c,
            neural_rendering_resolution,
            settings=settings,
            uniforms=uniforms,
            generator=generator,
            **synthesis_kwargs,
        )

    def render_planes(
        self,
        planes: torch.Tensor,
        ws: torch.Tensor,
        c: torch.Tensor,
        neural_rendering_resolution: int | None = None,
        *,
        settings: RenderSettings | None = None,
        uniforms: RenderUniforms | None = None,
        generator: torch.Generator | None = None,
        plain_raw: bool = False,
        **synthesis_kwargs,
    ) -> dict[str, torch.Tensor]:
        """The rendering half of `synthesis`, from tri-planes [N, 3, 32, 256, 256] (e.g. to render
        many views of the same latents without running the backbone again).

        `plain_raw=True` keeps "image_raw" and "features" the plain volume rendering (see below);
        by default they follow EG3D, like `synthesis` (`render` defaults to the plain rendering).
        """
        camera.check_labels(c)
        resolution = neural_rendering_resolution or self.neural_rendering_resolution
        settings = settings or self.render_settings()
        origins, directions = camera.pixel_rays(c.to(planes.dtype), resolution)
        rendered = render_rays(
            planes,
            self.decoder,
            origins,
            directions,
            settings,
            uniforms=uniforms,
            generator=generator,
        )
        batch = planes.shape[0]
        features = rendered["features"].permute(0, 2, 1)
        feature_image = features.reshape(batch, -1, resolution, resolution).contiguous()
        depth_image = rendered["depth"].reshape(batch, 1, resolution, resolution)
        weight_image = rendered["weight_total"].reshape(batch, 1, resolution, resolution)
        # A view, as in EG3D: the 2X/4X super-resolution adds its first ToRGB output to it in place,
        # so EG3D's image_raw of those models includes it (docs/eg3d.md section 2.14); inference
        # reproduces that. When autograd records, that in-place write would invalidate tensors
        # saved for the backward (EG3D itself cannot train through it), so the SR then gets a copy
        # and image_raw stays the plain rendering. The SR image is the same either way.
        rgb_image = feature_image[:, :3]
        recording = plain_raw or (torch.is_grad_enabled() and feature_image.requires_grad)
        sr_kwargs = {k: v for k, v in synthesis_kwargs.items() if k != "noise_mode"}
        image = self.superresolution(
            rgb_image.clone() if recording else rgb_image,
            feature_image,
            ws,
            noise_mode=self.rendering_kwargs.get("superresolution_noise_mode", "none"),
            **sr_kwargs,
        )
        return {
            "image": image,
            "image_raw": rgb_image,
            "image_depth": depth_image,
            "features": feature_image,
            "weight_total": weight_image,
        }

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor,
        truncation_psi: float = 1,
        truncation_cutoff: int | None = None,
        neural_rendering_resolution: int | None = None,
        update_emas: bool = False,
        cache_backbone: bool = False,
        use_cached_backbone: bool = False,
        **synthesis_kwargs,
    ) -> dict[str, torch.Tensor]:
        """EG3D's G(z, c): the same c conditions the mapping and places the camera."""
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff, update_emas=update_emas)
        return self.synthesis(
            ws,
            c,
            neural_rendering_resolution=neural_rendering_resolution,
            update_emas=update_emas,
            cache_backbone=cache_backbone,
            use_cached_backbone=use_cached_backbone,
            **synthesis_kwargs,
        )

    # ---- innout's API --------------------------------------------------------------------------

    def render(
        self,
        ws: torch.Tensor,
        cameras: torch.Tensor,
        *,
        resolution: int | None = None,
        noise_mode: str = "const",
        seed: int | None = 0,
        deterministic: bool = False,
        uniforms: RenderUniforms | None = None,
        samples_multiplier: float = 1.0,
        chunk_rays: int | None = None,
        backend: str = "innout",
        plain_raw: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Renders latents from cameras, reproducibly by default.

        Args:
            ws: [N, num_ws, w_dim] latents (e.g. from `mapping`).
            cameras: [N, 25] camera labels.
            resolution: neural rendering resolution (default: the checkpoint's).
            noise_mode: backbone noise, "const" (default), "random" or "none".
            seed: seed of the sampling jitter (a fixed seed: the same call gives the same image);
                None draws from the global generator as EG3D does.
            deterministic: no jitter at all (un-jittered depths, linspace importance samples).
            uniforms: explicit draws (RenderUniforms), for draw-for-draw comparisons.
            samples_multiplier: more samples per ray (2 removes most flicker in video).
            chunk_rays: rays per chunk, to bound memory.
            backend: "innout" or "reference".
            plain_raw: "image_raw" and "features" are the volume rendering itself. EG3D's 2X/4X
                super-resolution adds its first ToRGB output to them in place (kept with False,
                and always by `synthesis` / `forward`, as EG3D); the super-resolved image is the
                same either way.

        Returns:
            {"image": super-resolved [N, 3, H, W], "image_raw": [N, 3, R, R], "image_depth":
            [N, 1, R, R], "features": [N, 32, R, R], "weight_total": [N, 1, R, R]}.
        """
        settings = dataclasses.replace(
            self.render_settings(),
            deterministic=deterministic,
            samples_multiplier=samples_multiplier,
            chunk_rays=chunk_rays,
            backend=backend,
        )
        generator = None
        if seed is not None and uniforms is None:
            generator = torch.Generator(device=ws.device).manual_seed(seed)
        planes = self.planes(ws, noise_mode=noise_mode)
        return self.render_planes(
            planes,
            ws,
            cameras,
            resolution,
            settings=settings,
            uniforms=uniforms,
            generator=generator,
            plain_raw=plain_raw,
            noise_mode=noise_mode,
        )
