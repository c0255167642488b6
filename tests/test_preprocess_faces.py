"""`innout preprocess` on a real face with the MediaPipe detector (the optional extra).

The face is scikit-image's astronaut photograph (shipped inside the scikit-image wheel), made into
short clips with known per-frame zoom, shift and in-plane rotation, mirrored, and with a pasted
occluder. Skipped cleanly where the extra or scikit-image is not installed; CI installs both.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from innout.preprocess import detect
from innout.preprocess.align import FIVE_POINT_TEMPLATE, canonical_landmarks
from innout.preprocess.pose import angles_from_rotation, weak_perspective_pose

skimage_data = pytest.importorskip("skimage.data")
CANVAS = (640, 480)  # width, height of the clips
FPS = 10


@pytest.fixture(scope="module")
def detector():
    try:
        mesh = detect.MediapipeFaceMesh()
    except detect.DetectorUnavailableError as error:
        pytest.skip(str(error))
    yield mesh
    mesh.close()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage_data.astronaut()


def place(image: np.ndarray, scale: float, shift: tuple[float, float], degrees: float = 0.0):
    """`image` zoomed by `scale`, turned counter-clockwise by `degrees` about its centre and
    shifted, on a grey canvas."""
    from PIL import Image

    height, width = image.shape[:2]
    angle = math.radians(degrees)
    # canvas = R S (source - centre) + centre + shift; PIL wants canvas -> source.
    rotation = np.array([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]])
    forward = scale * rotation
    centre = np.array([width / 2, height / 2])
    offset = centre + np.asarray(shift) - forward @ centre
    inverse = np.linalg.inv(forward)
    data = (*inverse[0], *(-inverse @ offset)[:1], *inverse[1], *(-inverse @ offset)[1:])
    canvas = Image.fromarray(image).transform(
        CANVAS, Image.Transform.AFFINE, data=data, resample=Image.Resampling.BICUBIC,
        fillcolor=(128, 128, 128),
    )  # fmt: skip
    return np.asarray(canvas)


def pose_of(points: np.ndarray, height: int) -> np.ndarray:
    rotation, _ = weak_perspective_pose(points, FIVE_POINT_TEMPLATE, height)
    return np.degrees(angles_from_rotation(rotation))


def write_clip(path, frames) -> None:
    from innout.media import write_video

    write_video(path, frames, fps=FPS)


def test_crops_are_consistent_and_occluded_frames_interpolated(detector, astronaut, tmp_path):
    from innout.invert.clip import load_clip
    from innout.preprocess.pipeline import preprocess
    from PIL import Image

    face = max(detector(astronaut), key=lambda f: f.size)
    frames = []
    for t in range(6):
        frame = place(astronaut, 0.75 + 0.04 * t, (-60 + 20 * t, -40 + 6 * t)).copy()
        if t == 3:  # a grey card over the whole face
            x0, y0, x1, y1 = face.box
            scale, shift = 0.75 + 0.04 * t, np.array([-60 + 20 * t, -40 + 6 * t])
            centre = np.array([256.0, 256.0])
            low = (np.array([x0, y0]) - centre) * scale + centre + shift - 15
            high = (np.array([x1, y1]) - centre) * scale + centre + shift + 15
            frame[int(low[1]) : int(high[1]), int(low[0]) : int(high[0])] = 128
        frames.append(frame)
    write_clip(tmp_path / "clip.mp4", frames)
    with pytest.warns(UserWarning, match=r"no usable face in frames 3 \(of 6\)"):
        result = preprocess(tmp_path / "clip.mp4", tmp_path / "pre", smooth=0.0, progress=False)
    assert result.interpolated_ranges == [(3, 3)]
    # Re-detecting on the crops finds the landmarks at the same place in every crop (the
    # alignment undid the zoom and the shift), near where the template lands frontally.
    found = []
    for t in (0, 1, 2, 4, 5):
        with Image.open(tmp_path / "pre" / "frames" / f"{t:05d}.png") as image:
            crop = np.asarray(image.convert("RGB"))
        found.append(max(detector(crop), key=lambda f: f.size).points)
    found = np.stack(found)
    # Detection noise of ~1 source pixel is ~4 pixels in the 512 crop of a face this small.
    spread = np.abs(found - found.mean(0)).max()
    assert spread < 6.0, spread
    # The template is an average face: this one's proportions (a broad smile, a low nose tip)
    # put its eyes and mouth corners within ~30 px of the template's, its nose tip ~45 px.
    offset = np.abs(found.mean(0) - canonical_landmarks(512))[[0, 1, 3, 4]].max()
    assert offset < 35.0, (found.mean(0) - canonical_landmarks(512)).round(1)
    # The cameras: rotations at radius 2.7, all about the same (the face only zooms and moves).
    cameras = load_clip(tmp_path / "pre").cameras.double()
    cam2world = cameras[:, :16].reshape(-1, 4, 4).numpy()
    rotations = cam2world[:, :3, :3]
    assert np.allclose(rotations @ rotations.transpose(0, 2, 1), np.eye(3), atol=1e-5)
    assert np.allclose(np.linalg.norm(cam2world[:, :3, 3], axis=1), 2.7, atol=1e-4)
    # The same head pose in every frame (unsmoothed: the detector's noise only).
    assert np.ptp(result.poses, axis=0).max() < 3.0, result.poses


def turned(image: np.ndarray, centre: np.ndarray, shift: float, radius: float) -> np.ndarray:
    """`image` with its middle pushed sideways: a Gaussian bump of horizontal displacement
    (`shift` px at `centre`, falling off over `radius`) moves the nose more than the eyes and
    the face's outline not at all - what a head turning a little looks like."""
    from scipy import ndimage

    rows, cols = np.mgrid[0 : image.shape[0], 0 : image.shape[1]].astype(np.float64)
    bump = shift * np.exp(-((cols - centre[0]) ** 2 + (rows - centre[1]) ** 2) / (2 * radius**2))
    out = [ndimage.map_coordinates(image[..., c], [rows, cols - bump], order=1) for c in range(3)]
    return np.stack(out, -1)


