"""innout: invert and edit face videos with a 3-D-aware GAN (EG3D) and In-N-Out's renderer.

Importing innout never compiles anything and works without a GPU or a CUDA driver.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _package_version

from innout import ops, preprocess
from innout.eg3d.loading import load_generator
from innout.info import build_info
from innout.invert import invert
from innout.tiny import bundle as _tiny_bundle  # noqa: F401 - registers the network "tiny"

try:
    __version__ = _package_version("innout")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"

__all__ = ["__version__", "build_info", "invert", "load_generator", "ops", "preprocess"]
