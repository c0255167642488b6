"""`innout.invert`: runs a method on a clip and writes a run folder (its layout:
:mod:`innout.invert.run_folder`) that can be rendered and edited later without inverting again."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path

import torch

from innout import atomic, distributed
from innout.eg3d.generator import TriPlaneGenerator
from innout.eg3d.networks import network_file
from innout.invert import object_init, run_folder, stages
from innout.invert.clip import Clip, InputError, load_clip
from innout.invert.engine import Engine, Interrupted, stop_on_interrupt
from innout.invert.losses import resize
from innout.invert.settings import METHODS, InversionSettings, preset
from innout.invert.state import COMPOSITE_METHODS, InversionState
from innout.lpips import PerceptualLoss
from innout.provenance import provenance


def stage_names(method: str, settings: InversionSettings | None = None) -> list[str]:
    """The stages a method runs, in order (the object field's fit to the evidence only when
    `settings` asks for it)."""
    if method == "pti":
        return ["latent", "pti"]
    if method in COMPOSITE_METHODS:
        fit = settings is not None and settings.object_init_steps > 0
        return ["latent", *(["object_init"] if fit else []), "composite", "superres"]
    return ["latent"]


def _network_record(network) -> dict:
    if isinstance(network, TriPlaneGenerator):
        return {"name": "<in-memory generator>"}
    path = network_file(network)
    return {"name": str(network), "path": str(path), "sha256": atomic.sha256_of(path)}


def prepare_targets(
    clip: Clip, generator: TriPlaneGenerator, device: torch.device, render_resolution: int = 0
) -> stages.Targets:
    """The clip's frames at the generator's output resolution and at the rendering resolution
    of the optimisation (0: the generator's), on `device`."""
    frames = clip.frames.to(device)
    raw = render_resolution or generator.neural_rendering_resolution
    masks_raw = masks_image = None
    if clip.masks is not None:
        # A pixel is "face" only if all of it is face: the object terms then cover the object.
        masks_raw = (resize(clip.masks.to(device), raw) > 0.999).float()
        masks_image = (resize(clip.masks.to(device), generator.img_resolution) > 0.999).float()
    return stages.Targets(
        image=resize(frames, generator.img_resolution),
        raw=resize(frames, raw),
        cameras=clip.cameras.to(device),
        masks_raw=masks_raw,
        masks_image=masks_image,
    )


def invert(
    video: str | Path | Clip,
    network: str | Path | TriPlaneGenerator = "tiny",
    cameras: str | Path | None = None,
    masks: str | Path | None = None,
    method: str | None = None,
    preset_name: str = "fast",
    device: str | torch.device | None = None,
    out: str | Path | None = None,
    *,
    settings: InversionSettings | None = None,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    lpips_vgg: str | Path | None = None,
    lpips_lin: str | Path | None = None,
    **overrides,
):
    """Inverts a face video with `method` and returns an `InversionResult`.

    Args:
        video: a video file, a frames folder with an EG3D dataset.json (e.g. from `innout synth
            video` or `innout preprocess`), or a loaded `Clip`.
        network: "tiny" (bundled), an EG3D .pkl / converted .safetensors, or a generator.
        cameras: an EG3D dataset.json (default: the folder's own).
        masks: a folder of masks named like the frames (255 = face, 0 = object; default: the
            folder's masks/). Used by "innout"; "innout-auto" never needs them.
        method: "w", "wplus", "pti", "innout" or "innout-auto" (default: "innout" when the
            input has object masks, else "innout-auto", which finds the object itself).
        preset_name: "fast" or "paper"; `settings` (an InversionSettings) or keyword `overrides`
            (any of its fields) change it.
        device: torch device (default: CUDA when available, else CPU).
        out: run folder (None: nothing written; the result lives in memory).
        resume: continue the interrupted run in `out` (same input and settings).
        force: replace an existing run folder.
        lpips_vgg, lpips_lin: LPIPS weight files (see innout.lpips; default: searched).
    """
    if method is not None and method not in METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if out is None and resume:
        raise InputError("resume needs the run folder (out)")
    if settings is None:
        settings = preset(preset_name, **overrides)
    elif overrides:
        settings = dataclasses.replace(settings, **overrides)
    group = distributed.current()
    if group.data_parallel:
        device = distributed.rank_device(device, group.local_rank)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    with contextlib.ExitStack() as held:
        out_path, manifest = _open_run_folder(video, cameras, masks, out, resume, force, group,
                                              held)  # fmt: skip
        return _invert(video, network, cameras, masks, method, preset_name, device, out,
                       out_path, manifest, settings, resume, progress, lpips_vgg, lpips_lin,
                       group)  # fmt: skip


def _open_run_folder(video, cameras, masks, out, resume, force, group, held):
    """Rank 0 checks the run folder, locks it for this job (held until `held` closes) and, for
    a resumed run, reads its manifest; every rank gets (the folder written, the manifest) or
    the error rank 0 met."""
    if out is None:
        return None, None
    out_path, manifest, outcome = Path(out), None, None
    if group.is_main:
        try:
            inputs = [None if isinstance(video, Clip) else video, cameras, masks]
            run_folder.check_run_folder(out_path, resume, force, inputs)
            held.enter_context(run_folder.locked(out_path))
            run_folder.check_run_folder(out_path, resume, force, inputs)  # now under the lock
            out_path = run_folder.write_target(out_path, resume)
            if resume:
                manifest = run_folder.read_manifest(out_path)
                run_folder.remove_stale_temporaries(out_path)
        except Exception as error:
            outcome = error
    group.follow_main(outcome)
    return group.broadcast(out_path), group.broadcast(manifest)


def _invert(video, network, cameras, masks, method, preset_name, device, out, out_path,
            manifest, settings, resume, progress, lpips_vgg, lpips_lin, group):  # fmt: skip
    """invert() once the run folder is open (see there)."""
    from innout.eg3d.loading import load_generator
    from innout.invert.result import InversionResult, write_outputs

    final_out = Path(out) if out is not None else None
    if resume:
        recorded = InversionSettings(**manifest["settings"])
        method = method or manifest["method"]
        if manifest["method"] != method or recorded != settings:
            raise InputError(f"{out_path}: resume with the run's own method and settings "
                             f"(method {manifest['method']!r}, preset "
                             f"{manifest['preset']!r} with its recorded settings)")  # fmt: skip
        if manifest.get("status") == "complete":
            raise InputError(f"{out_path}: the run is already complete")
    clip = video if isinstance(video, Clip) else load_clip(video, cameras, masks)
    if method is None:
        method = "innout" if clip.masks is not None else "innout-auto"
    if method == "innout" and clip.masks is None:
        raise InputError("method 'innout' needs object masks (a masks/ folder or masks=...); "
                         "use 'innout-auto' for the mask-free variant")  # fmt: skip
    if group.data_parallel and min(settings.batch_frames, len(clip)) < group.world_size:
        raise InputError(
            f"{group.world_size} ranks share each step's frames: batch_frames "
            f"({settings.batch_frames}) and the clip's frames ({len(clip)}) must be at least "
            f"{group.world_size}"
        )
    generator = network if isinstance(network, TriPlaneGenerator) else load_generator(network)
    generator = generator.to(device).eval().requires_grad_(False)
    perceptual = PerceptualLoss(lpips_vgg, lpips_lin).to(device)
    targets = prepare_targets(clip, generator, device, settings.render_resolution)
    state = InversionState(
        generator, method, len(clip), settings.object_plane_resolution, settings.seed,
        settings.object_residual_resolution,
    ).to(device)  # fmt: skip
    state.requires_grad_(False)

    masks_record = str(Path(masks).resolve()) if masks is not None else None
    if masks_record is None and clip.masks is not None:
        masks_record = "masks/"
    # Absolute, so the run opens from any directory; and relative to the run folder, so it still
    # opens when the run and its input move together.
    source = str(Path(clip.source).resolve()) if clip.source else ""
    source_from_run = os.path.relpath(source, final_out.resolve()) if source and final_out else ""
    writes = out_path is not None and group.is_main
    if out_path is not None and not resume:
        manifest = {
            "format": run_folder.MANIFEST_FORMAT,
            "status": "running",
            "method": method,
            "preset": preset_name,
            "settings": dataclasses.asdict(settings),
            "network": _network_record(network),
            "input": {
                "source": source,
                "source_from_run": source_from_run,
                "cameras": clip.cameras_from,
                "masks": masks_record,
                "frames": len(clip),
                "names": clip.names,
                "fps": clip.fps,
                "resolution": clip.frames.shape[-1],
                "extras": clip.extras,
            },
            "perceptual_loss": perceptual.name,
            "versions": provenance(device),
            "device": str(device),
            "seconds": {},
        }
    if manifest is not None:
        manifest.setdefault("launches", []).append(
            {"world_size": group.world_size, "backend": group.backend or "none"}
        )
    if writes:
        if not resume:
            run_folder.create_run_folder(out_path)
        run_folder.write_manifest(out_path, manifest)

    engine = Engine(
        state,
        settings.seed,
        settings.checkpoint_every,
        settings.max_retries,
        out_path / run_folder.CHECKPOINT if out_path is not None else None,
        progress,
        group,
    )
    seconds: dict[str, float] = dict(manifest["seconds"]) if manifest else {}
    first_stage, checkpoint = 0, None
    checkpoint_file = out_path / run_folder.CHECKPOINT if out_path is not None else None
    # A run stopped before its first checkpoint starts again from the beginning. Rank 0 reads
    # the checkpoint and hands it to the others (only its machine needs the run folder).
    if resume and group.is_main and checkpoint_file.is_file():
        checkpoint = run_folder.load_checkpoint(checkpoint_file)
    if resume:
        checkpoint = group.broadcast(checkpoint)
    if checkpoint is not None:
        state.load_state_dict(checkpoint["state"])
        engine.history = checkpoint["history"]
        engine.recoveries = checkpoint["recoveries"]
        seconds = dict(checkpoint["metadata"].get("seconds", {}))
        first_stage = checkpoint["stage_index"]
        if checkpoint["step"] == 0 and first_stage > 0:
            checkpoint = None

    names = stage_names(method, settings)
    evidence: dict = {}  # step 1's evidence, gathered once for the object fit and step 2
    try:
        with stop_on_interrupt():
            for index in range(first_stage, len(names)):
                name = names[index]
                resume_from = checkpoint if index == first_stage else None
                earlier = resume_from["metadata"].get("stage_seconds", 0.0) if resume_from else 0
                engine.stage_clock = time.time() - earlier
                engine.metadata = {"seconds": seconds}
                stage = _build_stage(name, generator, state, targets, settings, perceptual,
                                     method, resume_from is None, group, evidence)  # fmt: skip
                engine.run(index, stage, resume_from)
                _finish_stage(name, state, settings)
                seconds[name] = seconds.get(name, 0.0) + engine.stage_seconds()
                engine.stage_clock = None
                engine.metadata = {"seconds": seconds}
                engine.checkpoint(index + 1, 0)
                state.requires_grad_(False)
    except BaseException as error:
        if writes:
            _record_failure(out_path, manifest, error)
        raise

    result = InversionResult(generator, state, clip.cameras.to(device), method, settings)
    result.history = engine.history
    result.network_name = "" if isinstance(network, TriPlaneGenerator) else str(network)
    result.fps = clip.fps
    if writes:
        manifest["seconds"] = seconds
        manifest["recoveries"] = engine.recoveries
        manifest["launches"][-1]["steps"] = _step_costs(engine.step_costs)
        try:
            write_outputs(result, clip, targets, out_path, manifest, progress)
        except BaseException as error:
            _record_failure(out_path, manifest, error)
            raise
        (out_path / run_folder.CHECKPOINT).unlink(missing_ok=True)
        if out_path != final_out:
            run_folder.promote(out_path, final_out)
    group.barrier()  # the other ranks return once rank 0 has written the run
    if final_out is not None:
        result.folder = final_out
    return result


def _step_costs(costs: dict[str, dict[str, float]]) -> dict[str, dict]:
    """What a launch measured of each stage's steps, per step (run.json's launches)."""
    return {
        name: {
            "steps": int(c["steps"]),
            "seconds_per_step": round(c["seconds"] / c["steps"], 4),
            "all_reduce_seconds_per_step": round(c["reduce_seconds"] / c["steps"], 4),
            "all_reduced_bytes_per_step": int(c["reduced_bytes"]),
        }
        for name, c in costs.items()
        if c["steps"]
    }


def _record_failure(folder: Path, manifest: dict, error: BaseException) -> None:
    """Makes run.json say why the run stopped ("interrupted" or "failed: ..."), keeping it
    resumable; a failure to write that (a full disk) must not hide the original error."""
    interrupted = isinstance(error, (Interrupted, KeyboardInterrupt))
    manifest["status"] = "interrupted" if interrupted else f"failed: {error}".splitlines()[0]
    try:
        run_folder.write_manifest(folder, manifest)
    except OSError:
        pass


def _build_stage(name, generator, state, targets, settings, perceptual, method, fresh, group,
                 evidence):  # fmt: skip
    if name == "latent":
        if fresh:
            best = stages.initial_latent(generator, targets, settings, perceptual, group)
            state.w_shared.data.copy_(best[:, : state.w_shared.shape[1]])
        state.w_shared.requires_grad_(True)
        state.residuals.requires_grad_(True)
        face_only = method == "innout" and settings.latent_face_only
        return stages.latent_stage(generator, state, targets, settings, perceptual, face_only)
    if name == "pti":
        for module in (state.generator.backbone.synthesis, state.generator.decoder,
                       state.generator.superresolution):  # fmt: skip
            module.requires_grad_(True)
        return stages.pti_stage(generator, state, targets, settings, perceptual)
    masked = method == "innout"

    def gathered() -> object_init.Evidence:
        """What step 1 explains (it no longer changes): rendered once for the fit and step 2."""
        if "evidence" not in evidence:
            evidence["evidence"] = object_init.gather_evidence(generator, state, targets,
                                                               settings, masked, group)  # fmt: skip
        return evidence["evidence"]

    if name == "object_init":
        state.object.requires_grad_(True)
        return object_init.object_init_stage(
            state.object, gathered(), targets, generator.render_settings(), settings
        )
    if name == "composite":
        face_masks = targets.masks_raw if masked else None
        if not masked:
            face_masks = 1 - gathered().object_masks.reshape_as(targets.raw[:, :1])
        return _composite(generator, state, targets, settings, perceptual, masked, face_masks)
    if name == "superres":
        features = _composite_features(generator, state, targets, settings, group)
        state.superresolution.requires_grad_(True)
        return stages.superres_stage(generator, state, targets, settings, perceptual, features)
    raise ValueError(f"unknown stage {name!r}")


def _composite(generator, state, targets, settings, perceptual, masked, face_masks):
    """Step 2: against `face_masks`, the input masks ("innout") or the evidence's
    ("innout-auto")."""
    state.object.requires_grad_(True)
    # A frozen face (ratio 0) builds no graph through the backbone and the face decoder.
    state.ws.requires_grad_(settings.latent_lr_ratio > 0)
    mask_scale = 1.0 if masked else settings.auto_mask_weight
    return stages.composite_stage(generator, state, targets, settings, perceptual, face_masks,
                                  mask_scale, auto=not masked)  # fmt: skip


@torch.no_grad()
def _composite_features(generator, state, targets, settings, group) -> torch.Tensor:
    """The composite feature images [T, 32, R, R] step 3 trains on (each rank renders its share
    of the frames)."""
    from innout.invert.result import RENDER_SEED
    from innout.invert.state import render_frames

    features = []
    for t in group.shard(targets.frames):
        index = torch.tensor([t], device=targets.image.device)
        out = render_frames(
            generator, state, state.ws[index], targets.cameras[index], index,
            seed=RENDER_SEED, samples_multiplier=settings.samples_multiplier,
        )  # fmt: skip
        features.append(out.features)
    return group.gather_shards(torch.cat(features), targets.frames)


def _finish_stage(name: str, state: InversionState, settings: InversionSettings) -> None:
    if name == "latent":
        every = torch.arange(state.residuals.shape[0], device=state.ws.device)
        with torch.no_grad():
            state.ws.copy_(state.step1_latents(settings.residual_scale, every))
