"""Safe import of EG3D snapshot pickles: format, round trip, refusal of anything executable."""

from __future__ import annotations

import copyreg
import hashlib
import io
import json
import os
import pickle
import struct
from collections import OrderedDict
from pathlib import Path

import eg3d_pickle_writer as w
import pytest
import torch
from eg3d_pickle_writer import Call, NewObj, ref
from innout.eg3d.checkpoint import (
    CONFIG_METADATA_KEY,
    SUPPORTED_SUPERRESOLUTION_MODULES,
    CheckpointError,
    RecordedObject,
    UnsafeCheckpointError,
    build_generator,
    convert_checkpoint,
    load_records,
    read_checkpoint,
    read_converted,
    recorded_tree_to_state,
    write_converted,
)
from innout.eg3d.pickle_reader import restricted_load

SR_2X = "training.superresolution.SuperresolutionHybrid2X"
REGISTRY = {"TriPlaneGenerator": w.make_generator}


@pytest.fixture(scope="module")
def snapshot() -> dict:
    return w.make_snapshot(seed=1)


@pytest.fixture(scope="module")
def snapshot_bytes(snapshot: dict) -> bytes:
    return w.dumps(snapshot)


@pytest.fixture
def snapshot_pkl(tmp_path: Path, snapshot_bytes: bytes) -> Path:
    path = tmp_path / "network-snapshot-000000.pkl"
    path.write_bytes(snapshot_bytes)
    return path


# --------------------------------------------------------------------------------------------
# The writer produces EG3D's format


def test_writer_emits_exactly_the_official_globals(snapshot_bytes: bytes) -> None:
    assert w.pickle_globals(snapshot_bytes) == w.OFFICIAL_GLOBALS
    assert w.storage_stream_globals(snapshot_bytes) == {"torch.FloatStorage"}
    assert snapshot_bytes[:2] == b"\x80\x04"  # protocol 4, like pickle.dump on Python 3.8+
    # The module source is stored once per module (the pickle memo de-duplicates it).
    assert snapshot_bytes.count(w.SRC_NETWORKS.encode()) == 1


def test_writer_with_augment_pipe_adds_no_global() -> None:
    data = w.dumps(w.make_snapshot(augment=True))
    assert w.pickle_globals(data) == w.OFFICIAL_GLOBALS


# --------------------------------------------------------------------------------------------
# Reading and round trip


def test_read_checkpoint_records_without_instantiating(snapshot_pkl: Path) -> None:
    records = load_records(snapshot_pkl)
    assert list(records) == ["training_set_kwargs", "G", "D", "G_ema", "augment_pipe"]
    assert records["augment_pipe"] is None
    assert records["D"].class_name == "DualDiscriminator"
    rec = read_checkpoint(snapshot_pkl)
    assert isinstance(rec, RecordedObject) and rec.kind == "persistent"
    assert rec.class_name == "TriPlaneGenerator"
    assert rec.module_src_sha256 == hashlib.sha256(w.SRC_TRIPLANE.encode()).hexdigest()
    assert rec.module_src_len == len(w.SRC_TRIPLANE)
    decoder = rec.state["_modules"]["decoder"]
    assert isinstance(decoder, RecordedObject) and decoder.kind == "plain"
    assert decoder.class_name == "training.triplane.OSGDecoder"
    net = decoder.state["_modules"]["net"]
    assert net.class_name == "torch.nn.modules.container.Sequential"
    assert isinstance(net.state["_modules"]["0"], RecordedObject)  # not a torch module
    assert rec.init_kwargs["mapping_kwargs"] == {"num_layers": 2}


