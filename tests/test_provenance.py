"""The provenance record results carry (versions, machine, commit) and its short commit form."""

from __future__ import annotations

import platform

import torch
from innout import __version__
from innout.provenance import provenance, short_commit, source_commit


def test_the_record_names_versions_machine_and_commit():
    record = provenance("cpu")
    assert set(record) == {"innout", "commit", "torch", "python", "machine", "processor",
                           "threads", "cuda", "device"}  # fmt: skip
    assert record["innout"] == __version__
    assert record["torch"] == torch.__version__
    assert record["python"] == platform.python_version()
    assert record["threads"] == torch.get_num_threads()
    assert record["commit"] == source_commit()
    assert record["device"].endswith(f"{torch.get_num_threads()} threads")


def test_short_commits_keep_seven_digits_and_the_modified_mark():
    full = "99d5c6e33b64a1cf048b6504a18e33ddc5abade1"
    assert short_commit(full) == "99d5c6e"
    assert short_commit(full + "+modified") == "99d5c6e+modified"
    assert short_commit(None) == "unknown"
    assert short_commit("") == "unknown"
