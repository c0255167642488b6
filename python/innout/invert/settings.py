"""Every hyper-parameter of an inversion, and the `paper` and `fast` presets (docs/method.md
3.2)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

METHODS = ("w", "wplus", "pti", "innout", "innout-auto")


@dataclass(frozen=True)
class InversionSettings:
    """Settings of `innout.invert` (recorded in the run's manifest).

    Attributes:
        seed: seeds the initial latent search, the object field and every sampling draw.
        batch_frames: frames per optimisation step (the research code: 1).
        samples_multiplier: EG3D's sample counts per ray are multiplied by this.
        render_resolution: neural rendering resolution while optimising (0: the generator's;
            smaller is faster, the super-resolution upsamples its input). Results are always
            rendered at the generator's own.
        backend: rendering ops, "innout" (C++/CUDA) or "reference" (pure PyTorch).
        checkpoint_every: steps between checkpoints (and last-good snapshots).
        max_retries: non-finite steps tolerated per stage (each restores the last good state and
            halves the learning rate) before the run stops with an error.

        init_samples: random latents tried to initialise the shared code (the best is kept).
        init_frames: frames they are scored on (evenly spread; 0 = all).
        latent_epochs, latent_lr: step 1 (W / W+ inversion) length and Adam learning rate.
        residual_scale: w_t = w_shared + residual_scale * r_t.
        layer_delta_weight: weight of sum_i ||w_t[i] - w_t[0]|| (layers 1..num_ws-2).
        lr_rampup, lr_rampdown: fractions of step 1 with the linear ramp-up / cosine ramp-down.
        perceptual_weight, l2_weight: image terms of steps 1, PTI and 3.
        latent_face_only: "innout" leaves the object's pixels (its masks) out of step 1's loss,
            so the face latents explain the face alone (the research code fits whole frames).

        pti_epochs, pti_lr: pivotal tuning of the whole generator (method "pti").

        composite_steps: step 2 length (steps of `batch_frames` frames).
        object_lr: learning rate of the object tri-plane, decoder and frame codes.
        latent_lr_ratio: the face latents' learning rate in step 2 is object_lr * this.
        object_plane_resolution: side of the object tri-plane (0: the generator's plane size).
        object_residual_resolution: side of the per-frame residual tri-planes that let the
            object move and change shape from frame to frame (0: none, the research model).
        object_init_steps: steps of fitting the object field to the evidence before step 2
            (0: the research code's random field). The evidence is, per frame, the object
            masks (or, for "innout-auto", the pixels the W+ reconstruction of step 1 cannot
            explain): their rays are opaque in a slab in front of the face surface, with the
            frame's colour; every other point along the rays is empty.
        raw_l2_weight, raw_perceptual_weight, sr_l2_weight: composite image terms (with
            sr_l2_weight 0 the super-resolution is not run in step 2).
        object_l2_weight: L2 of the object-only image on object pixels (needs masks).
        blend_entropy_weight, blend_area_weight, blend_sparsity_weight: blend regularisers.
        object_mask_weight: with masks, the object's share of each pixel (its composite
            opacity) is fitted to the mask: mean (1 - share)^2 on object pixels + mean share^2 on
            face pixels. innout's addition: 0 in the research recipe, whose 10,000 steps let the
            image terms place the object; without it short runs leave the object as faint fog.
        distortion_weight: weight of the distortion loss of the object field's own ray weights
            (mip-NeRF 360): concentrates each ray's object into one compact interval, so that
            new views show no floaters.
        mean_latent_weight, auto_layer_delta_weight: "innout-auto"'s latent regularisers.
        auto_mask_weight: "innout-auto"'s mask term and object L2, against the evidence masks
            (object_mask_weight and object_l2_weight are multiplied by this).

        sr_epochs, sr_lr: step 3, super-resolution fine-tuning on the composite features.
    """

    seed: int = 0
    batch_frames: int = 1
    samples_multiplier: float = 1.0
    render_resolution: int = 0
    backend: str = "innout"
    checkpoint_every: int = 50
    max_retries: int = 3

    init_samples: int = 64
    init_frames: int = 0
    latent_epochs: int = 500
    latent_lr: float = 5e-3
    residual_scale: float = 0.7
    layer_delta_weight: float = 1e-3
    lr_rampup: float = 0.05
    lr_rampdown: float = 0.25
    perceptual_weight: float = 1.0
    l2_weight: float = 1.0
    latent_face_only: bool = False

    pti_epochs: int = 100
    pti_lr: float = 3e-4

    composite_steps: int = 10_000
    object_lr: float = 5e-3
    latent_lr_ratio: float = 0.01
    object_plane_resolution: int = 256
    object_residual_resolution: int = 0
    object_init_steps: int = 0
    raw_l2_weight: float = 1.0
    raw_perceptual_weight: float = 1.0
    sr_l2_weight: float = 1.0
    object_l2_weight: float = 1.0
    blend_entropy_weight: float = 1.0
    blend_area_weight: float = 1.0
    blend_sparsity_weight: float = 0.0
    object_mask_weight: float = 0.0
    distortion_weight: float = 0.0
    mean_latent_weight: float = 1.0
    auto_layer_delta_weight: float = 2e-3
    auto_mask_weight: float = 0.0

    sr_epochs: int = 100
    sr_lr: float = 1e-3

    def __post_init__(self) -> None:
        at_least_one = ("batch_frames", "checkpoint_every", "init_samples")
        for name in at_least_one:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        not_negative = (
            "max_retries", "init_frames", "latent_epochs", "pti_epochs", "composite_steps",
            "sr_epochs", "object_plane_resolution", "render_resolution",
            "object_residual_resolution", "object_init_steps",
        )  # fmt: skip
        for name in not_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.backend not in ("innout", "reference"):
            raise ValueError(f"backend must be 'innout' or 'reference', got {self.backend!r}")
        if self.object_residual_resolution == 1:
            raise ValueError("object_residual_resolution must be 0 (none) or >= 2")
        if self.samples_multiplier <= 0:
            raise ValueError(f"samples_multiplier must be > 0, got {self.samples_multiplier}")
        if not (0 <= self.lr_rampup <= 1 and 0 <= self.lr_rampdown <= 1):
            raise ValueError("lr_rampup and lr_rampdown must be fractions in [0, 1]")
        for field in dataclasses.fields(self):
            if isinstance(field.default, bool) and not isinstance(getattr(self, field.name), bool):
                raise ValueError(f"{field.name} must be true or false, got "
                                 f"{getattr(self, field.name)!r}")  # fmt: skip
            if field.name.endswith(("_lr", "_weight", "_ratio")) and getattr(self, field.name) < 0:
                raise ValueError(f"{field.name} must be >= 0, got {getattr(self, field.name)}")


#: The research scripts' hyper-parameters (docs/method.md 3.2): batch 1, 500 epochs of step 1,
#: 10,000 composite steps, 100 epochs of super-resolution fine-tuning.
PAPER = InversionSettings()

#: Small enough for an 8-frame innout-tiny clip on two CPU cores in about a minute: four
#: frames per step rendered at 32^2, far fewer steps, a coarser object tri-plane, a higher object
#: learning rate, and innout's additions that make short runs count (docs/method.md 3.2): step 1
#: fitted to the face's pixels only, the object field fitted to the evidence before step 2 with
#: per-frame residual planes that follow a moving object, the mask term that keeps it in place,
#: the face frozen in step 2 (its planes are computed once and need no backward), no
#: super-resolution in step 2 (step 3 trains it on the composite features) and a longer step 3.
FAST = InversionSettings(
    batch_frames=4,
    render_resolution=32,
    init_samples=8,
    init_frames=4,
    latent_epochs=15,
    latent_lr=2e-2,
    latent_face_only=True,
    pti_epochs=15,
    pti_lr=1e-3,
    composite_steps=20,
    object_lr=5e-2,
    latent_lr_ratio=0.0,
    object_plane_resolution=64,
    object_residual_resolution=16,
    object_init_steps=100,
    object_mask_weight=1.0,
    auto_mask_weight=1.0,
    sr_l2_weight=0.0,
    sr_epochs=25,
    sr_lr=3e-3,
    checkpoint_every=20,
)

PRESETS = {"paper": PAPER, "fast": FAST}

_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def parse_setting(name: str, text: str) -> int | float | str | bool:
    """A setting's value from text, as the type of that InversionSettings field (booleans:
    true/false, yes/no, on/off, 1/0); raises ValueError naming what was expected."""
    fields = {f.name: f for f in dataclasses.fields(InversionSettings)}
    if name not in fields:
        raise ValueError(f"unknown inversion setting {name!r}")
    kind = type(fields[name].default)
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in _TRUE + _FALSE:
            return lowered in _TRUE
        raise ValueError(f"{name} must be true or false, got {text!r}")
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{name} must be {kind.__name__}, got {text!r}") from None


def preset(name: str, **overrides) -> InversionSettings:
    """The named preset with `overrides` (any InversionSettings field)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    unknown = set(overrides) - {f.name for f in dataclasses.fields(InversionSettings)}
    if unknown:
        raise ValueError(f"unknown inversion setting(s): {', '.join(sorted(unknown))}")
    return dataclasses.replace(PRESETS[name], **overrides)
