"""`innout convert` and `innout generate`: EG3D checkpoints and random faces."""

from __future__ import annotations

import argparse


def _cmd_convert(args: argparse.Namespace) -> int:
    from innout.eg3d.checkpoint import convert_checkpoint

    convert_checkpoint(args.input, args.output, key=args.key)
    print(f"wrote {args.output}")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from innout.eg3d.generate import generate, parse_seeds
    from innout.eg3d.loading import load_generator

    seeds = parse_seeds(args.seeds)
    generator = load_generator(args.network, device=args.device)
    written = generate(
        generator,
        seeds,
        Path(args.out),
        truncation_psi=args.trunc,
        truncation_cutoff=args.trunc_cutoff,
        focal=args.focal,
        orbit=args.orbit,
        orbit_frames=args.frames,
        device=args.device,
    )
    print(f"wrote {len(written)} files to {args.out}")
    return 0


def add_eg3d_commands(commands: argparse._SubParsersAction) -> None:
    convert = commands.add_parser(
        "convert", help="official EG3D .pkl -> .safetensors (weights + JSON config, no pickle)"
    )
    convert.add_argument("input", help="EG3D snapshot .pkl (read without executing anything)")
    convert.add_argument("output", help="the .safetensors file to write")
    convert.add_argument("--key", default="G_ema", help="network in the snapshot (G_ema or G)")
    convert.set_defaults(handler=_cmd_convert)

    gen = commands.add_parser("generate", help="random faces: images, depth maps, orbit videos")
    gen.add_argument(
        "--network",
        default="tiny",
        help="EG3D .pkl, converted .safetensors, or tiny (bundled; default)",
    )
    gen.add_argument("--seeds", default="0-3", help="e.g. 0-3,7 (EG3D's seeds: numpy RandomState)")
    gen.add_argument("--trunc", type=float, default=0.7, help="truncation psi")
    gen.add_argument("--trunc-cutoff", type=int, default=14, help="layers truncated")
    gen.add_argument("--focal", type=float, default=4.2647, help="normalised focal length")
    gen.add_argument("--orbit", action="store_true", help="also write an mp4 of the head turning")
    gen.add_argument("--frames", type=int, default=60, help="frames of the orbit video")
    gen.add_argument("--device", default="cpu", help="cpu or cuda")
    gen.add_argument("--out", required=True, help="output folder")
    gen.set_defaults(handler=_cmd_generate)
