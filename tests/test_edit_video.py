"""Editing inverted videos: edits touch only the face, removal, smoothing, views, `innout edit`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from innout.cli import main as cli_main
from innout.edit.export import ExportedVideo, export_edited_video, refuse_inputs_as_outputs
from innout.edit.removal import removal_scale
from innout.edit.render import edit_frames, render_edited
from innout.edit.smoothing import smooth
from innout.edit.specs import EditError, latent_offset
from innout.edit.views import view_cameras
from innout.invert import InputError, InversionResult, invert
from innout.media import read_video, to_uint8
from PIL import Image
from test_edit_output import decoded_audio, write_clip_with_audio
from test_invert import TINY_RUN, synthetic_clip, write_clip_folder


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A short In-N-Out inversion of a 4-frame occluded clip, in a run folder."""
    folder = tmp_path_factory.mktemp("edit")
    clip = synthetic_clip(4)
    write_clip_folder(clip, folder / "clip")
    invert(folder / "clip", method="innout", out=folder / "run", progress=False, **TINY_RUN)
    return folder / "run", clip


def test_strength_zero_reproduces_the_reconstruction_exactly(run):
    result = InversionResult.load(run[0])
    reconstruction = torch.cat([render.image for _, render in result.render()]).clamp(-1, 1)
    assert torch.equal(edit_frames(result, direction="hair_color", strength=0.0), reconstruction)
    edited = edit_frames(result, direction="hair_color", strength=0.5)
    assert (edited - reconstruction).abs().mean() > 1e-3


def test_an_edit_moves_only_the_face_latents(run):
    result = InversionResult.load(run[0])
    offset = latent_offset("hair_color", 0.5, result.latents.shape[1], 512, "tiny")
    before = [r for _, r in result.render()]
    after = [r for _, r in result.render(latents=result.latents + offset)]
    for a, b in zip(before, after):
        # The object field alone does not depend on the face latents; only where its samples
        # fall along each ray does (fine samples follow the composite), hence not bit-identical.
        object_change = (a.object_raw - b.object_raw).abs().mean()
        face_change = (a.image_raw - b.image_raw).abs().mean()
        assert object_change < 0.2 * face_change, (float(object_change), float(face_change))


def test_removal_zeroes_the_object_share_inside_the_dilated_masks(run):
    result = InversionResult.load(run[0])
    clip = run[1]
    scale = removal_scale(1 - clip.masks, 64, dilation=5)
    assert scale.shape == (4, 64 * 64) and (scale == 0).any() and (scale == 1).any()
    for index, render in result.render(blend_scale=scale):
        share = render.object_opacity.flatten(1)
        assert float(share[scale[index] == 0].abs().max()) == 0.0
    # The dilation grows the removed region.
    assert (removal_scale(1 - clip.masks, 64, 9) == 0).sum() > (scale == 0).sum()


def test_render_by_name_matches_the_explicit_arguments(run, monkeypatch):
    result = InversionResult.load(run[0])
    offset = latent_offset("hair_color", 0.4, result.latents.shape[1], 512, "tiny")
    cameras = view_cameras(result.frames, yaw=15.0)
    explicit = [r.image for _, r in result.render(latents=result.latents + offset,
                                                   cameras=cameras)]  # fmt: skip
    named = [r.image for _, r in render_edited(result, edit="hair_color=0.4", view=(15.0, 0.0))]
    for a, b in zip(explicit, named):
        assert torch.equal(a, b)
    # Without masks, removal uses the object field's own opacity: where the object showed
    # (share above the threshold), it is gone. This short run's object is faint, so the
    # threshold is set to its own 90th percentile.
    kept = torch.cat([r.object_opacity for _, r in result.render()])
    threshold = float(kept.quantile(0.9))
    monkeypatch.setattr("innout.edit.removal.AUTO_MASK_THRESHOLD", threshold)
    removed = torch.cat([r.object_opacity for _, r in render_edited(result, remove_object=True)])
    shown = kept > threshold
    assert shown.any() and float(removed[shown].abs().max()) == 0.0
    assert float(removed[~shown].abs().max()) > 0  # the rest of the object stays
    with pytest.raises(EditError, match="either latents or edit"):
        next(render_edited(result, latents=result.latents, edit="smile=1"))


