"""`innout edit RUN_DIR --out OUT.mp4`: edit, remove the object, smooth, render new views, paste
the result back into the original frames."""

from __future__ import annotations

import argparse
import json
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


def _input_of(run: Path) -> tuple[Path, Path | None]:
    """The run's input (file or folder) and its transforms.json, if preprocessing wrote one."""
    manifest_input = json.loads((run / "run.json").read_text())["input"]
    source = Path(manifest_input["source"])
    transforms = source / "transforms.json" if source.is_dir() else None
    return source, transforms if transforms is not None and transforms.is_file() else None


def _cmd_edit(args: argparse.Namespace) -> int:
    import torch

    from innout.edit.paste import (
        changed_region,
        load_transforms,
        paste_back,
        paste_mask,
        read_source_frames,
    )
    from innout.edit.render import edit_frames
    from innout.edit.views import view_cameras
    from innout.invert.clip import load_clip
    from innout.invert.losses import resize
    from innout.invert.result import InversionResult
    from innout.media import to_uint8, write_png, write_video

    _check(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = InversionResult.load(args.run)
    source, transforms_path = _input_of(result.folder)
    clip = None
    if args.side_by_side or args.remove_object:
        if source.exists():
            clip = load_clip(source, masks=args.masks)
        elif args.side_by_side and not args.paste_back:
            raise EditError(f"--side-by-side needs the run's input, which is gone: {source}")
    transforms = None
    if args.paste_back:
        if transforms_path is None:
            raise EditError(
                f"--paste-back needs the crop transforms of the run's input "
                f"({source}/transforms.json, written by innout preprocess)"
            )
        transforms = load_transforms(transforms_path)
        if transforms.frames != result.frames:
            raise EditError(f"{transforms_path} has {transforms.frames} frames, the run "
                            f"{result.frames}")  # fmt: skip
    cameras = None
    if args.orbit or args.yaw or args.pitch:
        cameras = view_cameras(result.frames, args.yaw, args.pitch, args.orbit)
    strengths = [args.strength]
    if args.range is not None:
        low, high, count = args.range
        strengths = torch.linspace(low, high, int(count)).tolist()
    common = {"edits": args.edit, "remove_object": args.remove_object, "clip": clip,
              "dilation": args.dilation, "smoothing": args.smooth, "cameras": cameras,
              "samples_multiplier": args.samples_multiplier}  # fmt: skip
    edited = [
        edit_frames(result, direction=args.direction, strength=strength, **common)
        for strength in strengths
    ]
    audio_from, audio_start = (source if source.is_file() else None), 0.0
    if transforms is not None:
        # The unedited frames, to find the pixels the edit changed (not needed for whole crops).
        changed = args.paste_region == "changed"
        reconstruction = edit_frames(result, smoothing=args.smooth) if changed else None
        sources = read_source_frames(transforms)
        frames = []
        for t in range(result.frames):
            region = None
            if changed:
                region = changed_region(edited[0][t], reconstruction[t])
            mask = paste_mask(region, transforms.crop_size, args.paste_dilation,
                              args.paste_feather)  # fmt: skip
            pasted = paste_back(sources[t], edited[0][t], transforms.crop_from_source[t],
                                transforms.crop_size, mask)  # fmt: skip
            frames.append(
                torch.cat([torch.from_numpy(sources[t]), torch.from_numpy(pasted)], 1).numpy()
                if args.side_by_side
                else pasted
            )
        audio_from = transforms.source
        audio_start = transforms.source_frames[0] / result.fps
    else:
        columns = []
        if args.side_by_side:
            columns.append(resize(clip.frames, result.generator.img_resolution))
            columns.append(edit_frames(result, smoothing=args.smooth))
        columns += edited
        frames = [
            to_uint8(torch.cat([c[t] for c in columns], dim=-1)) for t in range(result.frames)
        ]
    if args.png_frames:
        folder = Path(args.png_frames)
        for t, frame in enumerate(frames):
            write_png(folder / f"{t:05d}.png", frame)
    write_video(args.out, frames, fps=result.fps, audio_from=audio_from, audio_start=audio_start)
    size = f"{frames[0].shape[1]}x{frames[0].shape[0]}"
    print(f"wrote {len(frames)} frames ({size}) at {result.fps:g} fps to {args.out}")
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
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.set_defaults(handler=_cmd_edit)


def _cmd_ganspace(args: argparse.Namespace) -> int:
    from innout.edit.ganspace import components_for
    from innout.edit.specs import network_file
    from innout.eg3d.loading import load_generator

    generator = load_generator(args.network)
    components = components_for(generator, network_file(args.network), progress=True)
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
