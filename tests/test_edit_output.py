"""Edit building blocks: GANSpace, combined and layer-wise edits, SR feature smoothing, paste-back,
audio copy and rotation."""

from __future__ import annotations

import json
import math
import shutil
import struct
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from innout import load_generator
from innout.edit.ganspace import cache_paths, components_for, compute_components
from innout.edit.paste import (
    PasteError,
    changed_region,
    load_transforms,
    paste_back,
    paste_mask,
)
from innout.edit.smoothing import superresolve_smoothed
from innout.edit.specs import Edit, EditError, edits_offset, latent_offset, parse_edit
from innout.media import read_video, upright, write_video
from innout.tiny.bundle import weights_path


@pytest.fixture(scope="module")
def tiny():
    return load_generator("tiny")


# ---- GANSpace --------------------------------------------------------------------------------


def test_ganspace_components_are_the_principal_directions_of_w(tiny):
    components = compute_components(tiny, samples=3000, count=8, seed=1)
    vectors = components.vectors.double()
    assert torch.allclose(vectors @ vectors.T, torch.eye(8, dtype=torch.float64), atol=1e-5)
    assert bool((components.stdev[:-1] >= components.stdev[1:]).all())
    # On fresh latents, W varies more along the first component than along any random direction.
    z = torch.randn(2000, tiny.z_dim, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        w = tiny.mapping(z, torch.zeros(2000, 25))[:, 0]
    centred = w - components.mean
    first = float((centred @ components.vectors[0]).std())
    assert first == pytest.approx(float(components.stdev[0]), rel=0.1)
    random = F.normalize(torch.randn(5, w.shape[1], generator=torch.Generator().manual_seed(3)))
    assert first > float((centred @ random.T).std(0).max())
    step = components.offset(2, 1.5)
    assert float(step.norm()) == pytest.approx(1.5 * float(components.stdev[2]), rel=1e-5)
    with pytest.raises(IndexError, match="there are 8"):
        components.offset(8, 1.0)


def test_ganspace_components_are_cached_next_to_the_network(tiny, tmp_path, monkeypatch):
    network = tmp_path / "net.safetensors"
    shutil.copy(weights_path(), network)
    monkeypatch.setenv("INNOUT_CACHE", str(tmp_path / "cache"))
    first = components_for(tiny, network)
    cache = cache_paths(network)[0]
    assert cache.is_file()

    def fail(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr("innout.edit.ganspace.compute_components", fail)
    again = components_for(tiny, network)
    assert torch.equal(first.vectors, again.vectors)
    # Another network file (different bytes): the cache does not apply.
    network.write_bytes(network.read_bytes() + b" ")
    with pytest.raises(AssertionError, match="recomputed"):
        components_for(tiny, network)


# ---- edit specs ------------------------------------------------------------------------------


def test_edit_specs_parse_and_refuse_bad_text():
    assert parse_edit("smile=0.5") == Edit("smile", 0.5)
    assert parse_edit("ganspace:3@0-5=-2") == Edit("ganspace:3", -2.0, (0, 5))
    assert parse_edit("hair_color@2-3", 1.0) == Edit("hair_color", 1.0, (2, 3))
    assert str(Edit("ganspace:1", 2.0, (1, 4))) == "ganspace:1@1-4=2"
    for bad in ("smile", "smile=abc", "=1", "smile=nan"):
        with pytest.raises(EditError):
            parse_edit(bad)
    with pytest.raises(EditError, match="reversed"):
        parse_edit("smile@5-2=1")


def test_edits_add_up_and_layer_ranges_touch_only_their_layers(tiny):
    smile = latent_offset("smile", 0.5, 12, 512, "tiny")
    hair = latent_offset("hair_color", 0.3, 12, 512, "tiny")
    both = edits_offset(["smile=0.5", "hair_color=0.3"], 12, 512, "tiny")
    assert torch.allclose(both, smile + hair)
    layered = edits_offset(["smile@2-4=0.5"], 12, 512, "tiny")
    assert torch.equal(layered[2:5], smile[2:5])
    assert float(layered[:2].abs().max()) == 0 and float(layered[5:].abs().max()) == 0
    with pytest.raises(EditError, match="W\\+ layers 0-11"):
        edits_offset(["smile@3-12=1"], 12, 512, "tiny")
    component = edits_offset(["ganspace:0=2"], 12, 512, "tiny", tiny)
    assert component.shape == (12, 512) and float(component.norm()) > 0
    with pytest.raises(EditError, match="component number"):
        edits_offset(["ganspace:x=1"], 12, 512, "tiny", tiny)


# ---- temporal smoothing of the first super-resolution block --------------------------------


def test_smoothing_filters_the_first_superresolution_block(tiny):
    sr = tiny.superresolution
    generator = torch.Generator().manual_seed(0)
    rgb = torch.randn(4, 3, 64, 64, generator=generator)
    features = torch.randn(4, 32, 64, 64, generator=generator)
    ws = torch.randn(4, tiny.backbone.num_ws, 512, generator=generator)
    with torch.no_grad():
        plain = torch.cat([sr(rgb[i : i + 1].clone(), features[i : i + 1], ws[i : i + 1],
                              noise_mode="none") for i in range(4)])  # fmt: skip
        assert torch.allclose(superresolve_smoothed(sr, rgb, features, ws, "none"), plain,
                              atol=1e-5)  # fmt: skip
        causal = superresolve_smoothed(sr, rgb, features, ws, "causal")
        # Frame 0's window repeats frame 0: unchanged. Frame 3 mixes frames 1, 2, 3.
        assert torch.allclose(causal[0], plain[0], atol=1e-4)
        outs = [sr.first_block(rgb[i : i + 1].clone(), features[i : i + 1], ws[i : i + 1],
                               noise_mode="none") for i in (1, 2, 3)]  # fmt: skip
        x = 0.125 * outs[0][0] + 0.375 * outs[1][0] + 0.5 * outs[2][0]
        skip = 0.125 * outs[0][1] + 0.375 * outs[1][1] + 0.5 * outs[2][1]
        expected = sr.second_block(x, skip, ws[3:4], noise_mode="none")
        assert torch.allclose(causal[3], expected[0], atol=1e-5)
        assert (causal[3] - plain[3]).abs().mean() > 1e-3
        centred = superresolve_smoothed(sr, rgb, features, ws, "centered")
        assert not torch.allclose(centred[1], causal[1], atol=1e-3)
    with pytest.raises(EditError, match="smoothing must be one of"):
        superresolve_smoothed(sr, rgb, features, ws, "box")


# ---- paste-back ------------------------------------------------------------------------------


def _similarity(scale: float, angle_degrees: float, tx: float, ty: float) -> np.ndarray:
    angle = math.radians(angle_degrees)
    c, s = scale * math.cos(angle), scale * math.sin(angle)
    return np.array([[c, -s, tx], [s, c, ty]])


def _crop_of(source: np.ndarray, crop_from_source: np.ndarray, size: int) -> torch.Tensor:
    """The crop [3, size, size] in [-1, 1] that `crop_from_source` describes (bilinear)."""
    source_from_crop = np.linalg.inv(np.vstack([crop_from_source, [0, 0, 1]]))[:2]
    v, u = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    x = source_from_crop[0, 0] * u + source_from_crop[0, 1] * v + source_from_crop[0, 2]
    y = source_from_crop[1, 0] * u + source_from_crop[1, 1] * v + source_from_crop[1, 2]
    h, w = source.shape[:2]
    grid = torch.from_numpy(np.stack([2 * x / w - 1, 2 * y / h - 1], -1)).float()[None]
    image = torch.from_numpy(source).permute(2, 0, 1).float()[None] / 127.5 - 1
    return F.grid_sample(image, grid, mode="bilinear", align_corners=False)[0]


def test_paste_back_changes_only_the_edited_region():
    rng = np.random.default_rng(0)
    source = rng.integers(0, 256, size=(180, 240, 3), dtype=np.uint8)
    matrix = _similarity(0.9, 12.0, -40.0, -10.0)
    crop = _crop_of(source, matrix, 128)
    edited = crop.clone()
    edited[:, 50:70, 60:80] = torch.tensor([0.8, -0.6, 0.2])[:, None, None]
    region = changed_region(edited, crop)
    assert int(region.sum()) == 400
    mask = paste_mask(region, 128, dilation=4, feather=6)
    pasted = paste_back(source, edited, matrix, 128, mask)
    # Every pixel the mask does not reach is the source's, bit for bit - most of the frame.
    untouched = np.all(pasted == source, axis=-1)
    assert untouched.mean() > 0.9
    source_from_crop = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    cx, cy = source_from_crop @ np.array([70.0, 60.0, 1.0])  # the patch's centre in the source
    far = np.hypot(*np.meshgrid(np.arange(240) + 0.5 - cx, np.arange(180) + 0.5 - cy))
    assert untouched[far > 40].all()
    # The patch's centre shows the edited colour.
    centre = pasted[int(cy), int(cx)].astype(int)
    assert np.abs(centre - np.array([229, 51, 153])).max() <= 2, centre
    # An edit that changes nothing pastes nothing.
    nothing = paste_mask(changed_region(crop, crop), 128, 4, 6)
    assert np.array_equal(paste_back(source, crop, matrix, 128, nothing), source)


def test_paste_back_of_the_whole_crop_reproduces_it_inside():
    rng = np.random.default_rng(1)
    source = rng.integers(0, 256, size=(160, 200, 3), dtype=np.uint8)
    matrix = _similarity(1.0, 0.0, -30.0, -20.0)  # integer shift: an exact crop
    crop = _crop_of(source, matrix, 96)
    pasted = paste_back(source, crop, matrix, 96, paste_mask(None, 96, 0, 8))
    inner = slice(20 + 12, 20 + 96 - 12), slice(30 + 12, 30 + 96 - 12)
    assert np.abs(pasted[inner].astype(int) - source[inner].astype(int)).max() <= 1
    outside = np.ones(source.shape[:2], bool)
    outside[20 : 20 + 96, 30 : 30 + 96] = False
    assert np.array_equal(pasted[outside], source[outside])


def _write_transforms(path, **changes):
    frame = {"source_frame": 0, "crop_from_source": [[1, 0, -30], [0, 1, -20]]}
    data = {"version": 1, "source": "clip.mp4", "source_size": [200, 160], "crop_size": 96,
            "frames": [frame]}  # fmt: skip
    data.update(changes)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"version": 2}, "version 1"),
        ({"source_size": [200]}, "source_size"),
        ({"crop_size": 0}, "crop_size"),
        ({"frames": []}, "non-empty"),
        ({"frames": [{"source_frame": 0, "crop_from_source": [[1, 0], [0, 1]]}]}, "2x3"),
        ({"frames": [{"source_frame": -1, "crop_from_source": [[1, 0, 0], [0, 1, 0]]}]}, "2x3"),
        ({"frames": [{"source_frame": 0, "crop_from_source": [[0, 0, 0], [0, 0, 0]]}]},
         "not invertible"),
    ],
)  # fmt: skip
def test_bad_transforms_are_refused(tmp_path, changes, message):
    with pytest.raises(PasteError, match=message):
        load_transforms(_write_transforms(tmp_path / "transforms.json", **changes))


