"""Synthetic occluded-face videos with per-frame ground truth (docs/synthetic-world.md, "Videos").

A video is fully determined by (identity seed, object kind, object seed, frames T, resolution) plus
the optional edit and novel-view count: the identity seed gives z (EG3D's seed convention) and hence
the head parameters, and, through its own random stream, the camera path and the expression
animation; the object seed gives the object's shape, colour and trajectory. Per frame:

- full render (head + object), head-only render, the object's opacity and a binary mask
  (255 = face, 0 = object: object where its opacity exceeds `MASK_THRESHOLD`);
- the full render after p_edit += delta (the object unchanged: same kind, seed and trajectory;
  paint and red nose stay attached to the edited skin/nose);
- full renders from `novel_views` fixed extra cameras (yaw spread over +-0.45 rad, beyond the path's
  +-0.35 so that they are held out).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from innout.eg3d import camera
from innout.eg3d.mapping import latent
from innout.synth.head import HeadField, HeadParams, params_from_z
from innout.synth.objects import OBJECT_KINDS, ObjectField, make_object
from innout.synth.render import SynthRenderSettings, render

#: A pixel belongs to the object in the mask when the object's share of its weight exceeds this.
#: Low on purpose: outside the mask the full and head-only renders then differ by at most about
#: 2 * 0.02 in [-1, 1] units (the object's colour replaces at most 2 % of the head's weight).
MASK_THRESHOLD = 0.02
#: Largest camera yaw and pitch of a video path (radians, relative to the frontal camera).
MAX_YAW, MAX_PITCH = 0.35, 0.2
#: Yaw span of the extra viewpoints (radians).
NOVEL_YAW = 0.45
Z_DIM = 512


@dataclass(frozen=True)
class VideoSpec:
    """Everything that determines a video (recorded in params.json)."""

    identity: int
    object_kind: str
    object_seed: int
    frames: int
    resolution: int = 128
    edit: str = "smile"
    edit_delta: float = 0.5
    novel_views: int = 2
    focal: float = camera.FFHQ_FOCAL
    fps: float = 15.0
    render: SynthRenderSettings = field(default_factory=SynthRenderSettings)

    def __post_init__(self) -> None:
        if self.object_kind not in OBJECT_KINDS:
            raise ValueError(f"unknown object kind {self.object_kind!r}; known: {OBJECT_KINDS}")
        if self.frames < 1 or self.resolution < 4 or self.novel_views < 0:
            raise ValueError("frames >= 1, resolution >= 4 and novel_views >= 0 are required")
        HeadParams().edited(self.edit, 0.0)  # validates the edited parameter's name

    def settings(self) -> SynthRenderSettings:
        r = self.render
        return SynthRenderSettings(self.resolution, r.coarse_samples, r.fine_samples, r.near,
                                   r.far, r.chunk_rays)  # fmt: skip


@dataclass
class FramePlan:
    """One frame's setting: time t in [0, 1], camera angles (radians), label [25], head params."""

    index: int
    t: float
    yaw: float
    pitch: float
    camera: torch.Tensor
    params: HeadParams


def _label(yaw: float, pitch: float, focal: float) -> torch.Tensor:
    pose = camera.look_at_cam2world(math.pi / 2 + yaw, math.pi / 2 + pitch)
    return camera.camera_labels(pose, camera.intrinsics(focal))[0]


def plan_video(spec: VideoSpec) -> list[FramePlan]:
    """The camera path and the expression of every frame (smooth in t, seeded by the identity)."""
    base = params_from_z(latent(spec.identity, Z_DIM))
    rng = np.random.default_rng([spec.identity, 20260])
    phases = rng.uniform(0, 2 * math.pi, size=6)
    blinks = rng.uniform(0.1, 0.9, size=2)
    plans = []
    for index in range(spec.frames):
        # Frame centres of one period: a looping path never repeats its first frame.
        t = (index + 0.5) / spec.frames
        w = 2 * math.pi * t
        # 0.75 + 0.25 = 1: the sums stay within the documented maxima.
        yaw = MAX_YAW * (0.75 * math.sin(w + phases[0]) + 0.25 * math.sin(2 * w + phases[1]))
        pitch = MAX_PITCH * (0.75 * math.sin(w + phases[2]) + 0.25 * math.sin(2 * w + phases[3]))
        smile = base.smile + 0.6 * math.sin(w + phases[4])
        mouth = 0.5 * base.mouth_open + 0.4 * (1 - math.cos(3 * w + phases[5])) / 2
        blink = max(math.exp(-(((t - b) / 0.05) ** 2)) for b in blinks)
        params = HeadParams(**{**base.as_dict(), "smile": smile, "mouth_open": mouth,
                               "blink": blink}).clamped()  # fmt: skip
        plans.append(FramePlan(index, t, yaw, pitch, _label(yaw, pitch, spec.focal), params))
    return plans


def novel_cameras(spec: VideoSpec) -> torch.Tensor:
    """[K, 25] labels of the extra viewpoints (fixed for the whole video)."""
    k = spec.novel_views
    yaws = [0.0] if k == 1 else np.linspace(-NOVEL_YAW, NOVEL_YAW, k).tolist()
    return torch.stack([_label(y, 0.0, spec.focal) for y in yaws[:k]]) if k else torch.zeros(0, 25)


