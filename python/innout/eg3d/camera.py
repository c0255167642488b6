"""EG3D cameras: 25-float labels, look-at poses and one ray per pixel (docs/method.md section 1).

A camera label is a row-major 4x4 cam2world matrix (OpenCV camera: +x right, +y down, +z forward)
followed by the row-major 3x3 intrinsics normalised by the image size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812

#: Normalised focal length of the FFHQ/AFHQ models (18.837 degrees of vertical field of view).
FFHQ_FOCAL = 4.2647
#: Camera radius and look-at pivot of the FFHQ models.
FFHQ_RADIUS = 2.7
FFHQ_PIVOT = (0.0, 0.0, 0.2)


def intrinsics(focal: float, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[3, 3] normalised intrinsics [[f, 0, 0.5], [0, f, 0.5], [0, 0, 1]]."""
    return torch.tensor([[focal, 0.0, 0.5], [0.0, focal, 0.5], [0.0, 0.0, 1.0]], dtype=dtype)


def fov_to_focal(fov_degrees: float) -> float:
    """Normalised focal length of EG3D's field of view, f = 1 / (sqrt(2) tan(fov / 2)).

    EG3D measures the angle across the image diagonal (half-diagonal sqrt(2)/2 at focal f); its
    helper rounds pi and sqrt(2) to 3.14159 and 1.414. 18.837 degrees gives 4.263; the FFHQ
    models' own camera labels use 4.2647 (FFHQ_FOCAL), which is what their renders should use.
    """
    return 1.0 / (math.sqrt(2.0) * math.tan(math.radians(fov_degrees) / 2.0))


def look_at_cam2world(
    yaw: torch.Tensor | float,
    pitch: torch.Tensor | float,
    radius: float = FFHQ_RADIUS,
    pivot: tuple[float, float, float] = FFHQ_PIVOT,
) -> torch.Tensor:
    """[N, 4, 4] cam2world of cameras on a sphere around `pivot`, looking at it (EG3D's look-at).

    Args:
        yaw, pitch: angles in radians, scalars or [N]; yaw = pitch = pi/2 is the frontal camera
            on the +z side of the pivot. Pitch is clamped to (0, pi) as EG3D does.
        radius: distance from the pivot's origin (EG3D places the camera at `radius` from the world
            origin along the spherical direction and aims it at the pivot).
        pivot: the point looked at.
    """
    yaw_t = torch.as_tensor(yaw, dtype=torch.float32).reshape(-1)
    pitch_t = torch.as_tensor(pitch, dtype=torch.float32).reshape(-1)
    yaw_t, pitch_t = torch.broadcast_tensors(yaw_t, pitch_t)
    v = torch.clamp(pitch_t, 1e-5, math.pi - 1e-5) / math.pi
    phi = torch.arccos(1 - 2 * v)
    theta = yaw_t
    origin = radius * torch.stack(
        [
            torch.sin(phi) * torch.cos(math.pi - theta),
            torch.cos(phi),
            torch.sin(phi) * torch.sin(math.pi - theta),
        ],
        dim=-1,
    )
    target = torch.tensor(pivot, dtype=torch.float32)
    forward = F.normalize(target - origin, dim=-1)
    up = torch.tensor([0.0, 1.0, 0.0]).expand_as(forward)
    right = -F.normalize(torch.linalg.cross(up, forward, dim=-1), dim=-1)
    up = F.normalize(torch.linalg.cross(forward, right, dim=-1), dim=-1)
    cam2world = torch.eye(4).repeat(forward.shape[0], 1, 1)
    cam2world[:, :3, :3] = torch.stack([right, up, forward], dim=-1)
    cam2world[:, :3, 3] = origin
    return cam2world


def camera_labels(cam2world: torch.Tensor, intrinsics_matrix: torch.Tensor) -> torch.Tensor:
    """[N, 25] labels from cam2world [N, 4, 4] and intrinsics [3, 3] or [N, 3, 3]."""
    if cam2world.dim() != 3 or cam2world.shape[1:] != (4, 4):
        raise ValueError(f"cam2world must have shape [N, 4, 4], got {tuple(cam2world.shape)}")
    k = intrinsics_matrix.to(cam2world).expand(cam2world.shape[0], 3, 3)
    return torch.cat([cam2world.reshape(-1, 16), k.reshape(-1, 9)], dim=1)


def frontal_labels(count: int = 1, focal: float = FFHQ_FOCAL) -> torch.Tensor:
    """[count, 25] labels of the frontal FFHQ camera (the usual conditioning camera)."""
    pose = look_at_cam2world(math.pi / 2, math.pi / 2).expand(count, 4, 4)
    return camera_labels(pose, intrinsics(focal))


