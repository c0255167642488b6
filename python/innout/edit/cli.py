"""`innout edit RUN_DIR --out OUT.mp4`: edit, remove the object, smooth, render new views."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from innout.edit.video import SMOOTHING, EditError


def _check(args: argparse.Namespace) -> None:
    if args.range is not None and args.direction is None:
        raise EditError("--range needs --direction")
    if args.strength != 0 and args.direction is None:
        raise EditError("--strength needs --direction")
    if args.range is not None and args.range[2] < 1:
        raise EditError("--range A B N needs N >= 1")
    if args.orbit and args.pitch != 0:
        raise EditError("--orbit sweeps the yaw at pitch 0; do not combine it with --pitch")
    if Path(args.out).suffix.lower() != ".mp4":
        raise EditError(f"--out must be an .mp4 file, got {args.out}")
    if args.dilation < 1:
        raise EditError(f"--dilation must be >= 1, got {args.dilation}")


def _cmd_edit(args: argparse.Namespace) -> int:
    import torch

    from innout.edit.video import edit_frames, view_cameras
    from innout.invert.clip import load_clip
    from innout.invert.losses import resize
    from innout.invert.result import InversionResult
    from innout.media import to_uint8, write_video

    _check(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = InversionResult.load(args.run)
    manifest_input = json.loads((result.folder / "run.json").read_text())["input"]
    clip = None
    source = Path(manifest_input["source"])
    if args.side_by_side or args.remove_object:
        if source.exists():
            clip = load_clip(source, masks=args.masks)
        elif args.side_by_side:
            raise EditError(f"--side-by-side needs the run's input, which is gone: {source}")
    cameras = None
    if args.orbit or args.yaw or args.pitch:
        cameras = view_cameras(result.frames, args.yaw, args.pitch, args.orbit)
    strengths = [args.strength]
    if args.range is not None:
        low, high, count = args.range
        strengths = torch.linspace(low, high, int(count)).tolist()
    columns = []
    if args.side_by_side:
        size = result.generator.img_resolution
        columns.append(resize(clip.frames, size))
        columns.append(edit_frames(result, clip=clip, smoothing=args.smooth))
    for strength in strengths:
        columns.append(
            edit_frames(
                result,
                direction=args.direction,
                strength=strength,
                remove_object=args.remove_object,
                clip=clip,
                dilation=args.dilation,
                smoothing=args.smooth,
                cameras=cameras,
                samples_multiplier=args.samples_multiplier,
            )  # fmt: skip
        )
    frames = [to_uint8(torch.cat([c[t] for c in columns], dim=-1)) for t in range(result.frames)]
    write_video(args.out, frames, fps=result.fps)
    panels = f"{len(columns)} panel(s)"
    print(f"wrote {len(frames)} frames ({panels}) at {result.fps:g} fps to {args.out}")
    return 0


def add_edit_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "edit", help="edit an inverted video: directions, object removal, smoothing, new views"
    )
    parser.add_argument("run", help="run folder written by innout invert")
    parser.add_argument("--out", required=True, help="output .mp4")
    parser.add_argument(
        "--direction",
        default=None,
        help="a shipped name (innout-tiny: smile, hair_color, ...), a direction .safetensors, "
        "an InterfaceGAN .npy boundary or a *.delta.npy latent delta",
    )
    parser.add_argument("--strength", type=float, default=0.0, help="edit strength (default 0)")
    parser.add_argument("--range", type=float, nargs=3, metavar=("A", "B", "N"), default=None,
                        help="N strengths from A to B, side by side")  # fmt: skip
    parser.add_argument("--remove-object", action="store_true", help="show the face behind it")
    parser.add_argument("--masks", default=None, help="object masks (default: the run's input's)")
    parser.add_argument("--dilation", type=int, default=5, help="mask dilation for removal (px)")
    parser.add_argument("--smooth", default="none", choices=list(SMOOTHING))
    parser.add_argument("--yaw", type=float, default=0.0, help="novel view yaw (degrees)")
    parser.add_argument("--pitch", type=float, default=0.0, help="novel view pitch (degrees)")
    parser.add_argument("--orbit", action="store_true", help="sweep the yaw over the video")
    parser.add_argument("--samples-multiplier", type=float, default=None)
    parser.add_argument("--side-by-side", action="store_true", help="input | reconstruction | edit")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.set_defaults(handler=_cmd_edit)
