"""`innout bench quality`: the command line of the occlusion benchmark."""

from __future__ import annotations

import argparse
from pathlib import Path

from innout.bench.quality import (
    DEFAULT_EDIT,
    DEFAULT_FRAMES,
    DEFAULT_IDENTITIES,
    DEFAULT_METHODS,
    DEFAULT_OBJECT_SEEDS,
    DEFAULT_OBJECTS,
)
from innout.invert.settings import METHODS, PRESETS, parse_setting


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(item) for item in text.split(",") if item.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from error


def _names(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _edit(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    try:
        return name.strip(), float(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"expected NAME=DELTA (e.g. smile=0.5), got {text!r}"
        ) from error


def _setting(text: str) -> tuple[str, float | int | str | bool]:
    name, equals, value = text.partition("=")
    if not equals:
        raise argparse.ArgumentTypeError(f"expected SETTING=VALUE, got {text!r}")
    try:
        return name.strip(), parse_setting(name.strip(), value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def suite_from_args(args: argparse.Namespace):
    """The QualitySuite the parsed command line asks for (validated)."""
    from innout.bench.quality import QualitySuite

    return QualitySuite(
        identities=args.identities, objects=args.objects, object_seeds=args.object_seeds,
        frames=args.frames, methods=args.methods, preset=args.preset,
        overrides=tuple(args.set), pairing=args.pairing, edit=args.edit[0],
        edit_delta=args.edit[1], novel_views=args.novel_views, network=args.network,
    )  # fmt: skip


def _cmd_quality(args: argparse.Namespace) -> int:
    from innout import distributed
    from innout.atomic import write_json
    from innout.bench.quality import run_quality_benchmark
    from innout.bench.quality_report import format_markdown, write_html

    suite = suite_from_args(args)
    lpips = None
    if args.lpips_vgg or args.lpips_lin:
        from innout.lpips import LPIPS

        if not (args.lpips_vgg and args.lpips_lin):
            raise ValueError("LPIPS needs both --lpips-vgg and --lpips-lin (local files)")
        lpips = LPIPS.from_files(args.lpips_vgg, args.lpips_lin)
    out = Path(args.out) if args.out else Path(args.json).with_suffix("")

    def report_pair(pair: dict) -> None:
        frames = pair["per_frame"]["reconstruction_psnr"]
        mean = sum(v for v in frames if v is not None) / max(1, len(frames))
        reused = pair["reused"]
        state = f"{pair['seconds']:.0f} s" if not reused else "reused" if reused is True else reused
        print(f"{pair['video']} {pair['method']}: reconstruction {mean:.2f} dB ({state})",
              flush=True)  # fmt: skip

    # Under torchrun the ranks share the pairs; rank 0 writes the merged report.
    with distributed.join(args.device, data_parallel=False) as group:
        device = distributed.rank_device(args.device, group.local_rank)
        report = run_quality_benchmark(suite, out, progress=not args.quiet, lpips=lpips,
                                       device=device, on_pair=report_pair,
                                       group=group)  # fmt: skip
    if report is None:
        return 0
    write_json(args.json, report, indent=2)
    table = format_markdown(report)
    print(table)
    print(f"wrote {args.json}")
    if args.markdown:
        Path(args.markdown).write_text(table, encoding="utf-8")
        print(f"wrote {args.markdown}")
    if args.html:
        write_html(report, args.html)
        print(f"wrote {args.html}")
    return 0


def add_quality_command(bench_commands) -> None:
    """Adds `bench quality` to the `innout bench` sub-commands."""
    quality = bench_commands.add_parser(
        "quality",
        help="the occlusion benchmark: methods vs the synthetic world's ground truth",
        description="Builds synthetic occluded videos, inverts each with every method, edits, "
        "removes the object and renders held-out views, and compares all with ground truth. "
        "Finished (video, method) pairs in --out are reused, so an interrupted run resumes. "
        "Under torchrun the ranks share the pairs and rank 0 writes the merged report.",
    )
    ids = ",".join(map(str, DEFAULT_IDENTITIES))
    quality.add_argument("--identities", type=_ints, default=DEFAULT_IDENTITIES,
                         help=f"identity seeds (default {ids})")  # fmt: skip
    quality.add_argument("--objects", type=_names, default=DEFAULT_OBJECTS,
                         help=f"object kinds (default {','.join(DEFAULT_OBJECTS)})")  # fmt: skip
    quality.add_argument("--object-seeds", type=_ints, default=DEFAULT_OBJECT_SEEDS,
                         help="object seeds (default 0)")  # fmt: skip
    quality.add_argument("--pairing", choices=["zip", "product"], default="zip",
                         help="zip: video i takes entry i of each list (default); product: every "
                         "combination")  # fmt: skip
    quality.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                         help=f"frames per video (default {DEFAULT_FRAMES})")  # fmt: skip
    quality.add_argument("--methods", type=_names, default=DEFAULT_METHODS,
                         help=f"some of {','.join(METHODS)} (default "
                         f"{','.join(DEFAULT_METHODS)})")  # fmt: skip
    quality.add_argument("--preset", choices=list(PRESETS), default="fast")
    quality.add_argument("--set", type=_setting, action="append", default=[],
                         metavar="SETTING=VALUE",
                         help="change one setting of the preset (repeatable)")  # fmt: skip
    quality.add_argument("--edit", type=_edit, default=DEFAULT_EDIT, metavar="NAME=DELTA",
                         help=f"attribute edit of every method and of the ground truth (default "
                         f"{DEFAULT_EDIT[0]}={DEFAULT_EDIT[1]})")  # fmt: skip
    quality.add_argument("--novel-views", type=int, default=1, help="held-out views per frame")
    quality.add_argument("--network", default="tiny", help="tiny (default), .pkl or .safetensors")
    quality.add_argument("--json", required=True, metavar="FILE", help="the report (every number)")
    quality.add_argument("--html", metavar="FILE", help="also an HTML page with the videos")
    quality.add_argument("--markdown", metavar="FILE", help="also the summary table as Markdown")
    quality.add_argument("--out", metavar="DIR",
                         help="clips, runs and side-by-side videos (default: the JSON path "
                         "without its suffix)")  # fmt: skip
    quality.add_argument("--lpips-vgg", metavar="FILE", help="local VGG-16 weights for LPIPS")
    quality.add_argument("--lpips-lin", metavar="FILE", help="local LPIPS linear-head weights")
    quality.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    quality.add_argument("--quiet", action="store_true", help="no progress bars")
    quality.set_defaults(handler=_cmd_quality)
