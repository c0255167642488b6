"""Writing an edited video of a run: the edited frames (several strengths side by side, optionally
after the input and the reconstruction) or the edit pasted back into the source video's
full-resolution frames (:mod:`innout.edit.paste`), as an mp4 with the input's sound and optionally
as PNG frames. `innout edit` is this module behind a command line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from innout.edit.paste import (
    CropTransforms,
    changed_region,
    load_transforms,
    paste_back,
    paste_mask,
    read_source_frames,
)
from innout.edit.render import edit_frames
from innout.edit.specs import Edit, EditError
from innout.invert.clip import load_clip
from innout.invert.losses import resize
from innout.invert.result import InversionResult
from innout.media import to_uint8, write_png, write_video

#: What `export_edited_video` pastes back: the pixels the edit changed, or the whole crop.
PASTE_REGIONS = ("changed", "crop")


@dataclass(frozen=True)
class ExportedVideo:
    """What `export_edited_video` wrote: `frames` frames of width x height at `fps` to `path`."""

    path: Path
    frames: int
    width: int
    height: int
    fps: float


def run_input(run: str | Path) -> tuple[Path, Path | None]:
    """The input (file or folder) a run folder inverted and its transforms.json, if
    preprocessing wrote one (None otherwise)."""
    manifest_input = json.loads((Path(run) / "run.json").read_text())["input"]
    source = Path(manifest_input["source"])
    beside = manifest_input.get("source_from_run")
    if not source.exists() and beside:  # the run and its input moved together
        moved = Path(run) / beside
        source = moved.resolve() if moved.exists() else source
    transforms = source / "transforms.json" if source.is_dir() else None
    return source, transforms if transforms is not None and transforms.is_file() else None


def side_by_side_frames(columns: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """Images [T, 3, H, W] in [-1, 1] (one tensor per column, same sizes) -> T frames
    [H, columns * W, 3] uint8, the columns left to right."""
    count = columns[0].shape[0]
    return [to_uint8(torch.cat([column[t] for column in columns], dim=-1)) for t in range(count)]


def pasted_frames(
    edited: torch.Tensor,
    transforms: CropTransforms,
    sources: Sequence[np.ndarray],
    reference: torch.Tensor | None = None,
    dilation: int = 8,
    feather: int = 16,
    side_by_side: bool = False,
) -> list[np.ndarray]:
    """The edited crops [T, 3, s, s] (in [-1, 1]) pasted into their source frames ([H, W, 3]
    uint8, `read_source_frames`): T frames [H, W, 3] uint8, or [H, 2W, 3] source | pasted with
    `side_by_side`.

    With `reference` (the unedited crops [T, 3, s, s]) only the pixels the edit changed are
    pasted, else the whole crop; the region is dilated by `dilation` px and feathered over
    `feather` px (`paste_mask`). Source pixels outside the mask stay bit for bit.
    """
    frames = []
    for t in range(edited.shape[0]):
        region = None if reference is None else changed_region(edited[t], reference[t])
        mask = paste_mask(region, transforms.crop_size, dilation, feather)
        pasted = paste_back(sources[t], edited[t], transforms.crop_from_source[t],
                            transforms.crop_size, mask)  # fmt: skip
        frames.append(
            torch.cat([torch.from_numpy(sources[t]), torch.from_numpy(pasted)], 1).numpy()
            if side_by_side
            else pasted
        )
    return frames


def audio_source(
    source: Path, transforms: CropTransforms | None, fps: float
) -> tuple[Path | None, float]:
    """The file whose sound the edited video gets and where in it (seconds) the video's first
    frame is: with crop `transforms`, their source video from the first cropped frame (at `fps`);
    else the run's input `source` from its start when it is a video file; else none."""
    if transforms is not None:
        return transforms.source, transforms.source_frames[0] / fps
    return (source if source.is_file() else None), 0.0


def refuse_inputs_as_outputs(
    run: Path, source: Path, transforms_path: Path | None, outputs: Sequence
) -> None:
    """Refuses outputs that would write over what the run was made from or what it holds: the
    run's input (a video file, or any file already in its frames folder), the source video of
    its crops, and the run folder's own files."""
    protected = [(Path(run).resolve(), True), (source.resolve(), True)]
    if transforms_path is not None:
        protected.append((load_transforms(transforms_path).source.resolve(), False))
    for output in outputs:
        if output is None:
            continue
        target = Path(output).resolve()
        for path, is_tree in protected:
            inside = is_tree and path in target.parents and target.exists()
            if target == path or inside:
                raise EditError(f"{output}: that is (or holds) an input of the run {run} "
                                f"({path}); write the edit somewhere else")  # fmt: skip


