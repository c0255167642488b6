"""`innout invert INPUT --out RUN_DIR`: the command line of `innout.invert`."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
from pathlib import Path

from innout.invert.settings import METHODS, PRESETS, InversionSettings, parse_setting


def _cmd_invert(args: argparse.Namespace) -> int:
    from innout import distributed

    overrides = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(InversionSettings)
        if getattr(args, field.name) is not None
    }
    batch = len(args.input) > 1
    if batch and (args.masks or args.cameras):
        raise ValueError("--masks and --cameras name one input's files; with several inputs "
                         "each folder brings its own")  # fmt: skip
    try:
        with distributed.join(args.device, data_parallel=not batch) as group:
            if batch:
                return _run_batch(args, overrides, group)
            result = _run_invert(args, overrides, group)
    except KeyboardInterrupt:
        from innout.invert import run_folder

        if os.environ.get("RANK", "0") != "0":  # one rank speaks for the job
            return 130
        out = Path(args.out)
        written = (out, run_folder.staging_folder(out))
        if not batch and any((f / run_folder.MANIFEST).is_file() for f in written):
            print(f"innout: interrupted, resume with --resume (innout invert {args.input[0]} "
                  f"--out {args.out} --resume)", file=sys.stderr)  # fmt: skip
        elif batch:
            print("innout: interrupted, resume the batch with --resume", file=sys.stderr)
        else:
            print("innout: interrupted before the run folder was written", file=sys.stderr)
        return 130
    if not group.is_main:
        return 0
    manifest = json.loads((result.folder / "run.json").read_text())
    seconds = sum(manifest["seconds"].values())
    ranks = f" on {group.world_size} ranks" if group.world_size > 1 else ""
    print(
        f"inverted {result.frames} frames with {result.method}{ranks} in {seconds:.0f} s: "
        f"PSNR {manifest['metrics']['psnr']:.2f} dB, SSIM {manifest['metrics']['ssim']:.3f} "
        f"-> {result.folder}"
    )
    return 0


def _options(args: argparse.Namespace, overrides: dict, group) -> dict:
    from innout import distributed

    return dict(
        network=args.network,
        method=args.method,
        preset_name=args.preset,
        device=distributed.rank_device(args.device, group.local_rank),
        progress=not args.quiet,
        lpips_vgg=args.lpips_vgg,
        lpips_lin=args.lpips_lin,
        **overrides,
    )


def _run_invert(args: argparse.Namespace, overrides: dict, group):
    from innout.invert.run import invert

    return invert(args.input[0], cameras=args.cameras, masks=args.masks, out=args.out,
                  resume=args.resume, force=args.force,
                  **_options(args, overrides, group))  # fmt: skip


def _run_batch(args: argparse.Namespace, overrides: dict, group) -> int:
    from innout.invert.batch import SUMMARY, invert_batch

    def report(record: dict) -> None:
        if record["status"] != "complete":
            print(f"{record['input']}: {record['status']}", file=sys.stderr, flush=True)
            return
        psnr = record["metrics"].get("psnr", float("nan"))
        done = "kept" if record["skipped"] else f"{record['seconds']:.0f} s"
        where = f" (rank {record['rank']})" if group.world_size > 1 else ""
        print(f"{record['input']}: PSNR {psnr:.2f} dB, {done}{where}", flush=True)

    summary = invert_batch(args.input, args.out, group, resume=args.resume, force=args.force,
                           on_job=report, **_options(args, overrides, group))  # fmt: skip
    if summary is None:
        return 0
    print(f"{summary['complete']} of {len(summary['runs'])} inputs inverted, "
          f"{summary['failed']} failed -> {Path(args.out) / SUMMARY}")  # fmt: skip
    return 0 if summary["failed"] == 0 else 1


def _setting_value(name: str, text: str):
    try:
        return parse_setting(name, text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def add_invert_command(subparsers: argparse._SubParsersAction) -> None:
    """Adds `invert` to the command line; every InversionSettings field is an option."""
    parser = subparsers.add_parser(
        "invert",
        help="invert a face video (w, wplus, pti, innout, innout-auto) into a run folder",
        description="Inverts a video file, a frames folder with an EG3D dataset.json, or a "
        "folder written by `innout synth video` / `innout preprocess`. Under torchrun one input "
        "is inverted by all ranks together (each step's frames are shared among them) and "
        "several inputs are spread over the ranks.",
    )
    parser.add_argument(
        "input", nargs="+", help="video file or frames folder; several: one run each, in --out"
    )
    parser.add_argument("--network", default="tiny", help="tiny (bundled), .pkl or .safetensors")
    parser.add_argument(
        "--method",
        default=None,
        choices=METHODS,
        help="default: innout when the input has object masks, else innout-auto",
    )
    parser.add_argument("--preset", default="fast", choices=list(PRESETS))
    parser.add_argument(
        "--out", required=True, help="run folder (several inputs: the folder of their run folders)"
    )
    parser.add_argument("--masks", default=None, help="masks folder (255 face, 0 object)")
    parser.add_argument("--cameras", default=None, help="EG3D dataset.json")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    parser.add_argument("--force", action="store_true", help="replace an existing run folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--lpips-vgg", default=None, help="VGG-16 weights (see innout.lpips)")
    parser.add_argument("--lpips-lin", default=None, help="LPIPS linear heads (vgg.pth)")
    settings = parser.add_argument_group("settings (default: the preset's)")
    for field in dataclasses.fields(InversionSettings):
        settings.add_argument(
            "--" + field.name.replace("_", "-"),
            dest=field.name,
            type=functools.partial(_setting_value, field.name),
            default=None,
            help=f"paper {getattr(PRESETS['paper'], field.name)}, "
            f"fast {getattr(PRESETS['fast'], field.name)}",
        )
    parser.set_defaults(handler=_cmd_invert)
