"""Preparing real videos for inversion: alignment crops in the EG3D FFHQ convention and camera
labels from head pose."""

from innout.preprocess.align import AlignmentError, crop_matrix, fit_template, warp_crop
from innout.preprocess.pose import eg3d_label, weak_perspective_pose

__all__ = [
    "AlignmentError",
    "crop_matrix",
    "eg3d_label",
    "fit_template",
    "warp_crop",
    "weak_perspective_pose",
]