def export_edited_video(
    result: InversionResult,
    out: str | Path,
    *,
    edits: Sequence[Edit | str] = (),
    direction: str | None = None,
    strengths: Sequence[float] = (0.0,),
    remove_object: bool = False,
    masks: str | Path | None = None,
    dilation: int = 5,
    smoothing: str = "none",
    cameras=None,
    samples_multiplier: float | None = None,
    side_by_side: bool = False,
    paste_back: bool = False,
    paste_region: str = "changed",
    paste_dilation: int = 8,
    paste_feather: int = 16,
    png_frames: str | Path | None = None,
) -> ExportedVideo:
    """Renders the edited video of a run (`edit_frames`) and writes it to the mp4 `out`.

    Args:
        result: an InversionResult loaded from (or saved to) its run folder: the run's input is
            looked up there (`run_input`) for the side-by-side column, the object masks, the
            crop transforms and the sound.
        edits, remove_object, dilation, smoothing, cameras, samples_multiplier: as
            `edit_frames`; object removal uses the masks of the run's input (or `masks`, a
            folder of masks for it) when the input still exists.
        direction, strengths: one more edit at each strength; each strength is a column.
        side_by_side: input | reconstruction | edits; with `paste_back`, source | pasted.
        paste_back: paste the edit (one strength) into the full-resolution frames of the video
            the input was cropped from; needs the input's transforms.json (innout preprocess).
        paste_region: "changed" (the pixels the edit changed) or "crop" (the whole crop).
        paste_dilation, paste_feather: growth and softening of the paste mask (px).
        png_frames: a folder that also gets every output frame as 00000.png, 00001.png, ...

    The video keeps the run's frame rate and the input's sound (`audio_source`).
    """
    strengths = list(strengths)
    if not strengths:
        raise EditError("strengths must hold at least one strength")
    if paste_back and len(strengths) != 1:
        raise EditError(f"paste_back writes one edit into the source frames; got "
                        f"{len(strengths)} strengths")  # fmt: skip
    if paste_region not in PASTE_REGIONS:
        raise EditError(f"paste_region must be one of {', '.join(PASTE_REGIONS)}, got "
                        f"{paste_region!r}")  # fmt: skip
    if result.folder is None:
        raise EditError("exporting needs a result loaded from or saved to a run folder (the "
                        "run's input is looked up there)")  # fmt: skip
    source, transforms_path = run_input(result.folder)
    refuse_inputs_as_outputs(result.folder, source, transforms_path, [out, png_frames])
    clip = None
    if side_by_side or remove_object:
        if source.exists():
            clip = load_clip(source, masks=masks)
        elif remove_object and masks is None and result.method == "innout":
            # Without its masks an "innout" run would remove wherever its object field is
            # opaque - another region than the one it was given - without a word.
            raise EditError(f"object removal uses the run's input masks, and its input is "
                            f"gone: {source}; pass the masks (--masks)")  # fmt: skip
        elif side_by_side and not paste_back:
            raise EditError(f"a side-by-side video needs the run's input, which is gone: {source}")
    transforms = None
    if paste_back:
        if transforms_path is None:
            raise EditError(
                f"pasting back needs the crop transforms of the run's input "
                f"({source}/transforms.json, written by innout preprocess)"
            )
        transforms = load_transforms(transforms_path)
        if transforms.frames != result.frames:
            raise EditError(f"{transforms_path} has {transforms.frames} frames, the run "
                            f"{result.frames}")  # fmt: skip
    common = {"edits": edits, "remove_object": remove_object, "clip": clip,
              "dilation": dilation, "smoothing": smoothing, "cameras": cameras,
              "samples_multiplier": samples_multiplier}  # fmt: skip
    edited = [
        edit_frames(result, direction=direction, strength=strength, **common)
        for strength in strengths
    ]
    if transforms is not None:
        # The unedited frames, to find the pixels the edit changed (not needed for whole crops).
        reference = edit_frames(result, smoothing=smoothing) if paste_region == "changed" else None
        frames = pasted_frames(edited[0], transforms, read_source_frames(transforms), reference,
                               paste_dilation, paste_feather, side_by_side)  # fmt: skip
    else:
        columns = []
        if side_by_side:
            columns.append(resize(clip.frames, result.generator.img_resolution))
            columns.append(edit_frames(result, smoothing=smoothing))
        frames = side_by_side_frames(columns + edited)
    if png_frames is not None:
        for t, frame in enumerate(frames):
            write_png(Path(png_frames) / f"{t:05d}.png", frame)
    audio_from, audio_start = audio_source(source, transforms, result.fps)
    write_video(out, frames, fps=result.fps, audio_from=audio_from, audio_start=audio_start)
    height, width = frames[0].shape[:2]
    return ExportedVideo(Path(out), len(frames), width, height, result.fps)
