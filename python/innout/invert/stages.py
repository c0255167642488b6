"""The stages of each method (docs/method.md section 3.2) as `Stage`s of the engine.

* ``latent``: step 1, W / W+ inversion of every frame (shared code + per-frame residuals);
* ``pti``: pivotal tuning of the generator around step 1's latents;
* ``composite``: step 2, the object field, frame codes and face latents against the frames;
* ``superres``: step 3, the super-resolution network on the composite feature images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from innout.distributed import SINGLE, Group
from innout.eg3d import camera
from innout.eg3d.generator import PLANE_CHANNELS, TriPlaneGenerator
from innout.invert import losses
from innout.invert.engine import Stage, frame_batch, frame_generator, steps_for_epochs
from innout.invert.settings import InversionSettings
from innout.invert.state import InversionState, render_frames
from innout.profiling import region


@dataclass
class Targets:
    """The frames at output [T, 3, H, W] and raw [T, 3, R, R] resolution, cameras [T, 25],
    masks at raw [T, 1, R, R] and output resolution [T, 1, H, W] (1 = face) or None."""

    image: torch.Tensor
    raw: torch.Tensor
    cameras: torch.Tensor
    masks_raw: torch.Tensor | None
    masks_image: torch.Tensor | None = None

    @property
    def frames(self) -> int:
        return self.image.shape[0]


def _frames(settings: InversionSettings, targets: Targets, stage_number: int):
    """The frames of each step of a stage: epochs of `batch_frames`-frame slices."""

    def frames_fn(step: int) -> torch.Tensor:
        return frame_batch(settings.seed, stage_number, step, targets.frames, settings.batch_frames)

    return frames_fn


def _image_terms(perceptual, settings, image, target) -> tuple[torch.Tensor, torch.Tensor]:
    return settings.l2_weight * losses.l2(image, target), settings.perceptual_weight * perceptual(
        image, target
    )


@torch.no_grad()
def initial_latent(
    generator: TriPlaneGenerator,
    targets: Targets,
    settings: InversionSettings,
    perceptual,
    group: Group = SINGLE,
) -> torch.Tensor:
    """The best of `init_samples` random latents (psi 1, frontal conditioning), scored by
    perceptual + L2 distance at the scored frames' cameras: [1, num_ws, w_dim]. The scored
    frames are shared among the ranks of `group`."""
    device = targets.image.device
    seeded = torch.Generator().manual_seed(settings.seed)
    z = torch.randn(settings.init_samples, generator.z_dim, generator=seeded).to(device)
    frontal = camera.frontal_labels(settings.init_samples).to(device)
    candidates = generator.mapping(z, frontal)
    count = min(settings.init_frames or targets.frames, targets.frames)
    scored = torch.linspace(0, targets.frames - 1, count).round().long().unique()
    mine = group.shard(len(scored))
    local = scored[mine.start : mine.stop]
    scores = torch.zeros(len(candidates), dtype=torch.float64)
    state = InversionState(generator, "wplus", 1, 0, settings.seed)
    for number, candidate in enumerate(candidates):
        if len(local) == 0:
            continue
        draws = [frame_generator(settings.seed, 0, -1, slot) for slot in mine]
        out = render_frames(
            generator, state, candidate[None].expand(len(local), -1, -1), targets.cameras[local],
            local * 0, torch_generator=draws, samples_multiplier=settings.samples_multiplier,
            resolution=settings.render_resolution, backend=settings.backend,
        )  # fmt: skip
        target = targets.image[local]
        l2_term, perceptual_term = _image_terms(perceptual, settings, out.image, target)
        scores[number] = float((l2_term + perceptual_term).double().sum())
    group.all_reduce(scores)
    best = int(torch.argmin(scores))  # the first of equal scores
    return candidates[best][None].clone()


def latent_stage(
    generator: TriPlaneGenerator,
    state: InversionState,
    targets: Targets,
    settings: InversionSettings,
    perceptual,
    face_only: bool = False,
) -> Stage:
    """Step 1. With `face_only` the object's pixels (targets.masks_image) carry no loss: the
    target there is the render itself, so the face latents are not bent to imitate the object."""
    steps = steps_for_epochs(settings.latent_epochs, targets.frames, settings.batch_frames)

    def step_fn(index: torch.Tensor, draws: list[torch.Generator]) -> dict[str, torch.Tensor]:
        ws = state.step1_latents(settings.residual_scale, index)
        out = render_frames(
            generator, state, ws, targets.cameras[index], index,
            torch_generator=draws, samples_multiplier=settings.samples_multiplier,
            with_object=False, superresolution=generator.superresolution,
            resolution=settings.render_resolution, backend=settings.backend,
        )  # fmt: skip
        target = targets.image[index]
        if face_only:
            face = targets.masks_image[index]
            target = face * target + (1 - face) * out.image.detach()
        l2_term, perceptual_term = _image_terms(perceptual, settings, out.image, target)
        delta = settings.layer_delta_weight * losses.layer_delta(ws)
        loss = (l2_term + perceptual_term + delta).mean()
        return {"loss": loss, "l2": l2_term.mean(), "perceptual": perceptual_term.mean(),
                "layer_delta": delta.mean()}  # fmt: skip

    def lr_fn(base: float, step: int) -> float:
        return losses.ramped_lr(base, step, steps, settings.lr_rampup, settings.lr_rampdown)

    return Stage(
        name="latent",
        steps=steps,
        groups=[{"params": [state.w_shared, state.residuals], "lr": settings.latent_lr}],
        frames_fn=_frames(settings, targets, 0),
        step_fn=step_fn,
        lr_fn=lr_fn,
        per_frame=(state.residuals,),
    )


def pti_stage(
    generator: TriPlaneGenerator,
    state: InversionState,
    targets: Targets,
    settings: InversionSettings,
    perceptual,
) -> Stage:
    tuned = state.generator
    params = [
        p
        for module in (tuned.backbone.synthesis, tuned.decoder, tuned.superresolution)
        for p in module.parameters()
    ]

    def step_fn(index: torch.Tensor, draws: list[torch.Generator]) -> dict[str, torch.Tensor]:
        out = render_frames(
            generator, state, state.ws[index].detach(), targets.cameras[index], index,
            torch_generator=draws, samples_multiplier=settings.samples_multiplier,
            resolution=settings.render_resolution, backend=settings.backend,
        )  # fmt: skip
        target = targets.image[index]
        l2_term, perceptual_term = _image_terms(perceptual, settings, out.image, target)
        loss = (l2_term + perceptual_term).mean()
        return {"loss": loss, "l2": l2_term.mean(), "perceptual": perceptual_term.mean()}

    return Stage(
        name="pti",
        steps=steps_for_epochs(settings.pti_epochs, targets.frames, settings.batch_frames),
        groups=[{"params": params, "lr": settings.pti_lr}],
        frames_fn=_frames(settings, targets, 1),
        step_fn=step_fn,
    )


def composite_stage(
    generator: TriPlaneGenerator,
    state: InversionState,
    targets: Targets,
    settings: InversionSettings,
    perceptual,
    face_masks: torch.Tensor | None,
    mask_scale: float = 1.0,
    auto: bool = False,
) -> Stage:
    """Step 2. `face_masks` [T, 1, R, R] (1 = face) are the input masks ("innout") or the
    evidence masks ("innout-auto"), their terms weighted by `mask_scale`; `auto` adds the
    mask-free variant's latent regularisers."""
    field = state.object
    w_avg = generator.backbone.mapping.w_avg.detach()
    render_settings = generator.render_settings()
    cached_planes = _frozen_face_planes(generator, state, settings)

    def step_fn(index: torch.Tensor, draws: list[torch.Generator]) -> dict[str, torch.Tensor]:
        ws = state.ws[index]
        out = render_frames(
            generator, state, ws, targets.cameras[index], index,
            torch_generator=draws, samples_multiplier=settings.samples_multiplier,
            resolution=settings.render_resolution, backend=settings.backend,
            planes=None if cached_planes is None else cached_planes[index],
            superresolve=settings.sr_l2_weight > 0,
        )  # fmt: skip
        with region("losses"):
            raw_target = targets.raw[index]
            terms = {
                "raw_l2": settings.raw_l2_weight * losses.l2(out.image_raw, raw_target).mean(),
                "raw_perceptual": settings.raw_perceptual_weight
                * perceptual(out.image_raw, raw_target).mean(),
                "blend_entropy": settings.blend_entropy_weight
                * losses.blend_entropy(out.rays.blend),
                "blend_area": settings.blend_area_weight
                * losses.blend_area(out.rays.blend_coarse, out.rays.blend_fine),
            }
            if settings.sr_l2_weight > 0:  # else the super-resolution is not even run
                terms["sr_l2"] = (
                    settings.sr_l2_weight * losses.l2(out.image, targets.image[index]).mean()
                )
            if settings.distortion_weight > 0:
                terms["distortion"] = settings.distortion_weight * losses.distortion(
                    out.rays.object_weights,
                    out.rays.sample_depths,
                    render_settings.ray_start,
                    render_settings.ray_end,
                )
            if face_masks is not None and mask_scale > 0:
                terms.update(_mask_terms(out, raw_target, face_masks[index], settings, mask_scale))
            if auto and settings.latent_lr_ratio > 0:
                terms["mean_latent"] = settings.mean_latent_weight * (
                    (ws - w_avg).flatten(1).norm(dim=1).mean()
                )
                terms["layer_delta"] = (
                    settings.auto_layer_delta_weight * losses.layer_delta(ws).mean()
                )
        return {"loss": torch.stack(list(terms.values())).sum(), **terms}

    return Stage(
        name="composite",
        steps=settings.composite_steps,
        groups=[{"params": list(field.parameters()), "lr": settings.object_lr}]
        + (
            [{"params": [state.ws], "lr": settings.object_lr * settings.latent_lr_ratio}]
            if settings.latent_lr_ratio > 0
            else []
        ),
        frames_fn=_frames(settings, targets, 1),
        step_fn=step_fn,
        per_frame=tuple(
            p for p in (field.codes, field.residual_planes, state.ws) if p is not None
        ),  # fmt: skip
    )


