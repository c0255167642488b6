"""The `innout` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from innout.bench.quality_cli import add_quality_command
from innout.edit.cli import add_edit_command, add_ganspace_command
from innout.invert.cli import add_invert_command
from innout.preprocess.cli import add_preprocess_command
from innout.synth.cli import add_synth_commands
from innout.tiny.cli import add_tiny_commands


def _cmd_info(args: argparse.Namespace) -> int:
    from innout.info import build_info, format_build_info

    info = build_info()
    print(json.dumps(info, indent=2) if args.json else format_build_info(info))
    return 0


def _cmd_bench_kernels(args: argparse.Namespace) -> int:
    from innout.bench.kernels import format_table, run_kernel_benchmarks

    results = run_kernel_benchmarks(
        workload=args.workload, device=args.device, repeats=args.repeats, ops=args.ops
    )
    print(format_table(results))
    if args.json:
        from innout.bench.kernels import write_json

        write_json(results, args.json)
        print(f"wrote {args.json}")
    return 0


def _cmd_bench_generator(args: argparse.Namespace) -> int:
    from innout.bench.generator import format_report, run_generator_benchmark

    report = run_generator_benchmark(args.architecture, device=args.device, batch=args.batch)
    print(format_report(report))
    if args.json:
        from innout.bench.kernels import write_json_payload

        write_json_payload(report, args.json)
        print(f"wrote {args.json}")
    return 0


def _cmd_bench_invert(args: argparse.Namespace) -> int:
    from innout.bench.invert import format_composite_report, run_composite_benchmark

    report = run_composite_benchmark(
        args.network, frames=args.frames, resolution=args.resolution, steps=args.steps,
        device=args.device,
    )  # fmt: skip
    print(format_composite_report(report))
    if args.json:
        from innout.bench.kernels import write_json_payload

        write_json_payload(report, args.json)
        print(f"wrote {args.json}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import torch

    from innout.demo import run_demo

    if args.threads:
        torch.set_num_threads(args.threads)
    metrics = run_demo(args.out, frames=args.frames, force=args.force, progress=not args.quiet)
    print(json.dumps(metrics, indent=1))
    print(f"open {args.out}/report.html")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from innout.eg3d.checkpoint import convert_checkpoint

    convert_checkpoint(args.input, args.output, key=args.key)
    print(f"wrote {args.output}")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from innout.eg3d.loading import load_generator
    from innout.generate import generate, parse_seeds

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


def _cmd_export_scene(args: argparse.Namespace) -> int:
    from innout.invert.result import InversionResult
    from innout.scene import export_scene

    result = InversionResult.load(args.run)
    path = export_scene(result, args.frame, args.out, edits=args.edit)
    print(f"wrote {path} (frame {args.frame} of {args.run})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="innout", description="Invert and edit face videos with EG3D and In-N-Out."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    info = commands.add_parser("info", help="version, compiled backends, devices and threads")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    info.set_defaults(handler=_cmd_info)

    bench = commands.add_parser("bench", help="benchmarks")
    bench_commands = bench.add_subparsers(dest="bench_command", required=True)
    kernels = bench_commands.add_parser(
        "kernels", help="innout's ops vs the PyTorch reference: time ratio and peak memory"
    )
    kernels.add_argument("--workload", choices=["eg3d", "tiny"], default="eg3d")
    kernels.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    kernels.add_argument("--repeats", type=int, default=3, help="timed runs per measurement")
    kernels.add_argument(
        "--ops",
        nargs="+",
        choices=["triplane_sample", "composite_march", "ray_march", "importance_sample"],
        default=None,
        help="which ops (default: all)",
    )
    kernels.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    kernels.set_defaults(handler=_cmd_bench_kernels)
    generator_bench = bench_commands.add_parser(
        "generator", help="one full-size EG3D forward: innout ops vs the reference (random weights)"
    )
    generator_bench.add_argument("--architecture", default="ffhq512-128")
    generator_bench.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    generator_bench.add_argument("--batch", type=int, default=1)
    generator_bench.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    generator_bench.set_defaults(handler=_cmd_bench_generator)
    invert_bench = bench_commands.add_parser(
        "invert", help="one In-N-Out composite optimisation step: innout ops vs the reference"
    )
    invert_bench.add_argument("--network", default="tiny", help="tiny, .pkl or .safetensors")
    invert_bench.add_argument("--frames", type=int, default=4, help="frames per step")
    invert_bench.add_argument("--resolution", type=int, default=64, help="raw image side (rays)")
    invert_bench.add_argument("--steps", type=int, default=3, help="timed steps per backend")
    invert_bench.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    invert_bench.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    invert_bench.set_defaults(handler=_cmd_bench_invert)
    add_quality_command(bench_commands)

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

    demo = commands.add_parser(
        "demo", help="synthetic occluded clip -> In-N-Out inversion -> edit, removal, orbit, report"
    )
    demo.add_argument("--out", default="innout-demo", help="output folder (default innout-demo)")
    demo.add_argument("--frames", type=int, default=4, help="clip length (default 4)")
    demo.add_argument("--force", action="store_true", help="replace an existing output folder")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    demo.set_defaults(handler=_cmd_demo)
    scene = commands.add_parser(
        "export-scene",
        help="one frame of a run (after edits) as a self-contained scene file (innout.scene)",
    )
    scene.add_argument("run", help="run folder of `innout invert`")
    scene.add_argument("--frame", type=int, required=True, help="frame index (0-based)")
    scene.add_argument("--edit", action="append", default=[], metavar="SPEC=STRENGTH",
                       help="edit baked into the face tri-plane (repeatable)")  # fmt: skip
    scene.add_argument("--out", required=True, help="the .safetensors scene file to write")
    scene.set_defaults(handler=_cmd_export_scene)
    add_preprocess_command(commands)
    add_invert_command(commands)
    add_edit_command(commands)
    add_ganspace_command(commands)
    add_synth_commands(commands)
    add_tiny_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, RuntimeError, OSError) as error:
        # Errors a user can cause (a missing GPU, a bad argument, an unwritable path) end the
        # command with a message, not a traceback.
        print(f"innout: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
