"""The synthetic head world: parameters, objects, renders, videos with ground truth, the CLI.

Renders are tiny (32-48 px, few frames) so that the file runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from innout.cli import main
from innout.synth.head import PARAMETER_RANGES, HeadField, HeadParams, params_from_z
from innout.synth.objects import OBJECT_KINDS
from innout.synth.render import SynthRenderSettings, frontal_camera, render
from innout.synth.video import (
    MASK_THRESHOLD,
    VideoSpec,
    generate_video,
    plan_video,
)
from PIL import Image


def _frames(spec: VideoSpec) -> list:
    return list(generate_video(spec))


def test_parameters_from_z_stay_in_their_ranges() -> None:
    generator = torch.Generator().manual_seed(0)
    latents = [torch.randn(512, generator=generator) for _ in range(64)]
    latents += [torch.full((512,), 40.0), torch.full((512,), -40.0)]  # far tails of N(0, 1)
    for z in latents:
        params = params_from_z(z).as_dict()
        for name, (low, high) in PARAMETER_RANGES.items():
            assert low <= params[name] <= high, name
        assert params["blink"] == 0.0
    # The squashing spans the ranges (not stuck in the middle).
    smiles = [params_from_z(z).smile for z in latents[:64]]
    assert min(smiles) < -0.6 and max(smiles) > 0.6
    # Edits are clamped to the documented range.
    assert HeadParams(smile=0.8).edited("smile", 1.0).smile == 1.0
    with pytest.raises(ValueError):
        HeadParams().edited("moustache", 1.0)


def test_video_plan_respects_camera_and_expression_ranges() -> None:
    spec = VideoSpec(identity=3, object_kind="ball", object_seed=0, frames=24, resolution=16)
    plans = plan_video(spec)
    yaws = np.array([p.yaw for p in plans])
    pitches = np.array([p.pitch for p in plans])
    assert np.abs(yaws).max() <= 0.35 + 1e-9 and np.abs(pitches).max() <= 0.2 + 1e-9
    # Smooth: neighbouring frames differ by a small fraction of the range.
    assert np.abs(np.diff(yaws)).max() < 0.2 and np.abs(np.diff(pitches)).max() < 0.12
    smiles = [p.params.smile for p in plans]
    assert max(smiles) - min(smiles) > 0.1  # the expression animates
    for plan in plans:
        for name, value in plan.params.as_dict().items():
            low, high = PARAMETER_RANGES[name]
            assert low <= value <= high


def test_videos_are_deterministic_and_object_seeds_differ() -> None:
    spec = VideoSpec(identity=1, object_kind="ball", object_seed=0, frames=2, resolution=32,
                     novel_views=1)  # fmt: skip
    first, second = _frames(spec), _frames(spec)
    for a, b in zip(first, second):
        for name in ("full", "head_only", "opacity", "mask", "edited", "novel", "depth"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
    other = _frames(VideoSpec(identity=1, object_kind="ball", object_seed=5, frames=2,
                              resolution=32, novel_views=1))  # fmt: skip
    assert any(not torch.equal(a.full, b.full) for a, b in zip(first, other))
    assert any(not torch.equal(a.mask, b.mask) for a, b in zip(first, other))
    # The head (identity) is the same: the head-only ground truth does not depend on the object.
    assert all(torch.equal(a.head_only, b.head_only) for a, b in zip(first, other))


@pytest.mark.parametrize("kind", OBJECT_KINDS)
def test_head_only_render_matches_full_render_outside_the_object(kind: str) -> None:
    spec = VideoSpec(identity=7, object_kind=kind, object_seed=1, frames=3, resolution=40,
                     novel_views=0)  # fmt: skip
    object_pixels = 0
    for frame in _frames(spec):
        diff = (frame.full - frame.head_only).abs().amax(0, keepdim=True)
        # Rays that never meet the object (opacity exactly 0): objects have compact support, so
        # the scene density there is bit-for-bit the head's and the renders are identical.
        untouched = frame.opacity == 0
        assert torch.equal(diff[untouched], torch.zeros_like(diff[untouched]))
        # Face pixels of the mask (0 < opacity <= MASK_THRESHOLD): the object holds at most that
        # share of the weight, so its colour moves a pixel by <= 2 * share (colours span 2); the
        # fine samples also shift a little with the changed pdf. Measured <= 3 * share; allow 4.
        face = (frame.mask == 255) & ~untouched
        if face.any():
            assert diff[face].max() <= 4 * MASK_THRESHOLD
        inside = frame.mask == 0
        object_pixels += int(inside.sum())
        if inside.any():
            assert diff[inside].mean() > 0.1  # the object is visible where the mask says
    assert object_pixels > 0, f"{kind}: the mask is empty in every frame"


def test_face_paint_marks_the_skin_and_keeps_the_geometry() -> None:
    spec = VideoSpec(identity=2, object_kind="face_paint", object_seed=0, frames=1,
                     resolution=48, novel_views=0)  # fmt: skip
    (frame,) = _frames(spec)
    head = HeadField(frame.plan.params)
    head_only = render(head, frame.plan.camera, settings=SynthRenderSettings(resolution=48))
    painted = frame.mask[0] == 0
    assert painted.sum() > 5
    # Painted pixels lie on the head (the background bowl is more than 0.3 farther away; a pixel
    # on the face's silhouette may graze the paint layer only)...
    on_head = head_only.depth[0][painted] < 2.85
    assert on_head.float().mean() >= 0.8
    # ... and the paint barely moves the surface (an appearance change, not a new shape).
    shift = (frame.depth[0][painted] - head_only.depth[0][painted]).abs()
    assert shift[on_head].median() < 0.02


def _row_of(world_y: float, resolution: int) -> float:
    """Image row of a point at height world_y near the face, seen by the frontal camera."""
    # Frontal camera 2.7 from the origin looking at (0, 0, 0.2); the face is about 2.5 away.
    return resolution / 2 - world_y / 2.5 * 4.2647 * resolution


@pytest.mark.parametrize(
    ("name", "delta", "world_y"),
    [("smile", 0.8, (-0.16, -0.02)), ("iris_color", 0.8, (0.0, 0.07))],
)
def test_an_edit_changes_only_where_its_attribute_lives(name, delta, world_y) -> None:
    res = 48
    settings = SynthRenderSettings(resolution=res)
    params = HeadParams(smile=0.0, iris_color=0.1, mouth_open=0.3)
    cam = frontal_camera()
    before = render(HeadField(params), cam, settings=settings).image
    after = render(HeadField(params.edited(name, delta)), cam, settings=settings).image
    changed = (after - before).abs().amax(0) > 0.02
    rows = changed.nonzero()[:, 0].float()
    assert rows.numel() > 0, "the edit changed nothing"
    top, bottom = _row_of(world_y[1], res), _row_of(world_y[0], res)
    assert rows.min() >= top - 1 and rows.max() <= bottom + 1, (rows.min(), rows.max(), top, bottom)
    # A small region: the mouth or the eyes, not the whole face.
    assert changed.float().mean() < 0.05


def test_cli_writes_every_file(tmp_path) -> None:
    out = tmp_path / "video"
    code = main(["synth", "video", "--identity", "4", "--object", "stick", "--object-seed", "2",
                 "--frames", "3", "--resolution", "32", "--novel-views", "2", "--edit",
                 "eye_size", "--edit-delta", "0.2", "--out", str(out)])  # fmt: skip
    assert code == 0
    frames = sorted((out / "frames").glob("*.png"))
    assert len(frames) == 3
    for sub in ("masks", "gt/head_only", "gt/edited"):
        assert sorted(p.name for p in (out / sub).glob("*.png")) == [p.name for p in frames]
    assert len(list((out / "gt/novel_views").glob("*.png"))) == 3 * 2
    mask = np.array(Image.open(out / "masks" / frames[0].name))
    assert mask.shape == (32, 32) and set(np.unique(mask)) <= {0, 255}
    assert np.array(Image.open(frames[0])).shape == (32, 32, 3)
    labels = json.loads((out / "dataset.json").read_text())["labels"]
    assert [name for name, _ in labels] == [f"frames/{p.name}" for p in frames]
    assert all(len(label) == 25 and all(isinstance(v, float) for v in label)
               for _, label in labels)  # fmt: skip
    novel = json.loads((out / "gt/novel_views/dataset.json").read_text())["labels"]
    assert len(novel) == 6 and all(len(label) == 25 for _, label in novel)
    params = json.loads((out / "params.json").read_text())
    assert len(params["frames"]) == 3
    assert params["settings"]["identity"] == 4 and params["object"]["kind"] == "stick"
    first = params["frames"][0]
    assert first["edited_params"]["eye_size"] == pytest.approx(
        min(first["params"]["eye_size"] + 0.2, PARAMETER_RANGES["eye_size"][1])
    )
    assert (out / "video.mp4").stat().st_size > 0
