"""Editing inverted videos.

Modules: `directions` (attribute directions and how far to move along them), `ganspace` (the
generator's principal components of W), `specs` (``SPEC[@A-B]=STRENGTH`` edits and their latent
steps), `views` (novel-view cameras), `smoothing` (temporal filters), `removal` (object removal
masks), `render` (rendering edited frames of an InversionResult), `paste` (pasting crops back
into source frames) and `export` (writing the edited video, as `innout edit` does).
"""

from innout.edit.directions import Direction, fit_direction, load_direction

__all__ = ["Direction", "fit_direction", "load_direction"]