def test_temporal_smoothing_filters_codes_and_superresolution_features(run):
    result = InversionResult.load(run[0])
    plain = edit_frames(result)
    causal = edit_frames(result, smoothing="causal")
    centred = edit_frames(result, smoothing="centered")
    # Frame 0's causal window is frame 0 three times: nothing to smooth there.
    assert torch.allclose(causal[0], plain[0], atol=1e-4)
    assert (causal[3] - plain[3]).abs().mean() > 1e-4
    assert (centred[1] - causal[1]).abs().mean() > 1e-4
    # Smoothing is deterministic: rendering twice gives the same frames.
    assert torch.equal(edit_frames(result, smoothing="causal"), causal)


def test_combined_and_layer_wise_edits(run):
    result = InversionResult.load(run[0])
    both = edit_frames(result, edits=["hair_color=0.4", "ganspace:0@0-3=1.5"])
    hair = edit_frames(result, edits=["hair_color=0.4"])
    assert (both - hair).abs().mean() > 1e-3
    same = edit_frames(result, direction="hair_color", strength=0.4)
    assert torch.equal(same, hair)


def _write_source_video(
    clip_folder: Path,
    frames: torch.Tensor,
    backgrounds: np.ndarray,
    offset: tuple[int, int],
    size: int,
    fps: float,
) -> None:
    """A preprocessed-style source: `backgrounds` [T, H, W, 3] with the clip's frames (resized to
    `size`) at `offset` (x0, y0), as source.mp4 with sound, and its transforms.json."""
    x0, y0 = offset
    crops = [to_uint8(f) for f in torch.nn.functional.interpolate(frames, size=size)]
    sources = []
    for crop, background in zip(crops, backgrounds):
        frame = background.copy()
        frame[y0 : y0 + size, x0 : x0 + size] = crop
        sources.append(frame)
    write_clip_with_audio(clip_folder / "source.mp4", sources, fps=round(fps))
    height, width = backgrounds.shape[1:3]
    transforms = {"version": 1, "source": "source.mp4", "source_size": [width, height],
                  "crop_size": size, "frames": [{"source_frame": t, "crop_from_source":
                  [[1, 0, -x0], [0, 1, -y0]]} for t in range(len(crops))]}  # fmt: skip
    (clip_folder / "transforms.json").write_text(json.dumps(transforms))


def test_innout_edit_pastes_back_into_the_source_frames_with_their_audio(run, tmp_path):
    """A preprocessed-style input: a larger source video with sound whose frames contain the
    clip at a known offset, and its transforms.json."""
    result = InversionResult.load(run[0])
    clip_folder = run[0].parent / "clip"
    size, (x0, y0) = result.generator.img_resolution, (40, 16)
    rng = np.random.default_rng(0)
    backgrounds = rng.integers(0, 256, size=(result.frames, 160, 200, 3), dtype=np.uint8)
    _write_source_video(clip_folder, run[1].frames, backgrounds, (x0, y0), size, result.fps)
    try:
        out, pngs = tmp_path / "pasted.mp4", tmp_path / "frames"
        code = cli_main(["edit", str(run[0]), "--out", str(out), "--paste-back",
                         "--direction", "hair_color", "--strength", "0.5",
                         "--png-frames", str(pngs)])  # fmt: skip
        assert code == 0
        decoded, _ = read_video(clip_folder / "source.mp4")
        changed = 0
        for t in range(result.frames):
            frame = np.asarray(Image.open(pngs / f"{t:05d}.png"))
            assert frame.shape == (160, 200, 3)
            same = np.all(frame == decoded[t], axis=-1)
            # Outside the crop nothing changes, bit for bit; inside, the edit shows.
            outside = np.ones(same.shape, bool)
            outside[y0 : y0 + size, x0 : x0 + size] = False
            assert same[outside].all()
            changed += int((~same).sum())
        assert changed > 100
        with av.open(str(out)) as container:
            assert float(container.streams.video[0].average_rate) == pytest.approx(result.fps)
        assert np.array_equal(decoded_audio(out), decoded_audio(clip_folder / "source.mp4"))
        # Strength 0 pastes nothing: the output frames are the decoded source frames.
        code = cli_main(["edit", str(run[0]), "--out", str(tmp_path / "none.mp4"),
                         "--paste-back", "--png-frames", str(tmp_path / "none")])  # fmt: skip
        assert code == 0
        for t in range(result.frames):
            frame = np.asarray(Image.open(tmp_path / "none" / f"{t:05d}.png"))
            assert np.array_equal(frame, decoded[t])
    finally:
        (clip_folder / "transforms.json").unlink()
        (clip_folder / "source.mp4").unlink()


