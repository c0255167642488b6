"""The README's quick start runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_runs():
    match = re.search(r"## Quick start\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert match, "README has a Quick start python block"
    namespace: dict = {}
    exec(compile(match.group(1), "README quick start", "exec"), namespace)  # noqa: S102
    assert namespace["composite"].shape == (1, 4096, 32)
    assert namespace["fine"].shape == (1, 4096, 48)