#: A frozen face's tri-planes are computed once for the whole composite stage when they take at
#: most this many bytes (innout-tiny: 1.5 MiB a frame; EG3D's 256^2 planes: 24 MiB a frame).
PLANE_CACHE_BYTES = 1 << 30


@torch.no_grad()
def _frozen_face_planes(generator, state, settings) -> torch.Tensor | None:
    """Every frame's face tri-planes when the face is frozen in step 2 and they fit the cache
    (they then never change: no need to run the backbone every step), else None."""
    if settings.latent_lr_ratio > 0:
        return None
    side = generator.backbone.synthesis.img_resolution
    frames = state.ws.shape[0]
    if frames * 3 * PLANE_CHANNELS * side * side * state.ws.element_size() > PLANE_CACHE_BYTES:
        return None
    with region("face_planes"):
        return torch.cat([generator.planes(state.ws[t : t + 1], noise_mode="const")
                          for t in range(frames)])  # fmt: skip


def _mask_terms(out, raw_target, face_masks, settings, scale) -> dict[str, torch.Tensor]:
    """The object L2 on object pixels, the object's share fitted to the masks and the blend
    sparsity on face rays (face_masks [B, 1, R, R], 1 = face)."""
    outside_face = 1 - face_masks
    terms = {
        "object_l2": scale
        * settings.object_l2_weight
        * losses.masked_l2(out.object_raw, raw_target, outside_face).mean()
    }
    if settings.object_mask_weight > 0:
        share = out.object_opacity
        terms["object_mask"] = (
            scale
            * settings.object_mask_weight
            * (
                losses.masked_l2(share, torch.ones_like(share), outside_face)
                + losses.masked_l2(share, torch.zeros_like(share), face_masks)
            ).mean()
        )
    if settings.blend_sparsity_weight > 0:
        # Per frame, then averaged: a mean over frames, like every term (data parallel).
        face_rays = face_masks.flatten(1)
        per_ray = out.rays.blend.mean(-1)
        per_frame = (per_ray * face_rays).sum(1) / face_rays.sum(1).clamp_min(1)
        terms["blend_sparsity"] = scale * settings.blend_sparsity_weight * per_frame.mean()
    return terms


def superres_stage(
    generator: TriPlaneGenerator,
    state: InversionState,
    targets: Targets,
    settings: InversionSettings,
    perceptual,
    features: torch.Tensor,
) -> Stage:
    """Step 3 on fixed composite feature images [T, 32, R, R] (the object field and latents no
    longer change, so they are rendered once)."""

    def step_fn(index: torch.Tensor, draws: list[torch.Generator]) -> dict[str, torch.Tensor]:
        x = features[index]
        image = state.superresolution(x[:, :3].clone(), x, state.ws[index].detach(),
                                      noise_mode="none")  # fmt: skip
        l2_term, perceptual_term = _image_terms(perceptual, settings, image, targets.image[index])
        loss = (l2_term + perceptual_term).mean()
        return {"loss": loss, "l2": l2_term.mean(), "perceptual": perceptual_term.mean()}

    return Stage(
        name="superres",
        steps=steps_for_epochs(settings.sr_epochs, targets.frames, settings.batch_frames),
        groups=[{"params": list(state.superresolution.parameters()), "lr": settings.sr_lr}],
        frames_fn=_frames(settings, targets, 3),
        step_fn=step_fn,
    )
