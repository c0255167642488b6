"""Training innout-tiny by regression on the synthetic head world (docs/synthetic-world.md,
"innout-tiny").

Not adversarial: for z ~ N(0, I) and an FFHQ-like camera, the generator's rendering G(z, c) is
fitted to the analytic render of the head p(z) from the same camera. Two stages fit in an hour on
two CPU cores:

1. **Field stage** (mapping, backbone, decoder): every step renders `rays_per_item` random pixels
   of the 64^2 raw image for each of `batch` heads, and regresses their RGB (MSE) and depth
   (L1, small weight) against the analytic marcher's values on exactly those rays. Sparse rays
   see many heads per second; the backbone still produces whole tri-planes. An exponential moving
   average of the weights (as EG3D's G_ema) is what is kept.
2. **Super-resolution stage** (SR network only, backbone frozen): a fixed pool of heads is
   rendered once by the frozen generator (64^2 feature images) and once analytically at 128^2;
   the SR network, starting as plain upsampling (zero ToRGB layers), is fitted to map the first
   to the second (MSE).

Everything is seeded: the same `TrainConfig` gives the same weights on the same machine and
thread count. Progress bars show the loss; `log.jsonl` in the output folder has one line per
logged step, `metrics.json` the held-out evaluation (:mod:`innout.tiny.evaluate`), and
`state.pt` (tensors only, read with ``weights_only``) lets an interrupted run resume.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from innout import atomic
from innout.eg3d import camera
from innout.eg3d.checkpoint import generator_state, write_converted
from innout.eg3d.generator import TriPlaneGenerator
from innout.eg3d.renderer import render_rays
from innout.metrics import psnr_from_mse
from innout.provenance import provenance
from innout.synth.head import Z_PARAMETERS
from innout.tiny.architecture import RAW_RESOLUTION, tiny_init_kwargs
from innout.tiny.heads import ground_truth_images, ground_truth_rays, sample_heads

#: A sphere around the eyes, nose and mouth (FFHQ frame, world units). Rays passing within it
#: are the "face rays" that `TrainConfig.face_fraction` over-samples: the features that make a
#: head recognisable and that edits such as smile and eye_size move are a few raw pixels wide,
#: and uniform sampling spends most rays on the hair and the background.
FACE_CENTRE = (0.0, -0.035, 0.15)
FACE_RADIUS = 0.13
#: Spheres (centre, radius; FFHQ frame, world units) around the eyes and the mouth over the
#: whole range of face_width, eye_size and smile. Their rays weigh `TrainConfig.feature_weight`
#: in the colour loss: an eye or a mouth corner is a few pixels of a 64^2 image, and at equal
#: weight the fit spends its capacity on the larger hair and skin areas (the edits eye_size and
#: smile then move the truth but hardly the rendering).
FEATURE_SPHERES = (
    ((-0.066, 0.035, 0.152), 0.055),
    ((0.066, 0.035, 0.152), 0.055),
    ((0.0, -0.105, 0.15), 0.07),
)


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run (recorded in the output's config JSON).

    Attributes:
        seed: seeds weights, latents, cameras, rays and sampling jitter.
        field_steps: optimiser steps of the field stage.
        batch: heads per step; rays_per_item: random raw pixels per head.
        face_fraction: share of each head's rays drawn among the face rays (those passing
            within FACE_RADIUS of FACE_CENTRE); the rest are drawn among all pixels. With uniform
            rays (0) eyes came out as grey blurs and the eye and smile directions moved nothing.
        feature_weight: weight in the colour loss of rays through FEATURE_SPHERES (eyes,
            mouth) relative to the others (the loss is the weighted mean; the logged rgb_mse is
            not weighted).
        feature_weight_start: fraction of the field steps after which `feature_weight` applies
            (before it, feature rays weigh 1). Measured with an hour's budget: weight 3 from the
            start (1600 steps) renders eye size (fit-back slope 0.73 against 0.30 unweighted)
            but held-out PSNR falls from 24.8 to 23.0 dB (hair and background are fitted less
            well); from 0.66 on (the bundled model, 1800 steps) the eyes sharpen while the
            learning rate decays, after the large areas are fitted, and PSNR is 25.3 dB.
        lr: Adam learning rate (the mapping's is divided by its lr multiplier, so that every
            layer moves by a similar relative amount); warm-up then cosine decay to lr_final_ratio.
        depth_weight: weight of the L1 depth term (world units) against the RGB MSE ([-1, 1]).
        opacity_weight: weight of (1 - accumulated opacity)^2: every ray of the world ends on an
            opaque surface, and without this term the field first explains colours with
            semi-transparent fog and forms surfaces very slowly.
        ema_half_life: half-life, in steps, of the moving average of the weights.
        sr_steps, sr_pool, sr_batch, sr_lr: the super-resolution stage.
        eval_heads: held-out (z, camera) pairs of the final evaluation.
        gt_samples: coarse and fine samples per ray of the analytic ground truth of training (32
            are within 56 dB of 64; the held-out evaluation always uses 64).
        log_every: steps between log lines.
    """

    seed: int = 0
    field_steps: int = 1800
    batch: int = 4
    rays_per_item: int = 1024
    face_fraction: float = 0.5
    feature_weight: float = 3.0
    feature_weight_start: float = 0.66
    lr: float = 5e-3
    lr_final_ratio: float = 0.05
    warmup_steps: int = 50
    depth_weight: float = 1.0
    opacity_weight: float = 1.0
    ema_half_life: float = 60.0
    sr_steps: int = 250
    sr_pool: int = 64
    sr_batch: int = 4
    sr_lr: float = 1e-3
    eval_heads: int = 16
    gt_samples: int = 32
    log_every: int = 10

    def __post_init__(self) -> None:
        positive = (
            "batch",
            "rays_per_item",
            "sr_pool",
            "sr_batch",
            "eval_heads",
            "gt_samples",
            "log_every",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.field_steps < 0 or self.sr_steps < 0:
            raise ValueError("field_steps and sr_steps must be >= 0")
        if not self.feature_weight > 0:
            raise ValueError(f"feature_weight must be > 0, got {self.feature_weight}")
        if not 0.0 <= self.feature_weight_start <= 1.0:
            raise ValueError(
                f"feature_weight_start must be in [0, 1], got {self.feature_weight_start}"
            )
        if not 0.0 <= self.face_fraction <= 1.0:
            raise ValueError(f"face_fraction must be in [0, 1], got {self.face_fraction}")
        if self.rays_per_item > RAW_RESOLUTION**2:
            raise ValueError(
                f"rays_per_item must be <= {RAW_RESOLUTION**2} (pixels of a raw image)"
            )


def build_tiny(seed: int) -> TriPlaneGenerator:
    """A freshly initialised innout-tiny generator (seeded)."""
    torch.manual_seed(seed)
    generator = TriPlaneGenerator(**tiny_init_kwargs())
    generator.neural_rendering_resolution = RAW_RESOLUTION
    return generator


def ignore_unused_latents(generator: TriPlaneGenerator) -> torch.utils.hooks.RemovableHandle:
    """Zeroes, and keeps at zero, the mapping's weights from the entries of z the world ignores.

    Only the first len(Z_PARAMETERS) entries of z define a head. Left alone, the other 501 would
    make up ~98 % of w's variance: noise the backbone would first have to learn to filter out,
    which is most of what slows a regression-trained EG3D down. The returned handle removes the
    gradient mask.
    """
    zero_unused_latents(generator)
    weight = generator.backbone.mapping.fc0.weight
    used = len(Z_PARAMETERS)

    def mask(grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        grad[:, used : generator.z_dim] = 0
        return grad

    return weight.register_hook(mask)


def zero_unused_latents(generator: TriPlaneGenerator) -> None:
    """Sets the mapping's weights from the entries of z past len(Z_PARAMETERS) to zero."""
    with torch.no_grad():
        generator.backbone.mapping.fc0.weight[:, len(Z_PARAMETERS) : generator.z_dim] = 0


def _learning_rate(config: TrainConfig, step: int) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.field_steps - config.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return config.lr * (config.lr_final_ratio + (1 - config.lr_final_ratio) * cosine)


def _optimizer(generator: TriPlaneGenerator, config: TrainConfig) -> torch.optim.Adam:
    # The mapping's layers have lr multiplier 0.01 (stored weights scaled by 100): meant for GAN
    # training, it would leave the mapping nearly frozen here, so its group's rate is divided by
    # it. The decoder's multiplier (rendering_kwargs["decoder_lr_mul"]) is kept: it is what lets
    # densities grow to opaque values quickly.
    mapping = generator.backbone.mapping
    multiplier = float(getattr(mapping.fc0, "bias_gain", 1.0))
    mapping_ids = {id(p) for name, p in mapping.named_parameters() if name.startswith("fc")}
    fast = [p for p in generator.parameters() if id(p) in mapping_ids]
    others = [p for p in generator.parameters() if id(p) not in mapping_ids]
    groups = [{"params": others, "scale": 1.0}, {"params": fast, "scale": 1.0 / multiplier}]
    return torch.optim.Adam(groups, lr=config.lr, betas=(0.9, 0.99))


@torch.no_grad()
def _update_ema(ema: torch.nn.Module, model: torch.nn.Module, beta: float) -> None:
    for target, source in zip(ema.parameters(), model.parameters()):
        target.lerp_(source, 1 - beta)
    for target, source in zip(ema.buffers(), model.buffers()):
        target.copy_(source)


def face_rays(origins: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Which rays [..., 3] (unit directions) pass within FACE_RADIUS of FACE_CENTRE: bool [...]."""
    to_centre = origins.new_tensor(FACE_CENTRE) - origins
    along = (to_centre * directions).sum(-1, keepdim=True)
    return (to_centre - along * directions).norm(dim=-1) < FACE_RADIUS


def feature_rays(origins: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Which rays [..., 3] (unit directions) pass through one of FEATURE_SPHERES: bool [...]."""
    hit = torch.zeros(origins.shape[:-1], dtype=torch.bool, device=origins.device)
    for centre, radius in FEATURE_SPHERES:
        to_centre = origins.new_tensor(centre) - origins
        along = (to_centre * directions).sum(-1, keepdim=True)
        hit |= (to_centre - along * directions).norm(dim=-1) < radius
    return hit


def sample_pixels(
    face: torch.Tensor, count: int, face_fraction: float, rng: torch.Generator
) -> torch.Tensor:
    """Pixel indices [N, count] per image: round(count * face_fraction) distinct ones among the
    face pixels (bool [N, P]; fewer if an image has fewer), the rest distinct among all pixels."""
    pixel_count = face.shape[1]
    chosen = []
    for mask in face:
        candidates = mask.nonzero().squeeze(1)
        wanted = min(round(count * face_fraction), candidates.numel())
        on_face = candidates[:0]
        if wanted > 0:  # (no draw otherwise: uniform sampling keeps its random stream)
            on_face = candidates[torch.randperm(candidates.numel(), generator=rng)[:wanted]]
        anywhere = torch.randperm(pixel_count, generator=rng)[: count - wanted]
        chosen.append(torch.cat([on_face, anywhere]))
    return torch.stack(chosen)


def feature_weight_at(config: TrainConfig, step: int) -> float:
    """The weight of feature rays at field step `step`: 1 before `feature_weight_start` (a
    fraction of the field steps), `feature_weight` from there on."""
    start = config.feature_weight_start * config.field_steps
    return config.feature_weight if step >= start else 1.0


def _field_step(
    generator: TriPlaneGenerator, config: TrainConfig, rng: torch.Generator, step: int
) -> dict[str, float]:
    # `step` has no default: the feature weight depends on it, and a forgotten step would
    # silently train without it.
    z, labels = sample_heads(config.batch, rng)
    origins, directions = camera.pixel_rays(labels, RAW_RESOLUTION)
    pixels = sample_pixels(
        face_rays(origins, directions), config.rays_per_item, config.face_fraction, rng
    )
    index = pixels.unsqueeze(-1).expand(-1, -1, 3)
    origins, directions = origins.gather(1, index), directions.gather(1, index)
    target = ground_truth_rays(z, origins, directions, config.gt_samples)
    ws = generator.mapping(z, labels, update_emas=True)
    planes = generator.planes(ws, noise_mode="const")
    rendered = render_rays(
        planes, generator.decoder, origins, directions, generator.render_settings(), generator=rng
    )
    squared = (rendered["features"][..., :3] - target[..., :3]).square().mean(-1)
    weight = torch.where(feature_rays(origins, directions), feature_weight_at(config, step), 1.0)
    rgb_error = squared.mean()
    rgb_loss = (weight * squared).sum() / weight.sum()
    depth_error = (rendered["depth"] - target[..., 3]).abs().mean()
    opacity_error = (1 - rendered["weight_total"]).square().mean()
    loss = rgb_loss + config.depth_weight * depth_error + config.opacity_weight * opacity_error
    loss.backward()
    return {
        "loss": float(loss.detach()),
        "rgb_mse": float(rgb_error.detach()),
        "depth_l1": float(depth_error.detach()),
        "transparency": float(opacity_error.detach()),
    }


class _Log:
    """Appends JSON lines to log.jsonl (flushed, so that a crash loses nothing written)."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _drop_log_lines_from(path: Path, step: int) -> None:
    """Keeps the log lines of field steps before `step` (a resumed run logs the rest again; a
    fresh run, step 0, starts an empty log). A line cut short by a crash is dropped."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("stage") == "field" and record.get("step", step) < step:
            kept.append(line)
    atomic.write_text(path, "".join(line + "\n" for line in kept))


#: Version of the state.pt layout (a state of another version is refused, not misread).
STATE_FORMAT = 1


def _save_state(path: Path, state: dict) -> None:
    atomic.torch_save(path, {**state, "format": STATE_FORMAT})


def train_field(
    generator: TriPlaneGenerator,
    ema: TriPlaneGenerator,
    config: TrainConfig,
    out: Path,
    log: _Log,
    progress: bool,
    start_step: int = 0,
    optimizer_state: dict | None = None,
    rng_state: torch.Tensor | None = None,
    checkpoint_every: int = 100,
    started: float | None = None,
) -> None:
    """Stage 1 (see the module docstring); saves `state.pt` every `checkpoint_every` steps and
    at the end (with the seconds since `started`, the run's start, so that resumed runs report
    their whole training time)."""
    started = time.time() if started is None else started
    rng = torch.Generator().manual_seed(config.seed + 1)
    if rng_state is not None:
        rng.set_state(rng_state)
    optimizer = _optimizer(generator, config)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    beta_full = 0.5 ** (1.0 / config.ema_half_life)
    bar = tqdm(
        range(start_step, config.field_steps),
        desc="field",
        unit="step",
        initial=start_step,
        total=config.field_steps,
        disable=not progress,
    )
    for step in bar:
        lr = _learning_rate(config, step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group["scale"]
        optimizer.zero_grad(set_to_none=True)
        stats = _field_step(generator, config, rng, step)
        optimizer.step()
        _update_ema(ema, generator, min(beta_full, (1 + step) / (10 + step)))
        bar.set_postfix(loss=f"{stats['loss']:.4f}", psnr=f"{psnr_from_mse(stats['rgb_mse']):.1f}")
        if step % config.log_every == 0 or step == config.field_steps - 1:
            log.write(
                {
                    "stage": "field",
                    "step": step,
                    "lr": lr,
                    **stats,
                    "psnr_raw": psnr_from_mse(stats["rgb_mse"]),
                    "time": time.time(),
                }
            )
        if (step + 1) % checkpoint_every == 0 or step + 1 == config.field_steps:
            _save_state(
                out / "state.pt",
                {
                    "config": dataclasses.asdict(config),
                    "stage": "field",
                    "step": step + 1,
                    "generator": generator.state_dict(),
                    "ema": ema.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "rng": rng.get_state(),
                    "elapsed": time.time() - started,
                },
            )


def train_superresolution(
    generator: TriPlaneGenerator, config: TrainConfig, log: _Log, progress: bool
) -> None:
    """Stage 2: fits `generator.superresolution` on a fixed pool of heads (backbone frozen)."""
    rng = torch.Generator().manual_seed(config.seed + 2)
    z, labels = sample_heads(config.sr_pool, rng)
    output_resolution = generator.img_resolution
    targets, features, latents = [], [], []
    chunks = range(0, config.sr_pool, config.sr_batch)
    for start in tqdm(chunks, desc="sr pool", unit="batch", disable=not progress):
        part = slice(start, start + config.sr_batch)
        targets.append(
            ground_truth_images(z[part], labels[part], output_resolution, config.gt_samples)
        )
        with torch.no_grad():
            ws = generator.mapping(z[part], labels[part])
            rendered = generator.render(ws, labels[part], seed=config.seed + start)
        features.append(rendered["features"])
        latents.append(ws)
    target, feature, latent = torch.cat(targets), torch.cat(features), torch.cat(latents)
    sr = generator.superresolution
    # Start from "upsample the raw image": with zero ToRGB layers the skip architecture outputs
    # exactly the upsampled raw rendering, and training only adds detail to it. (From EG3D's
    # random initialisation, 250 steps end below plain upsampling.)
    with torch.no_grad():
        for name, module in sr.named_modules():
            if name.endswith("torgb"):
                module.weight.zero_()
                module.bias.zero_()
    optimizer = torch.optim.Adam(sr.parameters(), lr=config.sr_lr, betas=(0.9, 0.99))
    noise_mode = generator.rendering_kwargs.get("superresolution_noise_mode", "none")
    bar = tqdm(range(config.sr_steps), desc="superres", unit="step", disable=not progress)
    for step in bar:
        cosine = 0.5 * (1 + math.cos(math.pi * step / max(1, config.sr_steps)))
        for group in optimizer.param_groups:
            group["lr"] = config.sr_lr * (
                config.lr_final_ratio + (1 - config.lr_final_ratio) * cosine
            )
        pick = torch.randperm(config.sr_pool, generator=rng)[: config.sr_batch]
        x = feature[pick]
        image = sr(x[:, :3].clone(), x, latent[pick], noise_mode=noise_mode)
        loss = (image - target[pick]).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = float(loss.detach())
        bar.set_postfix(loss=f"{value:.4f}", psnr=f"{psnr_from_mse(value):.1f}")
        if step % config.log_every == 0 or step == config.sr_steps - 1:
            log.write(
                {
                    "stage": "superresolution",
                    "step": step,
                    "loss": value,
                    "psnr_sr": psnr_from_mse(value),
                    "time": time.time(),
                }
            )


def train_tiny(
    config: TrainConfig,
    out: str | os.PathLike,
    *,
    progress: bool = True,
    evaluate: Callable[[TriPlaneGenerator], dict] | None = None,
    resume: bool = True,
    checkpoint_every: int = 100,
    command: str | None = None,
) -> dict:
    """Trains innout-tiny into folder `out` and returns the run's record.

    Writes `innout-tiny.safetensors` (the generator, loadable with `innout.load_generator`),
    `innout-tiny.json` (config, timings, metrics), `log.jsonl` and, while running, `state.pt`.
    With `resume`, a `state.pt` of the same config (saved every `checkpoint_every` field steps)
    continues where it stopped.
    `evaluate(generator) -> metrics` runs at the end (default: the held-out evaluation).
    """
    from innout.tiny.evaluate import evaluate_heldout

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    generator = build_tiny(config.seed).train()
    ema = copy.deepcopy(generator).eval().requires_grad_(False)
    zero_unused_latents(ema)
    ignore_unused_latents(generator)
    start_step, optimizer_state, rng_state = 0, None, None
    state_path = out / "state.pt"
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    if not resume:
        state_path.unlink(missing_ok=True)
    if state_path.is_file():
        state = torch.load(state_path, weights_only=True)
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"{state_path} was written by another version of innout; remove it")
        if state.get("config") != dataclasses.asdict(config):
            raise ValueError(f"{state_path} belongs to a run with other settings; remove it first")
        generator.load_state_dict(state["generator"])
        ema.load_state_dict(state["ema"])
        start_step, optimizer_state, rng_state = state["step"], state["optimizer"], state["rng"]
        started = time.time() - float(state["elapsed"])
    _drop_log_lines_from(out / "log.jsonl", start_step)
    log = _Log(out / "log.jsonl")
    try:
        train_field(
            generator,
            ema,
            config,
            out,
            log,
            progress,
            start_step,
            optimizer_state,
            rng_state,
            checkpoint_every,
            started,
        )
        field_done = time.time()
        ema.requires_grad_(False)
        ema.superresolution.requires_grad_(True)
        train_superresolution(ema.train(), config, log, progress)
        sr_done = time.time()
        ema = ema.eval().requires_grad_(False)
        metrics = (
            evaluate or (lambda g: evaluate_heldout(g, config.eval_heads, progress=progress))
        )(ema)
    finally:
        log.close()
    record = {
        "name": "innout-tiny",
        "command": command,
        "train_config": dataclasses.asdict(config),
        "metrics": metrics,
        "seconds": {
            "field_stage": field_done - started,
            "superresolution_stage": sr_done - field_done,
            "total": time.time() - started,
        },
        "machine": provenance(),
    }
    config_dict, tensors = generator_state(ema, tiny_init_kwargs())
    write_converted(out / "innout-tiny.safetensors", config_dict, tensors)
    atomic.write_text(out / "innout-tiny.json", json.dumps(record, indent=2) + "\n")
    state_path.unlink(missing_ok=True)
    return record