def test_smoothing_filters_match_hand_computed_values():
    ramp = torch.arange(5.0).reshape(5, 1)
    causal = smooth(ramp, "causal").flatten().tolist()
    # frame t: 0.125 x[t-2] + 0.375 x[t-1] + 0.5 x[t], edges repeat frame 0
    assert causal == pytest.approx([0.0, 0.5, 1.375, 2.375, 3.375])
    assert smooth(ramp, "centered").flatten().tolist() == pytest.approx([0.25, 1, 2, 3, 3.75])
    assert torch.equal(smooth(ramp, "none"), ramp)
    with pytest.raises(EditError, match="smoothing must be one of"):
        smooth(ramp, "gaussian")


def test_boundaries_and_directions_resolve_to_latent_steps(tmp_path):
    boundary = np.zeros((1, 512), dtype=np.float32)
    boundary[0, 3] = 4.0
    np.save(tmp_path / "b.npy", boundary)
    step = latent_offset(str(tmp_path / "b.npy"), 2.0, 12, 512, "")
    assert step.shape == (12, 512) and float(step[5, 3]) == 2.0  # unit normal x strength
    np.save(tmp_path / "bad.npy", np.zeros((3, 512), dtype=np.float32))
    with pytest.raises(EditError, match=r"\[1, 512\] or \[12, 512\]"):
        latent_offset(str(tmp_path / "bad.npy"), 1.0, 12, 512, "")
    with pytest.raises(EditError, match="innout-tiny ships"):
        latent_offset("grin", 1.0, 12, 512, "tiny")


def test_orbit_and_fixed_views_are_valid_cameras():
    orbit = view_cameras(8, orbit=True)
    fixed = view_cameras(3, yaw=20)
    for labels in (orbit, fixed):
        rotation = labels[:, :16].reshape(-1, 4, 4)[:, :3, :3]
        eye = torch.eye(3).expand_as(rotation)
        assert torch.allclose(rotation @ rotation.transpose(1, 2), eye, atol=1e-5)
    assert torch.allclose(fixed[0], fixed[2])
    assert not torch.allclose(orbit[2], orbit[6])  # yaw +30 and -30 degrees


def test_innout_edit_writes_a_video_at_the_input_fps(run, tmp_path):
    out = tmp_path / "edit.mp4"
    code = cli_main(["edit", str(run[0]), "--out", str(out), "--direction", "hair_color",
                     "--strength", "0.3", "--side-by-side", "--remove-object"])  # fmt: skip
    assert code == 0
    result = InversionResult.load(run[0])
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert float(stream.average_rate) == pytest.approx(result.fps)
    assert len(frames) == 4 and frames[0].shape == (128, 3 * 128, 3)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--range", "0", "1", "3"], "--range needs --direction"),
        (["--strength", "1"], "--strength needs --direction"),
        (["--direction", "grin", "--strength", "1"], "innout-tiny ships"),
        (["--orbit", "--pitch", "10"], "--orbit"),
        (["--edit", "smile"], "expected SPEC=STRENGTH"),
        (["--edit", "smile@3-1=1"], "reversed"),
        (["--edit", "ganspace:99=1"], "there are 64"),
        (["--paste-back"], "transforms.json"),
        (["--paste-feather", "-1"], "--paste-feather"),
        (["--out-format"], None),
    ],
)
def test_innout_edit_refuses_bad_arguments(run, tmp_path, capsys, arguments, message):
    if message is None:  # argparse's own refusal of an unknown option
        with pytest.raises(SystemExit):
            cli_main(["edit", str(run[0]), "--out", str(tmp_path / "x.mp4"), *arguments])
        return
    code = cli_main(["edit", str(run[0]), "--out", str(tmp_path / "x.mp4"), *arguments])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()
    assert cli_main(["edit", str(run[0]), "--out", str(tmp_path / "x.avi")]) == 2


