"""The out-of-distribution (OOD) field of In-N-Out (docs/method.md section 3): what EG3D cannot
explain.

One tri-plane T_O [1, 3, 32, R, R] shared by every frame (initialised N(0, 1)) and a decoder D_O:
[mean tri-plane feature (32), per-frame code phi_t (32)] -> FC 64 -> softplus -> FC 34 = raw
density, 32 features (EG3D's padded sigmoid) and a blend weight b = sigmoid(last output). The
per-frame code lets the object change from frame to frame while the tri-plane holds its shape.

innout's addition: optional per-frame residual tri-planes Delta_t [T, 3, 32, r, r] at a low
resolution r, upsampled (bilinear) to R and added to T_O, so frame t is decoded from
T_O + up(Delta_t). A code entering the hidden layer can only change what the decoder makes of a
feature, not where the feature is, so a moving object would be drawn along its whole path in
every frame; the residual planes put each frame's object where that frame shows it. Because the
sum is formed before sampling, one frame's object is an ordinary tri-plane (what a scene file
stores). Zero-initialised, they leave the research model unchanged until they are trained.
"""

from __future__ import annotations

import torch

from innout import ops
from innout.eg3d.decoder import SIGMOID_PAD
from innout.eg3d.layers import FullyConnectedLayer
from innout.profiling import region

FEATURES = 32
CODE_SIZE = 32
HIDDEN = 64


class ObjectField(torch.nn.Module):
    """T_O, D_O and the per-frame codes phi [frames, 32].

    Args:
        frames: number of video frames (one code each).
        plane_resolution: side R of the object tri-plane (256 in the research code).
        residual_resolution: side r of the per-frame residual tri-planes (0: none, the research
            model).
        generator: seeds the initial planes, decoder and codes.
    """

    def __init__(
        self,
        frames: int,
        plane_resolution: int,
        generator: torch.Generator | None = None,
        residual_resolution: int = 0,
    ) -> None:
        super().__init__()
        bad_residual = residual_resolution < 0 or residual_resolution == 1
        if frames < 1 or plane_resolution < 2 or bad_residual:
            raise ValueError(
                f"ObjectField needs frames >= 1, plane_resolution >= 2 and residual_resolution "
                f"0 or >= 2, got {frames}, {plane_resolution}, {residual_resolution}"
            )
        self.planes = torch.nn.Parameter(
            torch.randn(1, 3, FEATURES, plane_resolution, plane_resolution, generator=generator)
        )
        self.codes = torch.nn.Parameter(torch.randn(frames, CODE_SIZE, generator=generator))
        self.hidden = FullyConnectedLayer(FEATURES + CODE_SIZE, HIDDEN)
        self.output = FullyConnectedLayer(HIDDEN, 1 + FEATURES + 1)
        with torch.no_grad():
            for layer in (self.hidden, self.output):
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator))
        self.residual_planes: torch.nn.Parameter | None = None
        if residual_resolution:
            shape = (frames, 3, FEATURES, residual_resolution, residual_resolution)
            self.residual_planes = torch.nn.Parameter(torch.zeros(shape))

    @property
    def frames(self) -> int:
        return self.codes.shape[0]

    def frame_planes(self, frame_index: torch.Tensor) -> torch.Tensor:
        """The tri-planes of frames `frame_index` [B]: [B, 3, 32, R, R] (T_O + up(Delta_t)), or
        T_O itself [1, 3, 32, R, R] without residual planes."""
        if self.residual_planes is None:
            return self.planes
        residual = self.residual_planes[frame_index]
        batch, _, channels, low, _ = residual.shape
        size = self.planes.shape[-1]
        upsampled = torch.nn.functional.interpolate(
            residual.reshape(batch * 3, channels, low, low),
            size=(size, size),
            mode="bilinear",
            align_corners=False,
        )
        return self.planes + upsampled.reshape(batch, 3, channels, size, size)

    def decode(
        self, features: torch.Tensor, codes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean tri-plane features [B, P, 32] and frame codes [B, 32] -> raw density [B, P],
        features [B, P, 32] in [-0.001, 1.001] and blend [B, P] in (0, 1)."""
        batch, points, _ = features.shape
        # hidden([f, c]) = W_f f + (W_c c + b): the code's part is one vector per frame, added
        # to every point's, instead of concatenating the code to every point (the same map,
        # without a [B, P, 64] copy and with half the matrix product).
        hidden = self.hidden
        weight = hidden.weight.to(features.dtype) * hidden.weight_gain
        bias = hidden.bias.to(features.dtype) * hidden.bias_gain
        per_frame = torch.addmm(
            bias.unsqueeze(0), codes.to(features.dtype), weight[:, FEATURES:].t()
        )
        x = torch.matmul(features, weight[:, :FEATURES].t()) + per_frame[:, None, :]
        x = self.output(torch.nn.functional.softplus(x).reshape(batch * points, -1))
        x = x.reshape(batch, points, -1)
        colour = torch.sigmoid(x[..., 1 : 1 + FEATURES]) * (1 + 2 * SIGMOID_PAD) - SIGMOID_PAD
        return x[..., 0], colour, torch.sigmoid(x[..., -1])

    def evaluate(
        self,
        points: torch.Tensor,
        frame_index: torch.Tensor,
        box_warp: float,
        kernels: ops.Backend | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The field at world points [B, P, 3] of frames `frame_index` [B] (see `decode`), its
        planes sampled with `kernels` (default: innout's ops)."""
        kernels = kernels or ops.backend("innout")
        features = kernels.triplane_sample(self.frame_planes(frame_index), points, box_warp)
        with region("object_decoder"):
            return self.decode(features, self.codes[frame_index])
