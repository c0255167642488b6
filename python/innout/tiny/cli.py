"""`innout tiny ...`: train and evaluate the innout-tiny model."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path


def _cmd_train(args: argparse.Namespace) -> int:

    from innout.tiny.train import TrainConfig, train_tiny

    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if getattr(args, f.name, None) is not None
    }
    config = TrainConfig(**overrides)
    command = "innout " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    record = train_tiny(config, args.out, progress=True, resume=not args.restart, command=command)
    print(json.dumps(record["metrics"], indent=2))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from innout.eg3d.loading import load_generator
    from innout.tiny.evaluate import evaluate_heldout

    generator = load_generator(args.network)
    metrics = evaluate_heldout(generator, args.heads, progress=True, images_out=args.out)
    print(json.dumps(metrics, indent=2))
    return 0


def _cmd_directions(args: argparse.Namespace) -> int:
    from innout.eg3d.loading import load_generator
    from innout.tiny.directions import fit_tiny_directions

    generator = load_generator(args.network)
    directions = fit_tiny_directions(generator, samples=args.samples, out=args.out)
    for name, direction in directions.items():
        print(f"{name:12s} slope {direction.slope:8.4f} per latent unit, r2 {direction.r2:.3f}")
    return 0


def _cmd_measure(args: argparse.Namespace) -> int:
    import torch

    from innout.eg3d.directions import load_direction
    from innout.eg3d.loading import load_generator
    from innout.synth.head import PARAMETER_RANGES, Z_PARAMETERS
    from innout.synth.render import frontal_camera
    from innout.tiny.bundle import direction_path
    from innout.tiny.directions import (
        SHIPPED_DIRECTIONS,
        measure_direction,
        measure_model_response,
    )

    generator = load_generator(args.network)
    names = args.names.split(",") if args.names else list(SHIPPED_DIRECTIONS)
    rng = torch.Generator().manual_seed(args.seed)
    results = []
    for name in names:
        path = Path(args.directions) / f"{name}.safetensors" if args.directions else None
        direction = load_direction(path or direction_path(name))
        for head in range(args.heads):
            # Heads near the middle of every range, so that +-strength stays inside the ranges.
            # Only the parameter entries are scaled: the mapping normalises z by its RMS.
            z = torch.randn(1, generator.z_dim, generator=rng)
            z[:, : len(Z_PARAMETERS)] *= 0.5
            yaw = float(torch.empty(1).uniform_(-0.3, 0.3, generator=rng))
            low, high = PARAMETER_RANGES[name]
            for fraction in args.fractions:
                strength = fraction * (high - low)
                changes = measure_direction(
                    generator,
                    direction,
                    z,
                    strength,
                    frontal_camera(yaw),
                    grid=args.grid,
                    progress=True,
                )
                others = {k: round(v, 4) for k, v in changes.items() if k != name}
                worst = max(others, key=lambda k: abs(others[k]))
                model = measure_model_response(generator, z, name, strength, frontal_camera(yaw),
                                               grid=args.grid)  # fmt: skip
                results.append(
                    {
                        "direction": name,
                        "head": head,
                        "strength": strength,
                        "change": round(changes[name], 4),
                        "others": others,
                        "largest_other": worst,
                        "model_change": None if model is None else round(model, 4),
                    }
                )
                own = "outside the range" if model is None else f"{model:+.3f}"
                print(
                    f"{name:12s} head {head} strength {strength:+.2f}: changed by "
                    f"{changes[name]:+.3f} (the model's own p + strength: {own}); largest "
                    f"other {worst} {others[worst]:+.3f}"
                )
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


def add_tiny_commands(subparsers: argparse._SubParsersAction) -> None:
    """Adds `tiny train|evaluate|directions|measure-directions` to the command line."""
    from innout.tiny.train import TrainConfig

    tiny = subparsers.add_parser("tiny", help="train or evaluate the bundled innout-tiny model")
    commands = tiny.add_subparsers(dest="tiny_command", required=True)
    train = commands.add_parser("train", help="train innout-tiny on the synthetic world (seeded)")
    train.add_argument("--out", required=True, help="output folder (resumes a run found there)")
    train.add_argument("--restart", action="store_true", help="ignore a saved state; start over")
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        train.add_argument(
            flag,
            dest=field.name,
            type=type(field.default),
            default=None,
            help=f"default {field.default}",
        )
    train.set_defaults(handler=_cmd_train)
    evaluate = commands.add_parser("evaluate", help="held-out PSNR against the analytic world")
    evaluate.add_argument("--network", default="tiny", help="tiny or a .safetensors file")
    evaluate.add_argument("--heads", type=int, default=16, help="held-out heads")
    evaluate.add_argument("--out", default=None, help="folder for truth | raw | SR images")
    evaluate.set_defaults(handler=_cmd_evaluate)
    fit = commands.add_parser("directions", help="fit attribute directions in W of a model")
    fit.add_argument("--network", default="tiny", help="tiny or a .safetensors file")
    fit.add_argument("--samples", type=int, default=4096, help="labelled latents")
    fit.add_argument("--out", required=True, help="folder for <name>.safetensors")
    fit.set_defaults(handler=_cmd_directions)
    measure = commands.add_parser(
        "measure-directions", help="fit the world's parameters back from edited renders"
    )
    measure.add_argument("--network", default="tiny", help="tiny or a .safetensors file")
    measure.add_argument("--directions", default=None, help="folder (default: the bundled ones)")
    measure.add_argument("--names", default=None, help="comma-separated (default: all shipped)")
    measure.add_argument("--heads", type=int, default=2, help="heads per direction")
    measure.add_argument(
        "--fractions",
        type=float,
        nargs="+",
        default=[0.25, -0.25],
        help="strengths as fractions of each attribute's range",
    )
    measure.add_argument("--seed", type=int, default=7, help="seed of the heads")
    measure.add_argument("--grid", type=int, default=21, help="values tried per parameter")
    measure.add_argument("--out", default=None, help="JSON file for the results")
    measure.set_defaults(handler=_cmd_measure)
