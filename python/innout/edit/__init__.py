"""Editing inverted videos.

Modules: `directions` (attribute directions and how far to move along them), `ganspace` (the
generator's principal components of W), `specs` (``SPEC[@A-B]=STRENGTH`` edits and their latent
steps), `views` (novel-view cameras), `smoothing` (temporal filters), `removal` (object removal
masks), `render` (rendering edited frames of an InversionResult), `paste` (pasting crops back
into source frames), `export` (writing the edited video, as `innout edit` does) and
`scene_export` (one edited frame as a scene file, as `innout export-scene` does).
"""

from innout.eg3d.directions import Direction, fit_direction, load_direction

__all__ = ["Direction", "fit_direction", "load_direction"]
