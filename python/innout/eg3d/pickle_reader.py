"""Restricted unpickling of EG3D training snapshots (``network-snapshot-*.pkl``).

EG3D writes its networks through NVIDIA's ``torch_utils.persistence``: every decorated module is
stored as a call to a reconstruct function whose argument holds the *source code* of the module
that defines the class, and loading it the official way executes that source. This module reads
the same files without executing anything from them:

* every global the pickle asks for goes through :meth:`RestrictedUnpickler.find_class`, which
  knows a short allow-list and refuses everything else with an :class:`UnsafeCheckpointError`
  naming ``module.qualname``. The list holds the globals EG3D snapshots contain (persistence
  reconstruct, tensor/parameter rebuild, ``_load_from_bytes``, ``OrderedDict``, ``EasyDict``,
  numpy scalar and dtype, six plain module classes) plus what other writers of the same format
  use: ``_rebuild_parameter_with_state``, the numpy >= 2 scalar name, ``set``/``frozenset`` and
  latin-1 ``_codecs.encode`` (protocol < 4);
* the persistence reconstruct function is replaced by a recorder that returns an inert
  :class:`RecordedObject` (class name, a hash of the embedded source, init arguments, state);
* the few plain classes EG3D pickles by import path (``OSGDecoder``, ``Sequential``, ...) become
  stand-in classes whose instances are again :class:`RecordedObject` - no EG3D or torch module is
  ever instantiated from the pickle;
* tensors are rebuilt from the legacy ``torch.save`` byte streams embedded for every storage, with a
  second restricted unpickler that only knows the storage type names.

The stand-ins are deliberately inert: the callables handed to the unpickler are slot-only objects
that refuse attribute writes and ``BUILD`` (a pickle can otherwise poke attributes into any object
it has on its stack), and the stand-in classes use a metaclass that refuses attribute writes, so a
malicious file cannot change how later files are read.
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import struct
from typing import Any, BinaryIO, Callable

import numpy as np
import torch

__all__ = [
    "CheckpointError",
    "UnsafeCheckpointError",
    "RecordedObject",
    "RestrictedUnpickler",
    "EG3D_PERSISTENT_CLASSES",
    "PLAIN_MODULE_CLASSES",
    "restricted_load",
]


class CheckpointError(ValueError):
    """A checkpoint could not be read: missing, corrupt, or not what was expected."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint asked for something the restricted reader refuses (a global, a class, ...)."""


#: Class names that ``torch_utils.persistence`` records for EG3D's decorated classes (the
#: ``training`` package of NVlabs/eg3d: networks_stylegan2/3, superresolution, triplane,
#: dual_discriminator, augment). A persistent object with any other class name is refused: its
#: meaning would be unknown, and such a name is the typical sign of a crafted file.
EG3D_PERSISTENT_CLASSES: frozenset[str] = frozenset(
    {
        # networks_stylegan2 (and the same names in networks_stylegan3)
        "FullyConnectedLayer",
        "Conv2dLayer",
        "MappingNetwork",
        "SynthesisLayer",
        "ToRGBLayer",
        "SynthesisBlock",
        "SynthesisNetwork",
        "SynthesisInput",
        "Generator",
        "DiscriminatorBlock",
        "MinibatchStdLayer",
        "DiscriminatorEpilogue",
        "Discriminator",
        # superresolution
        "SuperresolutionHybrid8XDC",
        "SuperresolutionHybrid8X",
        "SuperresolutionHybrid4X",
        "SuperresolutionHybrid2X",
        "SuperresolutionHybridDeepfp32",
        "SynthesisBlockNoUp",
        # triplane, dual_discriminator, augment
        "TriPlaneGenerator",
        "SingleDiscriminator",
        "DualDiscriminator",
        "DummyDualDiscriminator",
        "AugmentPipe",
    }
)

#: Classes that EG3D pickles by import path (NEWOBJ + BUILD of their ``__dict__``). Their
#: instances are recorded as plain data, never created.
PLAIN_MODULE_CLASSES: frozenset[str] = frozenset(
    {
        "training.triplane.OSGDecoder",
        "training.volumetric_rendering.renderer.ImportanceRenderer",
        "training.volumetric_rendering.ray_marcher.MipRayMarcher2",
        "training.volumetric_rendering.ray_sampler.RaySampler",
        "torch.nn.modules.container.Sequential",
        "torch.nn.modules.activation.Softplus",
    }
)