def test_innout_demo_writes_its_report(tmp_path):
    """The demo end to end on a 2-frame clip (the command's default is 4)."""
    import json

    out = tmp_path / "demo"
    assert cli_main(["demo", "--out", str(out), "--frames", "2", "--quiet"]) == 0
    metrics = json.loads((out / "demo.json").read_text())
    for name in ("reconstruction_psnr", "removal_psnr", "novel_view_psnr"):
        assert 10 < metrics[name] < 60, (name, metrics[name])
    # Removal brings the ground-truth head back where the object was.
    gain = metrics["removal_psnr_in_object"] - metrics["kept_object_psnr_in_object"]
    assert gain > 3.0, metrics
    report = (out / "report.html").read_text()
    for video in ("run/preview.mp4", "edit.mp4", "removed.mp4", "orbit.mp4"):
        assert video in report and (out / video).is_file()
    assert cli_main(["demo", "--out", str(out), "--frames", "2", "--quiet"]) == 2  # exists


def _png_frames(folder, count: int) -> list[np.ndarray]:
    return [np.asarray(Image.open(folder / f"{t:05d}.png")) for t in range(count)]


def test_export_writes_the_frames_of_innout_edit(run, tmp_path):
    result = InversionResult.load(run[0])
    code = cli_main(["edit", str(run[0]), "--out", str(tmp_path / "cli.mp4"), "--direction",
                     "hair_color", "--range", "0", "0.4", "2", "--side-by-side",
                     "--remove-object", "--png-frames", str(tmp_path / "cli")])  # fmt: skip
    assert code == 0
    out = tmp_path / "library.mp4"
    strengths = torch.linspace(0, 0.4, 2).tolist()  # as --range computes them (float32)
    video = export_edited_video(result, out, direction="hair_color", strengths=strengths,
                                remove_object=True, side_by_side=True,
                                png_frames=tmp_path / "library")  # fmt: skip
    assert video == ExportedVideo(out, 4, 4 * 128, 128, result.fps)
    for cli, library in zip(_png_frames(tmp_path / "cli", 4), _png_frames(tmp_path / "library", 4)):
        assert np.array_equal(cli, library)
    with av.open(str(out)) as container:
        assert container.streams.video[0].frames == 4


def test_export_pastes_back_as_innout_edit(run, tmp_path):
    """The paste-back of a preprocessed-style input (a larger source video with the clip at a
    known offset, and its transforms.json), from Python and from the command line."""
    result = InversionResult.load(run[0])
    clip_folder = run[0].parent / "clip"
    size, (x0, y0) = result.generator.img_resolution, (24, 8)
    backgrounds = np.full((result.frames, 144, 176, 3), 90, dtype=np.uint8)
    _write_source_video(clip_folder, run[1].frames, backgrounds, (x0, y0), size, result.fps)
    try:
        code = cli_main(["edit", str(run[0]), "--out", str(tmp_path / "cli.mp4"), "--paste-back",
                         "--side-by-side", "--edit", "hair_color=0.5", "--png-frames",
                         str(tmp_path / "cli")])  # fmt: skip
        assert code == 0
        out = tmp_path / "library.mp4"
        video = export_edited_video(result, out, edits=["hair_color=0.5"], paste_back=True,
                                    side_by_side=True, png_frames=tmp_path / "library")  # fmt: skip
        assert (video.frames, video.width, video.height) == (4, 2 * 176, 144)
        cli_frames = _png_frames(tmp_path / "cli", 4)
        for cli, library in zip(cli_frames, _png_frames(tmp_path / "library", 4)):
            assert np.array_equal(cli, library)
        assert any(not np.array_equal(f[:, :176], f[:, 176:]) for f in cli_frames)
        assert np.array_equal(decoded_audio(out), decoded_audio(clip_folder / "source.mp4"))
    finally:
        (clip_folder / "transforms.json").unlink()
        (clip_folder / "source.mp4").unlink()


