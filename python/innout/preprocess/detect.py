"""Facial landmarks of video frames, offline.

The detector is MediaPipe's face mesh (face detection + 468-point mesh + iris refinement): the
PyPI wheels of mediapipe 0.10.14 to 0.10.21 carry its models, so nothing is downloaded (newer
releases fetch them at run time). It is an optional extra - ``pip install "innout[preprocess]"``
- and is imported only when a detector is made. (Those releases need numpy < 2; innout runs with
either.)

Preprocessing needs the five points of EG3D's alignment from each face (the eye centres, the
nose tip and the mouth corners, image-left first for an upright face) and a box to tell faces
apart; any callable with the `FaceDetector` signature can stand in for MediaPipe (the tests use
one that knows where the faces are).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

#: MediaPipe mesh indices of the five points. The mesh's "right eye" (the subject's) is the
#: image-left one of an upright, unmirrored face, so the mesh's order is the template's.
#: Eyes: the refined iris centres (468, 473), else the mean of each eye's four contour extremes.
_IRIS_CENTRES = (468, 473)
_EYE_CONTOURS = ((33, 133, 159, 145), (362, 263, 386, 374))
_NOSE_TIP = 1
_MOUTH_CORNERS = (61, 291)
#: The mediapipe releases whose wheels ship the face models.
SUPPORTED_MEDIAPIPE = ("0.10.14", "0.10.21")


class DetectorUnavailableError(ImportError):
    """The optional face detector is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Face:
    """One detected face: the five points [5, 2] (pixels, y down), its box (x0, y0, x1, y1) in
    pixels and a confidence in [0, 1]."""

    points: np.ndarray
    box: tuple[float, float, float, float]
    score: float = 1.0

    @property
    def size(self) -> float:
        """The box's larger side (pixels)."""
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])

    @property
    def centre(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])


class FaceDetector(Protocol):
    """Finds the faces of one upright RGB frame [H, W, 3] uint8."""

    def __call__(self, frame: np.ndarray) -> list[Face]: ...


def five_points(mesh: np.ndarray) -> np.ndarray:
    """The alignment's five points [5, 2] from a MediaPipe mesh [468 or 478, >= 2] (pixels)."""
    mesh = np.asarray(mesh, dtype=np.float64)[:, :2]
    if mesh.shape[0] not in (468, 478):
        raise ValueError(f"expected a MediaPipe face mesh of 468 or 478 points, got {mesh.shape}")
    if mesh.shape[0] == 478:
        eyes = [mesh[i] for i in _IRIS_CENTRES]
    else:
        eyes = [mesh[list(contour)].mean(0) for contour in _EYE_CONTOURS]
    return np.stack([eyes[0], eyes[1], mesh[_NOSE_TIP], *mesh[list(_MOUTH_CORNERS)]])


def mediapipe_version() -> str | None:
    """The installed mediapipe's version, or None."""
    from importlib import metadata

    try:
        return metadata.version("mediapipe")
    except metadata.PackageNotFoundError:
        return None


class MediapipeFaceMesh:
    """MediaPipe's face mesh as a `FaceDetector` (use as a context manager, or call `close`).

    Args:
        max_faces: faces looked for per frame (the tracker picks one).
        min_confidence: the face detector's threshold.
        static: detect in every frame independently (deterministic per frame, robust to cuts and
            occluders; the default) instead of MediaPipe's own frame-to-frame tracking.
    """

    def __init__(self, max_faces: int = 4, min_confidence: float = 0.5, static: bool = True):
        version = mediapipe_version()
        if version is None:
            raise DetectorUnavailableError(
                "the face detector needs MediaPipe, an optional extra: "
                'pip install "innout[preprocess]" (mediapipe '
                f"{SUPPORTED_MEDIAPIPE[0]} to {SUPPORTED_MEDIAPIPE[1]}, whose wheels ship the "
                "face models)"
            )
        try:
            from mediapipe.python.solutions import face_mesh
        except ImportError as error:
            raise DetectorUnavailableError(
                f"mediapipe {version} is installed but its face mesh does not import ({error}); "
                f"innout needs mediapipe {SUPPORTED_MEDIAPIPE[0]} to {SUPPORTED_MEDIAPIPE[1]}"
            ) from error
        if max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces}")
        self.version = version
        self._mesh = face_mesh.FaceMesh(
            static_image_mode=static,
            max_num_faces=max_faces,
            refine_landmarks=True,
            min_detection_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
        )

    def __call__(self, frame: np.ndarray) -> list[Face]:
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected an RGB frame [H, W, 3] uint8, got {frame.dtype} "
                             f"{list(frame.shape)}")  # fmt: skip
        height, width = frame.shape[:2]
        result = self._mesh.process(np.ascontiguousarray(frame))
        faces = []
        for landmarks in result.multi_face_landmarks or []:
            mesh = np.array([(p.x * width, p.y * height) for p in landmarks.landmark])
            low, high = mesh.min(0), mesh.max(0)
            box = (float(low[0]), float(low[1]), float(high[0]), float(high[1]))
            faces.append(Face(points=five_points(mesh), box=box))
        return faces

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> MediapipeFaceMesh:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
