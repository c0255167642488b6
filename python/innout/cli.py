"""The `innout` command line: assembles the sub-commands each package defines, and applies the
options every command shares (`--threads`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence

from innout.bench.cli import add_bench_commands
from innout.demo import add_demo_command
from innout.edit.cli import add_edit_command, add_ganspace_command
from innout.edit.scene_export import add_export_scene_command
from innout.eg3d.cli import add_eg3d_commands
from innout.info import add_info_command
from innout.invert.cli import add_invert_command
from innout.preprocess.cli import add_preprocess_command
from innout.synth.cli import add_synth_commands
from innout.tiny.cli import add_tiny_commands


def _threads(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a thread count >= 0, got {text!r}")
    return value


def _commands(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """The parsers of every runnable command (the leaves of the sub-command tree)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                leaves = list(_commands(command))
                yield from leaves or [command]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="innout", description="Invert and edit face videos with EG3D and In-N-Out."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_info_command(commands)
    add_bench_commands(commands)
    add_eg3d_commands(commands)
    add_demo_command(commands)
    add_export_scene_command(commands)
    add_preprocess_command(commands)
    add_invert_command(commands)
    add_edit_command(commands)
    add_ganspace_command(commands)
    add_synth_commands(commands)
    add_tiny_commands(commands)
    for command in _commands(parser):
        command.add_argument("--threads", type=_threads, default=0,
                             help="CPU threads (0: torch's default)")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        return args.handler(args)
    except (ValueError, RuntimeError, OSError) as error:
        # Errors a user can cause (a missing GPU, a bad argument, an unwritable path, a full
        # disk) end the command with a message, not a traceback.
        print(f"innout: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Whatever was being written stays as it was (every file is written atomically).
        print("innout: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a failure innout did not foresee: a bug to report
        if os.environ.get("INNOUT_TRACEBACK"):
            raise
        print(f"innout: error: unexpected {type(error).__name__}: {error} (a bug; please report "
              "it with the output of INNOUT_TRACEBACK=1 innout ...)", file=sys.stderr)  # fmt: skip
        return 1


if __name__ == "__main__":
    sys.exit(main())
