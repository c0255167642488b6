"""Editing latents: attribute directions and how far to move along them."""

from innout.eg3d.directions import Direction, fit_direction, load_direction

__all__ = ["Direction", "fit_direction", "load_direction"]
