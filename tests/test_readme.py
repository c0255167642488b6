"""The README's quick start runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_runs():
    match = re.search(r"## Quick start\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert match, "README has a Quick start python block"
    namespace: dict = {}
    exec(compile(match.group(1), "README quick start", "exec"), namespace)  # noqa: S102
    assert namespace["composite"].shape == (1, 4096, 32)
    assert namespace["fine"].shape == (1, 4096, 48)


def test_tiny_example_runs():
    text = README.read_text()
    pattern = r"### innout-tiny, the bundled model\n\n```bash\n.*?```\n\n```python\n(.*?)```"
    match = re.search(pattern, text, re.S)
    assert match, "README has the innout-tiny python block"
    namespace: dict = {}
    exec(compile(match.group(1), "README innout-tiny", "exec"), namespace)  # noqa: S102
    assert namespace["out"]["image"].shape == (1, 3, 128, 128)
    assert not torch.equal(namespace["smiling"], namespace["ws"])


def test_benchmark_commands_are_valid():
    import shlex

    from innout.bench.quality_cli import suite_from_args
    from innout.cli import build_parser

    match = re.search(r"### The occlusion benchmark\n\n```bash\n(.*?)```", README.read_text(), re.S)
    assert match, "README has the occlusion benchmark's commands"
    commands = match.group(1).replace("\\\n", " ").splitlines()
    assert len(commands) == 3  # the default suite, the suite of balls, any other suite
    for command in commands:
        words = shlex.split(command, comments=True)
        assert words[:3] == ["innout", "bench", "quality"]
        assert suite_from_args(build_parser().parse_args(words[1:])).videos()


def test_torchrun_commands_are_valid():
    import shlex

    from innout.cli import build_parser

    pattern = r"### Many GPUs, many videos \(torchrun\)\n\n```bash\n(.*?)```"
    match = re.search(pattern, README.read_text(), re.S)
    assert match, "README has the torchrun commands"
    commands = [line for line in match.group(1).replace("\\\n", " ").splitlines()
                if not line.startswith("#")]  # fmt: skip
    assert len(commands) == 4
    for command in commands:
        words = shlex.split(command)
        assert words[0] == "torchrun" and "--nproc-per-node" in words
        start = words.index("-m")
        assert words[start + 1] == "innout"
        build_parser().parse_args(words[start + 2 :])
