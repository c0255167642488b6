"""Head pose from landmarks, and EG3D camera labels from head pose.

Pose: a weak-perspective (scaled orthographic) camera fitted to 2-D landmarks of a known 3-D face
model by least squares - the same affine fit as the alignment (:mod:`innout.preprocess.align`) -
whose two rows, orthonormalised, are the first two rows of the head's rotation. It needs no
solver beyond an SVD and works with any number >= 4 of non-coplanar model points.

Labels (EG3D's dataset convention): with the head's rotation M (face frame -> a camera frame with
x right, y up, z toward the viewer; the face frame is the template's, x right, y up, z out of the
face) and the head's position, EG3D places the camera at

    c = normalise(0.27 * R (10 e_z - t) + (0, 0.006, 0.161)) * 2.7,   R = M^T,

with cam2world = [R diag(1, -1, -1) | c] (OpenCV axes: x right, y down, z forward) and normalised
intrinsics [[4.2647, 0, 0.5], [0, 4.2647, 0.5], [0, 0, 1]]. The label is the 16 cam2world
entries row-major followed by the 9 intrinsics. t is the head's offset in the reconstruction
model's units; the crop centres the head, so innout takes t = 0 (an offset of a few hundredths of
the 10-unit camera distance moves the camera by well under a degree).
"""

from __future__ import annotations

import math

import numpy as np

#: EG3D's FFHQ camera radius and normalised focal length (2985.29 px over the 700 px window).
RADIUS = 2.7
FOCAL = 4.2647
#: The reconstruction model's camera distance, the scale to EG3D's world and its offset.
_CAMERA_DISTANCE = 10.0
_WORLD_SCALE = 0.27
_WORLD_OFFSET = np.array([0.0, 0.006, 0.161])


def weak_perspective_pose(
    points: np.ndarray, model: np.ndarray, height: float
) -> tuple[np.ndarray, float]:
    """(rotation M [3, 3], scale) of a face model [N, 3] seen at 2-D points [N, 2] (pixels, y
    down, image of this height) through a scaled orthographic camera."""
    points = np.asarray(points, dtype=np.float64)
    model = np.asarray(model, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or model.shape != (points.shape[0], 3):
        raise ValueError(f"expected points [N, 2] and model [N, 3], got {points.shape} and "
                         f"{model.shape}")  # fmt: skip
    if points.shape[0] < 4:
        raise ValueError(f"need at least 4 points, got {points.shape[0]}")
    design = np.hstack([model, np.ones((model.shape[0], 1))])
    rows = []
    for target in (points[:, 0], height - points[:, 1]):  # y up, as the model
        fit, *_ = np.linalg.lstsq(design, target, rcond=None)
        rows.append(fit[:3])
    scale = 0.5 * (np.linalg.norm(rows[0]) + np.linalg.norm(rows[1]))
    r1 = rows[0] / np.linalg.norm(rows[0])
    r2 = rows[1] / np.linalg.norm(rows[1])
    approx = np.stack([r1, r2, np.cross(r1, r2)])
    u, _, vt = np.linalg.svd(approx)
    rotation = u @ vt
    if np.linalg.det(rotation) < 0:
        rotation = u @ np.diag([1.0, 1.0, -1.0]) @ vt
    return rotation, float(scale)


def rigid_pose(points: np.ndarray, model: np.ndarray) -> tuple[np.ndarray, float]:
    """(rotation M [3, 3], scale) of a face model [N, 3] matched to 3-D landmarks [N, 3] (x right,
    y up, z toward the viewer, any common unit) by a similarity transform (least squares,
    Umeyama's closed form: an SVD of the cross-covariance). Needs N >= 3 non-collinear points.

    With a detector that estimates depth (MediaPipe's mesh does), the head's yaw and pitch come
    from where all the points are in depth, not only from how far the nose tip moved sideways
    in the image: several times less noise than `weak_perspective_pose` from five 2-D points.
    """
    points = np.asarray(points, dtype=np.float64)
    model = np.asarray(model, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or model.shape != points.shape:
        raise ValueError(f"expected points and model [N, 3], got {points.shape} and "
                         f"{model.shape}")  # fmt: skip
    if points.shape[0] < 3:
        raise ValueError(f"need at least 3 points, got {points.shape[0]}")
    centred_points = points - points.mean(0)
    centred_model = model - model.mean(0)
    u, singular, vt = np.linalg.svd(centred_points.T @ centred_model)
    flip = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ flip @ vt
    scale = float(np.trace(np.diag(singular) @ flip) / np.square(centred_model).sum())
    return rotation, scale


def rotation_from_angles(yaw: float, pitch: float, roll: float = 0.0) -> np.ndarray:
    """M = Rz(roll) Ry(yaw) Rx(pitch) in radians (face frame -> camera frame, both y up): yaw
    turns the face toward the image's right for positive values (the viewer's right), pitch
    tilts it up, roll turns it counter-clockwise in the image."""
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ ry @ rx


def angles_from_rotation(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) of `rotation_from_angles` (for |yaw| < 90 degrees)."""
    m = np.asarray(rotation, dtype=np.float64)
    yaw = math.asin(max(-1.0, min(1.0, -m[2, 0])))
    pitch = math.atan2(m[2, 1], m[2, 2])
    roll = math.atan2(m[1, 0], m[0, 0])
    return yaw, pitch, roll


def eg3d_label(rotation: np.ndarray, translation: np.ndarray | None = None) -> np.ndarray:
    """The 25-float EG3D camera label of a head with this rotation M (see the module docstring)."""
    m = np.asarray(rotation, dtype=np.float64)
    if m.shape != (3, 3) or not np.allclose(m @ m.T, np.eye(3), atol=1e-5):
        raise ValueError("rotation must be a 3x3 rotation matrix")
    t = np.zeros(3) if translation is None else np.asarray(translation, dtype=np.float64)
    r = m.T
    centre = _WORLD_SCALE * (r @ (np.array([0.0, 0.0, _CAMERA_DISTANCE]) - t)) + _WORLD_OFFSET
    centre = RADIUS * centre / np.linalg.norm(centre)
    cam2world = np.eye(4)
    cam2world[:3, :3] = r @ np.diag([1.0, -1.0, -1.0])
    cam2world[:3, 3] = centre
    intrinsics = np.array([[FOCAL, 0, 0.5], [0, FOCAL, 0.5], [0, 0, 1]])
    return np.concatenate([cam2world.flatten(), intrinsics.flatten()])
