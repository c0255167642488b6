"""Inverting a face video: W / W+ / PTI baselines and In-N-Out's composite optimisation."""

from innout.invert.clip import Clip, InputError, load_clip
from innout.invert.engine import DivergedError
from innout.invert.result import InversionResult
from innout.invert.run import invert
from innout.invert.settings import METHODS, PRESETS, InversionSettings, preset

__all__ = [
    "METHODS",
    "PRESETS",
    "Clip",
    "DivergedError",
    "InputError",
    "InversionResult",
    "InversionSettings",
    "invert",
    "load_clip",
    "preset",
]
