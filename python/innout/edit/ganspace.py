"""GANSpace components: the principal directions of a generator's W, computed from the generator.

Härkönen et al. (GANSpace, 2020) found that the principal components of w = mapping(z) are
meaningful edits, especially when applied to a range of layers only (early layers: pose and shape;
late layers: colour and texture). innout computes them from the network itself: W of `samples`
seeded z (psi 1, conditioned on the frontal camera as EG3D's inversion is), centred, then an SVD.
A component's strength is counted in standard deviations of W along it (GANSpace's "sigma"), so
strength 2 moves as far as a typical sample's extreme.

The result is cached next to the network file (`<network>.ganspace.safetensors`), or, when that
folder is not writable (an installed package), in the user cache folder; the network file's
SHA-256 is stored with it, so a retrained or replaced network is never given stale components.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from innout.atomic import save_tensors, sha256_of
from innout.eg3d import camera

#: Defaults of the cached components.
DEFAULT_SAMPLES = 20_000
DEFAULT_COUNT = 64
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Components:
    """Principal components of W.

    Attributes:
        mean: [D] mean latent.
        vectors: [K, D] unit principal directions, by decreasing variance.
        stdev: [K] standard deviation of W along each direction.
        samples, seed: how the latents were drawn.
    """

    mean: torch.Tensor
    vectors: torch.Tensor
    stdev: torch.Tensor
    samples: int
    seed: int

    def offset(self, index: int, strength: float) -> torch.Tensor:
        """Latent step [D] along component `index` of `strength` standard deviations."""
        if not 0 <= index < self.vectors.shape[0]:
            raise IndexError(
                f"GANSpace component {index} does not exist; there are {self.vectors.shape[0]} "
                f"(0-{self.vectors.shape[0] - 1})"
            )
        return strength * self.stdev[index] * self.vectors[index]

    def explained_variance(self) -> torch.Tensor:
        """[K] share of the total variance of the computed components along each one."""
        variance = self.stdev.square()
        return variance / variance.sum()


@torch.no_grad()
def compute_components(
    generator: torch.nn.Module,
    samples: int = DEFAULT_SAMPLES,
    count: int = DEFAULT_COUNT,
    seed: int = DEFAULT_SEED,
    batch: int = 2000,
) -> Components:
    """PCA of W = mapping(z) for `samples` z ~ N(0, I) drawn from `seed`; keeps `count`."""
    if samples < 2 or count < 1:
        raise ValueError(f"need samples >= 2 and count >= 1, got {samples} and {count}")
    device = next(generator.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    latents = []
    for start in range(0, samples, batch):
        size = min(batch, samples - start)
        z = torch.randn(size, generator.z_dim, generator=rng).to(device)
        conditioning = camera.frontal_labels(size).to(device)
        latents.append(generator.mapping(z, conditioning)[:, 0].double().cpu())
    w = torch.cat(latents)
    mean = w.mean(0)
    _, singular, vt = torch.linalg.svd(w - mean, full_matrices=False)
    count = min(count, vt.shape[0])
    stdev = singular[:count] / (samples - 1) ** 0.5
    return Components(mean.float(), vt[:count].float().contiguous(), stdev.float(), samples, seed)


def user_cache_folder() -> Path:
    """$INNOUT_CACHE, else $XDG_CACHE_HOME/innout, else ~/.cache/innout."""
    if os.environ.get("INNOUT_CACHE"):
        return Path(os.environ["INNOUT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "innout"


def cache_paths(network_file: Path) -> list[Path]:
    """Where components of `network_file` are looked for, in order (next to it, user cache)."""
    name = f"{network_file.name}.ganspace.safetensors"
    return [network_file.with_name(name), user_cache_folder() / "ganspace" / name]


def save_components(components: Components, path: Path, network_sha256: str) -> None:
    """Writes components as safetensors (metadata: samples, seed, the network's SHA-256)."""
    metadata = {
        "innout_ganspace": json.dumps(
            {"samples": components.samples, "seed": components.seed, "network": network_sha256}
        )
    }
    tensors = {"mean": components.mean, "vectors": components.vectors, "stdev": components.stdev}
    save_tensors(path, tensors, metadata)
    os.chmod(path, 0o644)  # readable by all, like the network file it belongs to


def load_components(path: Path, network_sha256: str | None = None) -> Components | None:
    """Components cached at `path`; None when missing, unreadable or of another network."""
    try:
        with safe_open(str(path), framework="pt") as file:
            info = json.loads((file.metadata() or {}).get("innout_ganspace", "null"))
        tensors = load_file(str(path))
    except (OSError, ValueError, SafetensorError):
        return None
    if not isinstance(info, dict) or {"mean", "vectors", "stdev"} - tensors.keys():
        return None
    if network_sha256 is not None and info.get("network") != network_sha256:
        return None
    return Components(tensors["mean"], tensors["vectors"], tensors["stdev"],
                      int(info["samples"]), int(info["seed"]))  # fmt: skip


def components_for(
    generator: torch.nn.Module, network_file: str | os.PathLike | None, progress: bool = False
) -> Components:
    """The generator's components: cached ones when they match `network_file`, else computed
    (and cached where a folder is writable). Without a file nothing is cached."""
    if network_file is None:
        return compute_components(generator)
    network_file = Path(network_file)
    sha = sha256_of(network_file)
    for path in cache_paths(network_file):
        cached = load_components(path, sha)
        if cached is not None:
            return cached
    if progress:
        print(f"computing GANSpace components of {network_file.name} ({DEFAULT_SAMPLES} latents)")
    components = compute_components(generator)
    for path in cache_paths(network_file):
        try:
            save_components(components, path, sha)
            break
        except OSError:
            continue
    return components