def test_an_edit_never_writes_over_the_runs_inputs_or_files(run, tmp_path):
    run_folder = run[0]
    preview = run_folder / "preview.mp4"
    before = preview.read_bytes()
    code = cli_main(["edit", str(run_folder), "--out", str(preview), "--edit", "smile=0.5"])
    assert code == 2 and preview.read_bytes() == before
    manifest = json.loads((run_folder / "run.json").read_text())
    source = Path(manifest["input"]["source"])
    with pytest.raises(EditError, match="an input of the run"):
        refuse_inputs_as_outputs(run_folder, source, None, [source])
    with pytest.raises(EditError, match="an input of the run"):  # an existing input file
        refuse_inputs_as_outputs(run_folder, source, None, [next(source.rglob("*.png"))])
    refuse_inputs_as_outputs(run_folder, source, None, [tmp_path / "edit.mp4", None])


def test_a_run_finds_its_input_from_any_directory_and_after_moving_with_it(tmp_path, monkeypatch):
    from innout.edit.export import run_input

    write_clip_folder(synthetic_clip(2), tmp_path / "work" / "clip")
    monkeypatch.chdir(tmp_path / "work")
    invert("clip", method="innout", out="run", progress=False,
           **{**TINY_RUN, "composite_steps": 1, "object_init_steps": 2})  # fmt: skip
    manifest = json.loads((tmp_path / "work" / "run" / "run.json").read_text())
    assert manifest["input"]["source"] == str((tmp_path / "work" / "clip").resolve())
    monkeypatch.chdir(tmp_path)  # elsewhere: the recorded path still leads to the input
    assert run_input(tmp_path / "work" / "run")[0] == (tmp_path / "work" / "clip").resolve()
    (tmp_path / "work").rename(tmp_path / "moved")  # the run and its input move together
    assert run_input(tmp_path / "moved" / "run")[0] == (tmp_path / "moved" / "clip").resolve()
    result = InversionResult.load(tmp_path / "moved" / "run")
    export_edited_video(result, tmp_path / "removed.mp4", remove_object=True)
    # Without its input, removal would guess the object's region: refused instead.
    shutil.rmtree(tmp_path / "moved" / "clip")
    with pytest.raises(EditError, match="input is gone"):
        export_edited_video(result, tmp_path / "removed2.mp4", remove_object=True)


def test_overflowing_strengths_and_damaged_latents_are_refused_not_rendered_black(run, tmp_path):
    result = InversionResult.load(run[0])
    for strength in (1e30, -101.0):  # far beyond what moves an attribute: a flat colour
        with pytest.raises(EditError, match="within \\[-100, 100\\]"):
            edit_frames(result, direction="hair_color", strength=strength)
    assert torch.isfinite(edit_frames(result, direction="hair_color", strength=100.0)).all()
    code = cli_main(["edit", str(run[0]), "--out", str(tmp_path / "e.mp4"),
                     "--direction", "hair_color", "--strength", "1e30"])  # fmt: skip
    assert code == 2 and not (tmp_path / "e.mp4").exists()
    # A latents file changed after the run (NaN bytes) no longer matches run.json's sha256.
    damaged = tmp_path / "run"
    shutil.copytree(run[0], damaged)
    latents = damaged / "latents.safetensors"
    data = bytearray(latents.read_bytes())
    data[-4:] = b"\x00\x00\xc0\x7f"  # a float32 NaN in the last value
    latents.write_bytes(bytes(data))
    with pytest.raises(InputError, match="sha256 differs"):
        InversionResult.load(damaged)
    assert cli_main(["edit", str(damaged), "--out", str(tmp_path / "d.mp4")]) == 2
