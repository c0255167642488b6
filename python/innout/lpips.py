"""LPIPS (Zhang et al., CVPR 2018), VGG variant, without torchvision and without downloads.

LPIPS-VGG compares the activations of VGG-16 after relu1_2, relu2_2, relu3_3, relu4_3 and
relu5_3: each is unit-normalised over channels, the squared difference is weighted per channel
by a learned non-negative linear head, averaged over positions and summed over the five taps.
Inputs in [-1, 1] are first shifted and scaled as LPIPS does (`SHIFT`, `SCALE`).

The weights are not shipped (they are not ours to redistribute) and never downloaded. Two local
files are needed, found in this order:

* the VGG-16 backbone: `vgg` argument, else ``$INNOUT_LPIPS_VGG``, else torchvision's cache
  ``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth`` (default ``~/.cache/torch``). Format: the
  torchvision ``vgg16`` state dict (keys ``features.{0,2,5,...,28}.{weight,bias}``; other keys
  are ignored), as a ``.pth`` (read with ``weights_only=True``) or ``.safetensors`` file.
* the linear heads: `lin` argument, else ``$INNOUT_LPIPS_LIN``, else the ``vgg.pth`` that the
  ``lpips`` PyPI package ships (``lpips/weights/v0.1/vgg.pth``). Format: keys
  ``lin{0..4}.model.1.weight`` of shapes [1, C, 1, 1], C = 64, 128, 256, 512, 512.

`perceptual_loss` returns LPIPS when both are found and otherwise, after saying so once, the
documented fallback ``1 - SSIM`` (structure and contrast, the part of LPIPS that L2 misses).
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812

from innout.metrics import ssim
from innout.profiling import region

#: VGG-16's convolutions: (torchvision index of the conv in `features`, in, out); "M" = max-pool.
VGG16_LAYERS: tuple = (
    (0, 3, 64), (2, 64, 64), "M",
    (5, 64, 128), (7, 128, 128), "M",
    (10, 128, 256), (12, 256, 256), (14, 256, 256), "M",
    (17, 256, 512), (19, 512, 512), (21, 512, 512), "M",
    (24, 512, 512), (26, 512, 512), (28, 512, 512),
)  # fmt: skip
#: torchvision indices of the convs whose ReLU outputs LPIPS compares.
TAPS = (2, 7, 14, 21, 28)
TAP_CHANNELS = (64, 128, 256, 512, 512)
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
VGG_FILE = "vgg16-397923af.pth"


class LPIPSWeightsError(ValueError):
    """A weight file exists but is not in the expected format."""


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same message
        raise LPIPSWeightsError(f"{path}: not a readable PyTorch state dict ({error})") from error
    if not isinstance(data, dict):
        raise LPIPSWeightsError(f"{path}: expected a state dict (name -> tensor), got "
                                f"{type(data).__name__}")  # fmt: skip
    return data


def _take(tensors: dict, key: str, shape: tuple[int, ...], path: Path) -> torch.Tensor:
    if key not in tensors:
        raise LPIPSWeightsError(f"{path}: missing tensor {key!r}")
    value = tensors[key]
    if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise LPIPSWeightsError(f"{path}: {key} must have shape {shape}, got {got}")
    return value.float()


class LPIPS(torch.nn.Module):
    """LPIPS-VGG distance per image pair: `forward(a, b)` -> [N] for images in [-1, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = torch.nn.ModuleList(
            torch.nn.Conv2d(c_in, c_out, 3, padding=1)
            for layer in VGG16_LAYERS
            if layer != "M"
            for _, c_in, c_out in [layer]
        )
        self.heads = torch.nn.ParameterList(
            torch.nn.Parameter(torch.zeros(1, c, 1, 1)) for c in TAP_CHANNELS
        )
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)

    @classmethod
    def from_files(cls, vgg: str | os.PathLike, lin: str | os.PathLike) -> LPIPS:
        """Loads the VGG-16 backbone and the linear heads (formats in the module docstring)."""
        model = cls()
        vgg, lin = Path(vgg), Path(lin)
        backbone = _read_tensors(vgg)
        conv_index = 0
        for layer in VGG16_LAYERS:
            if layer == "M":
                continue
            index, c_in, c_out = layer
            conv = model.convs[conv_index]
            conv.weight.data.copy_(
                _take(backbone, f"features.{index}.weight", (c_out, c_in, 3, 3), vgg)
            )
            conv.bias.data.copy_(_take(backbone, f"features.{index}.bias", (c_out,), vgg))
            conv_index += 1
        heads = _read_tensors(lin)
        for k, channels in enumerate(TAP_CHANNELS):
            weight = _take(heads, f"lin{k}.model.1.weight", (1, channels, 1, 1), lin)
            if (weight < 0).any():
                raise LPIPSWeightsError(f"{lin}: lin{k} has negative weights (LPIPS clamps its "
                                        "heads to >= 0; is this an LPIPS file?)")  # fmt: skip
            model.heads[k].data.copy_(weight)
        return model

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised activations at the five taps of images [N, 3, H, W] in [-1, 1]."""
        x = (image - self.shift) / self.scale
        taps = []
        conv_index = 0
        for layer in VGG16_LAYERS:
            if layer == "M":
                x = F.max_pool2d(x, 2)
                continue
            x = F.relu(self.convs[conv_index](x))
            conv_index += 1
            if layer[0] in TAPS:
                norm = x.square().sum(1, keepdim=True).sqrt()
                taps.append(x / (norm + 1e-10))
        return taps

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape != b.shape or a.dim() != 4 or a.shape[1] != 3:
            raise ValueError(f"LPIPS: expected two [N, 3, H, W] images of the same shape, got "
                             f"{tuple(a.shape)} and {tuple(b.shape)}")  # fmt: skip
        distance = a.new_zeros(a.shape[0])
        for head, fa, fb in zip(self.heads, self.features(a), self.features(b)):
            distance = distance + ((fa - fb).square() * head).sum(1).mean((1, 2))
        return distance


def default_vgg_path() -> Path | None:
    """The VGG-16 file found by the search order of the module docstring, or None."""
    if os.environ.get("INNOUT_LPIPS_VGG"):
        return Path(os.environ["INNOUT_LPIPS_VGG"])
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    candidate = torch_home / "hub" / "checkpoints" / VGG_FILE
    return candidate if candidate.is_file() else None


def default_lin_path() -> Path | None:
    """The linear-head file found by the search order of the module docstring, or None."""
    if os.environ.get("INNOUT_LPIPS_LIN"):
        return Path(os.environ["INNOUT_LPIPS_LIN"])
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "weights" / "v0.1" / "vgg.pth"
        if candidate.is_file():
            return candidate
    return None


_WARNED = False


class PerceptualLoss(torch.nn.Module):
    """LPIPS-VGG when its weights are available, else ``1 - SSIM``; per image [N].

    Args:
        vgg, lin: weight files (default: the search order of the module docstring).
        required: raise instead of falling back when the weights are missing.
    """

    def __init__(
        self,
        vgg: str | os.PathLike | None = None,
        lin: str | os.PathLike | None = None,
        required: bool = False,
    ) -> None:
        super().__init__()
        global _WARNED
        vgg_path = Path(vgg) if vgg is not None else default_vgg_path()
        lin_path = Path(lin) if lin is not None else default_lin_path()
        missing = [str(p) for p in (vgg_path, lin_path) if p is not None and not p.is_file()]
        if missing:
            raise FileNotFoundError(f"LPIPS weight file(s) not found: {', '.join(missing)}")
        self.lpips: LPIPS | None = None
        if vgg_path is not None and lin_path is not None:
            self.lpips = LPIPS.from_files(vgg_path, lin_path)
            self.name = "lpips-vgg"
        else:
            absent = " and ".join(
                what
                for what, path in (("VGG-16 backbone", vgg_path), ("linear heads", lin_path))
                if path is None
            )
            if required:
                raise FileNotFoundError(
                    f"LPIPS needs local weights; the {absent} were not found (see innout.lpips)"
                )
            if not _WARNED:
                warnings.warn(
                    f"LPIPS weights not found (the {absent}); the perceptual loss falls back to "
                    "1 - SSIM. Set INNOUT_LPIPS_VGG / INNOUT_LPIPS_LIN (see innout.lpips).",
                    stacklevel=2,
                )
                _WARNED = True
            self.name = "1-ssim"

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        with region("perceptual_loss"):
            if self.lpips is not None:
                return self.lpips(a, b)
            return 1 - ssim(a, b)
