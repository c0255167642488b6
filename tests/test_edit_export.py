"""Writing edited videos from Python (innout.edit.export): the run's input, the frame layouts and
the sound's source. The whole export against `innout edit` is in test_edit_video.py (it needs
that module's inverted run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from innout.edit.export import (
    audio_source,
    export_edited_video,
    pasted_frames,
    run_input,
    side_by_side_frames,
)
from innout.edit.paste import CropTransforms
from innout.edit.specs import EditError
from innout.media import to_uint8


def _transforms(source: Path, frames: int, size: int, offset: tuple[int, int]) -> CropTransforms:
    """Crops of size x size at `offset` (x, y) of every frame from the 2nd source frame on."""
    matrix = np.array([[1, 0, -offset[0]], [0, 1, -offset[1]]], dtype=np.float64)
    return CropTransforms(source, (40, 30), size, list(range(1, frames + 1)),
                          np.stack([matrix] * frames))  # fmt: skip


def test_run_input_finds_the_input_and_its_transforms(tmp_path):
    folder, run = tmp_path / "clip", tmp_path / "run"
    folder.mkdir()
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"input": {"source": str(folder)}}))
    assert run_input(run) == (folder, None)
    (folder / "transforms.json").write_text("{}")
    assert run_input(run) == (folder, folder / "transforms.json")
    video = tmp_path / "clip.mp4"
    (run / "run.json").write_text(json.dumps({"input": {"source": str(video)}}))
    assert run_input(run) == (video, None)


def test_columns_are_laid_out_left_to_right():
    first = torch.full((2, 3, 4, 5), -1.0)
    second = torch.full((2, 3, 4, 5), 1.0)
    frames = side_by_side_frames([first, second])
    assert len(frames) == 2 and frames[0].shape == (4, 10, 3) and frames[0].dtype == np.uint8
    assert np.array_equal(frames[1][:, :5], to_uint8(first[1]))
    assert np.array_equal(frames[1][:, 5:], to_uint8(second[1]))


def test_pasting_the_unchanged_crops_keeps_the_source_frames(tmp_path):
    rng = np.random.default_rng(0)
    sources = [rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8) for _ in range(2)]
    transforms = _transforms(tmp_path / "source.mp4", 2, 16, (8, 4))
    crops = torch.stack(
        [torch.from_numpy(s[4:20, 8:24]).permute(2, 0, 1).float() / 127.5 - 1 for s in sources]
    )
    # Only changed pixels are pasted: the reconstruction itself changes nothing.
    for frame, source in zip(pasted_frames(crops, transforms, sources, reference=crops), sources):
        assert np.array_equal(frame, source)
    edited = crops.clone()
    edited[:, :, 6:10, 6:10] = 1.0
    both = pasted_frames(edited, transforms, sources, crops, dilation=0, feather=0,
                         side_by_side=True)  # fmt: skip
    assert both[0].shape == (30, 80, 3)
    assert np.array_equal(both[0][:, :40], sources[0])
    pasted = both[0][:, 40:]
    assert (pasted[10:14, 14:18] == 255).all()  # crop (6..10, 6..10) at offset (8, 4)
    outside = np.ones((30, 40), bool)
    outside[10:14, 14:18] = False
    assert np.array_equal(pasted[outside], sources[0][outside])


def test_the_sound_comes_from_the_cropped_video_or_the_input_video(tmp_path):
    video, folder = tmp_path / "in.mp4", tmp_path / "frames"
    video.write_bytes(b"")
    folder.mkdir()
    assert audio_source(video, None, 25.0) == (video, 0.0)
    assert audio_source(folder, None, 25.0) == (None, 0.0)
    transforms = _transforms(tmp_path / "source.mp4", 3, 16, (0, 0))
    # The crops start at source frame 1: the sound starts one frame in.
    assert audio_source(folder, transforms, 25.0) == (tmp_path / "source.mp4", 1 / 25.0)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"strengths": []}, "at least one strength"),
        ({"paste_back": True, "strengths": [0.0, 1.0]}, "one edit"),
        ({"paste_region": "face"}, "paste_region must be one of changed, crop"),
    ],
)
def test_export_refuses_bad_arguments_before_rendering(tmp_path, arguments, message):
    # The arguments are checked before the result is used: no run needed.
    with pytest.raises(EditError, match=message):
        export_edited_video(None, tmp_path / "x.mp4", **arguments)
    assert not (tmp_path / "x.mp4").exists()