#: The only persistence format version EG3D's loader accepts (``torch_utils/persistence.py``).
PERSISTENCE_VERSION = 6

# Legacy torch.save stream constants (the per-storage blobs of ``torch.storage._load_from_bytes``).
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

#: Storage type names that may appear inside the per-storage streams, and their dtypes.
_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}

#: numpy dtype codes accepted for pickled numpy scalars (plain numbers only; ``numpy.dtype`` is
#: never called with anything else, so no object or structured dtype can be produced).
_NUMPY_SCALAR_CODES = frozenset(
    {"f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"}
)


def _refuse(what: str) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(f"refusing {what}")


class RecordedObject:
    """An inert record of one pickled object: what the checkpoint says, nothing executed.

    ``kind`` is ``"persistent"`` for objects written through ``torch_utils.persistence`` (their
    ``class_name`` is the short class name, e.g. ``"SynthesisLayer"``) and ``"plain"`` for classes
    pickled by import path (``class_name`` is then qualified, e.g.
    ``"torch.nn.modules.container.Sequential"``). ``state`` is the object's ``__dict__`` as pickled;
    for modules it holds ``_parameters``, ``_buffers`` and ``_modules`` whose values are tensors
    and further records. The embedded module source is never kept or executed, only its SHA-256
    and length (for diagnostics).
    """

    def __init__(
        self,
        class_name: str,
        kind: str,
        state: dict[str, Any] | None = None,
        *,
        init_args: tuple[Any, ...] = (),
        init_kwargs: dict[str, Any] | None = None,
        version: int | None = None,
        module_src_sha256: str | None = None,
        module_src_len: int | None = None,
    ) -> None:
        self.class_name = class_name
        self.kind = kind
        self.state = state
        self.init_args = init_args
        self.init_kwargs = {} if init_kwargs is None else init_kwargs
        self.version = version
        self.module_src_sha256 = module_src_sha256
        self.module_src_len = module_src_len
        # A plain record is created empty by NEWOBJ and filled by exactly one BUILD.
        self._awaiting_state = False

    @property
    def short_class_name(self) -> str:
        """The class name without its module path."""
        return self.class_name.rsplit(".", 1)[-1]

    def __setstate__(self, state: Any) -> None:
        # Only reached through the pickle BUILD opcode on a freshly created plain record.
        if not self._awaiting_state:
            raise _refuse(f"a second BUILD on recorded {self.class_name}")
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise CheckpointError(
                f"the pickled state of {self.class_name} is not a plain attribute dict "
                f"(found {type(state).__name__})"
            )
        self.state = state
        self._awaiting_state = False

    def __reduce__(self) -> tuple[Any, ...]:
        # copy/deepcopy/pickle go through the constructor, not through __setstate__ above.
        return (
            _rebuild_record,
            (
                self.class_name,
                self.kind,
                self.state,
                self.init_args,
                self.init_kwargs,
                self.version,
                self.module_src_sha256,
                self.module_src_len,
            ),
        )

    def __repr__(self) -> str:
        return f"RecordedObject({self.class_name!r}, kind={self.kind!r})"


def _rebuild_record(*fields: Any) -> RecordedObject:
    name, kind, state, args, kwargs, version, sha, length = fields
    return RecordedObject(
        name,
        kind,
        state,
        init_args=args,
        init_kwargs=kwargs,
        version=version,
        module_src_sha256=sha,
        module_src_len=length,
    )


class _FrozenMeta(type):
    """Metaclass of the stand-in classes: a pickle cannot set attributes on them."""

    def __setattr__(cls, name: str, value: Any) -> None:
        raise _refuse(f"setting attribute {name!r} on stand-in class {cls.__qualname__}")


