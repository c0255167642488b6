"""Alignment crops and camera labels from landmarks, on landmarks with known geometry."""

from __future__ import annotations

import numpy as np
import pytest
from innout.edit.paste import paste_back, paste_mask
from innout.preprocess.align import (
    FIVE_POINT_TEMPLATE,
    AlignmentError,
    apply_matrix,
    canonical_landmarks,
    crop_matrix,
    warp_crop,
)
from innout.preprocess.pose import (
    RADIUS,
    angles_from_rotation,
    eg3d_label,
    rotation_from_angles,
    weak_perspective_pose,
)
from innout.preprocess.track import TrackError, fill_missing, flagged_ranges, smooth_track


def project(rotation: np.ndarray, scale: float, centre: tuple[float, float], height: float):
    """The template seen through a scaled orthographic camera, as image pixels (y down)."""
    camera = FIVE_POINT_TEMPLATE @ rotation.T
    x = scale * camera[:, 0] + centre[0]
    y = height - (scale * camera[:, 1] + (height - centre[1]))
    return np.stack([x, y], axis=1)


def test_a_frontal_face_lands_on_the_canonical_positions_at_any_scale_and_place():
    for scale, centre in ((150.0, (320.0, 240.0)), (60.0, (100.0, 300.0)), (400.0, (900, 500))):
        landmarks = project(np.eye(3), scale, centre, 720.0)
        matrix = crop_matrix(landmarks, 720.0)
        assert matrix[0, 1] == 0 and matrix[1, 0] == 0  # scale and translation only
        assert np.allclose(apply_matrix(matrix, landmarks), canonical_landmarks(), atol=1e-9)
    # Eyes above the mouth, left eye left, in the 512 crop.
    canonical = canonical_landmarks()
    assert canonical[0, 0] < 256 < canonical[1, 0] and canonical[0, 1] < canonical[3, 1]


def test_the_crop_follows_a_known_scale_and_shift_of_the_frame():
    rotation = rotation_from_angles(0.3, -0.1, 0.05)
    landmarks = project(rotation, 120.0, (300.0, 200.0), 480.0)
    zoom, shift = 1.7, np.array([35.0, -12.0])
    moved = landmarks * zoom + shift
    before = crop_matrix(landmarks, 480.0)
    after = crop_matrix(moved, 480.0)
    # The same face in the same crop: after(zoom x + shift) == before(x).
    probe = np.array([[10.0, 20.0], [300.0, 200.0], [450.0, 90.0]])
    assert np.allclose(apply_matrix(after, probe * zoom + shift), apply_matrix(before, probe))


def test_weak_perspective_pose_recovers_known_rotations():
    rng = np.random.default_rng(0)
    for _ in range(10):
        yaw, pitch, roll = rng.uniform(-0.6, 0.6), rng.uniform(-0.4, 0.4), rng.uniform(-0.5, 0.5)
        rotation = rotation_from_angles(yaw, pitch, roll)
        landmarks = project(rotation, 140.0, (256.0, 256.0), 512.0)
        estimate, scale = weak_perspective_pose(landmarks, FIVE_POINT_TEMPLATE, 512.0)
        assert scale == pytest.approx(140.0, rel=1e-9)
        assert np.allclose(angles_from_rotation(estimate), (yaw, pitch, roll), atol=1e-9)


def test_mirroring_the_image_flips_the_yaw():
    rotation = rotation_from_angles(0.35, 0.1, 0.0)
    landmarks = project(rotation, 140.0, (256.0, 256.0), 512.0)
    mirrored = landmarks.copy()
    mirrored[:, 0] = 512.0 - mirrored[:, 0]
    mirrored = mirrored[[1, 0, 2, 4, 3]]  # the image-left points are the other ones now
    yaw, pitch, _ = angles_from_rotation(weak_perspective_pose(landmarks, FIVE_POINT_TEMPLATE,
                                                               512.0)[0])  # fmt: skip
    mirror_rotation, _ = weak_perspective_pose(mirrored, FIVE_POINT_TEMPLATE, 512.0)
    mirror_yaw, mirror_pitch, _ = angles_from_rotation(mirror_rotation)
    # The template is not exactly symmetric (measured: 0.35 -> -0.373 rad), hence the tolerance.
    assert yaw > 0.3 and mirror_yaw == pytest.approx(-yaw, abs=0.05)
    assert mirror_pitch == pytest.approx(pitch, abs=0.02)


