"""The EG3D FFHQ alignment crop from five facial landmarks.

The official EG3D checkpoints were trained on "in-the-wild" FFHQ crops made this way (EG3D's
dataset preprocessing, which borrows Deep3DFaceRecon's alignment):

1. Five landmarks - the eye centres (the image-left one first), the nose tip and the mouth corners
   (image-left first) - are fitted to a fixed 3-D five-point template by an affine camera
   (least squares, 8 unknowns, on image coordinates with y pointing up). Its mean row length is
   the template's scale in the image, s_pos; its translation (t_x, t_y) is where the template's
   origin projects.
2. The image is scaled by s = 300 / s_pos, a 1024 x 1024 window is cut around the projected
   origin, its central 700 x 700 part is kept and resized to 512 x 512.

The crop is a scale and a translation (no rotation): in continuous pixel coordinates (x right,
y down, pixel (i, j) covering [j, j+1) x [i, i+1)), a source point (x, y) lands at

    u = k s (x - t_x) + S / 2,   v = k s (y - y_o) + S / 2,   k = S / 700,

for an output of size S (512), where y_o = H - t_y is the projected origin with y down.

**Decision:** the research code flips y as H - 1 - y on pixel indices and truncates the scaled
image size and window corner to integers; innout flips continuous coordinates exactly (y' = H - y)
and keeps the affine map exact, which moves the crop by at most about one source pixel and makes
the crop a single affine matrix that paste-back can invert (:mod:`innout.edit.paste`).
"""

from __future__ import annotations

import numpy as np

#: The five-point 3-D template (x right, y up, z toward the viewer; Deep3DFaceRecon's standard
#: landmarks from the Basel Face Model): left eye, right eye, nose tip, left and right mouth
#: corners, "left" meaning the image-left one.
FIVE_POINT_TEMPLATE = np.array(
    [
        [-0.311487, 0.290361, 0.133780],
        [0.309799, 0.289720, 0.131795],
        [0.003253, -0.046179, 0.552442],
        [-0.252169, -0.381339, 0.224057],
        [0.248466, -0.381282, 0.222358],
    ]
)
#: The template's scale in the 1024 window, the kept central window, and the output size.
RESCALE = 300.0
CENTRE_WINDOW = 700.0
OUTPUT_SIZE = 512


class AlignmentError(ValueError):
    """Landmarks that cannot define a crop; the message says what was expected."""


def fit_template(landmarks: np.ndarray, height: float) -> tuple[float, float, float]:
    """(s_pos, t_x, y_o): the template's scale and projected origin (y down) in the image.

    Args:
        landmarks: [5, 2] (x, y) in continuous pixel coordinates, y down, in the template's order.
        height: the image height H (the fit runs with y pointing up, y' = H - y).
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2) or not np.isfinite(points).all():
        raise AlignmentError(f"expected 5 finite (x, y) landmarks, got shape {points.shape}")
    if points[0, 0] >= points[1, 0] or points[3, 0] >= points[4, 0]:
        raise AlignmentError(
            "landmarks must be ordered left eye, right eye, nose, left mouth corner, right mouth "
            "corner, with each left point at the smaller x"
        )
    # x_i = r1 . X_i + t_x and y'_i = r2 . X_i + t_y: two independent least-squares fits.
    design = np.hstack([FIVE_POINT_TEMPLATE, np.ones((5, 1))])
    x_fit, *_ = np.linalg.lstsq(design, points[:, 0], rcond=None)
    y_fit, *_ = np.linalg.lstsq(design, height - points[:, 1], rcond=None)
    scale = 0.5 * (np.linalg.norm(x_fit[:3]) + np.linalg.norm(y_fit[:3]))
    if not scale > 1e-6:
        raise AlignmentError("the landmarks are degenerate (all at one point)")
    return float(scale), float(x_fit[3]), float(height - y_fit[3])


def crop_matrix(landmarks: np.ndarray, height: float, size: int = OUTPUT_SIZE) -> np.ndarray:
    """The 2x3 affine `crop_from_source` matrix of the EG3D crop of an image of this height
    (see the module docstring), for an output of `size` x `size` pixels."""
    scale, tx, y_origin = fit_template(landmarks, height)
    k_s = size / CENTRE_WINDOW * RESCALE / scale
    half = size / 2.0
    return np.array([[k_s, 0.0, half - k_s * tx], [0.0, k_s, half - k_s * y_origin]])


def canonical_landmarks(size: int = OUTPUT_SIZE) -> np.ndarray:
    """[5, 2] where the template's landmarks land in a frontal crop of `size` pixels (the
    template seen straight on, orthographically): the positions alignment aims for."""
    k = size / CENTRE_WINDOW * RESCALE
    xy = FIVE_POINT_TEMPLATE[:, :2] * np.array([k, -k])
    return xy + size / 2.0


def apply_matrix(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points [N, 2] mapped by a 2x3 affine matrix."""
    points = np.asarray(points, dtype=np.float64)
    return points @ np.asarray(matrix)[:, :2].T + np.asarray(matrix)[:, 2]


def warp_crop(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The crop [size, size, 3] uint8 of an [H, W, 3] uint8 image under `crop_from_source`.

    Like the research pipeline, the whole image is first resized with an antialiasing filter
    (LANCZOS) to about the crop's scale, then the exact affine remainder is applied (bicubic);
    parts outside the image are black.
    """
    from PIL import Image

    matrix = np.asarray(matrix, dtype=np.float64)
    height, width = image.shape[:2]
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    source = Image.fromarray(np.ascontiguousarray(image))
    resized_w, resized_h = max(1, round(width * scale)), max(1, round(height * scale))
    if scale < 1.0:
        source = source.resize((resized_w, resized_h), Image.Resampling.LANCZOS)
        to_resized = np.diag([resized_w / width, resized_h / height])
    else:
        to_resized = np.eye(2)
    # crop = A (x) + b with x = to_resized^-1 x_r: the remaining map from resized pixels.
    remaining = matrix[:, :2] @ np.linalg.inv(to_resized)
    full = np.vstack([np.hstack([remaining, matrix[:, 2:]]), [0, 0, 1]])
    inverse = np.linalg.inv(full)[:2]  # PIL wants output -> input, in edge coordinates
    crop = source.transform(
        (size, size),
        Image.Transform.AFFINE,
        data=tuple(inverse.flatten()),
        resample=Image.Resampling.BICUBIC,
        fillcolor=(0, 0, 0),
    )
    return np.asarray(crop)
