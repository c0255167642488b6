"""The out-of-distribution (OOD) field of In-N-Out (docs/method.md section 3): what EG3D cannot
explain.

One tri-plane T_O [1, 3, 32, R, R] shared by every frame (initialised N(0, 1)) and a decoder D_O:
[mean tri-plane feature (32), per-frame code phi_t (32)] -> FC 64 -> softplus -> FC 34 = raw
density, 32 features (EG3D's padded sigmoid) and a blend weight b = sigmoid(last output). The
per-frame code lets the object move or change from frame to frame while the tri-plane holds its
shape.
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
        generator: seeds the initial planes, decoder and codes.
    """

    def __init__(
        self, frames: int, plane_resolution: int, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        if frames < 1 or plane_resolution < 2:
            raise ValueError(
                f"ObjectField needs frames >= 1 and plane_resolution >= 2, got {frames}, "
                f"{plane_resolution}"
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

    @property
    def frames(self) -> int:
        return self.codes.shape[0]

    def decode(
        self, features: torch.Tensor, codes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean tri-plane features [B, P, 32] and frame codes [B, 32] -> raw density [B, P],
        features [B, P, 32] in [-0.001, 1.001] and blend [B, P] in (0, 1)."""
        batch, points, _ = features.shape
        x = torch.cat([features, codes[:, None, :].expand(batch, points, CODE_SIZE)], dim=-1)
        x = self.hidden(x.reshape(batch * points, -1))
        x = self.output(torch.nn.functional.softplus(x)).reshape(batch, points, -1)
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
        features = kernels.triplane_sample(self.planes, points, box_warp)
        with region("object_decoder"):
            return self.decode(features, self.codes[frame_index])
