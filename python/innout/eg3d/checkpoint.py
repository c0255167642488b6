"""Import official EG3D checkpoints without executing them, and innout's converted format.

An official EG3D ``.pkl`` embeds the source code of its networks and loading it the official way
executes that source. innout never does (a design decision, see the method notes):

1. :func:`read_checkpoint` unpickles the file with the restricted reader of
   :mod:`innout.eg3d.pickle_reader` and returns an inert :class:`RecordedObject` for one network
   (``G_ema`` by default - the one to use for inference);
2. :func:`recorded_tree_to_state` turns the recorded module tree into a JSON-able config (the
   constructor arguments and the non-tensor attributes that matter) and a flat ``state_dict``-style
   tensor mapping;
3. :func:`convert_checkpoint` / :func:`read_converted` store and read that pair as a
   ``.safetensors`` file (config in the metadata), which loads without any pickle;
4. :func:`build_generator` creates innout's own generator from the config and loads the tensors
   strictly.

Typical use::

    from innout.eg3d.checkpoint import convert_checkpoint, read_converted, build_generator
    convert_checkpoint("ffhq512-128.pkl", "ffhq512-128.safetensors")
    config, tensors = read_converted("ffhq512-128.safetensors")
    G = build_generator(config, tensors, {"TriPlaneGenerator": TriPlaneGenerator})
"""

from __future__ import annotations

import copy
import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Union

import torch

from .pickle_reader import (
    CheckpointError,
    RecordedObject,
    UnsafeCheckpointError,
    restricted_load,
)
from .superresolution import SUPERRESOLUTION_MODULES

__all__ = [
    "CheckpointError",
    "UnsafeCheckpointError",
    "RecordedObject",
    "SUPPORTED_SUPERRESOLUTION_MODULES",
    "CONFIG_METADATA_KEY",
    "load_records",
    "read_checkpoint",
    "recorded_tree_to_state",
    "convert_checkpoint",
    "write_converted",
    "read_converted",
    "build_generator",
]

PathLike = Union[str, os.PathLike]

#: The superresolution modules innout implements (``rendering_kwargs['superresolution_module']``).
SUPPORTED_SUPERRESOLUTION_MODULES: tuple[str, ...] = tuple(SUPERRESOLUTION_MODULES)

#: safetensors metadata key that holds the JSON config of a converted checkpoint.
CONFIG_METADATA_KEY = "innout_config"
#: Identifies the config layout written by :func:`recorded_tree_to_state`.
CONFIG_FORMAT = "innout.eg3d.checkpoint"
CONFIG_FORMAT_VERSION = 1

#: The network class :func:`read_checkpoint` expects under the requested key.
GENERATOR_CLASS = "TriPlaneGenerator"

# A module tree deeper than this is not an EG3D network (EG3D's is 6 deep); the limit keeps a
# crafted file from exhausting the stack in the recursive walk.
_MAX_DEPTH = 64
# Small plain tensor attributes (ImportanceRenderer.plane_axes is 27 numbers) go into the config.
_MAX_ATTRIBUTE_TENSOR_NUMEL = 64


