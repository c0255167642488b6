"""Write EG3D-format snapshot pickles without EG3D's code, for the checkpoint tests.

EG3D's ``torch_utils.persistence`` stores each decorated module as a REDUCE of
``torch_utils.persistence._reconstruct_persistent_obj`` with one ``meta`` dict
(``type``, ``version``, ``module_src``, ``class_name``, ``state``); a few plain classes are stored
by import path (NEWOBJ + BUILD); tensors use torch's own reductions. This writer produces the same
opcodes and global names from small stand-in modules:

* :class:`GlobalRef` is a stand-in for a global that cannot be imported here (``torch_utils``,
  ``training``, ``dnnlib``); the pickler writes it as the same STACK_GLOBAL (protocol >= 4) or
  GLOBAL (older protocols) opcode that pickling the real object would give, memoised like one.
* Modules whose class has ``EG3D_PERSISTENT`` are written as the persistence REDUCE; classes with
  ``EG3D_PLAIN = (module, qualname)`` as NEWOBJ of that global followed by BUILD/SETITEMS.
* numpy scalars are written with ``numpy.core.multiarray.scalar`` as numpy 1.x (which wrote the
  official files) does, whatever numpy is installed.
* :class:`Call` writes an arbitrary REDUCE - the malicious test cases are built from it.

The pure-Python pickler (``pickle._Pickler``) is used because only it lets a subclass emit
opcodes for its own stand-in types; its output uses the same opcodes as the C pickler.
"""

from __future__ import annotations

import copy
import functools
import io
import math
import pickle
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from innout.eg3d import configs

#: Globals that a snapshot written by EG3D contains (docs/eg3d.md section 3.4, numpy 1.x names).
OFFICIAL_GLOBALS = frozenset(
    {
        "torch_utils.persistence._reconstruct_persistent_obj",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
        "torch.storage._load_from_bytes",
        "collections.OrderedDict",
        "dnnlib.util.EasyDict",
        "numpy.core.multiarray.scalar",
        "numpy.dtype",
        "training.triplane.OSGDecoder",
        "training.volumetric_rendering.renderer.ImportanceRenderer",
        "training.volumetric_rendering.ray_marcher.MipRayMarcher2",
        "training.volumetric_rendering.ray_sampler.RaySampler",
        "torch.nn.modules.container.Sequential",
        "torch.nn.modules.activation.Softplus",
    }
)

PERSISTENCE_VERSION = 6


class GlobalRef:
    """A global ``module.qualname`` that is written by name and never imported."""

    def __init__(self, module: str, qualname: str) -> None:
        self.module = module
        self.qualname = qualname

    def __call__(self, *args: Any) -> Any:
        # pickle checks that a reduce function is callable; a stand-in is never called.
        raise TypeError(f"stand-in for {self.module}.{self.qualname} cannot be called")


@functools.cache
def ref(module: str, qualname: str) -> GlobalRef:
    """One shared :class:`GlobalRef` per name, so repeated uses hit the pickle memo."""
    return GlobalRef(module, qualname)


class Call:
    """Pickles as ``REDUCE(func, args)``: what ``__reduce__`` returning ``(func, args)`` gives."""

    def __init__(self, func: GlobalRef, args: tuple[Any, ...]) -> None:
        self.func = func
        self.args = args

    def __call__(self, *args: Any) -> Any:
        # pickle checks that a reduce function is callable; nothing here is ever called.
        raise TypeError("a pickled call stand-in cannot be called")


class NewObj:
    """Pickles as ``NEWOBJ(cls, args)`` then optionally ``BUILD(state)``."""

    def __init__(self, cls: GlobalRef, args: tuple[Any, ...] = (), state: Any = None) -> None:
        self.cls = cls
        self.args = args
        self.state = state


class _NewObjMarker:
    """Internal: marks a reduce tuple that must be written as NEWOBJ of a GlobalRef."""


_NEWOBJ = _NewObjMarker()


def persistence_meta(obj: torch.nn.Module) -> dict[str, Any]:
    """The ``meta`` dict EG3D's persistence writes for a decorated module."""
    cls = type(obj)
    return dict(
        type="class",
        version=PERSISTENCE_VERSION,
        module_src=cls.EG3D_MODULE_SRC,
        class_name=cls.EG3D_PERSISTENT,
        state=obj.__getstate__(),
    )


