"""Novel views of an edited video: cameras [T, 25] around the FFHQ pivot."""

from __future__ import annotations

import math

import torch

from innout.edit.specs import EditError
from innout.eg3d import camera


def view_cameras(
    frames: int,
    yaw: float = 0.0,
    pitch: float = 0.0,
    orbit: bool = False,
    focal: float | None = None,
) -> torch.Tensor:
    """[T, 25] cameras at radius 2.7 around the FFHQ pivot: a fixed view at yaw/pitch (degrees)
    or, with `orbit`, a full left-right sweep of +-yaw (default 30 degrees) over the frames."""
    focal = focal or camera.FFHQ_FOCAL
    if orbit:
        amplitude = math.radians(yaw or 30.0)
        yaws = [amplitude * math.sin(2 * math.pi * t / frames) for t in range(frames)]
    else:
        yaws = [math.radians(yaw)] * frames
    pitches = torch.full((frames,), math.pi / 2 + math.radians(pitch))
    pose = camera.look_at_cam2world(math.pi / 2 + torch.tensor(yaws), pitches)
    return camera.camera_labels(pose, camera.intrinsics(focal).expand(frames, 3, 3))


def view_of(frames: int, view) -> torch.Tensor | None:
    """Cameras [T, 25] for a `view`: None (the frames' own), "orbit", (yaw, pitch) in degrees,
    or cameras [T, 25] / [1, 25] as they are."""
    if view is None or isinstance(view, torch.Tensor):
        return view
    if view == "orbit":
        return view_cameras(frames, orbit=True)
    if isinstance(view, (tuple, list)) and len(view) == 2:
        return view_cameras(frames, float(view[0]), float(view[1]))
    raise EditError(f"view must be None, 'orbit', (yaw, pitch) in degrees or [T, 25] cameras, "
                    f"got {view!r}")  # fmt: skip
