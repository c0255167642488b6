"""The result of an inversion: render it (any frames, cameras, latent offsets, with or without the
object), save it to and load it from a run folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import torch

from innout import atomic
from innout.eg3d.generator import TriPlaneGenerator
from innout.invert import run_folder
from innout.invert.clip import InputError
from innout.invert.settings import InversionSettings
from innout.invert.state import FrameRender, InversionState, render_frames

#: Seed of the sampling draws of every rendered frame (the same for all: no flicker).
RENDER_SEED = 0


class InversionResult:
    """Face latents, object field and fine-tuned networks of one inverted video.

    Attributes:
        generator: the (frozen) network inverted against.
        state: InversionState (ws [T, num_ws, w_dim], object, superresolution, generator).
        cameras: [T, 25] the frames' cameras.
        method, settings: how it was obtained.
        folder: the run folder it was saved to / loaded from (None if in memory only).
    """

    def __init__(
        self,
        generator: TriPlaneGenerator,
        state: InversionState,
        cameras: torch.Tensor,
        method: str,
        settings: InversionSettings,
    ) -> None:
        self.generator = generator
        self.state = state
        self.cameras = cameras
        self.method = method
        self.settings = settings
        self.folder: Path | None = None
        self.history: dict = {}
        #: The network's name as given ("tiny", a path), "" for an in-memory generator.
        self.network_name = ""
        #: Frames per second of the source video.
        self.fps = 30.0

    @property
    def frames(self) -> int:
        return self.cameras.shape[0]

    @property
    def latents(self) -> torch.Tensor:
        """[T, num_ws, w_dim] face latents."""
        return self.state.ws.detach()

    @torch.no_grad()
    def render(
        self,
        frames: list[int] | torch.Tensor | None = None,
        *,
        latents: torch.Tensor | None = None,
        cameras: torch.Tensor | None = None,
        with_object: bool = True,
        blend_scale: torch.Tensor | None = None,
        samples_multiplier: float | None = None,
        batch: int = 4,
        superresolve: bool = True,
    ) -> Iterator[tuple[torch.Tensor, FrameRender]]:
        """Renders frames in batches; yields (frame indices [B], FrameRender).

        Args:
            frames: which frames (default all).
            latents: [T, num_ws, w_dim] face latents to use instead of the inverted ones (edits).
            cameras: [T, 25] or [1, 25] cameras instead of the frames' own (novel views).
            with_object: include the object field (In-N-Out methods).
            blend_scale: [T, R*R] per-ray factor on the object's blend weights (removal).
            samples_multiplier: default: the run's.
            superresolve: False leaves FrameRender.image None (raw outputs only).
        """
        device = self.cameras.device
        every = (
            torch.arange(self.frames, device=device)
            if frames is None
            else torch.as_tensor(frames, device=device)
        )
        ws_all = self.latents if latents is None else latents.to(device)
        multiplier = samples_multiplier or self.settings.samples_multiplier
        for start in range(0, len(every), batch):
            index = every[start : start + batch]
            if cameras is None:
                cams = self.cameras[index]
            else:
                cams = cameras.to(device)
                cams = cams.expand(len(index), -1) if cams.shape[0] == 1 else cams[index]
            yield index, render_frames(
                self.generator, self.state, ws_all[index], cams, index,
                seed=RENDER_SEED, samples_multiplier=multiplier, with_object=with_object,
                blend_scale=None if blend_scale is None else blend_scale.to(device)[index],
                superresolve=superresolve,
            )  # fmt: skip

    def save_tensors(self, folder: Path) -> list[str]:
        """Writes the result's tensors as safetensors files; returns their names."""
        written = {run_folder.LATENTS: {"ws": self.latents, "cameras": self.cameras}}
        if self.state.object is not None:
            written[run_folder.OBJECT] = self.state.object.state_dict()
            written[run_folder.SUPERRESOLUTION] = self.state.superresolution.state_dict()
        if self.state.generator is not None:
            written[run_folder.GENERATOR] = self.state.generator.state_dict()
        for name, tensors in written.items():
            run_folder.write_tensors(folder, name, tensors)
        return list(written)

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device | None = None) -> InversionResult:
        """Loads a completed run folder (the network is read from the path its manifest names)."""

        from innout.eg3d.loading import load_generator
        from innout.eg3d.networks import named_networks

        folder = Path(folder)
        manifest = run_folder.read_manifest(folder, complete=True)
        network = manifest["network"]
        if "path" not in network:
            raise InputError(f"{folder}: the run used an in-memory generator; load it with "
                             "InversionResult.load_with(generator, folder)")  # fmt: skip
        name = network["name"] if network["name"] in named_networks() else network["path"]
        generator = load_generator(name)
        return cls.load_with(generator, folder, device)

    @classmethod
    def load_with(
        cls,
        generator: TriPlaneGenerator,
        folder: str | Path,
        device: str | torch.device | None = None,
    ) -> InversionResult:
        """Loads a run folder's tensors for `generator` (each file checked against run.json's
        sha256, its tensors finite and of the shapes this generator and method give)."""
        folder = Path(folder)
        manifest = run_folder.read_manifest(folder)
        run_folder.verify_files(folder, manifest)
        settings = InversionSettings(**manifest["settings"])
        method = manifest["method"]
        device = torch.device(device or "cpu")
        generator = generator.to(device).eval().requires_grad_(False)
        frames = manifest["input"].get("frames")
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
            raise InputError(f"{folder / run_folder.MANIFEST}: input.frames is {frames!r}, "
                             "expected a frame count")  # fmt: skip
        state = InversionState(generator, method, frames, settings.object_plane_resolution,
                               settings.seed, settings.object_residual_resolution)  # fmt: skip

        def read(name: str, module: torch.nn.Module | None = None, expected=None):
            if module is not None:
                expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
            return run_folder.read_tensors(folder, name, expected)

        latents = read(run_folder.LATENTS, expected={"ws": tuple(state.ws.shape),
                                                    "cameras": (frames, 25)})  # fmt: skip
        state.ws.data.copy_(latents["ws"])
        if state.object is not None:
            state.object.load_state_dict(read(run_folder.OBJECT, state.object))
            state.superresolution.load_state_dict(
                read(run_folder.SUPERRESOLUTION, state.superresolution)
            )
        if state.generator is not None:
            state.generator.load_state_dict(read(run_folder.GENERATOR, state.generator))
        state = state.to(device).requires_grad_(False)
        result = cls(generator, state, latents["cameras"].to(device), method, settings)
        result.folder = folder
        result.network_name = manifest["network"]["name"]
        result.fps = manifest["input"]["fps"]
        history_path = folder / run_folder.HISTORY
        if history_path.is_file():
            result.history = json.loads(history_path.read_text())
        return result


