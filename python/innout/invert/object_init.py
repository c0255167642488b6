"""The object field initialised from the data, before the composite stage (innout's addition).

The research code starts the object field from noise and lets 10,000 composite steps place it;
a short run then ends with the object as faint fog along its whole path. Here the evidence of
each frame - where the object is in the image (the object masks, or for the mask-free variant
the pixels the face generator alone cannot explain) and where the face surface is (the depth of
step 1's reconstruction) - is turned into a 3-D target, and the field is fitted to it point by
point, which costs a few decoder evaluations and no rendering:

* on a ray through an object pixel the object fills a slab just in front of the face surface,
  as thick as the object is wide in that frame (clamped), with the pixel's colour and a blend
  weight of 1; in front of the slab the ray is empty;
* every other ray is empty of object from the near to the far plane.

With per-frame residual planes each frame's object is fitted where that frame shows it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812

from innout.distributed import SINGLE, Group
from innout.eg3d import camera
from innout.invert.engine import Stage, frame_batch
from innout.invert.object_field import ObjectField
from innout.invert.state import InversionState, render_frames

#: Stage number of the fit's draws (after step 1's 0 and 1; see engine.frame_batch).
INIT_STAGE = 7
#: Thickness bounds of an object's slab, in world units (EG3D's head spans about 0.5).
SLAB_MIN, SLAB_MAX = 0.03, 0.25
#: Gap between the slab and the face surface (world units).
SLAB_GAP = 0.01
#: Points per frame and step: in the slab (and as many in front of it), and on other rays. A
#: slab's transmittance is driven to 0; an empty point's density is penalised as the opacity a
#: whole ray of it would have, so no fog survives along the ray.
POSITIVE_POINTS, NEGATIVE_POINTS = 1024, 2048
#: The length of ray over which an empty point's density is counted as opacity (world units).
EMPTY_LENGTH = 0.1
#: Weight of b^2 on the points of rays without object: a light pull of the blend weight to 0
#: there (the blend matters only where the object has density; the composite's regularisers
#: take over in step 2).
EMPTY_BLEND_WEIGHT = 0.1
#: Evidence threshold of the mask-free variant: a pixel is object when its reconstruction error
#: (mean absolute over RGB in [-1, 1], smoothed 3x3) is above max(EVIDENCE_FLOOR,
#: EVIDENCE_FACTOR * the frame's median error).
EVIDENCE_FLOOR, EVIDENCE_FACTOR = 0.2, 3.0


@dataclass
class Evidence:
    """What step 1 says about each frame at the optimisation's raw resolution R: the face
    surface's depth [T, R*R] and the object's pixels [T, R*R] (1 = object)."""

    face_depth: torch.Tensor
    object_masks: torch.Tensor


@torch.no_grad()
def face_surface(generator, state: InversionState, targets, settings, group: Group = SINGLE):
    """(depth [T, R*R], raw image [T, 3, R, R]) of step 1's latents (rebuilt from step 1's
    parameters, so a resumed run sees what the fresh one saw), rendered without the object at
    the optimisation's resolution with deterministic samples; each rank of `group` renders its
    share of the frames."""
    device = targets.raw.device
    mine = group.shard(targets.frames)
    every = torch.arange(targets.frames, device=device)
    latents = state.step1_latents(settings.residual_scale, every)
    depths, images = [], []
    for start in range(mine.start, mine.stop, settings.batch_frames):
        index = torch.arange(start, min(start + settings.batch_frames, mine.stop), device=device)
        out = render_frames(
            generator, state, latents[index], targets.cameras[index], index,
            with_object=False, superresolve=False, resolution=targets.raw.shape[-1],
            samples_multiplier=settings.samples_multiplier, backend=settings.backend,
        )  # fmt: skip
        depths.append(out.depth.flatten(1))
        images.append(out.image_raw)
    depth, image = torch.cat(depths), torch.cat(images)  # every rank has a frame (run.invert)
    return group.gather_shards(depth, targets.frames), group.gather_shards(image, targets.frames)


def unexplained_pixels(reconstruction: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Object masks [T, 1, R, R] (1 = object) from the error of a face-only reconstruction:
    the pixels it misses by much more than it misses the rest of the frame."""
    error = (reconstruction - frames).abs().mean(1, keepdim=True)
    error = F.avg_pool2d(error, 3, stride=1, padding=1, count_include_pad=False)
    median = error.flatten(1).median(1).values.view(-1, 1, 1, 1)
    threshold = torch.clamp(EVIDENCE_FACTOR * median, min=EVIDENCE_FLOOR)
    return (error > threshold).float()


def gather_evidence(
    generator, state, targets, settings, masked: bool, group: Group = SINGLE
) -> Evidence:
    """The evidence the object field is fitted to: the input masks when `masked`, else the
    pixels step 1 cannot explain."""
    depth, reconstruction = face_surface(generator, state, targets, settings, group)
    if masked:
        object_masks = 1 - targets.masks_raw
    else:
        object_masks = unexplained_pixels(reconstruction, targets.raw)
    return Evidence(depth, object_masks.flatten(1))


