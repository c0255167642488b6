"""What users give and look at: reading images and videos (`innout.media.read`) and writing PNG
images, depth maps and mp4 videos (`innout.media.write`)."""

from innout.media.read import InputError, image_tensor, read_image, read_video, upright, video_fps
from innout.media.write import (
    depth_to_uint8,
    frame_rate,
    to_uint8,
    write_png,
    write_video,
)

__all__ = [
    "InputError",
    "depth_to_uint8",
    "frame_rate",
    "image_tensor",
    "read_image",
    "read_video",
    "to_uint8",
    "upright",
    "video_fps",
    "write_png",
    "write_video",
]