class EG3DPickler(pickle._Pickler):
    """Pickler that writes stand-ins with EG3D's global names (see the module docstring)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, file: Any, protocol: int = 4, numpy_module: str = "numpy.core.multiarray"):
        super().__init__(file, protocol=protocol)
        self.numpy_module = numpy_module

    def save_global_ref(self, obj: GlobalRef) -> None:
        # What save_global writes for an importable object, without the import check.
        if self.proto >= 4:
            self.save(obj.module)
            self.save(obj.qualname)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.qualname}\n".encode())
        self.memoize(obj)

    dispatch[GlobalRef] = save_global_ref

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, Call):
            return (obj.func, obj.args)
        if isinstance(obj, NewObj):
            return (_NEWOBJ, (obj.cls, *obj.args), obj.state)
        if isinstance(obj, np.generic):
            return (ref(self.numpy_module, "scalar"), (obj.dtype, obj.tobytes()))
        cls = type(obj)
        if isinstance(obj, torch.nn.Module) and hasattr(cls, "EG3D_PERSISTENT"):
            return (
                ref("torch_utils.persistence", "_reconstruct_persistent_obj"),
                (persistence_meta(obj),),
            )
        plain = getattr(cls, "EG3D_PLAIN", None)
        if plain is not None and not isinstance(obj, type):
            if isinstance(obj, dict):  # EasyDict: no attribute state, items via SETITEMS
                return (_NEWOBJ, (ref(*plain),), None, None, iter(obj.items()))
            return (_NEWOBJ, (ref(*plain),), obj.__getstate__())
        return NotImplemented

    def save_reduce(
        self, func, args, state=None, listitems=None, dictitems=None, state_setter=None, *, obj=None
    ):
        if func is not _NEWOBJ:
            return super().save_reduce(
                func, args, state, listitems, dictitems, state_setter, obj=obj
            )
        cls, *rest = args
        self.save(cls)
        self.save(tuple(rest))
        self.write(pickle.NEWOBJ)
        if obj is not None:
            self.memoize(obj)
        if dictitems is not None:
            items = list(dictitems)
            if len(items) == 1:
                self.save(items[0][0])
                self.save(items[0][1])
                self.write(pickle.SETITEM)
            elif items:
                self.write(pickle.MARK)
                for k, v in items:
                    self.save(k)
                    self.save(v)
                self.write(pickle.SETITEMS)
        if state is not None:
            self.save(state)
            self.write(pickle.BUILD)
        return None


def dumps(obj: Any, protocol: int = 4, numpy_module: str = "numpy.core.multiarray") -> bytes:
    """Pickle ``obj`` the way EG3D's training loop would (``pickle.dump``, protocol 4)."""
    buf = io.BytesIO()
    EG3DPickler(buf, protocol=protocol, numpy_module=numpy_module).dump(obj)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Small stand-in networks with EG3D's class names and module layout.

SRC_NETWORKS = "# stand-in for training/networks_stylegan2.py\nimport torch\n"
SRC_SUPERRESOLUTION = "# stand-in for training/superresolution.py\nimport torch\n"
SRC_TRIPLANE = "# stand-in for training/triplane.py\nimport torch\n"
SRC_DUAL = "# stand-in for training/dual_discriminator.py\nimport torch\n"
SRC_AUGMENT = "# stand-in for training/augment.py\nimport torch\n"


class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict``."""

    EG3D_PLAIN = ("dnnlib.util", "EasyDict")


def _easy(value: Any) -> Any:
    # EG3D's init kwargs hold nested EasyDicts (mapping_kwargs, sr_kwargs).
    return EasyDict(value) if type(value) is dict else value


class _Persistent(torch.nn.Module):
    """Base of the stand-ins for EG3D's persistent classes."""

    EG3D_PERSISTENT = ""
    EG3D_MODULE_SRC = SRC_NETWORKS

    def _record_init(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # The persistence decorator keeps deep copies of the constructor arguments.
        self._init_args = copy.deepcopy(args)
        self._init_kwargs = copy.deepcopy(kwargs)


class FullyConnectedLayer(_Persistent):
    EG3D_PERSISTENT = "FullyConnectedLayer"

    def __init__(
        self, in_features: int, out_features: int, lr_multiplier: float = 1, bias_init: float = 0
    ) -> None:
        super().__init__()
        self._record_init(
            (in_features, out_features), dict(lr_multiplier=lr_multiplier, bias_init=bias_init)
        )
        self.in_features, self.out_features, self.activation = in_features, out_features, "linear"
        self.weight = torch.nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], float(bias_init)))
        self.weight_gain = np.float64(lr_multiplier / math.sqrt(in_features))
        self.bias_gain = lr_multiplier


