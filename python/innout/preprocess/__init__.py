"""Preparing real videos for inversion: alignment crops in the EG3D FFHQ convention, camera
labels from head pose, and landmark tracks with occluded frames filled in."""

from innout.preprocess.align import AlignmentError, crop_matrix, fit_template, warp_crop
from innout.preprocess.pose import eg3d_label, weak_perspective_pose
from innout.preprocess.track import TrackError, fill_missing, flagged_ranges, smooth_track

__all__ = [
    "AlignmentError",
    "TrackError",
    "crop_matrix",
    "eg3d_label",
    "fill_missing",
    "fit_template",
    "flagged_ranges",
    "smooth_track",
    "warp_crop",
    "weak_perspective_pose",
]
