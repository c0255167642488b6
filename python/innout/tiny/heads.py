"""The training data of innout-tiny: random heads of the synthetic world seen from random
cameras, and their analytic renders (the regression targets; docs/synthetic-world.md)."""

from __future__ import annotations

import math

import torch

from innout.eg3d import camera
from innout.synth.head import HeadField, HeadParams, params_from_z
from innout.synth.render import SynthRenderSettings, scene_field
from innout.synth.render import render as render_head
from innout.synth.render import render_rays as march_field

#: Camera angles of training views (radians from frontal): a little wider than the videos'
#: (yaw +-0.35, pitch +-0.2) and the novel views' (yaw 0.45) so that all are in distribution.
MAX_TRAIN_YAW = 0.55
MAX_TRAIN_PITCH = 0.3


def sample_heads(
    count: int, rng: torch.Generator, z_dim: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """z [count, z_dim] ~ N(0, I) and camera labels [count, 25] with random yaw and pitch."""
    z = torch.randn(count, z_dim, generator=rng)
    yaw = (torch.rand(count, generator=rng) * 2 - 1) * MAX_TRAIN_YAW
    pitch = (torch.rand(count, generator=rng) * 2 - 1) * MAX_TRAIN_PITCH
    pose = camera.look_at_cam2world(math.pi / 2 + yaw, math.pi / 2 + pitch)
    labels = camera.camera_labels(pose, camera.intrinsics(camera.FFHQ_FOCAL).expand(count, 3, 3))
    return z, labels


def ground_truth_rays(
    z: torch.Tensor, origins: torch.Tensor, directions: torch.Tensor, samples: int
) -> torch.Tensor:
    """Analytic render of head p(z_i) along rays [N, M, 3]: [N, M, 4] = RGB in [-1, 1], depth."""
    settings = SynthRenderSettings(coarse_samples=samples, fine_samples=samples)
    out = []
    for i in range(z.shape[0]):
        field = scene_field(HeadField(params_from_z(z[i])), None)
        marched = march_field(field, origins[i], directions[i], settings)
        out.append(torch.cat([marched[:, :3], marched[:, -1:]], -1))
    return torch.stack(out)


def head_image(
    params: HeadParams, cameras: torch.Tensor, resolution: int, samples: int
) -> torch.Tensor:
    """Analytic render [3, R, R] in [-1, 1] of one head from one camera label."""
    settings = SynthRenderSettings(
        resolution=resolution, coarse_samples=samples, fine_samples=samples
    )
    return render_head(HeadField(params), cameras, settings=settings).image


def ground_truth_images(
    z: torch.Tensor, labels: torch.Tensor, resolution: int, samples: int
) -> torch.Tensor:
    """Analytic renders [N, 3, R, R] in [-1, 1] of heads p(z_i) from cameras labels[i]."""
    return torch.stack(
        [head_image(params_from_z(z[i]), labels[i], resolution, samples) for i in range(z.shape[0])]
    )
