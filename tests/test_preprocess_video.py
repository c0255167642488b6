"""`innout preprocess` end to end without the optional face detector.

The clips here show five coloured dots where a frontal face's five landmarks would be, moving and
zooming from frame to frame, and `DotDetector` finds them by colour in the decoded pixels: the
whole pipeline (decoding, time ranges, tracking, interpolation, crops, cameras, outputs, preview,
errors) runs on real video files with landmarks whose true positions are known.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from innout.preprocess import detect, pipeline
from innout.preprocess.align import FIVE_POINT_TEMPLATE, canonical_landmarks
from innout.preprocess.decode import VideoError, iter_frames, probe_video
from innout.preprocess.detect import Face
from innout.preprocess.pipeline import PreprocessError, import_eg3d_folder, preprocess
from innout.preprocess.track import select_track

DOT_COLOURS = np.array(
    [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255]], dtype=np.float64
)
WIDTH, HEIGHT, FPS = 320, 240, 10


def dot_positions(t: int) -> np.ndarray:
    """Frame t's five landmarks [5, 2]: the template seen frontally, zooming and drifting."""
    scale = 70.0 + 3.0 * t
    centre = np.array([150.0 + 2.5 * t, 125.0 - 1.5 * t])
    return centre + scale * FIVE_POINT_TEMPLATE[:, :2] * np.array([1.0, -1.0])


def draw_frame(points: np.ndarray | None, second_face: bool = False) -> np.ndarray:
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    frame = np.stack([90 + 0.1 * xx, 100 + 0.1 * yy, 110 + 0 * xx], -1)
    groups = [points] if points is not None else []
    if second_face:  # a smaller face in the corner: another person, not the tracked one
        groups.append(dot_positions(0) * 0.3 + np.array([230.0, 10.0]))
    for group in groups:
        for (x, y), colour in zip(group, DOT_COLOURS):
            inside = (xx - x) ** 2 + (yy - y) ** 2 <= 16
            frame[inside] = colour
    return frame.clip(0, 255).astype(np.uint8)


def write_clip(path, frames: int, hidden=(), second_face=()) -> None:
    from innout.media import write_video

    write_video(
        path,
        [draw_frame(None if t in hidden else dot_positions(t), t in second_face)
         for t in range(frames)],
        fps=FPS,
    )  # fmt: skip


class DotDetector:
    """Finds the dot groups of `draw_frame` by colour: one `Face` per group of five dots."""

    def __call__(self, frame: np.ndarray) -> list[Face]:
        from scipy import ndimage

        pixels = frame.astype(np.float64)
        blobs = []
        for colour in DOT_COLOURS:
            near = np.linalg.norm(pixels - colour, axis=-1) < 90
            labels, count = ndimage.label(near)
            centres = ndimage.center_of_mass(near, labels, range(1, count + 1))
            sizes = ndimage.sum(near, labels, range(1, count + 1))
            blobs.append([(c[1] + 0.5, c[0] + 0.5) for c, s in zip(centres, sizes) if s >= 4])
        faces = []
        for eye in blobs[0]:
            # Group each image-left eye with the nearest dot of every other colour.
            points = [eye] + [min(b, key=lambda p: np.hypot(p[0] - eye[0], p[1] - eye[1]))
                              for b in blobs[1:] if b]  # fmt: skip
            if len(points) == 5:
                points = np.array(points)
                low, high = points.min(0), points.max(0)
                faces.append(Face(points=points, box=(*low, *high)))
        return faces


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    pytest.importorskip("scipy")
    path = tmp_path_factory.mktemp("clip") / "dots.mp4"
    write_clip(path, 10, hidden={4, 5}, second_face={2, 7})
    return path


def test_decoding_keeps_the_whole_video_numbering_for_a_time_range(clip):
    info = probe_video(clip)
    assert info.size == (WIDTH, HEIGHT) and info.fps == pytest.approx(FPS)
    frames = list(iter_frames(clip, start=0.3, end=0.65))
    assert [index for index, _, _ in frames] == [3, 4, 5, 6]
    assert frames[0][1] == pytest.approx(0.3) and frames[0][2].shape == (HEIGHT, WIDTH, 3)
    with pytest.raises(ValueError, match="must come after start"):
        list(iter_frames(clip, start=0.5, end=0.5))


