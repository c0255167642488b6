"""Everything an inversion optimises, as one module (its state_dict is the checkpoint), and the
way it is rendered."""

from __future__ import annotations

import copy
import dataclasses

import torch

from innout.eg3d import camera
from innout.eg3d.generator import TriPlaneGenerator
from innout.invert.composite import CompositeRays, render_composite
from innout.invert.object_field import ObjectField
from innout.profiling import region

#: w_t = w_shared + RESIDUAL * r_t is the research parameterisation (docs/method.md 3.2 step 1).
COMPOSITE_METHODS = ("innout", "innout-auto")


class InversionState(torch.nn.Module):
    """The optimised tensors of one run.

    * `w_shared` [1, L, w_dim] and `residuals` [T, L, w_dim] (L = 1 for method "w", num_ws
      otherwise): step 1's parameterisation; `ws` [T, num_ws, w_dim] the frames' face latents
      (set from them after step 1, fine-tuned in step 2).
    * `object` (ObjectField) and `superresolution` (a copy of the generator's, fine-tuned in
      step 3) for the In-N-Out methods; `generator` (a copy, fine-tuned) for "pti".
    """

    def __init__(
        self,
        generator: TriPlaneGenerator,
        method: str,
        frames: int,
        object_plane_resolution: int,
        seed: int,
        object_residual_resolution: int = 0,
    ) -> None:
        super().__init__()
        num_ws = generator.backbone.num_ws
        w_dim = generator.w_dim
        layers = 1 if method == "w" else num_ws
        self.method = method
        self.num_ws = num_ws
        self.w_shared = torch.nn.Parameter(torch.zeros(1, layers, w_dim))
        self.residuals = torch.nn.Parameter(torch.zeros(frames, layers, w_dim))
        self.ws = torch.nn.Parameter(torch.zeros(frames, num_ws, w_dim))
        self.object: ObjectField | None = None
        self.superresolution: torch.nn.Module | None = None
        self.generator: TriPlaneGenerator | None = None
        if method in COMPOSITE_METHODS:
            resolution = object_plane_resolution or generator.backbone.synthesis.img_resolution
            seeded = torch.Generator().manual_seed(seed + 17)
            self.object = ObjectField(
                frames, resolution, generator=seeded, residual_resolution=object_residual_resolution
            )
            self.superresolution = copy.deepcopy(generator.superresolution)
        if method == "pti":
            self.generator = copy.deepcopy(generator)

    def step1_latents(self, residual_scale: float, index: torch.Tensor) -> torch.Tensor:
        """w_t = w_shared + residual_scale * r_t for frames `index`, [B, num_ws, w_dim]."""
        ws = self.w_shared + residual_scale * self.residuals[index]
        return ws.expand(-1, self.num_ws, -1) if ws.shape[1] == 1 else ws


@dataclasses.dataclass
class FrameRender:
    """A rendered batch of frames: image [B, 3, H, W] (super-resolved), image_raw [B, 3, R, R],
    features [B, 32, R, R], depth [B, 1, R, R]; for the In-N-Out methods also object_opacity
    [B, 1, R, R] (the object's share of each pixel), object_raw [B, 3, R, R] (the object field
    alone) and blend rays (see CompositeRays)."""

    image: torch.Tensor | None
    image_raw: torch.Tensor
    features: torch.Tensor
    depth: torch.Tensor
    object_opacity: torch.Tensor | None = None
    object_raw: torch.Tensor | None = None
    rays: CompositeRays | None = None


def superresolution_of(generator: TriPlaneGenerator, state: InversionState) -> torch.nn.Module:
    """The super-resolution a run renders with: its fine-tuned copy (In-N-Out), else the face
    generator's (the PTI-tuned one for "pti")."""
    if state.superresolution is not None:
        return state.superresolution
    face = state.generator if state.generator is not None else generator
    return face.superresolution


def _image(values: torch.Tensor, resolution: int) -> torch.Tensor:
    """[B, R*R, C] -> [B, C, R, R]."""
    return values.permute(0, 2, 1).reshape(values.shape[0], -1, resolution, resolution)


def render_frames(
    generator: TriPlaneGenerator,
    state: InversionState,
    ws: torch.Tensor,
    cameras: torch.Tensor,
    index: torch.Tensor,
    *,
    samples_multiplier: float = 1.0,
    torch_generator: torch.Generator | list[torch.Generator] | None = None,
    seed: int | None = None,
    with_object: bool = True,
    blend_scale: torch.Tensor | None = None,
    superresolution: torch.nn.Module | None = None,
    chunk_rays: int | None = None,
    resolution: int = 0,
    backend: str = "innout",
    superresolve: bool = True,
    planes: torch.Tensor | None = None,
) -> FrameRender:
    """Renders latents ws [B, num_ws, w_dim] from cameras [B, 25] as frames `index` [B].

    The face field is the run's fine-tuned generator for "pti", else `generator`; the object field
    is added for the In-N-Out methods unless `with_object` is False. Draws come from
    `torch_generator`, or from a generator seeded with `seed` (the same for every frame: no
    flicker), or are deterministic when both are None; a list holds one generator per frame.
    `resolution` is the neural rendering resolution (0: the generator's); the super-resolution
    resizes other sizes to its input.
    `planes` are the face tri-planes of `ws` when the caller already has them (a frozen face).
    """
    face = state.generator if state.generator is not None else generator
    settings = dataclasses.replace(
        face.render_settings(),
        samples_multiplier=samples_multiplier,
        chunk_rays=chunk_rays,
        deterministic=torch_generator is None and seed is None,
        backend=backend,
    )
    if torch_generator is None and seed is not None:
        torch_generator = torch.Generator(device=ws.device).manual_seed(seed)
    resolution = resolution or face.neural_rendering_resolution
    origins, directions = camera.pixel_rays(cameras.to(ws.dtype), resolution)
    if planes is None:
        with region("face_planes"):
            planes = face.planes(ws, noise_mode="const")
    field = state.object if with_object else None
    rays = render_composite(
        planes,
        face.decoder,
        field,
        index,
        origins,
        directions,
        settings,
        blend_scale=blend_scale if field is not None else None,
        generator=torch_generator,
    )
    features = _image(rays.features, resolution)
    rgb = features[:, :3]
    image = None
    if superresolve:
        sr = superresolution or superresolution_of(generator, state)
        # A copy of the raw image goes in: EG3D's 2X/4X SR adds into its rgb input in place.
        with region("superresolution"):
            image = sr(rgb.clone(), features, ws, noise_mode="none")
    out = FrameRender(
        image=image,
        image_raw=rgb,
        features=features,
        depth=rays.depth.reshape(-1, 1, resolution, resolution),
        rays=rays,
    )
    if field is not None:
        out.object_opacity = rays.object_opacity.reshape(-1, 1, resolution, resolution)
        out.object_raw = _image(rays.object_features, resolution)[:, :3]
    return out
