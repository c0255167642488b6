"""EG3D's tri-plane feature decoder, ``OSGDecoder`` (docs/eg3d.md §1.2 and §2.11 steps 2-5)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from innout.eg3d.layers import FullyConnectedLayer

#: Sigmoid output range widening from Mip-NeRF: sigmoid(x) * (1 + 2 * PAD) - PAD, so the
#: features can reach 0 and 1 exactly without infinite logits.
SIGMOID_PAD = 0.001


class OSGDecoder(torch.nn.Module):
    """Small MLP from a tri-plane feature to raw density and 32 colour features.

    ``net = Sequential(FC(n_features -> 64), Softplus(), FC(64 -> 1 + decoder_output_dim))`` with
    equalised-lr layers (lr multiplier ``options['decoder_lr_mul']``), so the state_dict keys are
    ``net.0.weight``, ``net.0.bias``, ``net.2.weight``, ``net.2.bias``.

    Args:
        n_features: input feature size (32 in EG3D).
        options: mapping with ``decoder_lr_mul`` (EG3D's TriPlaneGenerator passes the
            ``rendering_kwargs`` value, default 1) and ``decoder_output_dim`` (32).
    """

    def __init__(self, n_features: int, options: Mapping[str, Any]) -> None:
        super().__init__()
        self.hidden_dim = 64
        lr_mul = options["decoder_lr_mul"]
        self.net = torch.nn.Sequential(
            FullyConnectedLayer(n_features, self.hidden_dim, lr_multiplier=lr_mul),
            torch.nn.Softplus(),
            FullyConnectedLayer(
                self.hidden_dim, 1 + options["decoder_output_dim"], lr_multiplier=lr_mul
            ),
        )

    def forward(
        self, sampled_features: torch.Tensor, ray_directions: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Decodes features at M points.

        Args:
            sampled_features: [N, M, C] features already averaged over the three planes, or
                EG3D's per-plane [N, 3, M, C], which is averaged over dim 1 first.
            ray_directions: ignored (EG3D's decoder does not use view directions).

        Returns:
            dict with ``sigma`` [N, M, 1] (raw density, no activation) and ``rgb``
            [N, M, decoder_output_dim] (``sigmoid * 1.002 - 0.001``; the first 3 are colour).
        """
        del ray_directions
        x = sampled_features
        if x.ndim == 4:
            x = x.mean(1)
        if x.ndim != 3:
            raise ValueError(f"expected [N, M, C] or [N, 3, M, C] features, got {tuple(x.shape)}")
        n, m, c = x.shape
        x = self.net(x.reshape(n * m, c)).reshape(n, m, -1)
        rgb = torch.sigmoid(x[..., 1:]) * (1 + 2 * SIGMOID_PAD) - SIGMOID_PAD
        sigma = x[..., 0:1]
        return {"rgb": rgb, "sigma": sigma}