def test_preprocess_aligns_tracks_interpolates_and_writes_the_folder(clip, tmp_path):
    from innout.invert.clip import load_clip
    from PIL import Image

    out = tmp_path / "pre"
    with pytest.warns(UserWarning, match=r"frames 4-5 \(of 10\)"):
        result = preprocess(clip, out, smooth=0.0, size=128, detector=DotDetector(),
                            progress=False)  # fmt: skip
    assert result.frames == 10 and result.interpolated_ranges == [(4, 5)]
    # Every crop puts the dots where the template lands in a frontal crop: the crops are
    # consistent whatever the zoom and drift.
    canonical = canonical_landmarks(128)
    for t in range(10):
        with Image.open(out / f"frames/{t:05d}.png") as image:
            found = DotDetector()(np.asarray(image))
        if t in (4, 5):
            assert not found  # nothing to see; but the crop follows the interpolated track
            continue
        if t in (2, 7):
            continue  # the second face's dots, cut by the crop, confuse DotDetector's grouping
        assert len(found) == 1, t
        assert np.abs(found[0].points - canonical).max() < 1.5, (t, found[0].points - canonical)
    landmarks = json.loads((out / "landmarks.json").read_text())
    assert landmarks["interpolated_ranges"] == [[4, 5]]
    assert [f["interpolated"] for f in landmarks["frames"]] == [t in (4, 5) for t in range(10)]
    # Linear motion: interpolated landmarks are where the hidden dots were.
    for t in (4, 5):
        assert np.abs(np.array(landmarks["frames"][t]["landmarks"]) - dot_positions(t)).max() < 1.0
    record = json.loads((out / "preprocess.json").read_text())
    assert record["detector"] == {"name": "DotDetector"} and record["frames"] == 10
    assert set(record["missing_reasons"]) == {"4", "5"}
    # Frontal dots: every camera is the frontal one, a rotation at radius 2.7.
    yaw_pitch_roll = np.array(record["yaw_pitch_roll_degrees"])
    assert np.abs(yaw_pitch_roll).max() < 1.5  # dot centres are found to ~0.3 px
    loaded = load_clip(out)
    assert loaded.frames.shape == (10, 3, 128, 128)
    cam2world = loaded.cameras[:, :16].reshape(-1, 4, 4).double().numpy()
    rotations = cam2world[:, :3, :3]
    assert np.allclose(rotations @ rotations.transpose(0, 2, 1), np.eye(3), atol=1e-5)
    assert np.allclose(np.linalg.norm(cam2world[:, :3, 3], axis=1), 2.7, atol=1e-4)
    transforms = json.loads((out / "transforms.json").read_text())
    assert [f["source_frame"] for f in transforms["frames"]] == list(range(10))
    assert transforms["source_size"] == [WIDTH, HEIGHT] and transforms["crop_size"] == 128
    preview = probe_video(out / "preview.mp4")
    assert preview.size[1] == HEIGHT and preview.frame_count == 10


def test_preprocess_time_range_and_smoothing(clip, tmp_path):
    out = tmp_path / "range"
    result = preprocess(clip, out, start=0.6, end=1.0, smooth=1.0, size=64, preview=False,
                        detector=DotDetector(), progress=False)  # fmt: skip
    assert result.frames == 4 and result.interpolated_ranges == []
    transforms = json.loads((out / "transforms.json").read_text())
    assert [f["source_frame"] for f in transforms["frames"]] == [6, 7, 8, 9]
    assert not (out / "preview.mp4").exists()
    # The tracked face is the large one, not the small second face of frame 7.
    landmarks = np.array([f["landmarks"] for f in json.loads(
        (out / "landmarks.json").read_text())["frames"]])  # fmt: skip
    # Within the smoothing's reach of the truth (the dots move up to ~3.4 px per frame and with
    # 4 frames every frame is near an end, where the renormalised kernel leans inward), and
    # nowhere near the small face 200 px away.
    truth = np.stack([dot_positions(t) for t in range(6, 10)])
    assert np.abs(landmarks - truth).max() < 3.0


