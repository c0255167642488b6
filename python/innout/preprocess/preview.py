"""The preview of a preprocessing run: each source frame with what was found drawn on it.

Drawn: the five landmarks (green; orange where the frame had no usable face and they were
interpolated), the crop's square (cyan), and the head's axes from the nose tip (x red, y green,
z blue, pointing out of the face), with the frame number and yaw / pitch / roll in degrees.
"""

from __future__ import annotations

import math

import numpy as np

from innout.preprocess.pose import angles_from_rotation

#: Length of the drawn head axes, in units of the five-point template (eye distance ~0.62).
AXIS_LENGTH = 0.5
_FOUND, _GUESSED = (40, 230, 60), (255, 150, 0)
_AXES = ((230, 40, 40), (40, 230, 60), (60, 120, 255))


def draw_preview(
    frame: np.ndarray,
    landmarks: np.ndarray,
    crop_from_source: np.ndarray,
    crop_size: int,
    rotation: np.ndarray,
    scale: float,
    interpolated: bool,
    label: str,
    max_height: int = 480,
) -> np.ndarray:
    """The annotated frame [h, w, 3] uint8, scaled down to at most `max_height` rows (even
    sizes, for H.264).

    Args:
        frame: the upright source frame [H, W, 3] uint8.
        landmarks: [5, 2] source pixels; crop_from_source: the 2x3 crop matrix.
        rotation, scale: the head pose (:func:`innout.preprocess.pose.weak_perspective_pose`).
        interpolated: whether this frame's landmarks were guessed from its neighbours.
        label: text drawn in the corner (e.g. the frame number).
    """
    from PIL import Image, ImageDraw

    height, width = frame.shape[:2]
    zoom = min(1.0, max_height / height)
    size = (max(2, round(width * zoom) // 2 * 2), max(2, round(height * zoom) // 2 * 2))
    image = Image.fromarray(np.ascontiguousarray(frame)).resize(size, Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    fx, fy = size[0] / width, size[1] / height

    def to_preview(points: np.ndarray) -> list[tuple[float, float]]:
        return [(float(x) * fx, float(y) * fy) for x, y in np.asarray(points).reshape(-1, 2)]

    matrix = np.vstack([np.asarray(crop_from_source, dtype=np.float64), [0, 0, 1]])
    corners = np.array([[0, 0], [crop_size, 0], [crop_size, crop_size], [0, crop_size]], float)
    source_from_crop = np.linalg.inv(matrix)[:2]
    source_corners = corners @ source_from_crop[:, :2].T + source_from_crop[:, 2]
    outline = to_preview(source_corners)
    draw.line(outline + outline[:1], fill=(0, 220, 230), width=2)
    nose = np.asarray(landmarks, dtype=np.float64)[2]
    for axis, colour in enumerate(_AXES):
        tip = nose + AXIS_LENGTH * scale * np.array([rotation[0, axis], -rotation[1, axis]])
        draw.line(to_preview(np.stack([nose, tip])), fill=colour, width=3)
    dot = max(2.0, 0.006 * size[1])
    colour = _GUESSED if interpolated else _FOUND
    for x, y in to_preview(landmarks):
        draw.ellipse((x - dot, y - dot, x + dot, y + dot), fill=colour)
    yaw, pitch, roll = (math.degrees(a) for a in angles_from_rotation(rotation))
    text = f"{label}  yaw {yaw:+.0f}  pitch {pitch:+.0f}  roll {roll:+.0f}"
    if interpolated:
        text += "  (no face: interpolated)"
    draw.rectangle((0, 0, size[0], 14), fill=(0, 0, 0))
    draw.text((4, 2), text, fill=_GUESSED if interpolated else (255, 255, 255))
    return np.asarray(image)