def load_records(path: PathLike) -> dict[str, Any]:
    """Read a whole EG3D snapshot with the restricted reader.

    Returns the top-level dict (``training_set_kwargs``, ``G``, ``D``, ``G_ema``, ``augment_pipe``,
    ...) with every network as a :class:`RecordedObject`. Raises :class:`CheckpointError` if the
    file is missing, corrupt or not a dict, and :class:`UnsafeCheckpointError` if it asks for
    anything outside the allow-list.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    with open(path, "rb") as f:
        data = restricted_load(f, source=str(path))
    if not isinstance(data, dict):
        raise CheckpointError(
            f"{path}: expected an EG3D snapshot (a dict with 'G', 'D', 'G_ema', ...), "
            f"found a {type(data).__name__}"
        )
    return data


def read_checkpoint(path: PathLike, key: str = "G_ema") -> RecordedObject:
    """Read the network stored under ``key`` of an official EG3D ``.pkl``; nothing is executed.

    The result must be a recorded persistent ``TriPlaneGenerator``; anything else raises
    :class:`CheckpointError` saying what was found (and, for a missing key, which keys exist).
    """
    data = load_records(path)
    if key not in data:
        found = ", ".join(repr(k) for k in data)
        raise CheckpointError(f"{path}: no key {key!r} in the checkpoint (keys found: {found})")
    record = data[key]
    if not (
        isinstance(record, RecordedObject)
        and record.kind == "persistent"
        and record.class_name == GENERATOR_CLASS
    ):
        what = record.class_name if isinstance(record, RecordedObject) else type(record).__name__
        raise CheckpointError(
            f"{path}: {key!r} is not a recorded persistent {GENERATOR_CLASS} (found {what})"
        )
    return record


# --------------------------------------------------------------------------------------------
# Recorded tree -> (config, tensors)


def _json_strict(value: Any, where: str) -> Any:
    """Convert plain pickled data (dicts, EasyDicts, tuples, numbers) to JSON types, or fail."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CheckpointError(f"{where}: non-finite number {value!r} cannot be stored")
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_json_strict(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise CheckpointError(f"{where}: non-string key {k!r}")
            out[k] = _json_strict(v, f"{where}.{k}")
        return out
    raise CheckpointError(f"{where}: a {type(value).__name__} is not plain configuration data")


def _json_lenient(value: Any) -> Any:
    """Like :func:`_json_strict` for informative attributes: unknown things become a marker."""
    if isinstance(value, torch.Tensor):
        if value.numel() <= _MAX_ATTRIBUTE_TENSOR_NUMEL:
            return {"__tensor__": value.tolist(), "dtype": str(value.dtype).replace("torch.", "")}
        return {"__tensor__": None, "shape": list(value.shape), "dtype": str(value.dtype)}
    if isinstance(value, (list, tuple)):
        return [_json_lenient(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _json_lenient(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return {"__unsupported__": type(value).__name__}


def _module_state(record: Any, path: str) -> dict[str, Any]:
    """The pickled ``__dict__`` of a recorded ``torch.nn.Module``, checked for the parts we read."""
    name = path or "<top>"
    if not isinstance(record, RecordedObject) or not isinstance(record.state, dict):
        raise CheckpointError(f"module {name}: expected a recorded module, found {record!r}")
    state = record.state
    for part in ("_parameters", "_buffers", "_modules"):
        if not isinstance(state.get(part), dict):
            raise CheckpointError(
                f"module {name} ({record.class_name}): no {part} dict, not a torch.nn.Module state"
            )
    return state


def _walk(
    record: RecordedObject,
    prefix: str,
    tensors: dict[str, torch.Tensor],
    modules: dict[str, Any],
    active: set[int],
) -> None:
    """Collect tensors in ``Module.state_dict`` order: own parameters, own buffers, children."""
    path = prefix[:-1]
    if len(active) > _MAX_DEPTH:
        raise CheckpointError(f"module {path}: module tree deeper than {_MAX_DEPTH}")
    if id(record) in active:
        raise CheckpointError(f"module {path}: the module tree contains a cycle")
    state = _module_state(record, path)
    active.add(id(record))

    non_persistent = state.get("_non_persistent_buffers_set") or set()
    if not isinstance(non_persistent, (set, frozenset)):
        raise CheckpointError(f"module {path or '<top>'}: malformed _non_persistent_buffers_set")
    entries = list(state["_parameters"].items()) + [
        (k, v) for k, v in state["_buffers"].items() if k not in non_persistent
    ]
    for name, tensor in entries:
        if tensor is None:  # e.g. register_parameter('bias', None): not in state_dict
            continue
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"module {path or '<top>'}: entry {name!r} is not a tensor")
        full = prefix + name
        if full in tensors:
            raise CheckpointError(f"duplicate tensor name {full}")
        # A private contiguous copy: independent of the decoded storage and of anything the
        # pickle may have attached to the view.
        tensors[full] = tensor.detach().clone(memory_format=torch.contiguous_format)

    info: dict[str, Any] = {"class_name": record.class_name, "kind": record.kind}
    if record.module_src_sha256 is not None:
        info["module_src_sha256"] = record.module_src_sha256
    # Public attributes (section 1.4 of docs/eg3d.md): sizes, gains, flags. Underscored entries are
    # torch internals, hooks and the persistence bookkeeping.
    info["attributes"] = {
        k: _json_lenient(v) for k, v in state.items() if not k.startswith("_") and k != "training"
    }
    modules[path] = info

    for name, child in state["_modules"].items():
        if child is None:
            continue
        if not isinstance(name, str):
            raise CheckpointError(f"module {path or '<top>'}: child name {name!r} is not a string")
        _walk(child, f"{prefix}{name}.", tensors, modules, active)
    active.discard(id(record))


StateTuple = tuple[dict[str, Any], dict[str, torch.Tensor]]


def recorded_tree_to_state(record: RecordedObject) -> StateTuple:
    """Flatten a recorded network into ``(config, tensors)``.

    ``tensors`` maps ``state_dict`` names (``"backbone.synthesis.b4.conv1.weight"``, parameters and
    persistent buffers, in ``state_dict`` order) to private contiguous CPU tensors. ``config`` is
    JSON-able:

    * ``class_name``: the short class name (``"TriPlaneGenerator"``);
    * ``init_args`` / ``init_kwargs``: the recorded constructor arguments (EasyDicts as dicts,
      tuples as lists);
    * ``neural_rendering_resolution``: the pickled instance attribute (training overwrites the
      constructor's 64; this is the value to render at), ``None`` when absent;
    * ``rendering_kwargs``: the pickled ``rendering_kwargs`` attribute (what EG3D's forward reads;
      equal to ``init_kwargs['rendering_kwargs']`` in released files), else the init kwarg;
    * ``superresolution_module``: ``rendering_kwargs['superresolution_module']`` if present;
    * ``attributes``: the top module's public non-tensor attributes (z_dim, c_dim, ...);
    * ``modules``: for every module path (``""`` is the top) its recorded class name, kind,
      source hash and public attributes (small tensors such as ``plane_axes`` as lists);
    * ``tensor_names``: the tensor names in order;
    * ``format`` / ``format_version``.
    """
    if not isinstance(record, RecordedObject) or record.kind != "persistent":
        found = getattr(record, "class_name", record)
        raise CheckpointError(f"expected a recorded persistent network, found {found!r}")
    tensors: dict[str, torch.Tensor] = {}
    modules: dict[str, Any] = {}
    try:
        _walk(record, "", tensors, modules, set())
    except RecursionError:
        raise CheckpointError("module tree too deep") from None
    state = record.state or {}
    init_kwargs = _json_strict(record.init_kwargs, f"{record.class_name}._init_kwargs")
    rendering = state.get("rendering_kwargs", init_kwargs.get("rendering_kwargs"))
    rendering = None if rendering is None else _json_strict(rendering, "rendering_kwargs")
    nrr = state.get("neural_rendering_resolution")
    if nrr is not None and not (isinstance(nrr, int) and not isinstance(nrr, bool)):
        raise CheckpointError(f"neural_rendering_resolution is {nrr!r}, expected an int")
    if record.class_name == GENERATOR_CLASS:
        if nrr is None:
            raise CheckpointError(f"{GENERATOR_CLASS} without neural_rendering_resolution")
        if not isinstance(rendering, dict):
            raise CheckpointError(f"{GENERATOR_CLASS} without rendering_kwargs")
    config: dict[str, Any] = {
        "format": CONFIG_FORMAT,
        "format_version": CONFIG_FORMAT_VERSION,
        "class_name": record.short_class_name,
        "init_args": _json_strict(record.init_args, f"{record.class_name}._init_args"),
        "init_kwargs": init_kwargs,
        "neural_rendering_resolution": nrr,
        "rendering_kwargs": rendering,
        "superresolution_module": (rendering or {}).get("superresolution_module"),
        "attributes": modules[""]["attributes"],
        "modules": modules,
        "tensor_names": list(tensors),
    }
    # Normalise once through JSON so that the config compares equal to what read_converted gives.
    return json.loads(json.dumps(config)), tensors


# --------------------------------------------------------------------------------------------
# Converted format (.safetensors with the config in the metadata)


def _safetensors() -> Any:
    # Imported on use, so that reading official pickles works without safetensors installed.
    try:
        import safetensors
        import safetensors.torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "converted EG3D checkpoints need the 'safetensors' package (pip install safetensors)"
        ) from e
    return safetensors


def write_converted(
    out_path: PathLike, config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]
) -> Path:
    """Write ``(config, tensors)`` as a ``.safetensors`` file, atomically.

    The data goes to a temporary file in the same folder, which is flushed to disk and then renamed
    over ``out_path``: a failure leaves an existing ``out_path`` untouched and no temporary file.
    """
    st = _safetensors().torch
    out_path = Path(out_path)
    metadata = {CONFIG_METADATA_KEY: json.dumps(config), "format": "pt"}
    contiguous = {k: v.detach().contiguous() for k, v in tensors.items()}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    os.close(fd)
    try:
        st.save_file(contiguous, tmp_name, metadata=metadata)
        with open(tmp_name, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_name, out_path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    return out_path


def generator_state(generator: torch.nn.Module, init_kwargs: Mapping[str, Any]) -> StateTuple:
    """``(config, tensors)`` of a generator built by innout from ``init_kwargs`` (e.g. one that
    innout trained), in the format :func:`write_converted` writes and :func:`build_generator`
    reads back."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    rendering = getattr(generator, "rendering_kwargs", init_kwargs.get("rendering_kwargs"))
    config: dict[str, Any] = {
        "format": CONFIG_FORMAT,
        "format_version": CONFIG_FORMAT_VERSION,
        "class_name": type(generator).__name__,
        "init_args": [],
        "init_kwargs": _json_strict(dict(init_kwargs), "init_kwargs"),
        "neural_rendering_resolution": getattr(generator, "neural_rendering_resolution", None),
        "rendering_kwargs": rendering,
        "superresolution_module": (rendering or {}).get("superresolution_module"),
        "attributes": {},
        "modules": {},
        "tensor_names": list(tensors),
    }
    return json.loads(json.dumps(config)), tensors


def convert_checkpoint(pkl_path: PathLike, out_path: PathLike, key: str = "G_ema") -> Path:
    """Convert the network under ``key`` of an official EG3D ``.pkl`` to innout's safetensors.

    Returns ``out_path``. Nothing from the pickle is executed; see :func:`read_checkpoint` and
    :func:`recorded_tree_to_state` for what is read and the errors raised.
    """
    if Path(pkl_path).resolve() == Path(out_path).resolve():
        raise CheckpointError(f"{out_path}: output would overwrite the input checkpoint")
    record = read_checkpoint(pkl_path, key=key)
    config, tensors = recorded_tree_to_state(record)
    return write_converted(out_path, config, tensors)


def read_converted(path: PathLike) -> StateTuple:
    """Read a file written by :func:`convert_checkpoint`: ``(config, tensors)`` in order."""
    safe_open = _safetensors().safe_open
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such converted checkpoint")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            names = list(f.keys())
            loaded = {name: f.get_tensor(name) for name in names}
    except Exception as e:  # safetensors raises its own error type for malformed files
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from e
    if CONFIG_METADATA_KEY not in metadata:
        raise CheckpointError(
            f"{path}: safetensors file without {CONFIG_METADATA_KEY!r} metadata "
            "(not written by innout's convert_checkpoint)"
        )
    try:
        config = json.loads(metadata[CONFIG_METADATA_KEY])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: malformed {CONFIG_METADATA_KEY!r} metadata ({e})") from e
    if not isinstance(config, dict) or config.get("format") != CONFIG_FORMAT:
        raise CheckpointError(f"{path}: {CONFIG_METADATA_KEY!r} is not an innout EG3D config")
    if config.get("format_version") != CONFIG_FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: config format version {config.get('format_version')!r}, "
            f"this innout reads version {CONFIG_FORMAT_VERSION}"
        )
    order = config.get("tensor_names")
    if isinstance(order, list) and sorted(order) == sorted(loaded):
        loaded = {name: loaded[name] for name in order}
    else:
        raise CheckpointError(f"{path}: tensor names in the file do not match its config")
    return config, loaded


# --------------------------------------------------------------------------------------------
# Building innout's generator


def _check_superresolution(config: Mapping[str, Any]) -> None:
    """Refuse a superresolution module innout does not implement, naming it."""
    names = []
    rendering = config.get("rendering_kwargs")
    if isinstance(rendering, Mapping):
        names.append(rendering.get("superresolution_module"))
    init_rendering = (config.get("init_kwargs") or {}).get("rendering_kwargs")
    if isinstance(init_rendering, Mapping):
        names.append(init_rendering.get("superresolution_module"))
    supported = ", ".join(repr(s) for s in SUPPORTED_SUPERRESOLUTION_MODULES)
    if config.get("class_name") == GENERATOR_CLASS and not any(n is not None for n in names):
        raise CheckpointError(
            f"rendering_kwargs name no superresolution_module (supported: {supported})"
        )
    for name in names:
        if name is not None and name not in SUPPORTED_SUPERRESOLUTION_MODULES:
            raise CheckpointError(
                f"unsupported superresolution module {name!r} in rendering_kwargs "
                f"(supported: {supported})"
            )


#: Bounds on the sizes a checkpoint's config may ask for, checked before anything is built: a
#: hostile or damaged file must not make innout allocate (or render at) absurd sizes. The
#: official models stay well inside (512^2 images, 128^2 neural renders, 256^2 planes, 48+48
#: samples, 512 channels); at these bounds a generator has at most a few hundred M weights.
INT_LIMITS: dict[tuple[str, ...], tuple[int, int]] = {
    ("neural_rendering_resolution",): (4, 1024),
    ("init_kwargs", "z_dim"): (1, 1024),
    ("init_kwargs", "w_dim"): (1, 1024),
    ("init_kwargs", "c_dim"): (0, 1024),
    ("init_kwargs", "img_resolution"): (4, 2048),
    ("init_kwargs", "img_channels"): (1, 4),
    ("init_kwargs", "plane_resolution"): (4, 1024),
    ("init_kwargs", "channel_base"): (1, 1 << 16),
    ("init_kwargs", "channel_max"): (1, 1024),
    ("init_kwargs", "mapping_kwargs", "num_layers"): (1, 16),
    ("init_kwargs", "sr_kwargs", "channel_base"): (1, 1 << 16),
    ("init_kwargs", "sr_kwargs", "channel_max"): (1, 1024),
    ("rendering_kwargs", "image_resolution"): (4, 2048),
    ("rendering_kwargs", "depth_resolution"): (1, 1024),
    ("rendering_kwargs", "depth_resolution_importance"): (0, 1024),
}


def _config_value(config: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    value: Any = config
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def check_config_sizes(config: Mapping[str, Any]) -> None:
    """CheckpointError naming the entry when a size in the config is not an integer within
    INT_LIMITS, or the ray's depth range or box_warp is not finite and positive."""
    for rendering_keys in (("rendering_kwargs",), ("init_kwargs", "rendering_kwargs")):
        for keys, bounds in INT_LIMITS.items():
            if keys[0] == "rendering_kwargs":
                keys = (*rendering_keys, *keys[1:])
            elif rendering_keys != ("rendering_kwargs",):
                continue  # checked in the first pass
            value = _config_value(config, keys)
            if value is None:
                continue
            name = ".".join(keys)
            if isinstance(value, bool) or not isinstance(value, int):
                raise CheckpointError(f"config {name} is {value!r}, expected an integer")
            if not bounds[0] <= value <= bounds[1]:
                raise CheckpointError(f"config {name} is {value}, expected {bounds[0]} to "
                                      f"{bounds[1]}")  # fmt: skip
        rendering = _config_value(config, rendering_keys)
        if not isinstance(rendering, Mapping):
            continue
        numbers = {k: rendering.get(k) for k in ("ray_start", "ray_end", "box_warp")}
        for key, value in numbers.items():
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if value is not None and not (ok and math.isfinite(value) and value >= 0):
                raise CheckpointError(f"config {'.'.join(rendering_keys)}.{key} is {value!r}, "
                                      "expected a finite number >= 0")  # fmt: skip
        start, end, warp = numbers["ray_start"], numbers["ray_end"], numbers["box_warp"]
        if isinstance(start, (int, float)) and isinstance(end, (int, float)) and start >= end:
            raise CheckpointError(f"config {'.'.join(rendering_keys)}: ray_start {start} must be "
                                  f"below ray_end {end}")  # fmt: skip
        if warp is not None and warp <= 0:
            raise CheckpointError(f"config {'.'.join(rendering_keys)}.box_warp is {warp}, "
                                  "expected > 0")  # fmt: skip


def _state_problems(model: torch.nn.Module, tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """Human-readable differences between ``model.state_dict()`` and ``tensors``."""
    expected = model.state_dict()
    problems = []
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    for k in missing:
        problems.append(f"missing tensor {k} (expected shape {list(expected[k].shape)})")
    for k in unexpected:
        problems.append(f"unexpected tensor {k} (found shape {list(tensors[k].shape)})")
    for k, v in expected.items():
        if k in tensors and tuple(tensors[k].shape) != tuple(v.shape):
            problems.append(
                f"tensor {k}: expected shape {list(v.shape)}, found {list(tensors[k].shape)}"
            )
    return problems


def build_generator(
    config: Mapping[str, Any],
    tensors: Mapping[str, torch.Tensor],
    registry: Mapping[str, Callable[..., torch.nn.Module]],
) -> torch.nn.Module:
    """Create ``registry[config['class_name']](**init_kwargs)`` and load ``tensors`` strictly.

    ``init_kwargs['rendering_kwargs']`` is replaced by ``config['rendering_kwargs']`` (the pickled
    attribute that EG3D's forward reads), and ``neural_rendering_resolution`` is set from the
    config. Missing or unexpected tensors and shape mismatches raise :class:`CheckpointError`
    naming each tensor with the expected and found shapes; an unknown
    ``superresolution_module`` raises one listing the supported modules. The model is returned in
    eval mode.
    """
    class_name = config.get("class_name")
    if class_name not in registry:
        known = ", ".join(sorted(repr(k) for k in registry)) or "none"
        raise CheckpointError(f"no implementation for class {class_name!r} (registered: {known})")
    _check_superresolution(config)
    check_config_sizes(config)

    init_args = list(config.get("init_args") or [])
    init_kwargs = copy.deepcopy(dict(config.get("init_kwargs") or {}))
    if config.get("rendering_kwargs") is not None:
        init_kwargs["rendering_kwargs"] = copy.deepcopy(config["rendering_kwargs"])
    try:
        model = registry[class_name](*init_args, **init_kwargs)
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(
            f"cannot build {class_name} from the checkpoint's init_kwargs: {e}"
        ) from e
    if config.get("neural_rendering_resolution") is not None:
        model.neural_rendering_resolution = config["neural_rendering_resolution"]

    problems = _state_problems(model, tensors)
    if problems:
        shown = problems[:20]
        if len(problems) > 20:
            shown.append(f"... and {len(problems) - 20} more")
        raise CheckpointError(
            f"the checkpoint's tensors do not fit {class_name}:\n  " + "\n  ".join(shown)
        )
    try:
        model.load_state_dict(dict(tensors), strict=True)
    except RuntimeError as e:  # e.g. a dtype torch cannot copy; shapes were checked above
        raise CheckpointError(f"loading the tensors into {class_name} failed: {e}") from e
    return model.eval()