def test_bad_inputs_give_clear_errors_and_leave_existing_folders_alone(clip, tmp_path):
    (tmp_path / "text.mp4").write_text("not a video")
    with pytest.raises(VideoError, match="not a readable video"):
        preprocess(tmp_path / "text.mp4", tmp_path / "o1", detector=DotDetector())
    with pytest.raises(VideoError, match="no such file"):
        preprocess(tmp_path / "missing.mp4", tmp_path / "o2", detector=DotDetector())
    with pytest.raises(PreprocessError, match="no frames between 5"):
        preprocess(clip, tmp_path / "o3", start=5.0, detector=DotDetector(), progress=False)
    empty = tmp_path / "empty.mp4"
    write_clip(empty, 3, hidden={0, 1, 2})
    with pytest.raises(PreprocessError, match="no face found in any of its 3 frames"):
        preprocess(empty, tmp_path / "o4", detector=DotDetector(), progress=False)
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        preprocess(clip, existing, detector=DotDetector(), progress=False)
    assert (existing / "keep.txt").read_text() == "mine"
    for name in ("o1", "o2", "o3", "o4"):
        assert not (tmp_path / name).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_missing_detector_extra_says_how_to_install(monkeypatch, clip, tmp_path, capsys):
    from innout.cli import main

    monkeypatch.setattr(detect, "mediapipe_version", lambda: None)
    with pytest.raises(detect.DetectorUnavailableError, match=r"innout\[preprocess\]"):
        detect.MediapipeFaceMesh()
    assert main(["preprocess", str(clip), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert 'pip install "innout[preprocess]"' in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_track_follows_one_face_and_rejects_others():
    def face(x, y, size):
        points = np.array(
            [
                [x - 0.3 * size, y],
                [x + 0.3 * size, y],
                [x, y + 0.2 * size],
                [x - 0.2 * size, y + 0.4 * size],
                [x + 0.2 * size, y + 0.4 * size],
            ]
        )
        half = size / 2
        return Face(points=points, box=(x - half, y - half, x + half, y + half))

    main = [face(100 + 2 * t, 100, 80) for t in range(8)]
    frames = [[f] for f in main]
    frames[1].append(face(300, 100, 90))  # another person, as large: not near the track
    frames[2] = [face(20, 200, 20)]  # a tiny false detection only: the frame has no face
    frames[3] = [face(260, 60, 80)]  # a big jump: spurious
    frames[5] = [face(40, 40, 25), main[5]]  # a background face first
    frames[6] = []
    track, reasons = select_track(frames)
    found = np.isfinite(track).all(axis=(1, 2))
    assert found.tolist() == [True, True, False, False, True, True, False, True]
    for t in np.flatnonzero(found):
        assert np.allclose(track[t], main[t].points)
    assert reasons[3] == "only a different or spurious face" and reasons[6] == "no face detected"
    assert select_track([[], []])[1] == ["no face detected"] * 2


def test_import_of_an_eg3d_folder(tmp_path):
    from innout.eg3d import camera
    from innout.invert.clip import load_clip
    from innout.media import write_png

    folder = tmp_path / "eg3d"
    labels = camera.frontal_labels(3).tolist()
    entries = []
    for t in range(3):
        name = f"00000/img{t:08d}.png"
        write_png(folder / name, np.full((64, 64, 3), 40 * t, np.uint8))
        entries.append([name, labels[t]])
    (folder / "dataset.json").write_text(json.dumps({"labels": entries}))
    result = import_eg3d_folder(folder, tmp_path / "imported", progress=False)
    assert result.frames == 3
    clip = load_clip(tmp_path / "imported")
    assert clip.frames.shape == (3, 3, 64, 64) and clip.names[2] == "frames/00002.png"
    assert float(clip.frames[2].max()) == pytest.approx(80 / 127.5 - 1, abs=0.01)
    # Through `preprocess` too (a folder is imported).
    assert preprocess(folder, tmp_path / "again", progress=False).frames == 3
    # Bad folders.
    write_png(folder / "wide.png", np.zeros((64, 80, 3), np.uint8))
    entries.append(["wide.png", labels[0]])
    (folder / "dataset.json").write_text(json.dumps({"labels": entries}))
    with pytest.raises(PreprocessError, match="square aligned crops"):
        import_eg3d_folder(folder, tmp_path / "bad1", progress=False)
    entries[-1] = ["../outside.png", labels[0]]
    (folder / "dataset.json").write_text(json.dumps({"labels": entries}))
    with pytest.raises(PreprocessError, match="not a file in"):
        import_eg3d_folder(folder, tmp_path / "bad2", progress=False)
    with pytest.raises(PreprocessError, match="dataset.json"):
        import_eg3d_folder(tmp_path / "imported" / "frames", tmp_path / "bad3", progress=False)
    assert not (tmp_path / "bad1").exists() and not (tmp_path / "bad2").exists()


def test_innout_preprocess_is_callable_and_the_package_importable():
    import innout
    import innout.preprocess.align as align

    assert callable(innout.preprocess) and align.OUTPUT_SIZE == 512
    assert pipeline.preprocess is innout.preprocess.preprocess
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert innout.preprocess.DetectorUnavailableError is detect.DetectorUnavailableError


def test_a_file_without_video_is_refused(tmp_path):
    import av

    path = tmp_path / "speech.m4a"
    with av.open(str(path), "w") as container:
        audio = container.add_stream("aac", rate=16000)
        audio.layout = "mono"
        tone = (0.3 * np.sin(np.arange(16000) * 0.17)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            chunk = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="fltp",
                                               layout="mono")  # fmt: skip
            chunk.sample_rate, chunk.pts = 16000, start
            for packet in audio.encode(chunk):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    with pytest.raises(VideoError, match="has no video stream"):
        preprocess(path, tmp_path / "out", detector=DotDetector(), progress=False)
    assert not (tmp_path / "out").exists()
