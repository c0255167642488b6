"""`innout bench ...`: the benchmarks' command line (kernels, generator, invert, quality)."""

from __future__ import annotations

import argparse

from innout.bench.quality_cli import add_quality_command


def _show(text: str, payload: dict, json_path: str | None) -> int:
    """Prints a benchmark's report and, with --json, writes its payload."""
    from innout.atomic import write_json

    print(text)
    if json_path:
        write_json(json_path, payload, indent=2)
        print(f"wrote {json_path}")
    return 0


def _cmd_bench_kernels(args: argparse.Namespace) -> int:
    from innout.bench.kernels import format_table, json_payload, run_kernel_benchmarks

    results = run_kernel_benchmarks(
        workload=args.workload, device=args.device, repeats=args.repeats, ops=args.ops
    )
    return _show(format_table(results), json_payload(results), args.json)


def _cmd_bench_generator(args: argparse.Namespace) -> int:
    from innout.bench.generator import format_report, run_generator_benchmark

    report = run_generator_benchmark(args.architecture, device=args.device, batch=args.batch)
    return _show(format_report(report), report, args.json)


def _cmd_bench_invert(args: argparse.Namespace) -> int:
    from innout.bench.invert import format_composite_report, run_composite_benchmark
    from innout.bench.profile import format_profile, profile_composite_step

    measure, show = run_composite_benchmark, format_composite_report
    if args.profile:
        measure, show = profile_composite_step, format_profile
    report = measure(
        args.network, frames=args.frames, resolution=args.resolution, steps=args.steps,
        device=args.device, paper_step=args.paper_step,
    )  # fmt: skip
    return _show(show(report), report, args.json)


def add_bench_commands(commands: argparse._SubParsersAction) -> None:
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
    invert_bench.add_argument("--profile", action="store_true",
                              help="where a step's time goes (innout's ops, torch.profiler), "
                              "instead of innout vs reference")  # fmt: skip
    invert_bench.add_argument("--paper-step", action="store_true",
                              help="the paper preset's kind of step: the face latents optimised "
                              "and the super-resolution in the loss (the fast preset does "
                              "neither)")  # fmt: skip
    invert_bench.set_defaults(handler=_cmd_bench_invert)
    add_quality_command(bench_commands)
