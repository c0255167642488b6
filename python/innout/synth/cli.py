"""`innout synth ...`: command-line access to the synthetic head world."""

from __future__ import annotations

import argparse

from innout.synth.head import PARAMETER_RANGES
from innout.synth.objects import OBJECT_KINDS


def _cmd_synth_video(args: argparse.Namespace) -> int:
    from innout.synth.video import VideoSpec, write_video_folder

    spec = VideoSpec(
        identity=args.identity,
        object_kind=args.object,
        object_seed=args.object_seed,
        frames=args.frames,
        resolution=args.resolution,
        edit=args.edit,
        edit_delta=args.edit_delta,
        novel_views=args.novel_views,
    )
    write_video_folder(spec, args.out, progress=True)
    print(f"wrote {args.frames} frames with ground truth to {args.out}")
    return 0


def add_synth_commands(subparsers: argparse._SubParsersAction) -> None:
    """Adds `synth video` to the `innout` command line's subcommands."""
    synth = subparsers.add_parser("synth", help="the synthetic head world")
    commands = synth.add_subparsers(dest="synth_command", required=True)
    video = commands.add_parser(
        "video", help="an occluded-face video with ground truth (head-only, masks, edits, views)"
    )
    video.add_argument("--identity", type=int, required=True, help="identity seed (z as EG3D)")
    video.add_argument("--object", choices=OBJECT_KINDS, required=True, help="occluding object")
    video.add_argument("--object-seed", type=int, default=0, help="object shape/colour/path seed")
    video.add_argument("--frames", type=int, default=16, help="number of frames T")
    video.add_argument("--resolution", type=int, default=128, help="image side in pixels")
    video.add_argument("--out", required=True, help="output folder")
    video.add_argument("--edit", choices=list(PARAMETER_RANGES), default="smile",
                       help="attribute of the edited ground truth")  # fmt: skip
    video.add_argument("--edit-delta", type=float, default=0.5, help="p_edit += this")
    video.add_argument("--novel-views", type=int, default=2, help="extra viewpoints per frame")
    video.set_defaults(handler=_cmd_synth_video)