def test_camera_labels_are_rotations_at_radius_2_7():
    frontal = eg3d_label(np.eye(3))
    pose = frontal[:16].reshape(4, 4)
    assert np.allclose(pose[:3, :3], np.diag([1.0, -1.0, -1.0]))
    assert np.linalg.norm(pose[:3, 3]) == pytest.approx(RADIUS)
    assert pose[2, 3] > 2.69 and abs(pose[0, 3]) < 1e-9  # in front of the face, centred
    assert np.allclose(frontal[16:], [4.2647, 0, 0.5, 0, 4.2647, 0.5, 0, 0, 1])
    xs = []
    for yaw in (-0.3, 0.3):
        label = eg3d_label(rotation_from_angles(yaw, 0.05, 0.1))
        pose = label[:16].reshape(4, 4)
        rotation = pose[:3, :3]
        assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-9)
        assert np.linalg.det(rotation) == pytest.approx(1.0)
        assert np.linalg.norm(pose[:3, 3]) == pytest.approx(RADIUS)
        # The camera looks at the head: its forward axis (+z, OpenCV) points back toward it.
        forward = rotation[:, 2]
        assert np.dot(forward, -pose[:3, 3]) / RADIUS > 0.99
        xs.append(pose[0, 3])
    assert xs[0] == pytest.approx(-xs[1]) and abs(xs[0]) > 0.5
    with pytest.raises(ValueError, match="rotation matrix"):
        eg3d_label(np.ones((3, 3)))


@pytest.mark.parametrize(
    "landmarks, message",
    [
        (np.zeros((4, 2)), "5 finite"),
        (np.full((5, 2), np.nan), "5 finite"),
        (project(np.eye(3), 100.0, (200.0, 200.0), 400.0)[[1, 0, 2, 3, 4]], "ordered"),
    ],
)
def test_bad_landmarks_are_refused(landmarks, message):
    with pytest.raises(AlignmentError, match=message):
        crop_matrix(landmarks, 400.0)


def test_warped_crops_match_the_matrix_and_paste_back_inverts_them():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, size=(300, 400, 3), dtype=np.uint8)
    shift = np.array([[1.0, 0.0, -50.0], [0.0, 1.0, -70.0]])  # an integer shift: a plain slice
    assert np.array_equal(warp_crop(image, shift, 128), image[70:198, 50:178])
    # A real alignment crop (downscaled) pasted back in full reproduces the frame inside it.
    ys, xs = np.mgrid[0:300, 0:400]
    smooth = np.stack([xs * 0.6, ys * 0.8, 128 + 100 * np.sin(xs / 25.0) * np.cos(ys / 30.0)], -1)
    smooth = smooth.astype(np.uint8)
    landmarks = project(rotation_from_angles(0.1, 0.0, 0.0), 90.0, (200.0, 150.0), 300.0)
    matrix = crop_matrix(landmarks, 300.0, size=128)
    crop = warp_crop(smooth, matrix, 128)
    assert crop.shape == (128, 128, 3)
    import torch

    tensor = torch.from_numpy(crop.copy()).permute(2, 0, 1).float() / 127.5 - 1
    pasted = paste_back(smooth, tensor, matrix, 128, paste_mask(None, 128, 0, 8))
    centre = apply_matrix(np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2], [[64.0, 64.0]])[0]
    cx, cy = int(centre[0]), int(centre[1])
    window = (slice(cy - 10, cy + 10), slice(cx - 10, cx + 10))
    error = np.abs(pasted[window].astype(int) - smooth[window].astype(int))
    assert error.max() <= 3, error.max()


# ---- landmark tracks -------------------------------------------------------------------------


def test_frames_without_a_face_are_interpolated_and_flagged():
    t = np.arange(10, dtype=np.float64)
    track = np.stack([np.stack([t, 2 * t], -1)] * 5, axis=1)  # [10, 5, 2], linear motion
    hidden = track.copy()
    hidden[[0, 4, 5, 6, 9]] = np.nan
    filled, flags = fill_missing(hidden)
    assert flags.tolist() == [True, False, False, False, True, True, True, False, False, True]
    assert np.allclose(filled[4:7], track[4:7])  # linear between frames 3 and 7
    assert np.allclose(filled[0], track[1]) and np.allclose(filled[9], track[8])  # ends held
    assert flagged_ranges(flags) == [(0, 0), (4, 6), (9, 9)]
    with pytest.raises(TrackError, match="no face"):
        fill_missing(np.full((3, 5, 2), np.nan))


