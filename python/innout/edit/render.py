"""Rendering an edited video from an InversionResult, without inverting again (docs/method.md
section 3.3): latent edits, object removal, novel views and temporal smoothing together.

Edits change only the face latents w_t; the object field, its per-frame codes and the fine-tuned
super-resolution stay as they are, so the object looks the same in the edited video.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence

import torch

from innout.edit.removal import object_masks, removal_scale
from innout.edit.smoothing import smooth, superresolve_smoothed
from innout.edit.specs import Edit, EditError, edits_offset, parse_edit
from innout.edit.views import view_of
from innout.invert.result import InversionResult
from innout.invert.state import FrameRender, superresolution_of


def render_options(
    result: InversionResult,
    edit=None,
    view=None,
    remove_object: bool | torch.Tensor = False,
    dilation: int = 5,
    clip=None,
) -> dict:
    """The `latents`, `cameras` and `blend_scale` arguments of InversionResult.render for an
    edit (an Edit, a ``SPEC=S`` string or a list of them), a view (see `view_of`) and object
    removal (True: the clip's masks or the automatic ones; a tensor: object masks [T, 1, H, W])."""
    latents = result.latents
    if not bool(torch.isfinite(latents).all()):
        raise EditError("the run's face latents are not finite (a damaged latents file?)")
    if edit is not None:
        edits = [edit] if isinstance(edit, (str, Edit)) else list(edit)
        if edits:
            offset = edits_offset(edits, latents.shape[1], latents.shape[2], result.network_name,
                                  result.generator)  # fmt: skip
            latents = latents + offset.to(latents)
            if not bool(torch.isfinite(latents).all()):
                raise EditError(f"the edit {', '.join(str(e) for e in edits)} moves the latents "
                                "beyond float32's range: use a smaller strength")  # fmt: skip
    scale = None
    removing = remove_object is not False and remove_object is not None
    if removing and result.state.object is not None:
        given = remove_object if isinstance(remove_object, torch.Tensor) else None
        masks = object_masks(result, clip, dilation, given)
        scale = removal_scale(masks, result.generator.neural_rendering_resolution,
                              dilation)  # fmt: skip
    return {"latents": latents, "cameras": view_of(result.frames, view), "blend_scale": scale}


def render_edited(
    result: InversionResult,
    frames: list[int] | torch.Tensor | None = None,
    *,
    edit=None,
    view=None,
    remove_object: bool | torch.Tensor = False,
    latents: torch.Tensor | None = None,
    cameras: torch.Tensor | None = None,
    blend_scale: torch.Tensor | None = None,
    **options,
) -> Iterator[tuple[torch.Tensor, FrameRender]]:
    """InversionResult.render with its latents, cameras and blend scale given by name; yields
    (frame indices [B], FrameRender) as it does.

    Args:
        edit: instead of `latents`: "smile=0.5", an Edit or a list of them (`parse_edit`).
        view: instead of `cameras`: "orbit" or (yaw, pitch) in degrees (`view_of`).
        remove_object: instead of `blend_scale`: True (automatic masks from the object field's
            opacity) or object masks [T, 1, H, W] (1 = object).
        frames, latents, cameras, blend_scale, options: passed on to InversionResult.render.
    """
    if latents is not None and edit is not None:
        raise EditError("give either latents or edit, not both")
    if cameras is not None and view is not None:
        raise EditError("give either cameras or view, not both")
    if blend_scale is not None and remove_object is not False:
        raise EditError("give either blend_scale or remove_object, not both")
    if edit is not None or view is not None or remove_object is not False:
        named = render_options(result, edit, view, remove_object)
        latents = named["latents"] if edit is not None else latents
        cameras = named["cameras"] if view is not None else cameras
        blend_scale = named["blend_scale"] if remove_object is not False else blend_scale
    return result.render(frames, latents=latents, cameras=cameras, blend_scale=blend_scale,
                         **options)  # fmt: skip


@torch.no_grad()
def edit_frames(
    result: InversionResult,
    *,
    edits: Sequence[Edit | str] = (),
    direction: str | None = None,
    strength: float = 0.0,
    remove_object: bool | torch.Tensor = False,
    clip=None,
    dilation: int = 5,
    smoothing: str = "none",
    cameras=None,
    samples_multiplier: float | None = None,
) -> torch.Tensor:
    """Renders the edited video of an InversionResult: images [T, 3, H, W] in [-1, 1].

    Args:
        edits: edits added together (Edit or ``SPEC[@A-B]=S`` strings; see innout.edit.specs).
        direction, strength: one more edit (``SPEC[@A-B]`` and its strength; 0 = no edit).
        remove_object: show the face where the object was: blend 0 inside the dilated object
            masks (a [T, 1, H, W] tensor, 1 = object; True: the masks of `clip`, or the object
            field's own opacity when there are none).
        smoothing: "none", "causal" or "centered" filter of the face latents, the object codes
            and the first super-resolution block's features.
        cameras: novel views: [T, 25] cameras, "orbit" or (yaw, pitch) degrees (see `view_of`).
    """
    if not isinstance(result, InversionResult):
        raise EditError("edit_frames needs an InversionResult (innout.invert / .load)")
    edits = [parse_edit(e) if isinstance(e, str) else e for e in edits]
    if direction is not None and strength != 0:
        edits.append(parse_edit(direction, strength))
    options = render_options(result, edits, cameras, remove_object, dilation, clip)
    options["latents"] = smooth(options["latents"], smoothing)
    target = result
    if smoothing != "none" and result.state.object is not None:
        state = copy.deepcopy(result.state)
        state.object.codes.data.copy_(smooth(state.object.codes.data, smoothing))
        if state.object.residual_planes is not None:
            residual = state.object.residual_planes.data
            residual.copy_(smooth(residual, smoothing))
        target = InversionResult(result.generator, state, result.cameras, result.method,
                                 result.settings)  # fmt: skip
        target.network_name = result.network_name
    smooth_features = smoothing != "none" and result.frames > 1
    renders = [
        render
        for _, render in target.render(
            **options, samples_multiplier=samples_multiplier, superresolve=not smooth_features
        )
    ]
    if not smooth_features:
        images = torch.cat([render.image for render in renders])
    else:
        images = superresolve_smoothed(
            superresolution_of(target.generator, target.state),
            torch.cat([render.image_raw for render in renders]),
            torch.cat([render.features for render in renders]),
            options["latents"].to(renders[0].features.device),
            smoothing,
        )
    if not bool(torch.isfinite(images).all()):
        # NaN would be written as black: a silently wrong video.
        raise EditError("the edited frames are not finite: the edit (its strength) drives the "
                        "generator beyond float32's range")  # fmt: skip
    return images.clamp(-1, 1)
