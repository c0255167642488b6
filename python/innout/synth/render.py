"""Rendering the synthetic world with innout's own ops (deterministic, many samples per ray).

A field is any callable points [P, 3] -> (sigma [P] density per world unit >= 0, rgb [P, 3] in
[0, 1]). The scene of a head and an object is their density-weighted sum,
``sigma = sigma_h + sigma_o`` and ``c = (sigma_h c_h + sigma_o c_o) / sigma``; the object's share
``sigma_o / sigma`` is marched as a fourth colour channel, so that the object's opacity mask is its
share of the accumulated weight. Objects have exactly zero density outside their support, which
makes the full render *bitwise* equal to the head-only render on rays that never meet the object.

Sampling (128 per ray by default) is innout's ray pipeline (:mod:`innout.render.pipeline`),
deterministic: `coarse_samples` evenly spaced depths over [near, far] (no jitter) plus
`fine_samples` importance depths from the coarse weights with linspace uniforms, merged and sorted
(the coarse evaluations are reused): the same arguments always give the same image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from innout import ops
from innout.eg3d import camera
from innout.render import pipeline
from innout.render.settings import RenderSettings

Field = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class SynthRenderSettings:
    """How the world is rendered.

    Attributes:
        resolution: image side R in pixels (the tiny model's output: 128).
        coarse_samples, fine_samples: evenly spaced and importance samples per ray.
        near, far: depth range along unit rays (FFHQ: 2.25-3.3).
        chunk_rays: rays evaluated at once (bounds memory).
    """

    resolution: int = 128
    coarse_samples: int = 64
    fine_samples: int = 64
    near: float = 2.25
    far: float = 3.3
    chunk_rays: int = 4096


@dataclass
class RenderOutput:
    """image [3, R, R] in [-1, 1]; depth [1, R, R] (distance along the ray); opacity [1, R, R]
    in [0, 1]: the object's share of the accumulated weight (zeros without an object)."""

    image: torch.Tensor
    depth: torch.Tensor
    opacity: torch.Tensor


def raw_density(sigma: torch.Tensor) -> torch.Tensor:
    """EG3D's raw density whose marcher density softplus(raw - 1) equals sigma (sigma > 0)."""
    s = sigma.clamp_min(1e-10)
    # log(expm1(s)) is s to float precision above 20 and expm1 would overflow far above.
    return 1.0 + torch.where(s > 20, s, torch.log(torch.expm1(s.clamp_max(20))))


def scene_field(head: Field, obj: Field | None) -> Callable:
    """Points [P, 3] -> (sigma [P], features [P, 4]): RGB and the object's density share."""

    def field(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sigma_h, rgb_h = head(points)
        if obj is None:
            return sigma_h, torch.cat([rgb_h, torch.zeros_like(sigma_h).unsqueeze(-1)], -1)
        sigma_o, rgb_o = obj(points)
        sigma = sigma_h + sigma_o  # exactly sigma_h where the object is absent
        share = (sigma_o / sigma.clamp_min(1e-12)).unsqueeze(-1)
        rgb = rgb_h + share * (rgb_o - rgb_h)  # exactly rgb_h where share == 0
        return sigma, torch.cat([rgb, share], -1)

    return field


def _pipeline_field(field: Callable) -> pipeline.Field:
    """A scene field as a pipeline field: raw density (see `raw_density`) and its features."""

    def evaluate(points: torch.Tensor, kernels: ops.Backend) -> pipeline.FieldSamples:
        sigma, features = field(points.reshape(-1, 3))
        batch, count, _ = points.shape
        return pipeline.FieldSamples(
            raw_density(sigma).reshape(batch, count), features.reshape(batch, count, -1)
        )

    return evaluate


def pipeline_settings(settings: SynthRenderSettings) -> RenderSettings:
    """The ray pipeline's settings for rendering the world: deterministic, coarse + fine."""
    return RenderSettings(
        depth_resolution=settings.coarse_samples,
        depth_resolution_importance=settings.fine_samples,
        ray_start=settings.near,
        ray_end=settings.far,
        deterministic=True,
        chunk_rays=settings.chunk_rays,
    )


@torch.no_grad()
def render_rays(
    field: Callable,
    origins: torch.Tensor,
    directions: torch.Tensor,
    settings: SynthRenderSettings | None = None,
) -> torch.Tensor:
    """Marches a scene field (see :func:`scene_field`) along rays [M, 3] (unit directions).

    Returns [M, C + 1]: the composite features (2F - 1, as EG3D's marcher) then the depth. Used for
    whole images (:func:`render_field`) and for the random rays of training.
    """
    settings = settings or SynthRenderSettings()
    rays = pipeline.render_rays(
        _pipeline_field(field), origins[None], directions[None], pipeline_settings(settings)
    )
    return torch.cat([rays.features[0], rays.depth[0].unsqueeze(-1)], -1)


@torch.no_grad()
def render_field(
    field: Callable, cameras: torch.Tensor, settings: SynthRenderSettings | None = None
) -> RenderOutput:
    """Renders a scene field (see :func:`scene_field`) from one camera label [1, 25] or [25]."""
    settings = settings or SynthRenderSettings()
    labels = camera.check_labels(cameras.reshape(1, 25).float())
    res = settings.resolution
    origins, directions = camera.pixel_rays(labels, res)
    marched = render_rays(field, origins[0], directions[0], settings)
    composite = marched[:, :-1].reshape(res, res, -1).permute(2, 0, 1)
    depth = marched[:, -1].reshape(1, res, res)
    opacity = ((composite[3:4] + 1) / 2).clamp(0, 1)
    return RenderOutput(image=composite[:3].contiguous(), depth=depth, opacity=opacity)


def render(
    head: Field,
    cameras: torch.Tensor,
    obj: Field | None = None,
    settings: SynthRenderSettings | None = None,
) -> RenderOutput:
    """Renders head (+ object): image [3, R, R], depth [1, R, R], object opacity [1, R, R]."""
    return render_field(scene_field(head, obj), cameras, settings)


def render_object_only(
    obj: Field, cameras: torch.Tensor, settings: SynthRenderSettings | None = None
) -> RenderOutput:
    """The object alone (no head, no background): its image over black and its opacity."""

    def field(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sigma, rgb = obj(points)
        return sigma, torch.cat([rgb, torch.ones_like(sigma).unsqueeze(-1)], -1)

    return render_field(field, cameras, settings)


def frontal_camera(
    yaw: float = 0.0, pitch: float = 0.0, focal: float = camera.FFHQ_FOCAL
) -> torch.Tensor:
    """[1, 25] label of an FFHQ camera turned by yaw/pitch (radians) from the frontal view."""
    import math

    pose = camera.look_at_cam2world(math.pi / 2 + yaw, math.pi / 2 + pitch)
    return camera.camera_labels(pose, camera.intrinsics(focal))