def test_round_trip_tensors_and_config(snapshot: dict, snapshot_pkl: Path, tmp_path: Path) -> None:
    reference = snapshot["G_ema"].state_dict()
    config, tensors = recorded_tree_to_state(read_checkpoint(snapshot_pkl))
    # Same names, same order as Module.state_dict(), same values; 0-d tensors stay 0-d; the
    # non-persistent buffer stays out.
    assert list(tensors) == list(reference)
    for name, tensor in reference.items():
        assert torch.equal(tensors[name], tensor) and tensors[name].dtype == tensor.dtype, name
    assert tensors["backbone.synthesis.b4.conv1.noise_strength"].shape == ()
    assert "backbone.synthesis.b4.scratch" not in tensors
    assert "dataset_label_std" in tensors

    assert config["class_name"] == "TriPlaneGenerator"
    assert config["neural_rendering_resolution"] == 128  # the pickled attribute, not the init 64
    assert config["rendering_kwargs"] == w.ffhq_rendering_kwargs()
    assert config["superresolution_module"] == SUPPORTED_SUPERRESOLUTION_MODULES[0]
    assert config["init_kwargs"]["sr_kwargs"]["channel_max"] == 8
    assert config["attributes"]["c_dim"] == 25
    layer = config["modules"]["backbone.synthesis.b4.conv1"]
    assert layer["class_name"] == "SynthesisLayer"
    assert layer["attributes"]["act_gain"] == pytest.approx(2**0.5)  # numpy scalar -> float
    renderer = config["modules"]["renderer"]["attributes"]
    assert renderer["plane_axes"]["__tensor__"][0] == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    json.dumps(config)  # JSON-able

    out = tmp_path / "g.safetensors"
    assert convert_checkpoint(snapshot_pkl, out) == out
    config2, tensors2 = read_converted(out)
    assert config2 == config
    assert list(tensors2) == list(tensors)
    assert all(torch.equal(tensors2[k], tensors[k]) for k in tensors)


def test_build_generator_from_converted(snapshot: dict, snapshot_pkl: Path, tmp_path: Path) -> None:
    out = convert_checkpoint(snapshot_pkl, tmp_path / "g.safetensors")
    model = build_generator(*read_converted(out), REGISTRY)
    assert not model.training
    assert model.neural_rendering_resolution == 128
    assert model.rendering_kwargs == w.ffhq_rendering_kwargs()
    reference = snapshot["G_ema"].state_dict()
    got = model.state_dict()
    assert list(got) == list(reference)
    assert all(torch.equal(got[k], reference[k]) for k in reference)


def test_other_keys_and_2x_module(tmp_path: Path) -> None:
    path = tmp_path / "s.pkl"
    path.write_bytes(w.dumps(w.make_snapshot(sr_module=SR_2X, neural_rendering_resolution=64)))
    config, tensors = recorded_tree_to_state(read_checkpoint(path, key="G"))
    assert config["neural_rendering_resolution"] == 64
    assert "superresolution.resample_filter" in tensors
    model = build_generator(config, tensors, REGISTRY)
    assert type(model.superresolution).__name__ == "SuperresolutionHybrid2X"


def test_numpy2_scalar_name_is_accepted(tmp_path: Path) -> None:
    # A snapshot written under numpy >= 2 names the scalar function numpy._core.multiarray.
    path = tmp_path / "np2.pkl"
    path.write_bytes(w.dumps(w.make_snapshot(), numpy_module="numpy._core.multiarray"))
    config, _ = recorded_tree_to_state(read_checkpoint(path))
    assert config["modules"]["decoder.net.0"]["attributes"]["weight_gain"] == pytest.approx(0.5)


# --------------------------------------------------------------------------------------------
# Malicious corpus: each payload would create `marker` if anything were executed.


def _legacy_stream(main_pickle: bytes, data: bytes = b"", keys: tuple = ("0",)) -> bytes:
    """A legacy torch.save stream with a custom main pickle (for the storage-stream cases)."""
    header = (
        pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
        + pickle.dumps(1001, protocol=2)
        + pickle.dumps(
            {"protocol_version": 1001, "little_endian": True, "type_sizes": {}}, protocol=2
        )
    )
    return header + main_pickle + pickle.dumps(list(keys), protocol=2) + data


def _storage_main(numel: int) -> bytes:
    """The main pickle of a storage stream: persistent id ('storage', FloatStorage, '0', ...)."""
    return (
        b"\x80\x02(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000"
        b"X\x03\x00\x00\x00cpuJ" + struct.pack("<i", numel) + b"Ntq\x00Q."
    )


def _float_storage(values: list[float], declared: int | None = None) -> bytes:
    """A complete legacy storage stream holding float32 `values`."""
    numel = len(values) if declared is None else declared
    data = struct.pack("<q", numel) + struct.pack(f"<{len(values)}f", *values)
    return _legacy_stream(_storage_main(numel), data)


def _load_from_bytes(blob: bytes) -> Call:
    return Call(ref("torch.storage", "_load_from_bytes"), (blob,))