def check_labels(cameras: torch.Tensor) -> torch.Tensor:
    """Validates [N, 25] camera labels."""
    if not isinstance(cameras, torch.Tensor) or cameras.dim() != 2 or cameras.shape[1] != 25:
        got = tuple(cameras.shape) if isinstance(cameras, torch.Tensor) else type(cameras).__name__
        raise ValueError(
            f"camera labels must have shape [N, 25] (16 cam2world + 9 intrinsics), got {got}"
        )
    return cameras


#: How far a label's rotation may be from orthonormal (|R^T R - I| entries) and its matrices'
#: fixed rows from [0 0 0 1] / [0 0 1]: labels written with 6 decimals stay far inside it.
LABEL_TOLERANCE = 1e-2


def label_problems(cameras: torch.Tensor) -> list[tuple[int, str]]:
    """(index, what is wrong) for each [N, 25] camera label that is not a camera: non-finite
    values, a cam2world whose rotation is not a rotation (all zeros, scaled, mirrored) or whose
    last row is not [0, 0, 0, 1], or intrinsics without positive focal lengths and a last row
    [0, 0, 1]. Such labels would render NaN or nothing at all."""
    cameras = check_labels(cameras).double()
    problems = []
    finite = torch.isfinite(cameras).all(dim=1)
    pose = cameras[:, :16].reshape(-1, 4, 4)
    rotation = pose[:, :3, :3]
    gram = rotation.transpose(1, 2) @ rotation - torch.eye(3, dtype=cameras.dtype)
    orthonormal = gram.abs().amax(dim=(1, 2)) <= LABEL_TOLERANCE
    proper = torch.linalg.det(rotation) > 0
    bottom = (pose[:, 3] - torch.tensor([0.0, 0, 0, 1], dtype=cameras.dtype)).abs().amax(dim=1)
    intrinsic = cameras[:, 16:].reshape(-1, 3, 3)
    focal = (intrinsic[:, 0, 0] > 0) & (intrinsic[:, 1, 1] > 0)
    last = (intrinsic[:, 2] - torch.tensor([0.0, 0, 1], dtype=cameras.dtype)).abs().amax(dim=1)
    for i in range(cameras.shape[0]):
        if not finite[i]:
            problems.append((i, "has NaN or infinite values"))
        elif not (orthonormal[i] and proper[i]):
            problems.append((i, "cam2world's 3x3 block is not a rotation (orthonormal, det +1)"))
        elif bottom[i] > LABEL_TOLERANCE:
            problems.append((i, "cam2world's last row is not [0, 0, 0, 1]"))
        elif not focal[i] or last[i] > LABEL_TOLERANCE:
            problems.append((i, "intrinsics need focal lengths > 0 and a last row [0, 0, 1]"))
    return problems


def pixel_rays(cameras: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One ray per pixel centre of a resolution x resolution image (EG3D's ray sampler).

    Args:
        cameras: [N, 25] labels.
        resolution: R.

    Returns:
        origins [N, R*R, 3] and unit directions [N, R*R, 3]; ray index = row * R + col.
    """
    check_labels(cameras)
    n = cameras.shape[0]
    cam2world = cameras[:, :16].reshape(n, 4, 4)
    k = cameras[:, 16:25].reshape(n, 3, 3)
    fx, fy = k[:, 0, 0], k[:, 1, 1]
    cx, cy, skew = k[:, 0, 2], k[:, 1, 2], k[:, 0, 1]
    centres = (
        torch.arange(resolution, dtype=cameras.dtype, device=cameras.device) / resolution
        + 0.5 / resolution
    )
    y, x = torch.meshgrid(centres, centres, indexing="ij")
    x = x.reshape(1, -1)
    y = y.reshape(1, -1)
    fx, fy, cx, cy, skew = (v.unsqueeze(-1) for v in (fx, fy, cx, cy, skew))
    x_cam = (x - cx + cy * skew / fy - skew * y / fy) / fx
    y_cam = (y - cy) / fy
    ones = torch.ones_like(x_cam)
    points_cam = torch.stack([x_cam, y_cam.expand_as(x_cam), ones, ones], dim=1)  # [N, 4, M]
    points_world = torch.bmm(cam2world, points_cam).permute(0, 2, 1)[..., :3]
    origins = cam2world[:, :3, 3].unsqueeze(1)
    directions = F.normalize(points_world - origins, dim=2)
    return origins.expand_as(directions).contiguous(), directions