class _PlainModuleStandIn(metaclass=_FrozenMeta):
    """Stand-in for a class pickled by import path; creating it gives an empty RecordedObject."""

    qualified_name = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> RecordedObject:  # type: ignore[misc]
        # EG3D's pickles create these objects with NEWOBJ and no arguments, then BUILD.
        if args or kwargs:
            raise _refuse(f"arguments to {cls.qualified_name} (only NEWOBJ + BUILD is expected)")
        record = RecordedObject(cls.qualified_name, "plain")
        record._awaiting_state = True
        return record


def _make_plain_stand_in(qualified: str) -> type:
    return _FrozenMeta(
        qualified.rsplit(".", 1)[-1], (_PlainModuleStandIn,), {"qualified_name": qualified}
    )


_PLAIN_STAND_INS: dict[str, type] = {q: _make_plain_stand_in(q) for q in PLAIN_MODULE_CLASSES}


class EasyDictRecord(dict, metaclass=_FrozenMeta):  # type: ignore[misc]
    """Stand-in for ``dnnlib.util.EasyDict``: a plain dict (EasyDict has no state beyond items)."""

    def __setstate__(self, state: Any) -> None:
        if state:
            raise _refuse("attribute state on dnnlib.util.EasyDict")


class _SafeCallable:
    """A callable handed to the unpickler; slot-only and immutable so a pickle cannot modify it."""

    __slots__ = ("_fn", "_name")

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_fn", fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)

    def __setattr__(self, name: str, value: Any) -> None:
        raise _refuse(f"setting attribute {name!r} on the stand-in for {self._name}")

    def __setstate__(self, state: Any) -> None:
        raise _refuse(f"BUILD on the stand-in for {self._name}")

    def __reduce__(self) -> Any:
        raise TypeError(f"the stand-in for {self._name} cannot be pickled")

    def __repr__(self) -> str:
        return f"<stand-in for {self._name}>"


class _DTypeToken:
    """Result of the ``numpy.dtype`` stand-in: a checked numeric dtype code and byte order."""

    __slots__ = ("code", "byteorder", "_built")

    def __init__(self, code: str) -> None:
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "byteorder", "=")
        object.__setattr__(self, "_built", False)

    def __setattr__(self, name: str, value: Any) -> None:
        raise _refuse(f"setting attribute {name!r} on numpy.dtype")

    def __setstate__(self, state: Any) -> None:
        # numpy pickles a dtype's state as (version, byteorder, subarray, names, fields, elsize,
        # alignment, flags); for plain numbers only the byte order matters and the rest is empty.
        if self._built:
            raise _refuse("a second BUILD on numpy.dtype")
        if (
            not isinstance(state, tuple)
            or len(state) < 5
            or state[1] not in ("<", ">", "|", "=")
            or any(x is not None for x in state[2:5])
        ):
            raise _refuse(f"numpy.dtype state {state!r} (only plain numeric dtypes are accepted)")
        object.__setattr__(self, "byteorder", state[1])
        object.__setattr__(self, "_built", True)

    def to_numpy(self) -> np.dtype:
        dtype = np.dtype(self.code)
        return dtype if self.byteorder in ("=", "|") else dtype.newbyteorder(self.byteorder)


class _StorageData:
    """A decoded storage: a flat CPU tensor. Tensors are views into it until they are cloned."""

    __slots__ = ("flat",)

    def __init__(self, flat: torch.Tensor) -> None:
        object.__setattr__(self, "flat", flat)

    def __setattr__(self, name: str, value: Any) -> None:
        raise _refuse(f"setting attribute {name!r} on a storage")


