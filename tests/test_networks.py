"""Named networks: "tiny" resolves through the registry, other names can be added, and the loader
never needs to import the package that registered a name."""

from __future__ import annotations

import ast
from pathlib import Path

import innout
import pytest
import torch
from eg3d_small import init_kwargs, small_generator
from innout.eg3d import networks
from innout.eg3d.checkpoint import CheckpointError, generator_state, write_converted
from innout.tiny import bundle

EG3D_PACKAGE = Path(innout.__file__).parent / "eg3d"


@pytest.fixture
def registry_snapshot():
    """Restores the registry after a test that adds names."""
    saved = dict(networks._NETWORKS)
    yield
    networks._NETWORKS.clear()
    networks._NETWORKS.update(saved)


def test_tiny_is_registered_when_innout_is_imported():
    entry = networks.named_networks()[bundle.TINY_NETWORK]
    assert entry.locate() == bundle.weights_path()
    assert networks.network_file("tiny") == bundle.weights_path()


def test_a_path_that_is_not_a_name_is_taken_as_a_path(tmp_path):
    assert networks.network_file(tmp_path / "tiny") == tmp_path / "tiny"
    assert networks.network_file("./tiny") == Path("./tiny")


def test_a_registered_name_loads_its_file(tmp_path, registry_snapshot):
    original = small_generator(seed=3)
    config, tensors = generator_state(original, init_kwargs())
    path = tmp_path / "mine.safetensors"
    write_converted(path, config, tensors)
    networks.register_network("mine", lambda: path, "a test network")
    loaded = innout.load_generator("mine")
    for name, value in original.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name


def test_a_taken_name_needs_replace_and_bad_names_are_refused(tmp_path, registry_snapshot):
    with pytest.raises(ValueError, match="'tiny' is already registered"):
        networks.register_network("tiny", lambda: tmp_path / "other.safetensors")
    networks.register_network("tiny", lambda: tmp_path / "other.safetensors", replace=True)
    assert networks.network_file("tiny") == tmp_path / "other.safetensors"
    for bad in ("", "a/b", ".hidden"):
        with pytest.raises(ValueError, match="plain word"):
            networks.register_network(bad, lambda: tmp_path)


def test_a_registered_network_whose_file_is_missing_gives_a_checkpoint_error(
    tmp_path, registry_snapshot
):
    def missing() -> Path:
        raise FileNotFoundError(f"the weights of 'gone' are missing: {tmp_path / 'gone'}")

    networks.register_network("gone", missing)
    with pytest.raises(CheckpointError, match="the weights of 'gone' are missing"):
        innout.load_generator("gone")


def test_the_eg3d_package_imports_no_named_network_package():
    for source in EG3D_PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            assert not any(name.startswith("innout.tiny") for name in names), source.name