def slab_thickness(object_masks: torch.Tensor, depth: torch.Tensor, cameras: torch.Tensor):
    """Per frame [T], the object's width in world units at the face's depth (the diameter of a
    disc of the mask's area), clamped to [SLAB_MIN, SLAB_MAX]."""
    pixels = object_masks.sum(1)
    resolution = math.isqrt(object_masks.shape[1])
    weights = object_masks / pixels.clamp_min(1)[:, None]
    face_depth = (depth * weights).sum(1)
    focal = cameras[:, 16].abs() * resolution  # normalised focal length -> pixels
    width = 2 * torch.sqrt(pixels / math.pi) * face_depth / focal
    return width.clamp(SLAB_MIN, SLAB_MAX)


def _draw(weights: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """Ray indices [count] drawn from one frame's weights [M] (uniform where they are all 0)."""
    weights = weights + (weights.sum() == 0).float()
    return torch.multinomial(weights.cpu(), count, replacement=True, generator=generator).to(
        weights.device
    )


def _pick(values: torch.Tensor, rays: torch.Tensor) -> torch.Tensor:
    """values [B, M(, C)] at ray indices [B, N] -> [B, N(, C)]."""
    if values.dim() == 2:
        return torch.gather(values, 1, rays)
    return torch.gather(values, 1, rays[..., None].expand(-1, -1, values.shape[-1]))


def object_init_stage(
    field: ObjectField,
    evidence: Evidence,
    targets,
    render_settings,
    settings,
) -> Stage:
    """The fit of `field` to the evidence: `object_init_steps` Adam steps of `batch_frames`
    frames at the object learning rate."""
    frames, resolution = targets.frames, targets.raw.shape[-1]
    origins, directions = camera.pixel_rays(targets.cameras, resolution)
    colours = (targets.raw.flatten(2).transpose(1, 2) + 1) / 2  # [T, M, 3] feature space
    masks, depth = evidence.object_masks, evidence.face_depth
    thickness = slab_thickness(masks, depth, targets.cameras)
    near, far = render_settings.ray_start, render_settings.ray_end

    def frame_points(frame: int, draws: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame's ray indices [P] and depths [P] (object slab, in front, elsewhere)."""

        def uniform(count: int) -> torch.Tensor:
            return torch.rand(count, generator=draws).to(masks.device)

        slab = thickness[frame]
        # Object rays: a point inside the slab, and one in front of it.
        object_rays = _draw(masks[frame], POSITIVE_POINTS, draws)
        surface = depth[frame][object_rays]
        inside = surface - SLAB_GAP - slab * uniform(POSITIVE_POINTS)
        in_front = near + (surface - SLAB_GAP - slab - near).clamp_min(0) * uniform(POSITIVE_POINTS)
        # Any other ray: empty from near to far.
        others = NEGATIVE_POINTS - POSITIVE_POINTS
        other_rays = _draw(1 - masks[frame], others, draws)
        anywhere = near + (far - near) * uniform(others)
        # Half of them where another frame's object may be: in front of this ray's surface.
        near_surface = depth[frame][other_rays] - (SLAB_MAX + SLAB_GAP) * uniform(others)
        anywhere = torch.cat([anywhere[: others // 2], near_surface[others // 2 :]])
        rays = torch.cat([object_rays, object_rays, other_rays])
        return rays, torch.cat([inside, in_front, anywhere])

    def step_fn(index: torch.Tensor, draws: list[torch.Generator]) -> dict[str, torch.Tensor]:
        index = index.to(masks.device)
        picked = [frame_points(int(frame), one) for frame, one in zip(index, draws)]
        rays = torch.stack([r for r, _ in picked])
        t = torch.stack([t for _, t in picked])
        points = _pick(origins[index], rays) + t[..., None] * _pick(directions[index], rays)
        raw_density, features, blend = field.evaluate(points, index, render_settings.box_warp)
        density = F.softplus(raw_density - 1)
        filled = POSITIVE_POINTS
        positive = density[:, :filled]
        empty = torch.cat([density[:, filled : 2 * filled], density[:, 2 * filled :]], 1)
        weight = (masks[index].sum(1) > 0).float()[:, None]
        slab_transmittance = torch.exp(-positive * thickness[index][:, None])
        colour_error = (features[:, :filled, :3] - _pick(colours[index], rays[:, :filled])).square()
        blend_error = (1 - blend[:, :filled]).square()
        loss = (
            (weight * (slab_transmittance.square() + colour_error.mean(-1) + blend_error)).mean()
            + (1 - torch.exp(-empty * EMPTY_LENGTH)).mean()
            + EMPTY_BLEND_WEIGHT * blend[:, 2 * filled :].square().mean()
        )
        return {"loss": loss}

    def frames_fn(step: int) -> torch.Tensor:
        return frame_batch(settings.seed, INIT_STAGE, step, frames, settings.batch_frames)

    return Stage(
        name="object_init",
        steps=settings.object_init_steps,
        groups=[{"params": list(field.parameters()), "lr": settings.object_lr}],
        frames_fn=frames_fn,
        step_fn=step_fn,
        per_frame=tuple(p for p in (field.codes, field.residual_planes) if p is not None),
    )