class _StorageType:
    """Result of ``torch.<X>Storage`` inside a storage stream: just its dtype."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: torch.dtype) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "dtype", dtype)

    def __setattr__(self, name: str, value: Any) -> None:
        raise _refuse(f"setting attribute {name!r} on torch.{self.name}")


class _PendingStorage:
    """Placeholder for a storage whose bytes follow the pickles in a legacy stream."""

    __slots__ = ("key", "dtype", "numel")

    def __init__(self, key: str, dtype: torch.dtype, numel: int) -> None:
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "numel", numel)

    def __setattr__(self, name: str, value: Any) -> None:
        raise _refuse(f"setting attribute {name!r} on a storage (in a storage stream)")


# --------------------------------------------------------------------------------------------
# The stand-in functions. Each checks its arguments strictly: they come from untrusted data.


def _check_empty_hooks(hooks: Any, where: str) -> None:
    # Tensors and parameters carry their backward hooks; a snapshot never has any, and a hook
    # would be a callable we must not keep.
    if hooks is None:
        return
    if not isinstance(hooks, dict) or len(hooks) != 0:
        raise _refuse(f"non-empty backward hooks in {where}")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any,
    backward_hooks: Any,
    metadata: Any = None,
) -> torch.Tensor:
    """Stand-in for ``torch._utils._rebuild_tensor_v2``: a bounds-checked view of the storage."""
    if not isinstance(storage, _StorageData):
        raise CheckpointError(
            f"torch._utils._rebuild_tensor_v2 got a {type(storage).__name__} instead of a storage"
        )
    if not isinstance(size, tuple) or not isinstance(stride, tuple) or len(size) != len(stride):
        raise CheckpointError("torch._utils._rebuild_tensor_v2: malformed size/stride")
    if not all(_is_int(s) and s >= 0 for s in size + stride) or not _is_int(storage_offset):
        raise CheckpointError("torch._utils._rebuild_tensor_v2: size/stride/offset must be ints")
    if not isinstance(requires_grad, bool):
        raise CheckpointError("torch._utils._rebuild_tensor_v2: requires_grad must be a bool")
    _check_empty_hooks(backward_hooks, "torch._utils._rebuild_tensor_v2")
    if metadata is not None and not (isinstance(metadata, dict) and not metadata):
        raise _refuse("tensor metadata in torch._utils._rebuild_tensor_v2")
    # Check the bounds here (torch would too) to give a clear message.
    numel_available = storage.flat.numel()
    if any(s == 0 for s in size):
        last = storage_offset - 1  # an empty tensor reads nothing
    else:
        last = storage_offset + sum((s - 1) * st for s, st in zip(size, stride))
    if storage_offset < 0 or storage_offset > numel_available or last >= numel_available:
        raise CheckpointError(
            f"torch._utils._rebuild_tensor_v2: size {list(size)}, stride {list(stride)} and "
            f"offset {storage_offset} run past a storage of {numel_available} elements"
        )
    return storage.flat.as_strided(size, stride, storage_offset)


def _rebuild_parameter(data: Any, requires_grad: Any, backward_hooks: Any) -> torch.Tensor:
    """Stand-in for ``torch._utils._rebuild_parameter``: the data tensor itself."""
    if not isinstance(data, torch.Tensor):
        raise CheckpointError("torch._utils._rebuild_parameter got no tensor")
    _check_empty_hooks(backward_hooks, "torch._utils._rebuild_parameter")
    return data


def _rebuild_parameter_with_state(
    data: Any, requires_grad: Any, backward_hooks: Any, state: Any
) -> torch.Tensor:
    """Stand-in for ``torch._utils._rebuild_parameter_with_state``; extra attributes are dropped."""
    if state is not None and not isinstance(state, (dict, tuple)):
        raise CheckpointError("torch._utils._rebuild_parameter_with_state: malformed state")
    return _rebuild_parameter(data, requires_grad, backward_hooks)


def _numpy_dtype(code: Any, align: Any = False, copy: Any = True) -> _DTypeToken:
    """Stand-in for ``numpy.dtype``: accepts only the codes of plain numbers."""
    if not isinstance(code, str) or code not in _NUMPY_SCALAR_CODES:
        raise _refuse(f"numpy.dtype({code!r}) (only plain numeric dtypes are accepted)")
    return _DTypeToken(code)


def _numpy_scalar(dtype: Any, data: Any = None) -> int | float | bool:
    """Stand-in for ``numpy.core.multiarray.scalar``: returns the value as a Python number."""
    if not isinstance(dtype, _DTypeToken) or not isinstance(data, bytes):
        raise _refuse("numpy scalar that is not a plain number")
    np_dtype = dtype.to_numpy()
    if len(data) != np_dtype.itemsize:
        raise CheckpointError(f"numpy scalar: {len(data)} bytes for dtype {np_dtype}")
    return np.frombuffer(data, dtype=np_dtype)[0].item()


def _codecs_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """Stand-in for ``_codecs.encode``, which protocol-2 pickles use for bytes (latin-1 only)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _refuse(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin-1")


def _reconstruct_persistent_obj(meta: Any) -> RecordedObject:
    """Stand-in for ``torch_utils.persistence._reconstruct_persistent_obj``: record, never exec."""
    if not isinstance(meta, dict):
        raise CheckpointError("persistent object: meta is not a dict")
    if meta.get("type") != "class":
        raise _refuse(f"persistent object of type {meta.get('type')!r} (only 'class' is known)")
    class_name = meta.get("class_name")
    if not isinstance(class_name, str):
        raise CheckpointError("persistent object without a class name")
    if class_name not in EG3D_PERSISTENT_CLASSES:
        raise _refuse(f"persistent class {class_name!r}: not an EG3D class")
    version = meta.get("version")
    if version != PERSISTENCE_VERSION:
        raise CheckpointError(
            f"persistent {class_name}: format version {version!r}, expected {PERSISTENCE_VERSION}"
        )
    src = meta.get("module_src")
    if src is not None and not isinstance(src, str):
        raise CheckpointError(f"persistent {class_name}: module_src is not text")
    state = meta.get("state")
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise CheckpointError(f"persistent {class_name}: state is not an attribute dict")
    init_args = state.get("_init_args", ())
    init_kwargs = state.get("_init_kwargs", {})
    if not isinstance(init_args, (tuple, list)) or not isinstance(init_kwargs, dict):
        raise CheckpointError(f"persistent {class_name}: malformed _init_args/_init_kwargs")
    # The source is only hashed, for diagnostics (it identifies the EG3D release); never executed.
    sha = None if src is None else hashlib.sha256(src.encode("utf-8", "surrogatepass")).hexdigest()
    return RecordedObject(
        class_name,
        "persistent",
        state,
        init_args=tuple(init_args),
        init_kwargs=init_kwargs,
        version=version,
        module_src_sha256=sha,
        module_src_len=None if src is None else len(src),
    )


# --------------------------------------------------------------------------------------------
# Legacy torch.save streams (one per storage).


class _RefuseAllUnpickler(pickle.Unpickler):
    """For the header pickles of a storage stream: plain data only."""

    def find_class(self, module: str, name: str) -> Any:
        raise _refuse(f"global {module}.{name} (in a storage stream)")

    def persistent_load(self, pid: Any) -> Any:
        raise _refuse("persistent id in a storage stream header")


class _StorageStreamUnpickler(pickle.Unpickler):
    """For the main pickle of a storage stream: ``torch.<X>Storage`` and one storage record."""

    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file)
        self.pending: dict[str, _PendingStorage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        raise _refuse(f"global {module}.{name} (in a storage stream)")

    def persistent_load(self, pid: Any) -> Any:
        if (
            not isinstance(pid, tuple)
            or len(pid) not in (5, 6)
            or pid[0] != "storage"
            or not isinstance(pid[1], _StorageType)
            or not isinstance(pid[2], str)
            or not isinstance(pid[3], str)
            or not _is_int(pid[4])
            or pid[4] < 0
        ):
            raise _refuse(f"persistent id {pid!r} in a storage stream")
        if len(pid) == 6 and pid[5] is not None:
            raise CheckpointError("storage views in a storage stream are not supported")
        key = pid[2]
        if key not in self.pending:
            self.pending[key] = _PendingStorage(key, pid[1].dtype, pid[4])
        return self.pending[key]


def _load_storage_stream(blob: Any) -> _StorageData:
    """Stand-in for ``torch.storage._load_from_bytes``: decode one legacy torch.save stream."""
    if not isinstance(blob, (bytes, bytearray)):
        raise CheckpointError("torch.storage._load_from_bytes got no bytes")
    f = io.BytesIO(blob)
    magic = _RefuseAllUnpickler(f).load()
    if magic != _LEGACY_MAGIC:
        raise CheckpointError("storage stream: bad magic number (not a legacy torch.save stream)")
    protocol = _RefuseAllUnpickler(f).load()
    if protocol != _LEGACY_PROTOCOL:
        raise CheckpointError(f"storage stream: protocol {protocol!r}, expected {_LEGACY_PROTOCOL}")
    sys_info = _RefuseAllUnpickler(f).load()
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise CheckpointError("storage stream: only little-endian streams are supported")
    main = _StorageStreamUnpickler(f)
    result = main.load()
    if not isinstance(result, _PendingStorage) or len(main.pending) != 1:
        raise CheckpointError("storage stream: expected exactly one storage")
    keys = _RefuseAllUnpickler(f).load()
    if not isinstance(keys, list) or keys != [result.key]:
        raise CheckpointError("storage stream: storage key list does not match")
    (count,) = struct.unpack("<q", _read_exact(f, 8))
    if count != result.numel:
        raise CheckpointError(f"storage stream: {count} elements stored, {result.numel} declared")
    itemsize = torch.empty((), dtype=result.dtype).element_size()
    data = _read_exact(f, count * itemsize)
    if count == 0:
        flat = torch.empty(0, dtype=result.dtype)
    else:
        # bytearray: a private, writable copy, so the tensor owns its memory.
        flat = torch.frombuffer(bytearray(data), dtype=result.dtype)
    return _StorageData(flat)


def _read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise CheckpointError("storage stream: truncated data")
    return data


# --------------------------------------------------------------------------------------------


def _allowed_globals() -> dict[str, Any]:
    """The allow-list: ``"module.qualname"`` -> the object the unpickler gets instead."""
    fns: dict[str, Callable[..., Any]] = {
        "torch_utils.persistence._reconstruct_persistent_obj": _reconstruct_persistent_obj,
        "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
        "torch._utils._rebuild_parameter": _rebuild_parameter,
        "torch._utils._rebuild_parameter_with_state": _rebuild_parameter_with_state,
        "torch.storage._load_from_bytes": _load_storage_stream,
        "numpy.core.multiarray.scalar": _numpy_scalar,
        "numpy._core.multiarray.scalar": _numpy_scalar,
        "numpy.dtype": _numpy_dtype,
        "_codecs.encode": _codecs_encode,
    }
    allowed: dict[str, Any] = {name: _SafeCallable(name, fn) for name, fn in fns.items()}
    # Plain containers. OrderedDict, set and frozenset are immutable built-in types: they hold
    # data and a pickle cannot change them.
    allowed["collections.OrderedDict"] = collections.OrderedDict
    allowed["builtins.set"] = set
    allowed["builtins.frozenset"] = frozenset
    allowed["dnnlib.util.EasyDict"] = EasyDictRecord
    allowed.update(_PLAIN_STAND_INS)
    return allowed


_ALLOWED_GLOBALS = _allowed_globals()


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for EG3D snapshots that maps every global through a fixed allow-list.

    Every way a pickle names a global (GLOBAL, STACK_GLOBAL, INST, OBJ, EXT*) ends in
    :meth:`find_class`; persistent ids are refused in the outer pickle (EG3D does not use them
    there; the storage streams are read by a separate unpickler).
    """

    def find_class(self, module: str, name: str) -> Any:
        qualified = f"{module}.{name}"
        try:
            return _ALLOWED_GLOBALS[qualified]
        except KeyError:
            raise _refuse(f"global {qualified}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise _refuse(f"persistent id {pid!r} in the checkpoint pickle")


def restricted_load(file: BinaryIO, source: str = "checkpoint") -> Any:
    """Unpickle ``file`` with :class:`RestrictedUnpickler`; errors become CheckpointError.

    ``source`` names the file in messages.
    """
    try:
        return RestrictedUnpickler(file).load()
    except CheckpointError as e:
        raise type(e)(f"{source}: {e}") from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        OverflowError,
        struct.error,
        RuntimeError,
        MemoryError,
        UnicodeDecodeError,
    ) as e:
        raise CheckpointError(
            f"{source}: truncated or corrupt pickle ({type(e).__name__}: {e})"
        ) from e
