"""`innout preprocess`: a video (or an EG3D folder) in, a folder for `innout invert` out."""

from __future__ import annotations

import argparse
import sys
import warnings

from innout.preprocess.align import OUTPUT_SIZE
from innout.preprocess.pipeline import DEFAULT_SMOOTHING


def _cmd_preprocess(args: argparse.Namespace) -> int:
    from innout.preprocess.detect import DetectorUnavailableError
    from innout.preprocess.pipeline import preprocess

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = preprocess(
                args.input, args.out, start=args.start, end=args.end, smooth=args.smooth,
                size=args.size, preview=not args.no_preview, progress=not args.quiet,
            )  # fmt: skip
        except DetectorUnavailableError as error:
            print(f"innout: error: {error}", file=sys.stderr)
            return 2
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    print(f"wrote {result.frames} frames to {result.out}")
    if result.poses.size:
        yaw, pitch = result.poses[:, 0], result.poses[:, 1]
        print(f"head pose: yaw {yaw.min():+.0f}..{yaw.max():+.0f} deg, pitch "
              f"{pitch.min():+.0f}..{pitch.max():+.0f} deg")  # fmt: skip
    if result.preview is not None:
        print(f"look at {result.preview}")
    print(f"next: innout invert {result.out} --out runs/{result.out.name}")
    return 0


def add_preprocess_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "preprocess",
        help="align the face of a video (EG3D FFHQ crops) and estimate its cameras",
        description="Decodes a video, finds the face in every frame (MediaPipe face mesh: pip "
        'install "innout[preprocess]"), smooths the landmarks, and writes EG3D-aligned crops, '
        "camera labels (dataset.json), crop transforms for paste-back, landmarks and a preview. "
        "Frames where the face is hidden get interpolated landmarks and are flagged. A folder "
        "with frames and an EG3D dataset.json is imported instead.",
    )
    parser.add_argument("input", help="video file, or an EG3D folder (frames + dataset.json)")
    parser.add_argument("--out", required=True, help="output folder (must not exist)")
    parser.add_argument("--start", type=float, default=None, help="first second to use")
    parser.add_argument("--end", type=float, default=None, help="second to stop at")
    parser.add_argument("--smooth", type=float, default=DEFAULT_SMOOTHING,
                        help="landmark smoothing, Gaussian sigma in frames (0: none)")  # fmt: skip
    parser.add_argument("--size", type=int, default=OUTPUT_SIZE, help="crop size (EG3D: 512)")
    parser.add_argument("--no-preview", action="store_true", help="skip preview.mp4")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_cmd_preprocess)
