"""Preparing real videos for inversion: decoding, face landmarks, the alignment crops of the EG3D
FFHQ convention, camera labels from head pose, and landmark tracks with occluded frames filled in.

`preprocess` (also `innout.preprocess(...)`) runs it all; the modules are usable on their own.
"""

import sys
import types

from innout.preprocess.align import AlignmentError, crop_matrix, fit_template, warp_crop
from innout.preprocess.decode import VideoError, probe_video
from innout.preprocess.detect import DetectorUnavailableError, Face, MediapipeFaceMesh
from innout.preprocess.pipeline import (
    PreprocessError,
    PreprocessResult,
    import_eg3d_folder,
    preprocess,
)
from innout.preprocess.pose import eg3d_label, rigid_pose, weak_perspective_pose
from innout.preprocess.track import (
    TrackError,
    fill_missing,
    flagged_ranges,
    select_faces,
    select_track,
    smooth_track,
)

__all__ = [
    "AlignmentError",
    "DetectorUnavailableError",
    "Face",
    "MediapipeFaceMesh",
    "PreprocessError",
    "PreprocessResult",
    "TrackError",
    "VideoError",
    "crop_matrix",
    "eg3d_label",
    "fill_missing",
    "fit_template",
    "flagged_ranges",
    "import_eg3d_folder",
    "preprocess",
    "probe_video",
    "rigid_pose",
    "select_faces",
    "select_track",
    "smooth_track",
    "warp_crop",
    "weak_perspective_pose",
]


class _CallablePackage(types.ModuleType):
    """Makes ``innout.preprocess(video, out)`` run `preprocess` while ``innout.preprocess`` stays
    the package (so ``import innout.preprocess.align`` keeps working)."""

    def __call__(self, *args, **kwargs) -> PreprocessResult:
        return preprocess(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
