"""`innout edit RUN_DIR --out OUT.mp4`: edit, remove the object, smooth, render new views, paste
the result back into the original frames."""

from __future__ import annotations

import argparse
from pathlib import Path

from innout.edit.smoothing import SMOOTHING
from innout.edit.specs import EditError, parse_edit


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
    if args.paste_dilation < 0 or args.paste_feather < 0:
        raise EditError("--paste-dilation and --paste-feather must be >= 0")
    if args.paste_back and args.range is not None:
        raise EditError("--paste-back writes one edit into the original frames; drop --range")
    if args.direction is not None:
        parse_edit(args.direction, args.strength)  # refuses a bad layer range early
    for edit in args.edit:
        parse_edit(edit)


def _cmd_edit(args: argparse.Namespace) -> int:
    import torch

    from innout.edit.export import export_edited_video
    from innout.edit.views import view_cameras
    from innout.invert.result import InversionResult

    _check(args)
    result = InversionResult.load(args.run)
    cameras = None
    if args.orbit or args.yaw or args.pitch:
        cameras = view_cameras(result.frames, args.yaw, args.pitch, args.orbit)
    strengths = [args.strength]
    if args.range is not None:
        low, high, count = args.range
        strengths = torch.linspace(low, high, int(count)).tolist()
    video = export_edited_video(
        result, args.out, edits=args.edit, direction=args.direction, strengths=strengths,
        remove_object=args.remove_object, masks=args.masks, dilation=args.dilation,
        smoothing=args.smooth, cameras=cameras, samples_multiplier=args.samples_multiplier,
        side_by_side=args.side_by_side, paste_back=args.paste_back,
        paste_region=args.paste_region, paste_dilation=args.paste_dilation,
        paste_feather=args.paste_feather, png_frames=args.png_frames,
    )  # fmt: skip
    print(f"wrote {video.frames} frames ({video.width}x{video.height}) at {video.fps:g} fps to "
          f"{args.out}")  # fmt: skip
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
        help="SPEC[@A-B]: a shipped name (innout-tiny: smile, hair_color, ...), a direction "
        ".safetensors, an InterfaceGAN .npy boundary, a *.delta.npy latent delta or ganspace:K "
        "(the generator's K-th principal component of W); @A-B limits it to W+ layers A..B",
    )
    parser.add_argument("--strength", type=float, default=0.0, help="edit strength (default 0)")
    parser.add_argument("--range", type=float, nargs=3, metavar=("A", "B", "N"), default=None,
                        help="N strengths from A to B, side by side")  # fmt: skip
    parser.add_argument("--edit", action="append", default=[], metavar="SPEC[@A-B]=S",
                        help="one more edit, added to the others (repeatable), e.g. "
                        "--edit smile=0.5 --edit ganspace:3@0-5=-2")  # fmt: skip
    parser.add_argument("--remove-object", action="store_true", help="show the face behind it")
    parser.add_argument("--masks", default=None, help="object masks (default: the run's input's)")
    parser.add_argument("--dilation", type=int, default=5, help="mask dilation for removal (px)")
    parser.add_argument("--smooth", default="none", choices=list(SMOOTHING),
                        help="temporal filter of codes and first SR block features")  # fmt: skip
    parser.add_argument("--yaw", type=float, default=0.0, help="novel view yaw (degrees)")
    parser.add_argument("--pitch", type=float, default=0.0, help="novel view pitch (degrees)")
    parser.add_argument("--orbit", action="store_true", help="sweep the yaw over the video")
    parser.add_argument("--samples-multiplier", type=float, default=None)
    parser.add_argument("--side-by-side", action="store_true", help="input | reconstruction | edit")
    parser.add_argument("--paste-back", action="store_true",
                        help="paste the edit into the original full-resolution frames (needs "
                        "the crop transforms of innout preprocess)")  # fmt: skip
    parser.add_argument(
        "--paste-region",
        default="changed",
        choices=["changed", "crop"],
        help="what to paste: the pixels the edit changed, or the whole crop",
    )
    parser.add_argument("--paste-dilation", type=int, default=8, help="paste mask dilation (px)")
    parser.add_argument("--paste-feather", type=int, default=16, help="paste mask feather (px)")
    parser.add_argument("--png-frames", default=None, metavar="DIR",
                        help="also write every output frame as DIR/00000.png, ...")  # fmt: skip
    parser.set_defaults(handler=_cmd_edit)


def _cmd_ganspace(args: argparse.Namespace) -> int:
    from innout.edit.ganspace import components_for
    from innout.edit.specs import existing_network_file
    from innout.eg3d.loading import load_generator

    generator = load_generator(args.network)
    components = components_for(generator, existing_network_file(args.network), progress=True)
    share = components.explained_variance()
    print(f"GANSpace components of {args.network} ({components.samples} latents, seed "
          f"{components.seed}); edit with --edit ganspace:K[@A-B]=S, S in standard "
          "deviations")  # fmt: skip
    for k in range(min(args.show, components.vectors.shape[0])):
        print(f"  ganspace:{k:<3d} sigma {float(components.stdev[k]):.4f}  "
              f"{100 * float(share[k]):5.1f}% of the variance")  # fmt: skip
    return 0


def add_ganspace_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ganspace", help="compute (and cache) a network's GANSpace components of W"
    )
    parser.add_argument("--network", default="tiny", help="tiny, a .pkl or a .safetensors file")
    parser.add_argument("--show", type=int, default=10, help="components to list")
    parser.set_defaults(handler=_cmd_ganspace)