def test_yaw_changes_sign_when_the_clip_is_mirrored(detector, astronaut, tmp_path):
    from innout.preprocess.pipeline import preprocess

    face = max(detector(astronaut), key=lambda f: f.size)
    posed = turned(astronaut, face.points[2], 0.15 * face.size, 0.25 * face.size)
    frames = [place(posed, 0.8, (10 * t, 0)) for t in range(3)]
    write_clip(tmp_path / "clip.mp4", frames)
    write_clip(tmp_path / "mirrored.mp4", [np.ascontiguousarray(f[:, ::-1]) for f in frames])
    yaw = preprocess(tmp_path / "clip.mp4", tmp_path / "a", progress=False).poses[:, 0]
    mirrored = preprocess(tmp_path / "mirrored.mp4", tmp_path / "b", progress=False).poses[:, 0]
    assert np.abs(yaw).min() > 3.0, yaw
    assert np.all(np.sign(yaw) == -np.sign(mirrored)), (yaw, mirrored)
    assert np.abs(yaw + mirrored).max() < 0.5 * np.abs(yaw).mean() + 2.0


@pytest.mark.parametrize("degrees", [-15.0, 12.0])
def test_known_in_plane_rotations_are_recovered(detector, astronaut, degrees):
    height = CANVAS[1]
    upright = max(detector(place(astronaut, 0.8, (0, 0))), key=lambda f: f.size)
    turned = max(detector(place(astronaut, 0.8, (0, 0), degrees)), key=lambda f: f.size)
    roll = pose_of(turned.points, height)[2] - pose_of(upright.points, height)[2]
    assert roll == pytest.approx(degrees, abs=2.0)
