"""`innout demo`: the whole pipeline on the bundled innout-tiny, with ground truth to compare to.

Makes a synthetic occluded clip (`innout synth video`, with ground truth for an edit, for the
head without the object and for a new view), inverts it with In-N-Out's `fast` preset, then writes
the reconstruction, an edit, the object removed and an orbit, and `report.html` with the videos,
the loss curves and PSNR against the ground truth.
"""

from __future__ import annotations

import argparse
import html
import json
import shutil
import time
from pathlib import Path

import torch

DEMO_EDIT = ("hair_color", 0.3)


def _images(folder: Path, names: list[str]) -> torch.Tensor:
    from innout.media import image_tensor, read_image

    return torch.stack([image_tensor(read_image(folder / name)) for name in names])


def _psnr(images: torch.Tensor, folder: Path, names: list[str], mask=None) -> float:
    from innout.metrics import psnr

    return float(psnr(images, _images(folder, names), mask).mean())


def _panels(*columns: torch.Tensor) -> list:
    from innout.media import to_uint8

    return [to_uint8(torch.cat([c[t] for c in columns], -1)) for t in range(len(columns[0]))]


def run_demo(
    out: str | Path,
    frames: int = 4,
    identity: int = 3,
    object_kind: str = "ball",
    force: bool = False,
    progress: bool = True,
) -> dict:
    """Runs the demo into `out`; returns the metrics written to report.html / demo.json."""
    from innout.edit.render import edit_frames
    from innout.edit.views import view_cameras
    from innout.invert.clip import InputError, load_clip
    from innout.invert.run import invert
    from innout.media import write_video
    from innout.synth import VideoSpec, write_video_folder

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise InputError(f"{out}: exists; pass --force to replace it")
    if out.exists():
        shutil.rmtree(out)
    started = time.time()
    edit_name, edit_strength = DEMO_EDIT
    spec = VideoSpec(identity=identity, object_kind=object_kind, object_seed=0, frames=frames,
                     edit=edit_name, edit_delta=edit_strength, novel_views=1)  # fmt: skip
    write_video_folder(spec, out / "clip", progress=progress)
    clip = load_clip(out / "clip")
    result = invert(out / "clip", method="innout", preset_name="fast", out=out / "run",
                    progress=progress)  # fmt: skip
    names = [Path(name).name for name in clip.names]
    reconstruction = edit_frames(result)
    edited = edit_frames(result, direction=edit_name, strength=edit_strength)
    removed = edit_frames(result, remove_object=True, clip=clip)
    novel_labels = json.loads((out / "clip/gt/novel_views/dataset.json").read_text())["labels"]
    novel = torch.tensor([label for _, label in novel_labels])
    novel_view = edit_frames(result, cameras=novel)
    orbit = edit_frames(result, cameras=view_cameras(frames, orbit=True))
    object_mask = 1 - clip.masks  # the clip is at the output resolution (128)
    metrics = {
        "frames": frames,
        "reconstruction_psnr": _psnr(reconstruction, out / "clip/frames", names),
        f"edit_{edit_name}_{edit_strength:+g}_psnr": _psnr(edited, out / "clip/gt/edited", names),
        "removal_psnr": _psnr(removed, out / "clip/gt/head_only", names),
        "removal_psnr_in_object": _psnr(removed, out / "clip/gt/head_only", names, object_mask),
        # The same region before removal: how much of the face the removal brought back.
        "kept_object_psnr_in_object": _psnr(
            reconstruction, out / "clip/gt/head_only", names, object_mask
        ),
        "novel_view_psnr": _psnr(
            novel_view, out / "clip/gt/novel_views", [name for name, _ in novel_labels]
        ),  # fmt: skip
    }
    videos = {
        "input | reconstruction | object layer": "run/preview.mp4",
        f"input | reconstruction | {edit_name} {edit_strength:+g}": "edit.mp4",
        "input | object removed | ground truth head": "removed.mp4",
        "orbit": "orbit.mp4",
    }
    head_only = _images(out / "clip/gt/head_only", names)
    write_video(out / "edit.mp4", _panels(clip.frames, reconstruction, edited), fps=clip.fps)
    write_video(out / "removed.mp4", _panels(clip.frames, removed, head_only), fps=clip.fps)
    write_video(out / "orbit.mp4", _panels(orbit), fps=clip.fps)
    metrics["seconds"] = time.time() - started
    (out / "demo.json").write_text(json.dumps(metrics, indent=1))
    _write_report(out, metrics, videos)
    return metrics


def _write_report(out: Path, metrics: dict, videos: dict) -> None:
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:.2f}</td></tr>" for k, v in metrics.items()
        if isinstance(v, float)
    )  # fmt: skip
    clips = "".join(
        f"<figure><video src='{html.escape(src)}' controls loop autoplay muted></video>"
        f"<figcaption>{html.escape(title)}</figcaption></figure>"
        for title, src in videos.items()
    )
    (out / "report.html").write_text(f"""<!doctype html>
<html><head><meta charset="utf-8"><title>innout demo</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}
video{{image-rendering:pixelated;width:100%}}figure{{display:inline-block;width:48%;margin:0 1%}}
td{{padding:2px 12px}}</style></head><body>
<h1>innout demo: In-N-Out on innout-tiny</h1>
<p>A synthetic occluded clip, inverted with
<code>innout invert --method innout --preset fast</code>, then edited, with the object
removed, and re-rendered from new views. PSNR (dB) against the
synthetic world's ground truth:</p>
<table>{rows}</table>{clips}
<h2>Losses</h2><img src="run/losses.png" style="width:100%">
</body></html>
""")


def _cmd_demo(args: argparse.Namespace) -> int:
    metrics = run_demo(args.out, frames=args.frames, force=args.force, progress=not args.quiet)
    print(json.dumps(metrics, indent=1))
    print(f"open {args.out}/report.html")
    return 0


def add_demo_command(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo", help="synthetic occluded clip -> In-N-Out inversion -> edit, removal, orbit, report"
    )
    demo.add_argument("--out", default="innout-demo", help="output folder (default innout-demo)")
    demo.add_argument("--frames", type=int, default=4, help="clip length (default 4)")
    demo.add_argument("--force", action="store_true", help="replace an existing output folder")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(handler=_cmd_demo)
