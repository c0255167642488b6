"""End to end: an innout generator written as an EG3D snapshot loads back identically, converts to
safetensors, and drives the command line."""

from __future__ import annotations

import copy
from pathlib import Path

import innout
import pytest
import torch
from eg3d_pickle_writer import _NEWOBJ, PERSISTENCE_VERSION, EasyDict, EG3DPickler, ref
from eg3d_small import init_kwargs, small_generator
from innout.cli import main
from innout.eg3d import camera
from innout.eg3d.checkpoint import CheckpointError

#: innout classes that EG3D pickles through its persistence decorator (same class names).
PERSISTENT = {
    "FullyConnectedLayer",
    "MappingNetwork",
    "SynthesisLayer",
    "ToRGBLayer",
    "SynthesisBlock",
    "SynthesisBlockNoUp",
    "SynthesisNetwork",
    "Generator",
    "TriPlaneGenerator",
    "SuperresolutionHybrid2X",
    "SuperresolutionHybrid4X",
    "SuperresolutionHybrid8X",
    "SuperresolutionHybrid8XDC",
}
SR_2X = "training.superresolution.SuperresolutionHybrid2X"

#: Modules EG3D pickles by import path.
PLAIN = {
    "OSGDecoder": ("training.triplane", "OSGDecoder"),
    "Sequential": ("torch.nn.modules.container", "Sequential"),
    "Softplus": ("torch.nn.modules.activation", "Softplus"),
}


class InnoutAsEG3DPickler(EG3DPickler):
    """Writes innout's modules under EG3D's names, as EG3D's training loop would write them."""

    def reducer_override(self, obj):
        if isinstance(obj, torch.nn.Module):
            name = type(obj).__name__
            if name in PERSISTENT:
                meta = {
                    "type": "class",
                    "version": PERSISTENCE_VERSION,
                    "module_src": "# the class's module source (never executed by innout)\n",
                    "class_name": name,
                    "state": obj.__getstate__(),
                }
                return (ref("torch_utils.persistence", "_reconstruct_persistent_obj"), (meta,))
            if name in PLAIN:
                return (_NEWOBJ, (ref(*PLAIN[name]),), obj.__getstate__())
        return super().reducer_override(obj)


def write_snapshot(generator, path: Path, superresolution_module: str = SR_2X) -> None:
    generator = copy.deepcopy(generator)
    generator._init_args = ()
    generator._init_kwargs = {
        k: EasyDict(v) if k in ("mapping_kwargs", "sr_kwargs") else v
        for k, v in init_kwargs(superresolution_module).items()
    }
    snapshot = {
        "G": generator,
        "D": None,
        "G_ema": generator,
        "augment_pipe": None,
        "training_set_kwargs": EasyDict(resolution=128),
    }
    with path.open("wb") as file:
        InnoutAsEG3DPickler(file, protocol=4).dump(snapshot)


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    generator = small_generator(seed=4)
    path = tmp_path_factory.mktemp("eg3d") / "network-snapshot.pkl"
    write_snapshot(generator, path)
    return generator, path


def renders(generator, batch: int = 2):
    cameras = camera.frontal_labels(batch)
    z = torch.randn(batch, generator.z_dim, generator=torch.Generator().manual_seed(0))
    ws = generator.mapping(z, cameras, 0.7)
    return generator.render(ws, cameras, seed=1)


def test_snapshot_loads_into_an_identical_generator(snapshot):
    original, path = snapshot
    loaded = innout.load_generator(path)
    assert loaded.neural_rendering_resolution == original.neural_rendering_resolution
    for key, value in original.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    expected, actual = renders(original), renders(loaded)
    for key in ("image", "image_raw", "image_depth"):
        assert torch.equal(actual[key], expected[key]), key


def test_convert_then_load_gives_the_same_images(snapshot, tmp_path, capsys):
    original, path = snapshot
    target = tmp_path / "network.safetensors"
    assert main(["convert", str(path), str(target)]) == 0
    loaded = innout.load_generator(target)
    expected, actual = renders(original), renders(loaded)
    assert torch.equal(actual["image"], expected["image"])


@pytest.mark.parametrize(
    "superresolution_module",
    [f"training.superresolution.SuperresolutionHybrid{v}" for v in ("4X", "8X", "8XDC")],
)
def test_every_superresolution_variant_round_trips(superresolution_module, tmp_path):
    original = small_generator(seed=2, resolution=8, superresolution_module=superresolution_module)
    path = tmp_path / "snapshot.pkl"
    write_snapshot(original, path, superresolution_module)
    converted = tmp_path / "network.safetensors"
    assert main(["convert", str(path), str(converted)]) == 0
    expected = renders(original, batch=1)["image"]  # 512x512 SR: one image is enough
    for loaded in (innout.load_generator(path), innout.load_generator(converted)):
        assert type(loaded.superresolution) is type(original.superresolution)
        assert torch.equal(renders(loaded, batch=1)["image"], expected)


def test_generate_command_from_a_snapshot(snapshot, tmp_path):
    _, path = snapshot
    out = tmp_path / "samples"
    assert main(["generate", "--network", str(path), "--seeds", "0-1", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "seed0000.png",
        "seed0000_depth.png",
        "seed0001.png",
        "seed0001_depth.png",
    ]


def test_missing_and_non_checkpoint_files_give_clear_errors(tmp_path, capsys):
    with pytest.raises(CheckpointError, match="not found"):
        innout.load_generator(tmp_path / "missing.pkl")
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"not a pickle at all")
    with pytest.raises(CheckpointError):
        innout.load_generator(junk)
    assert main(["generate", "--network", str(junk), "--out", str(tmp_path / "o")]) == 2
    assert "innout: error:" in capsys.readouterr().err