class SynthesisLayer(_Persistent):
    EG3D_PERSISTENT = "SynthesisLayer"

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int) -> None:
        super().__init__()
        self._record_init((in_channels, out_channels), dict(w_dim=w_dim, resolution=resolution))
        self.in_channels, self.out_channels, self.resolution = in_channels, out_channels, resolution
        self.act_gain = np.float64(math.sqrt(2))
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.noise_strength = torch.nn.Parameter(torch.zeros([]))  # a 0-d parameter
        self.bias = torch.nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("resample_filter", torch.ones(4, 4) / 16)
        self.register_buffer("noise_const", torch.randn(resolution, resolution))


class ToRGBLayer(_Persistent):
    EG3D_PERSISTENT = "ToRGBLayer"

    def __init__(self, in_channels: int, out_channels: int, w_dim: int) -> None:
        super().__init__()
        self._record_init((in_channels, out_channels, w_dim), {})
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = torch.nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = np.float64(1 / math.sqrt(in_channels))


class SynthesisBlock(_Persistent):
    EG3D_PERSISTENT = "SynthesisBlock"

    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int
    ) -> None:
        super().__init__()
        self._record_init((in_channels, out_channels), dict(w_dim=w_dim, resolution=resolution))
        self.in_channels, self.resolution, self.architecture = in_channels, resolution, "skip"
        self.register_buffer("resample_filter", torch.ones(4, 4) / 16)
        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim)
        # Not in EG3D: checks that non-persistent buffers stay out of the state dict.
        self.register_buffer("scratch", torch.zeros(2), persistent=False)


class SynthesisNetwork(_Persistent):
    EG3D_PERSISTENT = "SynthesisNetwork"

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channels: int) -> None:
        super().__init__()
        self._record_init(
            (), dict(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels)
        )
        self.block_resolutions = [4, 8]
        self.b4 = SynthesisBlock(0, channels, w_dim, 4, img_channels)
        self.b8 = SynthesisBlock(channels, channels, w_dim, 8, img_channels)
        self.num_ws = 4


class MappingNetwork(_Persistent):
    EG3D_PERSISTENT = "MappingNetwork"

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_layers: int = 2) -> None:
        super().__init__()
        self._record_init((), dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_layers=num_layers))
        self.w_avg_beta = 0.998
        self.embed = FullyConnectedLayer(c_dim, w_dim)
        for i in range(num_layers):
            in_features = z_dim + w_dim if i == 0 else w_dim
            setattr(self, f"fc{i}", FullyConnectedLayer(in_features, w_dim, lr_multiplier=0.01))
        self.register_buffer("w_avg", torch.zeros(w_dim))


class Generator(_Persistent):
    EG3D_PERSISTENT = "Generator"

    def __init__(
        self, z_dim: int, c_dim: int, w_dim: int, channels: int, mapping_kwargs: dict[str, Any]
    ) -> None:
        super().__init__()
        self._record_init((z_dim, c_dim, w_dim), dict(mapping_kwargs=mapping_kwargs))
        self.z_dim, self.img_resolution, self.img_channels = z_dim, 8, 96
        self.synthesis = SynthesisNetwork(w_dim, 8, 96, channels)
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, **mapping_kwargs)