def object_layer(render: FrameRender, size: int) -> torch.Tensor:
    """The object field's colour times its opacity, on black, at size x size, in [-1, 1]."""
    from innout.invert.losses import resize

    if render.object_opacity is None:
        return torch.full_like(render.image, -1.0)
    colour = (render.object_raw + 1) / 2 * render.object_opacity
    return resize(colour * 2 - 1, size)


@torch.no_grad()
def reconstruction_metrics(result: InversionResult, targets) -> dict:
    """PSNR/SSIM of the reconstruction vs the frames (output resolution), per frame and mean."""
    from innout.metrics import psnr, ssim

    per_frame_psnr, per_frame_ssim = [], []
    for index, render in result.render():
        per_frame_psnr += psnr(render.image, targets.image[index]).tolist()
        per_frame_ssim += ssim(render.image, targets.image[index]).tolist()
    return {
        "psnr": sum(per_frame_psnr) / len(per_frame_psnr),
        "ssim": sum(per_frame_ssim) / len(per_frame_ssim),
        "psnr_per_frame": per_frame_psnr,
        "ssim_per_frame": per_frame_ssim,
    }


def write_outputs(result, clip, targets, folder: Path, manifest: dict, progress: bool) -> None:
    """Tensors, history, loss curves, preview video and the completed manifest."""
    from innout.media import to_uint8, write_video
    from innout.plot import plot_histories

    files = result.save_tensors(folder)
    atomic.write_json(folder / run_folder.HISTORY, result.history)
    plot_histories(
        result.history, folder / run_folder.LOSSES, title=f"innout invert - {result.method}"
    )
    size = targets.image.shape[-1]
    panels = []
    for index, render in result.render():
        layer = object_layer(render, size)
        for k, t in enumerate(index.tolist()):
            row = torch.cat([targets.image[t], render.image[k].clamp(-1, 1), layer[k]], dim=-1)
            panels.append(to_uint8(row))
    write_video(folder / run_folder.PREVIEW, panels, fps=clip.fps)
    manifest["metrics"] = reconstruction_metrics(result, targets)
    manifest["files"] = run_folder.checksums(folder, files)
    manifest["status"] = "complete"
    run_folder.write_manifest(folder, manifest)
