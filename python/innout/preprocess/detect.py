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
#: Side of the square crop around a face, in face sizes, in which its landmarks are measured.
ROI_SCALE = 2.0
#: The mediapipe releases whose wheels ship the face models.
SUPPORTED_MEDIAPIPE = ("0.10.14", "0.10.21")


class DetectorUnavailableError(ImportError):
    """The optional face detector is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Face:
    """One detected face: the five points [5, 2] (pixels, y down), its box (x0, y0, x1, y1) in
    pixels and, from detectors that estimate it, the points' depth [5] (pixels, larger = farther
    from the camera; only differences matter)."""

    points: np.ndarray
    box: tuple[float, float, float, float]
    depth: np.ndarray | None = None

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
    """The alignment's five points [5, D] from a MediaPipe mesh [468 or 478, D] (pixels; D = 2,
    or 3 with depth)."""
    mesh = np.asarray(mesh, dtype=np.float64)
    if mesh.shape[0] not in (468, 478):
        raise ValueError(f"expected a MediaPipe face mesh of 468 or 478 points, got {mesh.shape}")
    if mesh.shape[0] == 478:
        eyes = [mesh[i] for i in _IRIS_CENTRES]
    else:
        eyes = [mesh[list(contour)].mean(0) for contour in _EYE_CONTOURS]
    return np.stack([eyes[0], eyes[1], mesh[_NOSE_TIP], *mesh[list(_MOUTH_CORNERS)]])


def overlap(a: Face, b: Face) -> float:
    """Intersection over union of two faces' boxes."""
    width = min(a.box[2], b.box[2]) - max(a.box[0], b.box[0])
    height = min(a.box[3], b.box[3]) - max(a.box[1], b.box[1])
    inter = max(0.0, width) * max(0.0, height)
    areas = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in (a, b)]
    union = areas[0] + areas[1] - inter
    return inter / union if union > 0 else 0.0


def mediapipe_version() -> str | None:
    """The installed mediapipe's version, or None."""
    from importlib import metadata

    try:
        return metadata.version("mediapipe")
    except metadata.PackageNotFoundError:
        return None


class MediapipeFaceMesh:
    """MediaPipe's face mesh as a `FaceDetector` (use as a context manager, or call `close`).

    Every frame is searched whole and near the faces of the previous frame (so call it on a
    video's frames in order), each region as a square crop; the landmarks of each face found are
    then measured again in a square crop around it (ROI_SCALE face sizes).

    Args:
        max_faces: faces looked for per region (the tracker picks one).
        min_confidence: the face detector's threshold.
    """

    def __init__(self, max_faces: int = 4, min_confidence: float = 0.5):
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
        self._previous: list[Face] = []
        # Static mode: every call is an independent image (the regions differ between calls).
        self._mesh = face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=max_faces,
            refine_landmarks=True,
            min_detection_confidence=min_confidence,
        )

    def __call__(self, frame: np.ndarray) -> list[Face]:
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected an RGB frame [H, W, 3] uint8, got {frame.dtype} "
                             f"{list(frame.shape)}")  # fmt: skip
        height, width = frame.shape[:2]
        # Where to look: the whole frame, and around the faces of the previous frame
        # (MediaPipe's short-range detector misses faces under ~15 % of the frame; near where a
        # face just was, it finds it again).
        regions = [((width / 2, height / 2), max(width, height) / 2)]
        regions += [(tuple(face.centre), face.size * ROI_SCALE / 2) for face in self._previous]
        found: list[Face] = []
        for centre, half in regions:
            for face in self._mesh_in(frame, centre, half):
                if not any(overlap(face, other) > 0.5 for other in found):
                    found.append(face)
        # Landmarks from a square crop around each face: MediaPipe's landmark projection is
        # exact only for square inputs, and a close crop gives the mesh more pixels.
        refined = []
        for face in found:
            close = self._mesh_in(frame, tuple(face.centre), face.size * ROI_SCALE / 2)
            best = max(close, key=lambda f: overlap(f, face), default=None)
            refined.append(best if best is not None and overlap(best, face) > 0.3 else face)
        self._previous = refined
        return refined

    def _mesh_in(self, frame: np.ndarray, centre: tuple, half: float) -> list[Face]:
        """The faces in the square [centre - half, centre + half]^2 of `frame` (black outside)."""
        from PIL import Image

        side = max(16, round(2 * half))
        left, top = round(centre[0] - side / 2), round(centre[1] - side / 2)
        square = Image.fromarray(frame).crop((left, top, left + side, top + side))
        result = self._mesh.process(np.asarray(square))
        faces = []
        for landmarks in result.multi_face_landmarks or []:
            # Normalised by the square's side; MediaPipe's z has the scale of its x.
            mesh = np.array([(p.x, p.y, p.z) for p in landmarks.landmark]) * side
            mesh[:, :2] += (left, top)
            low, high = mesh[:, :2].min(0), mesh[:, :2].max(0)
            box = (float(low[0]), float(low[1]), float(high[0]), float(high[1]))
            points = five_points(mesh)
            faces.append(Face(points=points[:, :2], box=box, depth=points[:, 2]))
        return faces

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> MediapipeFaceMesh:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