def test_smoothing_keeps_constant_and_linear_tracks_and_removes_jitter():
    rng = np.random.default_rng(0)
    t = np.arange(40, dtype=np.float64)[:, None, None]
    linear = np.broadcast_to(3.0 * t + 1.0, (40, 5, 2))
    assert np.allclose(smooth_track(linear, 2.0)[8:-8], linear[8:-8])
    constant = np.full((40, 5, 2), 7.0)
    assert np.allclose(smooth_track(constant, 3.0), constant)
    jitter = linear + rng.normal(0, 1.0, linear.shape)
    before = np.abs(jitter - linear)[8:-8].mean()
    after = np.abs(smooth_track(jitter, 2.0) - linear)[8:-8].mean()
    assert after < 0.5 * before
    assert np.array_equal(smooth_track(jitter, 0), jitter)
    with pytest.raises(TrackError, match="sigma"):
        smooth_track(jitter, -1)


# ---- the output folder -----------------------------------------------------------------------


def test_the_preprocessed_folder_loads_for_inversion_and_paste_back(tmp_path):
    import json

    import torch
    from innout.edit.paste import load_transforms
    from innout.invert.clip import load_clip
    from innout.preprocess.output import write_preprocessed

    ys, xs = np.mgrid[0:240, 0:320]
    frame = np.stack([xs * 0.7, ys, 128 + 90 * np.sin(xs / 20.0)], -1).astype(np.uint8)
    tracks = np.stack([project(rotation_from_angles(0.05 * t, 0, 0), 60.0, (150 + 5 * t, 120.0),
                               240.0) for t in range(3)])  # fmt: skip
    tracks[1] = np.nan  # the face is hidden in frame 1
    filled, flags = fill_missing(tracks)
    matrices = np.stack([crop_matrix(points, 240.0, size=64) for points in filled])
    crops = [warp_crop(frame, matrix, 64) for matrix in matrices]
    labels = np.stack([eg3d_label(weak_perspective_pose(points, FIVE_POINT_TEMPLATE, 240.0)[0])
                       for points in filled])  # fmt: skip
    out = write_preprocessed(tmp_path / "clip", crops, labels, matrices, filled, flags,
                             tmp_path / "source.mp4", (320, 240), [0, 1, 2], 25.0)  # fmt: skip
    clip = load_clip(out)
    assert clip.frames.shape == (3, 3, 64, 64)
    assert torch.allclose(clip.cameras, torch.from_numpy(labels).float())
    transforms = load_transforms(out / "transforms.json")
    assert np.allclose(transforms.crop_from_source, matrices) and transforms.crop_size == 64
    record = json.loads((out / "landmarks.json").read_text())
    assert [f["interpolated"] for f in record["frames"]] == [False, True, False]
    assert record["interpolated_ranges"] == [[1, 1]]
    with pytest.raises(FileExistsError):
        write_preprocessed(out, crops, labels, matrices, filled, flags, "s.mp4", (320, 240),
                           [0, 1, 2], 25.0)  # fmt: skip
    with pytest.raises(ValueError, match="labels must have shape"):
        write_preprocessed(tmp_path / "bad", crops, labels[:2], matrices, filled, flags,
                           "s.mp4", (320, 240), [0, 1, 2], 25.0)  # fmt: skip
    assert not (tmp_path / "bad").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_rigid_pose_recovers_rotation_and_scale_from_3d_points():
    from innout.preprocess.pose import rigid_pose, rotation_from_angles

    rng = np.random.default_rng(3)
    for _ in range(5):
        yaw, pitch, roll = rng.uniform(-0.6, 0.6, 3)
        rotation = rotation_from_angles(yaw, pitch, roll)
        scale = rng.uniform(50, 200)
        points = scale * FIVE_POINT_TEMPLATE @ rotation.T + rng.uniform(-100, 100, 3)
        found, found_scale = rigid_pose(points, FIVE_POINT_TEMPLATE)
        assert np.allclose(found, rotation, atol=1e-9) and found_scale == pytest.approx(scale)
        assert np.allclose(angles_from_rotation(found), (yaw, pitch, roll), atol=1e-9)
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        rigid_pose(np.zeros((5, 2)), FIVE_POINT_TEMPLATE)