def _os_system_pickle(command: str) -> bytes:
    """Protocol-2 pickle of os.system(command), written by hand."""
    text = command.encode()
    return (
        b"\x80\x02cos\nsystem\nq\x00X" + struct.pack("<I", len(text)) + text
        + b"q\x01\x85q\x02Rq\x03."
    )  # fmt: skip


def _shell(marker: Path) -> str:
    return f"touch {marker}"


def _py(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('pwned')"


def _tensor_call(storage: object, hooks: object = None) -> Call:
    return Call(
        ref("torch._utils", "_rebuild_tensor_v2"),
        (storage, 0, (1,), (1,), False, OrderedDict() if hooks is None else hooks),
    )


def _meta(class_name: str, src: str) -> dict:
    return {"type": "class", "version": 6, "module_src": src, "class_name": class_name,
            "state": {"_parameters": {}, "_buffers": {}, "_modules": {}}}  # fmt: skip


def _persistent(class_name: str, src: str) -> Call:
    return Call(
        ref("torch_utils.persistence", "_reconstruct_persistent_obj"), (_meta(class_name, src),)
    )


MALICIOUS = {
    "os.system": lambda m: Call(ref("os", "system"), (_shell(m),)),
    "posix.system": lambda m: Call(ref("posix", "system"), (_shell(m),)),
    "builtins.eval": lambda m: Call(ref("builtins", "eval"), (_py(m),)),
    "builtins.exec": lambda m: Call(ref("builtins", "exec"), (_py(m),)),
    "subprocess.Popen": lambda m: Call(ref("subprocess", "Popen"), (["touch", str(m)],)),
    "importlib.import_module": lambda m: Call(ref("importlib", "import_module"), ("os",)),
    "builtins.getattr": lambda m: Call(
        Call(ref("builtins", "getattr"), (ref("os", "system"), "__call__")), (_shell(m),)
    ),
    "copyreg._reconstructor": lambda m: Call(
        ref("copyreg", "_reconstructor"), (ref("os", "system"), object, None)
    ),
    "torch.load": lambda m: Call(ref("torch", "load"), (str(m),)),
    "torch.serialization.load": lambda m: Call(ref("torch.serialization", "load"), (str(m),)),
    # A global nested in the arguments of an allowed tensor rebuild.
    "os.system (in a tensor rebuild)": lambda m: {
        "G_ema": _tensor_call(Call(ref("os", "system"), (_shell(m),)))
    },
    # A global inside the legacy torch.save stream of a storage.
    "os.system (in a storage stream)": lambda m: _load_from_bytes(
        _legacy_stream(_os_system_pickle(_shell(m)))
    ),
    "torch.UntypedStorage": lambda m: _load_from_bytes(
        _legacy_stream(b"\x80\x02ctorch\nUntypedStorage\nq\x00.")
    ),
    # Attribute traversal through an allowed name.
    "torch._utils._rebuild_tensor_v2.__globals__": lambda m: Call(
        ref("torch._utils", "_rebuild_tensor_v2.__globals__"), ()
    ),
    # Persistent objects: a class name EG3D does not have; an unknown meta type.
    "persistent class 'Evil'": lambda m: _persistent("Evil", _py(m)),
    "persistent object of type 'function'": lambda m: Call(
        ref("torch_utils.persistence", "_reconstruct_persistent_obj"),
        ({**_meta("Generator", _py(m)), "type": "function"},),
    ),
    "numpy.dtype('O')": lambda m: Call(ref("numpy", "dtype"), ("O", False, True)),
    "arguments to training.triplane.OSGDecoder": lambda m: NewObj(
        ref("training.triplane", "OSGDecoder"), (_shell(m),)
    ),
}


@pytest.mark.parametrize("name", sorted(MALICIOUS))
def test_malicious_global_is_refused(name: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = MALICIOUS[name](marker)
    path = tmp_path / "evil.pkl"
    path.write_bytes(w.dumps(payload if isinstance(payload, dict) else {"G_ema": payload}))
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    expected = name.split(" (in")[0]
    assert expected in str(info.value)
    assert isinstance(info.value, UnsafeCheckpointError), str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["os.system", "builtins.exec"])
def test_corpus_is_live_under_plain_pickle(name: str, tmp_path: Path) -> None:
    """Control: an unrestricted pickle.loads does run the payloads, so the refusals matter."""
    marker = tmp_path / "pwned"
    pickle.loads(w.dumps({"G_ema": MALICIOUS[name](marker)}))
    assert marker.exists()


def test_refusal_message_format(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(w.dumps({"G_ema": MALICIOUS["os.system"](marker)}))
    with pytest.raises(UnsafeCheckpointError, match=r"refusing global os\.system"):
        read_checkpoint(path)


def test_non_empty_backward_hooks_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    storage = _load_from_bytes(_float_storage([1.0, 2.0]))
    path = tmp_path / "hooks.pkl"
    path.write_bytes(w.dumps({"G_ema": _tensor_call(storage, OrderedDict([(0, _shell(marker))]))}))
    with pytest.raises(UnsafeCheckpointError, match="non-empty backward hooks"):
        read_checkpoint(path)
    # The same stream with empty hooks decodes to a real tensor.
    path.write_bytes(w.dumps({"t": _tensor_call(storage)}))
    assert torch.equal(load_records(path)["t"], torch.tensor([1.0]))
    assert not marker.exists()


def test_tensor_out_of_storage_bounds(tmp_path: Path) -> None:
    big = Call(
        ref("torch._utils", "_rebuild_tensor_v2"),
        (_load_from_bytes(_float_storage([1.0, 2.0])), 1, (2,), (1,), False, OrderedDict()),
    )
    path = tmp_path / "bounds.pkl"
    path.write_bytes(w.dumps({"t": big}))
    with pytest.raises(CheckpointError, match="run past a storage of 2 elements"):
        load_records(path)


def test_module_src_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    src = f"import os\nos.system({_shell(marker)!r})\n{_py(marker)}\n"
    path = tmp_path / "src.pkl"
    path.write_bytes(w.dumps({"G_ema": _persistent("TriPlaneGenerator", src)}))
    rec = read_checkpoint(path)
    assert rec.module_src_sha256 == hashlib.sha256(src.encode()).hexdigest()
    assert not hasattr(rec, "module_src")
    assert not marker.exists()


RAW_PAYLOADS = {
    # STACK_GLOBAL with a non-string module name.
    "STACK_GLOBAL": b"\x80\x04K\x01\x8c\x06system\x93.",
    # Protocol 0 INST and protocol 1 OBJ name their class through find_class too.
    "os.system (INST)": b"(S'touch x'\nios\nsystem\n.",
    "__builtin__.eval": b"\x80\x02c__builtin__\neval\nX\x01\x00\x00\x001\x85R.",
    # A persistent id in the outer pickle.
    "persistent id": b"\x80\x02X\x03\x00\x00\x00pidQ.",
    # Out-of-band buffers (protocol 5).
    "out-of-band": b"\x80\x05\x97.",
    # BUILD on a stand-in callable (trying to change how later files are read).
    "BUILD on the stand-in": (
        b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n}X\x01\x00\x00\x00aK\x01sb."
    ),
}


@pytest.mark.parametrize("name", sorted(RAW_PAYLOADS))
def test_raw_protocol_tricks(name: str) -> None:
    with pytest.raises(CheckpointError) as info:
        restricted_load(io.BytesIO(RAW_PAYLOADS[name]), source="raw")
    assert name.split(" (")[0] in str(info.value)


def test_extension_registry_goes_through_the_allow_list() -> None:
    copyreg.add_extension("os", "system", 240)
    try:
        with pytest.raises(UnsafeCheckpointError, match=r"os\.system"):
            restricted_load(io.BytesIO(b"\x80\x02\x82\xf0."), source="ext")
    finally:
        copyreg.remove_extension("os", "system", 240)


# --------------------------------------------------------------------------------------------
# Corrupt files and wrong contents


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "nope.pkl")