class _Superresolution(_Persistent):
    EG3D_MODULE_SRC = SRC_SUPERRESOLUTION

    def __init__(
        self,
        channels: int,
        img_resolution: int,
        sr_num_fp16_res: int,
        sr_antialias: bool,
        has_filter: bool,
        **sr_kwargs: Any,
    ) -> None:
        super().__init__()
        self._record_init(
            (),
            dict(
                channels=channels,
                img_resolution=img_resolution,
                sr_num_fp16_res=sr_num_fp16_res,
                sr_antialias=sr_antialias,
                **sr_kwargs,
            ),
        )
        self.input_resolution, self.sr_antialias = img_resolution // 2, sr_antialias
        self.block0 = SynthesisLayer(channels, 8, 4, img_resolution // 2)
        if has_filter:
            self.register_buffer("resample_filter", torch.ones(4, 4) / 16)


class SuperresolutionHybrid8XDC(_Superresolution):
    EG3D_PERSISTENT = "SuperresolutionHybrid8XDC"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(has_filter=False, **kwargs)


class SuperresolutionHybrid2X(_Superresolution):
    EG3D_PERSISTENT = "SuperresolutionHybrid2X"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(has_filter=True, **kwargs)


SR_CLASSES = {
    "training.superresolution.SuperresolutionHybrid8XDC": SuperresolutionHybrid8XDC,
    "training.superresolution.SuperresolutionHybrid2X": SuperresolutionHybrid2X,
}


class OSGDecoder(torch.nn.Module):
    EG3D_PLAIN = ("training.triplane", "OSGDecoder")

    def __init__(self, n_features: int, lr_mul: float) -> None:
        super().__init__()
        self.hidden_dim = 8
        self.net = torch.nn.Sequential(
            FullyConnectedLayer(n_features, self.hidden_dim, lr_multiplier=lr_mul),
            torch.nn.Softplus(),
            FullyConnectedLayer(self.hidden_dim, 1 + 4, lr_multiplier=lr_mul),
        )


class MipRayMarcher2(torch.nn.Module):
    EG3D_PLAIN = ("training.volumetric_rendering.ray_marcher", "MipRayMarcher2")


class ImportanceRenderer(torch.nn.Module):
    EG3D_PLAIN = ("training.volumetric_rendering.renderer", "ImportanceRenderer")

    def __init__(self) -> None:
        super().__init__()
        self.ray_marcher = MipRayMarcher2()
        self.plane_axes = torch.eye(3).repeat(3, 1, 1)  # a plain tensor attribute, not a buffer


class RaySampler(torch.nn.Module):
    EG3D_PLAIN = ("training.volumetric_rendering.ray_sampler", "RaySampler")

    def __init__(self) -> None:
        super().__init__()
        self.ray_origins_h = self.ray_directions = self.depths = None


class TriPlaneGenerator(_Persistent):
    """Tiny stand-in with EG3D's constructor signature and top-level layout."""

    EG3D_PERSISTENT = "TriPlaneGenerator"
    EG3D_MODULE_SRC = SRC_TRIPLANE

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        sr_num_fp16_res: int = 0,
        mapping_kwargs: Any = None,
        rendering_kwargs: Any = None,
        sr_kwargs: Any = None,
        **synthesis_kwargs: Any,
    ) -> None:
        super().__init__()
        mapping_kwargs = _easy(mapping_kwargs or {})
        sr_kwargs = _easy(sr_kwargs or {})
        rendering_kwargs = dict(rendering_kwargs or {})
        self._record_init(
            (),
            dict(
                z_dim=z_dim,
                c_dim=c_dim,
                w_dim=w_dim,
                img_resolution=img_resolution,
                img_channels=img_channels,
                sr_num_fp16_res=sr_num_fp16_res,
                mapping_kwargs=mapping_kwargs,
                rendering_kwargs=rendering_kwargs,
                sr_kwargs=sr_kwargs,
                **synthesis_kwargs,
            ),
        )
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.renderer = ImportanceRenderer()
        self.ray_sampler = RaySampler()
        self.backbone = Generator(
            z_dim, c_dim, w_dim, synthesis_kwargs.get("channel_max", 8), dict(mapping_kwargs)
        )
        sr_class = SR_CLASSES[rendering_kwargs["superresolution_module"]]
        self.superresolution = sr_class(
            channels=4,
            img_resolution=img_resolution,
            sr_num_fp16_res=sr_num_fp16_res,
            sr_antialias=rendering_kwargs["sr_antialias"],
            **sr_kwargs,
        )
        self.decoder = OSGDecoder(4, rendering_kwargs.get("decoder_lr_mul", 1))
        self.neural_rendering_resolution = 64
        self.rendering_kwargs = rendering_kwargs
        self._last_planes = None


class DualDiscriminator(_Persistent):
    EG3D_PERSISTENT = "DualDiscriminator"
    EG3D_MODULE_SRC = SRC_DUAL

    def __init__(self, c_dim: int) -> None:
        super().__init__()
        self._record_init((), dict(c_dim=c_dim))
        self.mapping = FullyConnectedLayer(c_dim, 4)


class AugmentPipe(_Persistent):
    EG3D_PERSISTENT = "AugmentPipe"
    EG3D_MODULE_SRC = SRC_AUGMENT

    def __init__(self) -> None:
        super().__init__()
        self._record_init((), dict(xflip=1))
        self.register_buffer("p", torch.zeros([]))


def ffhq_rendering_kwargs(sr_module: str = "training.superresolution.SuperresolutionHybrid8XDC"):
    """rendering_kwargs as EG3D's train.py builds them for the ffhq configuration (16 px output)."""
    return configs.rendering_kwargs(16, sr_module.rsplit(".", 1)[-1], 48)