@dataclass
class FrameResult:
    """Ground truth of one frame. Images [3, R, R] in [-1, 1]; opacity [1, R, R] in [0, 1];
    mask [1, R, R] uint8 (255 face, 0 object); novel [K, 3, R, R]; depth [1, R, R]."""

    plan: FramePlan
    edited_params: HeadParams
    full: torch.Tensor
    depth: torch.Tensor
    head_only: torch.Tensor
    opacity: torch.Tensor
    mask: torch.Tensor
    edited: torch.Tensor
    novel: torch.Tensor


def render_frame(spec: VideoSpec, plan: FramePlan, novel: torch.Tensor) -> FrameResult:
    """Renders every ground truth of one frame (deterministic)."""
    settings = spec.settings()
    obj_spec = make_object(spec.object_kind, spec.object_seed)
    head = HeadField(plan.params)
    obj = ObjectField(obj_spec, plan.t, head)
    full = render(head, plan.camera, obj, settings)
    head_only = render(head, plan.camera, None, settings)
    edited_params = plan.params.edited(spec.edit, spec.edit_delta)
    edited_head = HeadField(edited_params)
    edited = render(edited_head, plan.camera, ObjectField(obj_spec, plan.t, edited_head), settings)
    views = [render(head, c, obj, settings).image for c in novel]
    mask = torch.where(full.opacity > MASK_THRESHOLD, 0, 255).to(torch.uint8)
    r = spec.resolution
    return FrameResult(
        plan=plan,
        edited_params=edited_params,
        full=full.image,
        depth=full.depth,
        head_only=head_only.image,
        opacity=full.opacity,
        mask=mask,
        edited=edited.image,
        novel=torch.stack(views) if views else torch.zeros(0, 3, r, r),
    )


def generate_video(spec: VideoSpec) -> Iterator[FrameResult]:
    """Renders the frames of a video in order."""
    novel = novel_cameras(spec)
    for plan in plan_video(spec):
        yield render_frame(spec, plan, novel)


def _labels_json(names: list[str], labels: list[torch.Tensor]) -> dict:
    return {"labels": [[n, [float(v) for v in c.tolist()]] for n, c in zip(names, labels)]}


def write_video_folder(spec: VideoSpec, out: str | Path, progress: bool = False) -> dict:
    """Writes a video and its ground truth to `out`; returns the params.json content.

    Layout: video.mp4, frames/NNNNN.png, dataset.json (EG3D labels, frame order), masks/NNNNN.png,
    gt/head_only/NNNNN.png, gt/edited/NNNNN.png, gt/novel_views/NNNNN_vK.png (+ its dataset.json),
    params.json (spec, object, per-frame parameters and cameras).
    """
    from tqdm import tqdm

    from innout.media import to_uint8, write_png, write_video

    out = Path(out)
    for sub in ("frames", "masks", "gt/head_only", "gt/edited", "gt/novel_views"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    novel = novel_cameras(spec)
    frames, names, labels, records = [], [], [], []
    novel_names, novel_labels = [], []
    for result in tqdm(generate_video(spec), total=spec.frames, desc="synth video",
                       disable=not progress):  # fmt: skip
        plan = result.plan
        name = f"{plan.index:05d}.png"
        pixels = to_uint8(result.full)
        frames.append(pixels)
        write_png(out / "frames" / name, pixels)
        write_png(out / "masks" / name, result.mask[0].numpy())
        write_png(out / "gt/head_only" / name, to_uint8(result.head_only))
        write_png(out / "gt/edited" / name, to_uint8(result.edited))
        for k, view in enumerate(result.novel):
            view_name = f"{plan.index:05d}_v{k}.png"
            write_png(out / "gt/novel_views" / view_name, to_uint8(view))
            novel_names.append(view_name)
            novel_labels.append(novel[k])
        names.append(f"frames/{name}")
        labels.append(plan.camera)
        records.append(
            {
                "index": plan.index,
                "t": plan.t,
                "yaw": plan.yaw,
                "pitch": plan.pitch,
                "camera": [float(v) for v in plan.camera.tolist()],
                "params": plan.params.as_dict(),
                "edited_params": result.edited_params.as_dict(),
                "object_pixels": int((result.mask == 0).sum()),
            }
        )
    write_video(out / "video.mp4", frames, fps=spec.fps)
    (out / "dataset.json").write_text(json.dumps(_labels_json(names, labels)))
    (out / "gt/novel_views/dataset.json").write_text(
        json.dumps(_labels_json(novel_names, novel_labels))
    )
    settings = asdict(spec)
    settings["render"] = asdict(spec.settings())
    payload = {
        "settings": settings,
        "mask_threshold": MASK_THRESHOLD,
        "identity_params": params_from_z(latent(spec.identity, Z_DIM)).as_dict(),
        "object": make_object(spec.object_kind, spec.object_seed).as_dict(),
        "novel_cameras": [[float(v) for v in c.tolist()] for c in novel],
        "frames": records,
    }
    (out / "params.json").write_text(json.dumps(payload, indent=1))
    return payload
