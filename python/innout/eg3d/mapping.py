"""StyleGAN2 mapping network z, c -> w as EG3D uses it (docs/eg3d.md §1.2 and §2.2)."""

from __future__ import annotations

import numpy as np
import torch

from innout.eg3d.layers import FullyConnectedLayer, normalize_2nd_moment


class MappingNetwork(torch.nn.Module):
    """Maps a latent ``z`` [N, z_dim] and a label ``c`` [N, c_dim] to ``ws`` [N, num_ws, w_dim].

    Layout: ``embed`` (FC c_dim -> embed_features, only if c_dim > 0), then ``fc0`` ...
    ``fc{num_layers-1}`` (``activation`` with learning-rate multiplier ``lr_multiplier``), and the
    buffer ``w_avg`` [w_dim] (the running mean of w that truncation pulls towards).
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int | None,
        num_layers: int = 8,
        embed_features: int | None = None,
        layer_features: int | None = None,
        activation: str = "lrelu",
        lr_multiplier: float = 0.01,
        w_avg_beta: float | None = 0.998,
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta

        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]

        if c_dim > 0:
            # Linear, lr multiplier 1: the label embedding trains at the normal rate.
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(
                features[idx],
                features[idx + 1],
                activation=activation,
                lr_multiplier=lr_multiplier,
            )
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: torch.Tensor | None,
        c: torch.Tensor | None,
        truncation_psi: float = 1,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """Maps (z, c) to w.

        Args:
            z: [N, z_dim] latents (ignored when z_dim == 0).
            c: [N, c_dim] labels (ignored when c_dim == 0). The embedding is applied even to an
                all-zero label, so its bias still contributes.
            truncation_psi: 1 = no truncation; otherwise ``w <- lerp(w_avg, w, psi)``.
            truncation_cutoff: truncate only ``ws[:, :cutoff]``; None = all of them.
            update_emas: update ``w_avg`` with this batch's mean w (training only).

        Returns:
            [N, num_ws, w_dim] (or [N, w_dim] when num_ws is None), float32.
        """
        x = None
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"z must be [N, {self.z_dim}]")
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                raise ValueError(f"c must be [N, {self.c_dim}]")
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y

        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)

        if update_emas and self.w_avg_beta is not None:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])

        if truncation_psi != 1:
            if self.w_avg_beta is None:
                raise ValueError("truncation needs w_avg, but this network has w_avg_beta=None")
            # torch.lerp, not w_avg + psi*(w - w_avg): lerp switches formula at weight 0.5, and
            # matching it keeps the last ulp equal to EG3D's.
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x

    def extra_repr(self) -> str:
        return (
            f"z_dim={self.z_dim:d}, c_dim={self.c_dim:d}, w_dim={self.w_dim:d}, "
            f"num_ws={self.num_ws}"
        )


def latent(seed: int, z_dim: int) -> torch.Tensor:
    """[1, z_dim] z of a seed, drawn as EG3D's scripts draw it (numpy RandomState, float64)."""
    return torch.from_numpy(np.random.RandomState(seed).randn(1, z_dim)).float()