@pytest.mark.parametrize("cut", [0, 1, 100, 0.5, -1])
def test_truncated_file(snapshot_bytes: bytes, tmp_path: Path, cut: float) -> None:
    size = int(len(snapshot_bytes) * cut) if isinstance(cut, float) else cut % len(snapshot_bytes)
    path = tmp_path / "cut.pkl"
    path.write_bytes(snapshot_bytes[:size])
    with pytest.raises(CheckpointError, match="truncated or corrupt|truncated data"):
        read_checkpoint(path)


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pkl"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError):
        read_checkpoint(path)


def test_top_level_not_a_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(CheckpointError, match="found a list"):
        read_checkpoint(path)


def test_missing_key_lists_keys(snapshot_pkl: Path) -> None:
    with pytest.raises(CheckpointError, match=r"no key 'G_emma'.*'G', 'D', 'G_ema'"):
        read_checkpoint(snapshot_pkl, key="G_emma")


@pytest.mark.parametrize(
    ("key", "found"),
    [("D", "DualDiscriminator"), ("augment_pipe", "NoneType"), ("training_set_kwargs", "dict")],
)
def test_key_is_not_a_generator(snapshot_pkl: Path, key: str, found: str) -> None:
    with pytest.raises(
        CheckpointError, match=f"not a recorded persistent TriPlaneGenerator.*{found}"
    ):
        read_checkpoint(snapshot_pkl, key=key)


