"""Editing inverted videos: edits touch only the face, removal, smoothing, views, `innout edit`."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from innout.cli import main as cli_main
from innout.edit.video import (
    EditError,
    edit_frames,
    latent_offset,
    removal_scale,
    smooth,
    view_cameras,
)
from innout.invert import InversionResult, invert
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
    report = (out / "report.html").read_text()
    for video in ("run/preview.mp4", "edit.mp4", "removed.mp4", "orbit.mp4"):
        assert video in report and (out / video).is_file()
    assert cli_main(["demo", "--out", str(out), "--frames", "2", "--quiet"]) == 2  # exists
