"""`innout bench quality`: the occlusion benchmark of docs/synthetic-world.md, against ground truth.

A suite is a list of synthetic occluded videos (`innout.synth`), a list of inversion methods and
one preset. For every (video, method) pair the video is inverted, then rendered four ways and
compared with the synthetic world's ground truth, frame by frame, on the super-resolved output:

- reconstruction: PSNR and SSIM against the full render (head + object), and PSNR on the face's
  and on the object's pixels (the masks) apart;
- edit fidelity: the same attribute edit for every method (`edit` += `edit_delta` along the
  network's direction) against the world's render of the edited head with the object unchanged;
- object removal: PSNR against the head-only render, inside the object mask (how much face comes
  back) and outside it (what removal must not touch). "innout" removes where its input masks
  say, "innout-auto" where its own object field is opaque; for the methods without an object
  field the reconstruction itself is compared, the baseline a removal has to beat;
- novel view: the frames' latents rendered from held-out cameras against the world's renders;
- runtime: inversion seconds per frame.

Each pair's numbers go to ``<out>/runs/<video>/<method>/quality.json`` as soon as they exist, so
an interrupted suite resumes where it stopped (a pair with that file is not run again; one
measured by an older version of these metrics is measured again from its run folder). The
report (:mod:`innout.bench.quality_report`) averages per video, then across videos.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from innout.atomic import write_json
from innout.distributed import Group
from innout.invert.settings import METHODS, PRESETS, InversionSettings, preset
from innout.provenance import provenance

#: Methods that have an object field, hence an object to remove (the default suite leaves out
#: "innout-auto", which adds a third to the time; name it in `methods` to run it).
OBJECT_METHODS = ("innout", "innout-auto")
#: Format tag of the report JSON.
REPORT_FORMAT = "innout-bench-quality/1"
#: File a finished (video, method) pair leaves in its run folder.
PAIR_FILE = "quality.json"
#: Version of the measurements: a stored pair measured by an older version is measured again from
#: its saved run folder (no new inversion).
METRICS_VERSION = 4
#: The default suite: three 4-frame videos (one object kind each) times four methods take about
#: six minutes on a 2-core CPU with the `fast` preset.
DEFAULT_IDENTITIES = (0, 1, 2)
DEFAULT_OBJECTS = ("ball", "visor", "stick")
DEFAULT_OBJECT_SEEDS = (0,)
DEFAULT_FRAMES = 4
DEFAULT_METHODS = ("w", "wplus", "pti", "innout")
#: An attribute every method's generator renders well on innout-tiny (see innout.tiny's
#: measured directions), so that edit fidelity measures the inversion, not the direction.
DEFAULT_EDIT = ("hair_color", 0.3)


class BenchmarkError(ValueError):
    """A suite that cannot be run as asked (bad method, lengths that do not pair, ...)."""


@dataclass(frozen=True)
class QualitySuite:
    """What a quality benchmark runs (recorded in its report).

    Attributes:
        identities, objects, object_seeds: the videos' identity seeds, object kinds and object
            seeds. With pairing "zip" video i takes entry i of each list (a list of one entry is
            repeated); with "product", every combination.
        frames: frames per video.
        methods: inversion methods (innout.invert.METHODS).
        preset: inversion preset ("fast" or "paper"); `overrides` change single settings.
        edit, edit_delta: the attribute edit applied to every method and to the ground truth.
        novel_views: held-out viewpoints per frame.
        network: generator ("tiny", or an EG3D .pkl / .safetensors; the videos are rendered at
            its output resolution).
    """

    identities: tuple[int, ...] = DEFAULT_IDENTITIES
    objects: tuple[str, ...] = DEFAULT_OBJECTS
    object_seeds: tuple[int, ...] = DEFAULT_OBJECT_SEEDS
    frames: int = DEFAULT_FRAMES
    methods: tuple[str, ...] = DEFAULT_METHODS
    preset: str = "fast"
    overrides: tuple[tuple[str, float | int | str], ...] = ()
    pairing: str = "zip"
    edit: str = DEFAULT_EDIT[0]
    edit_delta: float = DEFAULT_EDIT[1]
    novel_views: int = 1
    network: str = "tiny"

    def __post_init__(self) -> None:
        from innout.synth.objects import OBJECT_KINDS

        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise BenchmarkError(f"methods must be among {', '.join(METHODS)}; got "
                                 f"{', '.join(self.methods) or 'none'}")  # fmt: skip
        bad_objects = [o for o in self.objects if o not in OBJECT_KINDS]
        if bad_objects or not self.objects:
            raise BenchmarkError(f"objects must be among {', '.join(OBJECT_KINDS)}; got "
                                 f"{', '.join(self.objects) or 'none'}")  # fmt: skip
        if not self.identities or not self.object_seeds:
            raise BenchmarkError("at least one identity and one object seed are needed")
        if self.frames < 1 or self.novel_views < 1:
            raise BenchmarkError("frames and novel_views must be >= 1")
        if self.preset not in PRESETS:
            raise BenchmarkError(f"preset must be one of {', '.join(PRESETS)}, got "
                                 f"{self.preset!r}")  # fmt: skip
        if self.pairing not in ("zip", "product"):
            raise BenchmarkError(f"pairing must be 'zip' or 'product', got {self.pairing!r}")
        if self.pairing == "zip":
            lengths = {len(x) for x in (self.identities, self.objects, self.object_seeds)} - {1}
            if len(lengths) > 1:
                raise BenchmarkError(
                    "with pairing 'zip', identities, objects and object seeds must have the same "
                    "number of entries (or one); use pairing 'product' for every combination"
                )
        self.settings()  # validates the overrides

    def settings(self) -> InversionSettings:
        try:
            return preset(self.preset, **dict(self.overrides))
        except (TypeError, ValueError) as error:
            raise BenchmarkError(f"inversion settings: {error}") from error

    def videos(self) -> list[tuple[int, str, int]]:
        """(identity, object kind, object seed) of every video, in order."""
        lists = (self.identities, self.objects, self.object_seeds)
        if self.pairing == "product":
            return list(itertools.product(*lists))
        count = max(len(x) for x in lists)
        return [tuple(x[i] if len(x) > 1 else x[0] for x in lists) for i in range(count)]

    def record(self) -> dict:
        record = dataclasses.asdict(self)
        record["overrides"] = dict(self.overrides)
        record["settings"] = dataclasses.asdict(self.settings())
        return record


def video_name(identity: int, object_kind: str, object_seed: int) -> str:
    return f"id{identity}-{object_kind}-{object_seed}"


@dataclass
class FrameMetrics:
    """Per-frame numbers of one (video, method) pair; lists have one entry per frame."""

    reconstruction_psnr: list[float]
    reconstruction_psnr_face: list[float]
    reconstruction_psnr_object: list[float]
    reconstruction_ssim: list[float]
    edit_psnr: list[float]
    novel_view_psnr: list[float]
    removal_psnr_in_object: list[float] | None = None
    removal_psnr_outside_object: list[float] | None = None
    reconstruction_lpips: list[float] | None = None
    object_iou: list[float] | None = None
    extra: dict = field(default_factory=dict)


def _images(folder: Path, names: list[str]) -> torch.Tensor:
    from innout.media import image_tensor, read_image

    return torch.stack([image_tensor(read_image(folder / name)) for name in names])


def _values(tensor: torch.Tensor) -> list[float]:
    """Per-frame values as JSON-safe floats (NaN, e.g. an empty object mask, becomes None)."""
    return [None if not math.isfinite(v) else round(v, 4) for v in tensor.double().tolist()]


def _novel_views(clip_dir: Path, frames: int) -> list[tuple[torch.Tensor, list[str]]]:
    """(cameras [T, 25], file names) of each held-out view, grouped by view."""
    labels = json.loads((clip_dir / "gt/novel_views/dataset.json").read_text())["labels"]
    views: dict[str, list] = {}
    for name, label in labels:
        view = Path(name).stem.rsplit("_", 1)[1]
        views.setdefault(view, []).append((name, label))
    grouped = []
    for entries in views.values():
        if len(entries) != frames:
            raise BenchmarkError(f"{clip_dir}: every novel view needs {frames} frames")
        grouped.append((torch.tensor([label for _, label in entries]), [n for n, _ in entries]))
    return grouped


@torch.no_grad()
def evaluate_pair(result, clip, clip_dir: Path, suite: QualitySuite, lpips=None) -> tuple:
    """Metrics of one inverted video against its ground truth, and the rendered panels.

    Returns (FrameMetrics, {panel name: images [T, 3, H, W]}).
    """
    from innout.edit.render import edit_frames
    from innout.metrics import psnr, ssim

    names = [Path(name).name for name in clip.names]
    truth = clip.frames
    reconstruction = edit_frames(result)
    edited = edit_frames(result, direction=suite.edit, strength=suite.edit_delta)
    edited_truth = _images(clip_dir / "gt/edited", names)
    novel_psnr = torch.zeros(len(names), dtype=torch.float64)
    views = _novel_views(clip_dir, len(names))
    panels = {"input": truth, "reconstruction": reconstruction, "edited": edited,
              "edited (truth)": edited_truth}  # fmt: skip
    for index, (cameras, view_names) in enumerate(views):
        novel = edit_frames(result, cameras=cameras)
        novel_truth = _images(clip_dir / "gt/novel_views", view_names)
        novel_psnr += psnr(novel, novel_truth) / len(views)
        if index == 0:
            panels["novel view"], panels["novel view (truth)"] = novel, novel_truth
    object_mask = 1 - clip.masks
    metrics = FrameMetrics(
        reconstruction_psnr=_values(psnr(reconstruction, truth)),
        reconstruction_psnr_face=_values(psnr(reconstruction, truth, clip.masks)),
        reconstruction_psnr_object=_values(psnr(reconstruction, truth, object_mask)),
        reconstruction_ssim=_values(ssim(reconstruction, truth)),
        edit_psnr=_values(psnr(edited, edited_truth)),
        novel_view_psnr=_values(novel_psnr),
    )
    if lpips is not None:
        metrics.reconstruction_lpips = _values(lpips(reconstruction, truth))
    head_only = _images(clip_dir / "gt/head_only", names)
    if result.method in OBJECT_METHODS:
        # "innout" removes where its (ground-truth) input masks say, "innout-auto" where its own
        # object field is opaque: the auto variant never sees the masks.
        removed = edit_frames(
            result, remove_object=True, clip=clip if result.method == "innout" else None
        )
        panels["object removed"], panels["head only (truth)"] = removed, head_only
    else:
        # No object field: what the generator alone makes of the occluded face is the baseline
        # any removal has to beat (an object the generator cannot represent is never drawn).
        removed = reconstruction
    if result.method in OBJECT_METHODS:
        metrics.object_iou = _values(object_iou(result, object_mask))
    metrics.removal_psnr_in_object = _values(psnr(removed, head_only, object_mask))
    metrics.removal_psnr_outside_object = _values(psnr(removed, head_only, 1 - object_mask))
    return metrics, panels


@torch.no_grad()
def object_iou(result, object_mask: torch.Tensor) -> torch.Tensor:
    """Per frame [T], the intersection over union of where the object field is opaque (its
    share of the pixel > 1/2, at the neural rendering resolution) and the true object mask
    [T, 1, H, W] (1 = object; a pixel is object when most of it is). A frame with neither is
    NaN (not counted)."""
    import torch.nn.functional as F  # noqa: N812

    opacity = torch.cat([render.object_opacity for _, render in result.render(superresolve=False)])
    truth = F.interpolate(object_mask.float(), size=opacity.shape[-2:], mode="area") > 0.5
    predicted = opacity.cpu() > 0.5
    intersection = (predicted & truth).flatten(1).sum(1).double()
    union = (predicted | truth).flatten(1).sum(1).double()
    return intersection / union


def _write_panels(path: Path, panels: dict[str, torch.Tensor], fps: float) -> None:
    from innout.media import to_uint8, write_video

    columns = list(panels.values())
    frames = [to_uint8(torch.cat([c[t] for c in columns], -1)) for t in range(len(columns[0]))]
    write_video(path, frames, fps=fps)


def run_pair(
    suite: QualitySuite,
    video: tuple[int, str, int],
    method: str,
    out: Path,
    progress: bool = True,
    lpips=None,
    device: str | None = None,
    resolution: int | None = None,
) -> dict:
    """Inverts one video with one method and measures it (`resolution`: the network's output
    side, read from the network when None); the pair's record (also written to
    ``<out>/runs/<video>/<method>/quality.json``). A pair already measured there is reused."""
    from innout.invert.clip import load_clip
    from innout.invert.run import invert

    name = video_name(*video)
    clip_dir = out / "clips" / name
    run_dir = out / "runs" / name / method
    record_file = run_dir / PAIR_FILE
    if record_file.is_file():
        record = json.loads(record_file.read_text())
        if record.get("suite_key") == _pair_key(suite, video, method):
            if record.get("metrics_version") == METRICS_VERSION:
                record["reused"] = True
                return record
            return _measure_again(record, suite, clip_dir, run_dir, out, lpips, device)
    if resolution is None:
        resolution = _output_resolution(suite.network)
    make_clip(suite, video, out, resolution, progress)
    clip = load_clip(clip_dir)
    started = time.perf_counter()
    result = invert(clip_dir, network=suite.network, method=method, preset_name=suite.preset,
                    settings=suite.settings(), out=run_dir, force=True, progress=progress,
                    device=device)  # fmt: skip
    seconds = time.perf_counter() - started
    metrics, panels = evaluate_pair(result, clip, clip_dir, suite, lpips)
    video_file = out / "videos" / f"{name}-{method}.mp4"
    video_file.parent.mkdir(parents=True, exist_ok=True)
    _write_panels(video_file, panels, clip.fps)
    record = {
        "metrics_version": METRICS_VERSION,
        "video": name,
        "identity": video[0],
        "object": video[1],
        "object_seed": video[2],
        "method": method,
        "frames": len(clip),
        "seconds": round(seconds, 2),
        "seconds_per_frame": round(seconds / len(clip), 2),
        "stage_seconds": {k: round(v, 2) for k, v in result_stage_seconds(run_dir).items()},
        "per_frame": dataclasses.asdict(metrics),
        "panels": list(panels),
        "side_by_side": str(video_file.relative_to(out)),
        "suite_key": _pair_key(suite, video, method),
    }
    write_json(record_file, record, indent=2)
    record["reused"] = False
    return record


def make_clip(
    suite: QualitySuite, video: tuple[int, str, int], out: Path, resolution: int, progress: bool
) -> Path:
    """The synthetic clip of `video` in ``<out>/clips``, made unless it is already there with
    the suite's settings; its folder."""
    from innout.synth import VideoSpec, write_video_folder

    clip_dir = out / "clips" / video_name(*video)
    spec = VideoSpec(identity=video[0], object_kind=video[1], object_seed=video[2],
                     frames=suite.frames, resolution=resolution, edit=suite.edit,
                     edit_delta=suite.edit_delta, novel_views=suite.novel_views)  # fmt: skip
    if _stored_spec(clip_dir) != json.loads(json.dumps(dataclasses.asdict(spec))):
        # A clip made for other settings (frames, edit, views) is made again.
        staging = clip_dir.with_name(clip_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        write_video_folder(spec, staging, progress=progress)
        shutil.rmtree(clip_dir, ignore_errors=True)
        staging.rename(clip_dir)
    return clip_dir


def _output_resolution(network: str) -> int:
    from innout.eg3d.loading import load_generator

    return load_generator(network).img_resolution


def _stored_spec(clip_dir: Path) -> dict | None:
    """The VideoSpec a clip folder was made with (its params.json), or None."""
    try:
        return json.loads((clip_dir / "params.json").read_text())["settings"]
    except (OSError, ValueError, KeyError):
        return None


def _measure_again(record, suite, clip_dir, run_dir, out, lpips, device) -> dict:
    """Measures a stored pair again from its run folder (the inversion and its times are kept)."""
    from innout.invert.clip import load_clip
    from innout.invert.result import InversionResult

    clip = load_clip(clip_dir)
    result = InversionResult.load(run_dir, device=device)
    metrics, panels = evaluate_pair(result, clip, clip_dir, suite, lpips)
    _write_panels(out / record["side_by_side"], panels, clip.fps)
    stage_seconds = {k: round(v, 2) for k, v in result_stage_seconds(run_dir).items()}
    record.update(metrics_version=METRICS_VERSION, per_frame=dataclasses.asdict(metrics),
                  panels=list(panels), stage_seconds=stage_seconds)  # fmt: skip
    record.pop("reused", None)
    write_json(run_dir / PAIR_FILE, record, indent=2)
    record["reused"] = "measured again"
    return record


def result_stage_seconds(run_dir: Path) -> dict[str, float]:
    from innout.invert.run_folder import MANIFEST

    manifest = run_dir / MANIFEST
    if not manifest.is_file():
        return {}
    return dict(json.loads(manifest.read_text()).get("seconds", {}))


def _pair_key(suite: QualitySuite, video: tuple, method: str) -> str:
    """What a stored pair was measured with: a changed setting makes it run again."""
    record = suite.record()
    for name in ("identities", "objects", "object_seeds", "methods", "pairing"):
        record.pop(name)
    return json.dumps({"suite": record, "video": list(video), "method": method}, sort_keys=True)


def run_quality_benchmark(
    suite: QualitySuite,
    out: str | Path,
    progress: bool = True,
    lpips=None,
    device: str | None = None,
    on_pair: Callable[[dict], None] | None = None,
    group: Group | None = None,
) -> dict | None:
    """Runs every (video, method) pair of `suite` in `out` (resuming finished pairs) and returns
    the report: settings, environment, every pair's per-frame numbers and the summary.

    Under torchrun (`group`, from `innout.distributed.join` without data parallelism) the ranks
    first make the clips, then take pairs until none is left; rank 0 returns the merged report,
    the other ranks None."""
    from innout.bench.quality_report import summarize

    group = group or Group()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    resolution = _output_resolution(suite.network)
    videos = suite.videos()
    # Every clip is made once, by one rank, before any pair inverts it.
    for number in group.take("clips", len(videos)):
        make_clip(suite, videos[number], out, resolution, progress)
    group.wait_for_all("clips-made")
    work = [(video, method) for video in videos for method in suite.methods]

    def measure(number: int) -> dict:
        video, method = work[number]
        record = run_pair(suite, video, method, out, progress, lpips, device, resolution)
        return {**record, "rank": group.rank}

    pairs = group.share_work("pairs", len(work), measure, on_pair)
    if pairs is None:  # another rank merges the report
        return None
    return {
        "format": REPORT_FORMAT,
        "out": str(out.resolve()),
        "suite": suite.record(),
        "environment": provenance(),
        "ranks": group.world_size,
        "lpips": lpips is not None,
        "seconds": round(time.perf_counter() - started, 1),
        "pairs": pairs,
        "summary": summarize(pairs, suite.methods),
    }
