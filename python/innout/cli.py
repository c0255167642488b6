"""The `innout` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


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
