"""Exporting one frame of an inverted video, after edits, as a scene file (`innout export-scene`).

The file format, its reader and the reference renderer are :mod:`innout.scene`; this module fills
the file from an InversionResult, which needs the edit machinery (latent steps, smoothing).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from innout.atomic import save_tensors
from innout.edit.render import render_options
from innout.eg3d.decoder import SIGMOID_PAD
from innout.scene import SCENE_FORMAT, SceneError


def _effective(layer) -> tuple[torch.Tensor, torch.Tensor]:
    """An equalised-lr FullyConnectedLayer's weight and bias as a plain affine map."""
    weight = layer.weight.detach().float() * layer.weight_gain
    bias = layer.bias.detach().float() * layer.bias_gain
    return weight.contiguous(), bias.contiguous()


@torch.no_grad()
def scene_tensors(result, frame: int, edits=(), camera: torch.Tensor | None = None) -> tuple:
    """(tensors, metadata) of frame `frame` of an InversionResult, after `edits` (Edit objects
    or ``SPEC=S`` strings, as `innout edit`), seen from `camera` [25] (default: the frame's)."""
    if not 0 <= frame < result.frames:
        raise SceneError(f"frame must be in [0, {result.frames - 1}], got {frame}")
    face = result.state.generator if result.state.generator is not None else result.generator
    settings = face.render_settings(samples_multiplier=result.settings.samples_multiplier)
    if settings.white_back or settings.disparity_space_sampling:
        raise SceneError("scenes support EG3D's FFHQ rendering only (no white background, no "
                         "disparity-space sampling)")  # fmt: skip
    latents = render_options(result, list(edits))["latents"][frame : frame + 1]
    planes = face.planes(latents.to(result.cameras.device), noise_mode="const")[0]
    label = result.cameras[frame] if camera is None else torch.as_tensor(camera).reshape(-1)
    if label.shape != (25,):
        raise SceneError(f"camera must be 25 floats (EG3D label), got {tuple(label.shape)}")
    hidden_w, hidden_b = _effective(face.decoder.net[0])
    output_w, output_b = _effective(face.decoder.net[2])
    tensors = {
        "camera": label.float(),
        "face.planes": planes.float(),
        "face.hidden.weight": hidden_w,
        "face.hidden.bias": hidden_b,
        "face.output.weight": output_w,
        "face.output.bias": output_b,
    }
    field = result.state.object
    if field is not None:
        frame_index = torch.tensor([frame], device=field.planes.device)
        tensors["object.planes"] = field.frame_planes(frame_index).detach()[0].float()
        tensors["object.code"] = field.codes.detach()[frame].float()
        for name, layer in (("hidden", field.hidden), ("output", field.output)):
            weight, bias = _effective(layer)
            tensors[f"object.{name}.weight"], tensors[f"object.{name}.bias"] = weight, bias
    metadata = {
        "format": SCENE_FORMAT,
        "resolution": str(face.neural_rendering_resolution),
        "coarse_samples": str(settings.coarse_samples),
        "fine_samples": str(settings.fine_samples),
        "ray_start": repr(float(settings.ray_start)),
        "ray_end": repr(float(settings.ray_end)),
        "box_warp": repr(float(settings.box_warp)),
        "sigmoid_pad": repr(SIGMOID_PAD),
        "source": str(getattr(result, "folder", "") or ""),
        "frame": str(frame),
        "method": result.method,
        "edits": json.dumps([str(e) for e in edits]),
    }
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata


def export_scene(result, frame: int, out: str | os.PathLike, edits=(), camera=None) -> Path:
    """Writes frame `frame` of `result` (after `edits`) as a scene file; returns its path."""
    tensors, metadata = scene_tensors(result, frame, edits, camera)
    return save_tensors(out, tensors, metadata)


def _cmd_export_scene(args: argparse.Namespace) -> int:
    from innout.invert.result import InversionResult

    result = InversionResult.load(args.run)
    path = export_scene(result, args.frame, args.out, edits=args.edit)
    print(f"wrote {path} (frame {args.frame} of {args.run})")
    return 0


def add_export_scene_command(commands: argparse._SubParsersAction) -> None:
    """Adds `innout export-scene` to the command line's sub-commands."""
    scene = commands.add_parser(
        "export-scene",
        help="one frame of a run (after edits) as a self-contained scene file (innout.scene)",
    )
    scene.add_argument("run", help="run folder of `innout invert`")
    scene.add_argument("--frame", type=int, required=True, help="frame index (0-based)")
    scene.add_argument("--edit", action="append", default=[], metavar="SPEC=STRENGTH",
                       help="edit baked into the face tri-plane (repeatable)")  # fmt: skip
    scene.add_argument("--out", required=True, help="the .safetensors scene file to write")
    scene.set_defaults(handler=_cmd_export_scene)