def test_good_transforms_load(tmp_path):
    transforms = load_transforms(_write_transforms(tmp_path / "transforms.json"))
    assert transforms.frames == 1 and transforms.source == tmp_path / "clip.mp4"
    assert transforms.crop_from_source.shape == (1, 2, 3)
    with pytest.raises(PasteError, match="not a readable"):
        load_transforms(tmp_path / "missing.json")


# ---- audio and rotation ----------------------------------------------------------------------


def write_clip_with_audio(path, frames: list[np.ndarray], fps: int = 10, rate: int = 16000):
    """An mp4 with the frames and a 440 Hz AAC tone as long as the video."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=rate)
        audio.layout = "mono"
        for frame in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        t = np.arange(int(rate * len(frames) / fps)) / rate
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            chunk = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="fltp",
                                               layout="mono")  # fmt: skip
            chunk.sample_rate, chunk.pts = rate, start
            for packet in audio.encode(chunk):
                container.mux(packet)
        for stream in (audio, video):
            for packet in stream.encode():
                container.mux(packet)


def decoded_audio(path) -> np.ndarray:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return np.zeros(0, np.float32)
        return np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])


def test_audio_survives_a_round_trip(tmp_path):
    frames = [np.full((32, 48, 3), 20 * i, np.uint8) for i in range(10)]
    write_clip_with_audio(tmp_path / "in.mp4", frames)
    edited = [255 - f for f in frames]
    write_video(tmp_path / "out.mp4", edited, fps=10, audio_from=tmp_path / "in.mp4")
    source_audio = decoded_audio(tmp_path / "in.mp4")
    assert source_audio.size >= 16000 and np.abs(source_audio).max() > 0.2
    # The packets are copied, not re-encoded: the decoded samples are identical.
    assert np.array_equal(decoded_audio(tmp_path / "out.mp4"), source_audio)
    # Half the video from its second half: the audio follows (cut and moved to start at 0).
    write_video(tmp_path / "half.mp4", edited[5:], fps=10, audio_from=tmp_path / "in.mp4",
                audio_start=0.5)  # fmt: skip
    half = decoded_audio(tmp_path / "half.mp4")
    assert 0.4 * source_audio.size < half.size < 0.65 * source_audio.size
    # No audio in the source: a silent output, no error.
    write_video(tmp_path / "silent.mp4", frames, fps=10)
    write_video(tmp_path / "out2.mp4", frames, fps=10, audio_from=tmp_path / "silent.mp4")
    assert decoded_audio(tmp_path / "out2.mp4").size == 0


def test_fractional_frame_rates_are_kept(tmp_path):
    frames = [np.zeros((16, 16, 3), np.uint8)] * 3
    write_video(tmp_path / "ntsc.mp4", frames, fps=30000 / 1001)
    with av.open(str(tmp_path / "ntsc.mp4")) as container:
        assert container.streams.video[0].average_rate == Fraction(30000, 1001)


def _rotate_display_matrix(path, out):
    """Copies an mp4, setting its video track's display matrix to 'rotate 90 degrees clockwise'
    (what phones write for portrait videos)."""
    data = bytearray(path.read_bytes())
    start = data.find(b"tkhd") + 4 + 40  # version 0 tkhd: the matrix follows 40 bytes of fields
    data[start : start + 36] = struct.pack(">9i", 0, 1 << 16, 0, -(1 << 16), 0, 0, 0, 0, 1 << 30)
    out.write_bytes(bytes(data))


def test_rotated_videos_are_read_upright(tmp_path):
    stored = np.zeros((32, 64, 3), np.uint8)
    stored[:8, :16] = 255  # a white block in the stored frame's top-left corner
    write_video(tmp_path / "stored.mp4", [stored] * 3, fps=10)
    _rotate_display_matrix(tmp_path / "stored.mp4", tmp_path / "portrait.mp4")
    frames, _ = read_video(tmp_path / "portrait.mp4")
    assert frames[0].shape == (64, 32, 3)
    # Turned clockwise: the top-left corner goes to the top-right.
    assert frames[0][:16, -8:].mean() > 200 and frames[0][:16, :8].mean() < 50
    assert np.array_equal(upright(stored, 0), stored)
    assert np.array_equal(upright(stored, 180), stored[::-1, ::-1])
    with pytest.raises(ValueError, match="multiples of 90"):
        upright(stored, 45)
