"""Atomic file writes: a file is either its old self or completely written, never half.

Every writer puts its bytes in a hidden temporary file beside the target (same folder, so the
rename cannot cross file systems), flushes it to disk, then renames it over the target. A crash or
a full disk leaves the previous file in place and no temporary behind.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO

import torch


def temporary_path(target: Path) -> Path:
    """A hidden temporary name beside `target`, unique to this process, with its suffix kept (so
    writers that infer the format from the name still do)."""
    return target.with_name(f".{target.name}.tmp{os.getpid()}{target.suffix}")


def temporary_owner(path: Path) -> int | None:
    """The process id in a name made by temporary_path, or None if `path` is not such a name."""
    match = re.fullmatch(r"\.(.+)\.tmp(\d+)(\.[^.]*)?", path.name)
    if match is None or not match.group(1).endswith(match.group(3) or ""):
        return None
    return int(match.group(2))


class DiskFullError(OSError):
    """No space left where innout was writing; the message names the file."""

    def __str__(self) -> str:  # the message alone, without OSError's "[Errno 28]" prefix
        return str(self.strerror)


#: errno values that mean "the device (or the user's quota) is full".
_FULL = (errno.ENOSPC, errno.EDQUOT)


def write_atomically(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Calls `write(file)` on a temporary file, syncs it and renames it to `path`; returns it.

    A full disk raises DiskFullError naming `path`; the previous file, if any, is untouched."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(target)
    try:
        with temporary.open("wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(target)
    except OSError as error:
        raise_if_full(error, target)
        raise
    finally:
        temporary.unlink(missing_ok=True)
    return target


def raise_if_full(error: OSError, target: Path) -> None:
    """Raises DiskFullError naming `target` when `error` says the disk (or quota) is full."""
    if getattr(error, "errno", None) in _FULL:
        raise DiskFullError(error.errno, f"{target}: no space left on the device; nothing was "
                            "changed, free some space and run again") from None  # fmt: skip


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes UTF-8 text atomically."""
    return write_atomically(path, lambda file: file.write(text.encode("utf-8")))


def write_json(path: str | os.PathLike, payload, indent: int = 1) -> Path:
    """Writes a JSON document atomically."""
    return write_text(path, json.dumps(payload, indent=indent))


def save_tensors(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict | None = None
) -> Path:
    """Writes tensors (moved to the CPU, made contiguous) as a safetensors file, atomically."""
    from safetensors.torch import save

    contiguous = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    data = save(contiguous, metadata=metadata)
    return write_atomically(path, lambda file: file.write(data))


def torch_save(path: str | os.PathLike, payload: dict) -> Path:
    """torch.save of a dict of tensors and plain values, atomically."""
    # Serialised in memory first: torch's own file writer reports a full disk as an opaque
    # "unexpected pos" error, a plain write says ENOSPC.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return write_atomically(path, lambda file: file.write(buffer.getbuffer()))


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