def generator_kwargs(sr_module: str = "training.superresolution.SuperresolutionHybrid8XDC"):
    """Small TriPlaneGenerator init kwargs in EG3D's order (docs/eg3d.md section 1.1)."""
    return dict(
        z_dim=8,
        w_dim=4,
        mapping_kwargs=EasyDict(num_layers=2),
        channel_base=64,
        channel_max=8,
        fused_modconv_default="inference_only",
        rendering_kwargs=ffhq_rendering_kwargs(sr_module),
        num_fp16_res=0,
        sr_num_fp16_res=4,
        sr_kwargs=EasyDict(channel_base=64, channel_max=8, fused_modconv_default="inference_only"),
        conv_clamp=None,
        c_dim=25,
        img_resolution=16,
        img_channels=3,
    )


def make_generator(**kwargs: Any) -> TriPlaneGenerator:
    """A generator as EG3D's training loop has it: with the ``dataset_label_std`` buffer."""
    generator = TriPlaneGenerator(**kwargs)
    generator.register_buffer("dataset_label_std", torch.ones(kwargs["c_dim"]))
    return generator


def make_snapshot(
    seed: int = 0,
    sr_module: str | None = None,
    augment: bool = False,
    neural_rendering_resolution: int = 128,
) -> dict[str, Any]:
    """A snapshot dict laid out like EG3D's ``training_loop.py`` writes it."""
    torch.manual_seed(seed)
    kwargs = generator_kwargs(sr_module) if sr_module else generator_kwargs()
    g = make_generator(**kwargs).train().requires_grad_(False)
    d = DualDiscriminator(c_dim=25).train().requires_grad_(False)
    g_ema = copy.deepcopy(g).eval()
    with torch.no_grad():
        for p in g_ema.parameters():
            p.add_(0.5)
        g_ema.backbone.mapping.w_avg.normal_()
    g.neural_rendering_resolution = g_ema.neural_rendering_resolution = neural_rendering_resolution
    g_ema.rendering_kwargs = g.rendering_kwargs.copy()
    data: dict[str, Any] = dict(
        training_set_kwargs=dict(
            class_name="training.dataset.ImageFolderDataset",
            path="x.zip",
            use_labels=True,
            max_size=10,
            xflip=False,
            resolution=16,
            random_seed=0,
        )
    )
    for name, module in [
        ("G", g),
        ("D", d),
        ("G_ema", g_ema),
        ("augment_pipe", AugmentPipe() if augment else None),
    ]:
        data[name] = None if module is None else copy.deepcopy(module).eval().requires_grad_(False)
    return data


# --------------------------------------------------------------------------------------------
# Inspecting pickles independently of the reader under test.

_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"}


def pickle_globals(data: bytes) -> set[str]:
    """``module.qualname`` of every GLOBAL/STACK_GLOBAL in one pickle (via pickletools).

    STACK_GLOBAL takes its two strings from the stack; they are the two most recent pushes, which
    may be memo fetches of strings written earlier, so the memo is tracked for strings.
    """
    import pickletools

    found: set[str] = set()
    memo: dict[int, Any] = {}
    pushed: list[Any] = []
    for op, arg, _ in pickletools.genops(data):
        name = op.name
        if name in _STRING_OPS:
            pushed.append(arg)
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            pushed.append(memo.get(int(arg)))
        elif name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[int(arg)] = pushed[-1] if pushed else None
        elif name == "GLOBAL":
            found.add(arg.replace(" ", "."))
            pushed.append(None)
        elif name == "STACK_GLOBAL":
            found.add(f"{pushed[-2]}.{pushed[-1]}")
            pushed.append(None)
        elif name not in ("FRAME", "PROTO", "STOP"):
            pushed.append(None)
    return found


def storage_stream_globals(data: bytes) -> set[str]:
    """Globals inside the legacy torch.save streams embedded for the storages."""
    import pickletools

    found: set[str] = set()
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("BINBYTES", "SHORT_BINBYTES", "BINBYTES8") and arg.startswith(b"\x80\x02"):
            f = io.BytesIO(arg)
            for _ in range(5):  # magic, protocol, sys_info, storage, keys
                start = f.tell()
                for _op in pickletools.genops(f):
                    pass
                found |= pickle_globals(arg[start : f.tell()])
    return found


__all__ = [
    "OFFICIAL_GLOBALS",
    "GlobalRef",
    "ref",
    "Call",
    "NewObj",
    "EG3DPickler",
    "dumps",
    "make_snapshot",
    "make_generator",
    "generator_kwargs",
    "pickle_globals",
    "storage_stream_globals",
    "OrderedDict",
]