def test_corrupt_storage_stream(tmp_path: Path) -> None:
    blob = _float_storage([0.0, 0.0], declared=4)  # 4 floats declared, 2 present
    path = tmp_path / "short.pkl"
    path.write_bytes(w.dumps({"G_ema": _load_from_bytes(blob)}))
    with pytest.raises(CheckpointError, match="truncated data"):
        load_records(path)


# --------------------------------------------------------------------------------------------
# Converted files and building


def test_convert_is_atomic(snapshot_pkl: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out.safetensors"
    out.write_bytes(b"previous contents")
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"\x80\x04garbage")
    with pytest.raises(CheckpointError):
        convert_checkpoint(bad, out)
    assert out.read_bytes() == b"previous contents"

    import safetensors.torch

    def failing_save(tensors, filename, metadata=None):  # noqa: ANN001
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", failing_save)
    with pytest.raises(OSError, match="disk full"):
        convert_checkpoint(snapshot_pkl, out)
    assert out.read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["out.safetensors", "bad.pkl", snapshot_pkl.name]
    )


def test_read_converted_errors(tmp_path: Path) -> None:
    import safetensors.torch

    with pytest.raises(CheckpointError, match="no such"):
        read_converted(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        read_converted(junk)
    plain = tmp_path / "plain.safetensors"
    safetensors.torch.save_file({"a": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match=CONFIG_METADATA_KEY):
        read_converted(plain)


def _state(snapshot_pkl: Path) -> tuple[dict, dict]:
    return recorded_tree_to_state(read_checkpoint(snapshot_pkl))


def test_build_reports_shape_mismatch(snapshot_pkl: Path) -> None:
    config, tensors = _state(snapshot_pkl)
    tensors["decoder.net.0.weight"] = torch.zeros(3, 3)
    with pytest.raises(
        CheckpointError, match=r"decoder\.net\.0\.weight: expected shape \[8, 4\], found \[3, 3\]"
    ):
        build_generator(config, tensors, REGISTRY)


def test_build_reports_missing_and_unexpected(snapshot_pkl: Path) -> None:
    config, tensors = _state(snapshot_pkl)
    del tensors["backbone.mapping.w_avg"]
    tensors["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as info:
        build_generator(config, tensors, REGISTRY)
    message = str(info.value)
    assert "missing tensor backbone.mapping.w_avg (expected shape [4])" in message
    assert "unexpected tensor extra.weight (found shape [1])" in message


def test_build_refuses_unknown_superresolution(snapshot_pkl: Path) -> None:
    config, tensors = _state(snapshot_pkl)
    legacy = "training.superresolution.SuperresolutionHybridDeepfp32"
    config["rendering_kwargs"]["superresolution_module"] = legacy
    with pytest.raises(CheckpointError) as info:
        build_generator(config, tensors, REGISTRY)
    assert legacy in str(info.value)
    assert all(name in str(info.value) for name in SUPPORTED_SUPERRESOLUTION_MODULES)


def test_build_unknown_class(snapshot_pkl: Path) -> None:
    config, tensors = _state(snapshot_pkl)
    with pytest.raises(CheckpointError, match=r"no implementation for class 'TriPlaneGenerator'"):
        build_generator(config, tensors, {"Other": w.make_generator})


def test_write_converted_keeps_order(tmp_path: Path) -> None:
    config = {"format": "innout.eg3d.checkpoint", "format_version": 1, "tensor_names": ["b", "a"]}
    tensors = {"b": torch.arange(3.0), "a": torch.tensor(2.0)}
    out = write_converted(tmp_path / "x.safetensors", config, tensors)
    config2, tensors2 = read_converted(out)
    assert config2 == config and list(tensors2) == ["b", "a"]
    assert tensors2["a"].shape == ()
