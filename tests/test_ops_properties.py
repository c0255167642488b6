"""Property tests: on any input, each op either refuses it with a clear error or agrees with the
pure-PyTorch reference.

Hypothesis generates small inputs whose values range over ordinary numbers, extreme magnitudes,
+-inf and NaN, with invalid parameters (box_warp <= 0, inf or NaN, near > far, blends outside
[0, 1], negative or NaN importance weights, uniforms outside [0, 1], bad counts) and broken
structure (a wrong shape, dtype, device or type). For every input:

* innout and the reference either both refuse it - with the same ValueError or TypeError and the
  same message, which starts with the op's name and names one of its arguments - or
* both accept it, and innout's outputs equal the reference's (NaN where it has NaN) within the
  tolerances of the parity tests, and so do the gradients of the differentiable ops (on finite
  inputs, in units of each gradient's largest entry).

Examples are derandomised (the same in every run and on CI) and the example database is off.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import pytest
import torch
from conftest import assert_close as assert_same
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from innout import ops
from innout.ops import reference

PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

NAN, INF = math.nan, math.inf
ARGUMENTS = {
    "triplane_sample": ("planes", "points", "box_warp"),
    "composite_march": (
        "depths",
        "density_in",
        "features_in",
        "density_out",
        "features_out",
        "blend",
    ),
    "stratified_sample": ("near", "far", "num_samples", "uniforms"),
    "importance_sample": ("depths", "weights", "num_importance", "uniforms"),
}

DTYPES = st.sampled_from([torch.float32, torch.float64])
NON_FINITE = st.sampled_from([NAN, INF, -INF])
#: Any double: huge, tiny and subnormal magnitudes, +-0, +-inf and NaN (in float32 the huge ones
#: become +-inf, the tiny ones 0 or subnormal).
ANY_FLOAT = st.one_of(
    st.sampled_from([0.0, -0.0, 1e-45, -1e-45, 1e-300, 1e30, -1e30, 3e38, -3e38, 1e300, -1e300]),
    NON_FINITE,
    st.floats(allow_nan=True, allow_infinity=True),
)


def one_in(draw, n: int) -> bool:
    """True about once in `n` draws. (A middle value: Hypothesis favours the ends of a range.)"""
    return draw(st.integers(0, n - 1)) == n // 2


@st.composite
def mostly(draw, usual: st.SearchStrategy, rare: st.SearchStrategy, odds: int = 5):
    """A value of `usual` about `odds` times as often as one of `rare`."""
    return draw(rare if one_in(draw, odds + 1) else usual)


@st.composite
def value_lists(draw, count: int, ordinary: st.SearchStrategy, special: st.SearchStrategy):
    """`count` floats: ordinary ones, or - for one list in three - ordinary and special mixed, so
    that most examples still have finite results worth comparing."""
    if one_in(draw, 3):
        return draw(st.lists(st.one_of(ordinary, special), min_size=count, max_size=count))
    return draw(st.lists(ordinary, min_size=count, max_size=count))


def tensor_of(values: list[float], shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).reshape(shape).to(dtype)


def numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def outcome(call: Callable[[], object]) -> tuple[object, Exception | None]:
    """The call's result, or the ValueError/TypeError it raised. Any other exception - a crash
    inside torch or the core instead of a clear refusal - fails the test."""
    try:
        return call(), None
    except (ValueError, TypeError) as error:
        return None, error


def refused_alike(op: str, error: Exception | None, ref_error: Exception | None) -> bool:
    """True when both backends refused the input in the same way (the checks of a refusal);
    False when both accepted it."""
    if error is None and ref_error is None:
        event("accepted")
        return False
    assert error is not None and ref_error is not None, (
        f"only one backend refused: innout {error!r}, reference {ref_error!r}"
    )
    assert type(error) is type(ref_error) and str(error) == str(ref_error), (error, ref_error)
    message = str(error)
    assert message.startswith(f"{op}: "), message
    named = [name for name in ARGUMENTS[op] if re.search(rf"\b{name}\b", message)]
    assert named, f"the message names no argument of {op}: {message}"
    event(f"refused: {type(error).__name__} naming {named[0]}")
    return True


def corrupt(draw, tensors: dict[str, object], names: tuple[str, ...]) -> str | None:
    """Breaks one tensor's structure in one case out of eight: another dtype (float, half or int),
    another device (meta), one more dimension, one more element in the last dimension, or not a
    tensor at all. Returns the name of the broken argument (None when nothing was broken)."""
    if not one_in(draw, 8):
        return None
    name = draw(st.sampled_from(names))
    tensor = tensors[name]
    if not isinstance(tensor, torch.Tensor):
        return None
    how = draw(st.sampled_from(["dtype", "half", "int", "meta", "rank", "last", "list"]))
    if how == "dtype":
        other = torch.float64 if tensor.dtype == torch.float32 else torch.float32
        tensors[name] = tensor.to(other)
    elif how == "half":
        tensors[name] = tensor.half()
    elif how == "int":
        tensors[name] = torch.zeros(tensor.shape, dtype=torch.int32)
    elif how == "meta":
        tensors[name] = tensor.to("meta")
    elif how == "rank":
        tensors[name] = tensor.unsqueeze(0)
    elif how == "last":
        tensors[name] = torch.cat([tensor, tensor[..., :1]], -1) if tensor.dim() else tensor
    else:
        tensors[name] = tensor.tolist()
    return name


def largest_finite(tensor: torch.Tensor) -> float:
    finite = tensor[torch.isfinite(tensor)]
    return finite.abs().max().item() if finite.numel() else 0.0


def assert_same_gradient(actual: torch.Tensor, expected: torch.Tensor, name: str) -> None:
    """Gradients: the parity tests' tolerances in units of the tensor's largest finite entry.

    A gradient entry is a sum of terms that can be far larger than itself (unsorted depths make
    opacities negative and scans of 1e5-sized terms cancel to O(1)); summed in another order, the
    float32 results then differ by a few ulp of the largest term, not of the result.
    """
    assert_same(actual, expected, name, atol_scale=10.0 * max(1.0, largest_finite(expected)))


# ---- triplane_sample ---------------------------------------------------------------------------

BOX_WARPS = mostly(
    st.one_of(
        st.sampled_from([1.0, 0.5, 2.0, 1e-45, 1e-300, 1e-38, 3e38, 1e300]),
        st.floats(min_value=1e-6, max_value=1e6),
    ),
    st.one_of(
        st.sampled_from([0.0, -0.0, -1.0, INF, -INF, NAN]),
        st.floats(allow_nan=True, allow_infinity=True),
    ),
    odds=4,
)


@st.composite
def triplane_inputs(draw):
    dtype = draw(DTYPES)
    batch = draw(st.integers(1, 2))
    num_points = draw(st.integers(0, 6))
    channels, height, width = (
        draw(st.integers(1, 3)),
        draw(st.integers(1, 4)),
        draw(st.integers(1, 4)),
    )
    plane_batch = draw(st.sampled_from([1, batch]))
    box_warp = draw(BOX_WARPS)
    planes_shape = (plane_batch, 3, channels, height, width)
    planes = tensor_of(
        draw(value_lists(numel(planes_shape), st.floats(-4, 4), NON_FINITE)), planes_shape, dtype
    )
    # Points in the cube (units of box_warp, so that the planes are hit) or anywhere at all.
    unit = box_warp if isinstance(box_warp, float) and 1e-30 < box_warp < 1e30 else 1.0
    inside = st.floats(-0.7, 0.7).map(lambda u: u * unit)
    points_shape = (batch, num_points, 3)
    points = tensor_of(
        draw(value_lists(numel(points_shape), inside, ANY_FLOAT)), points_shape, dtype
    )
    tensors = {"planes": planes, "points": points}
    broken = corrupt(draw, tensors, ("planes", "points"))
    if broken is None and one_in(draw, 10):
        tensors["planes"] = tensor_of([0.5] * numel(planes_shape), planes_shape, dtype)[:, :2]
    return tensors["planes"], tensors["points"], box_warp, draw(st.integers(0, 2**31 - 1))


@PROPERTY_SETTINGS
@given(triplane_inputs())
def test_triplane_sample_refuses_or_matches_reference(case):
    planes, points, box_warp, seed = case
    got, error = outcome(lambda: ops.triplane_sample(planes, points, box_warp))
    expected, ref_error = outcome(lambda: reference.triplane_sample(planes, points, box_warp))
    if refused_alike("triplane_sample", error, ref_error):
        return
    smooth = ~on_a_texel_line(points, box_warp, planes.shape[3], planes.shape[4])
    if torch.isfinite(planes).all():
        assert_same(got, expected, "features")
    else:
        # A point on a texel line has a neighbouring texel with weight 0 on one side of the line
        # and ~1e-16 on the other: with a NaN there, 0 * NaN and 1e-16 * NaN both give NaN, but
        # which texel is the neighbour depends on the last bit (see on_a_texel_line).
        assert_same(got[smooth], expected[smooth], "features")
    if got.numel() == 0:
        return
    leaves = [planes.clone().requires_grad_(), points.clone().requires_grad_()]
    generator = torch.Generator().manual_seed(seed)
    upstream = torch.randn(got.shape, generator=generator, dtype=got.dtype)
    grads = torch.autograd.grad(ops.triplane_sample(*leaves, box_warp), leaves, upstream)
    ref_grads = torch.autograd.grad(reference.triplane_sample(*leaves, box_warp), leaves, upstream)
    assert_same_gradient(grads[0], ref_grads[0], "grad_planes")
    assert_same_gradient(grads[1][smooth], ref_grads[1][smooth], "grad_points")


def on_a_texel_line(points: torch.Tensor, box_warp: float, height: int, width: int) -> torch.Tensor:
    """[B, M] whether a point lies (to float32 rounding) on a line through texel centres of a
    plane, where bilinear interpolation has a kink: its gradient there is one of two one-sided
    derivatives, and which one depends on the last bit of the unnormalised coordinate (the
    reference's grid_sample may contract (g + 1) * s - 0.5 into one fused multiply-add)."""
    coords = points.double() * (2.0 / box_warp)
    kink = torch.zeros(points.shape[:2], dtype=torch.bool)
    for ax, ay in ((0, 1), (0, 2), (2, 0)):
        for g, size in ((coords[..., ax], width), (coords[..., ay], height)):
            i = (g + 1) * (size / 2) - 0.5
            close = (i - i.round()).abs() <= 1e-6 * i.abs().clamp_min(1.0)
            kink |= torch.isfinite(i) & (i.abs() < 1e6) & close
    return kink


# ---- composite_march ---------------------------------------------------------------------------

#: Blend weights: mostly inside [0, 1] (its ends included), sometimes just or far outside, or NaN.
BLENDS_INSIDE = st.one_of(st.floats(0, 1), st.sampled_from([0.0, 1.0]))
BLENDS_OUTSIDE = st.sampled_from([-1e-6, 1.000001, -0.5, 1.5, 2.0, -INF, INF, NAN, 1e30])


@st.composite
def march_inputs(draw):
    dtype = draw(DTYPES)
    batch, rays = draw(st.integers(1, 2)), draw(st.integers(0, 3))
    samples = draw(mostly(st.integers(2, 6), st.just(1), odds=8))
    channels = draw(mostly(st.integers(1, 3), st.just(0), odds=8))
    shape, feature_shape = (batch, rays, samples), (batch, rays, samples, channels)
    depths = draw(value_lists(numel(shape), st.floats(0, 5), NON_FINITE))
    depths = tensor_of(depths, shape, dtype)
    if not one_in(draw, 4):  # sorted, as a renderer gives them; unsorted otherwise
        depths = torch.sort(depths, -1).values
    # Raw densities go through softplus: any magnitude is meaningful. Features enter linearly:
    # ordinary magnitudes (with +-inf and NaN), so that sums in another order stay comparable.
    densities = value_lists(numel(shape), st.floats(-30, 30), ANY_FLOAT)
    features = value_lists(numel(feature_shape), st.floats(-0.5, 1.5), NON_FINITE)
    tensors = {
        "depths": depths,
        "density_in": tensor_of(draw(densities), shape, dtype),
        "features_in": tensor_of(draw(features), feature_shape, dtype),
        "density_out": None,
        "features_out": None,
        "blend": None,
    }
    if draw(st.booleans()):
        blend = draw(value_lists(numel(shape), BLENDS_INSIDE, BLENDS_OUTSIDE))
        tensors.update(
            density_out=tensor_of(draw(densities), shape, dtype),
            features_out=tensor_of(draw(features), feature_shape, dtype),
            blend=tensor_of(blend, shape, dtype),
        )
        corrupt(draw, tensors, tuple(tensors))
        if one_in(draw, 10):  # an incomplete OOD field
            tensors[draw(st.sampled_from(["density_out", "features_out", "blend"]))] = None
    else:
        corrupt(draw, tensors, ("depths", "density_in", "features_in"))
    return tensors, draw(st.integers(0, 2**31 - 1))


@PROPERTY_SETTINGS
@given(march_inputs())
def test_composite_march_refuses_or_matches_reference(case):
    tensors, seed = case
    args = list(tensors.values())
    got, error = outcome(lambda: ops.composite_march(*args))
    expected, ref_error = outcome(lambda: reference.composite_march(*args))
    if refused_alike("composite_march", error, ref_error):
        return
    assert_same(got[2], expected[2], "weights")
    if got[0].numel() == 0:
        return
    # Unsorted depths give negative opacities, and weights of both signs whose sums cancel: there
    # the composite is compared in units of its largest term, and the depth (a ratio of two such
    # sums) only on rays whose weights are all >= 0.
    positive = ~(expected[2] < 0).any(-1)
    features = [t for t in (tensors["features_in"], tensors["features_out"]) if t is not None]
    scale = 1.0
    if not positive.all():
        largest = [largest_finite(expected[2])] + [largest_finite(t) for t in features]
        scale = max(1.0, largest[0] * max(largest[1:]))
    assert_same(got[0], expected[0], "composite", atol_scale=10.0 * scale)
    assert_same(got[1][positive], expected[1][positive], "depth")
    blend = tensors["blend"]
    if blend is not None:  # accepted: every blend weight was in [0, 1]
        assert ((blend >= 0) & (blend <= 1)).all()
    # Gradients where the inputs are finite: there the reverse scan of the kernel and autograd
    # through the reference's cumprod compute the same function. (With NaN or inf inputs, which
    # entries of a gradient turn NaN depends on how each differentiates 0 * inf; the forward
    # values above are compared on every input.)
    if not all(torch.isfinite(t).all() for t in args if t is not None):
        return
    if not torch.isfinite(expected[0]).all():
        return
    leaves = [t.clone().requires_grad_() if t is not None else None for t in args]
    wanted = [t for t in leaves if t is not None]
    generator = torch.Generator().manual_seed(seed)
    upstream = [torch.randn(o.shape, generator=generator, dtype=o.dtype) for o in got]
    grads = torch.autograd.grad(ops.composite_march(*leaves), wanted, upstream)
    ref_grads = torch.autograd.grad(reference.composite_march(*leaves), wanted, upstream)
    # Unsorted depths with dense fields make opacities exp(+sigma delta): gradients can reach the
    # top of the float range, where the two orders of summation overflow at different terms.
    # Compared where the reference's gradients stay below sqrt(float max).
    ceiling = torch.finfo(got[0].dtype).max ** 0.5
    if not all(torch.isfinite(g).all() and g.abs().max() < ceiling for g in ref_grads if g.numel()):
        return
    names = [n for n, t in zip(ARGUMENTS["composite_march"], leaves) if t is not None]
    for name, a, b in zip(names, grads, ref_grads):
        assert_same_gradient(a, b, f"grad_{name}")


# ---- stratified_sample -------------------------------------------------------------------------

COUNTS = mostly(st.integers(2, 6), st.sampled_from([1, 0, -1, 2.5, True, None]))


@st.composite
def stratified_inputs(draw):
    dtype = draw(DTYPES)
    shape = (draw(st.integers(1, 2)), draw(st.integers(0, 4)))
    near = draw(value_lists(numel(shape), st.floats(0, 5), ANY_FLOAT))
    span = draw(value_lists(numel(shape), st.floats(0, 3), st.sampled_from([-1.0, -1e-3])))
    if one_in(draw, 6):  # far drawn on its own: any order, any magnitude
        far = draw(value_lists(numel(shape), st.floats(0, 5), ANY_FLOAT))
    else:
        far = [n + s for n, s in zip(near, span)]
    num_samples = draw(COUNTS)
    tensors = {"near": tensor_of(near, shape, dtype), "far": tensor_of(far, shape, dtype)}
    mode = draw(st.sampled_from(["uniforms", "generator", "deterministic"]))
    tensors["uniforms"] = None
    if mode == "uniforms":
        count = num_samples if isinstance(num_samples, int) and num_samples > 0 else 2
        u_shape = (*shape, count)
        uniforms = value_lists(numel(u_shape), st.floats(0, 1, exclude_max=True), ANY_FLOAT)
        tensors["uniforms"] = tensor_of(draw(uniforms), u_shape, dtype)
    corrupt(draw, tensors, ("near", "far", "uniforms"))
    return tensors, num_samples, mode, draw(st.integers(0, 2**31 - 1))


@PROPERTY_SETTINGS
@given(stratified_inputs())
def test_stratified_sample_refuses_or_matches_reference(case):
    tensors, num_samples, mode, seed = case

    def call(op):
        # Each backend gets its own generator with the same seed: the same draws.
        return lambda: op(
            tensors["near"],
            tensors["far"],
            num_samples,
            generator=torch.Generator().manual_seed(seed),
            uniforms=tensors["uniforms"],
            deterministic=mode == "deterministic",
        )

    got, error = outcome(call(ops.stratified_sample))
    expected, ref_error = outcome(call(reference.stratified_sample))
    if refused_alike("stratified_sample", error, ref_error):
        return
    near, far = tensors["near"], tensors["far"]
    # Accepted: every ray's range was finite and in order.
    assert torch.isfinite(near).all() and torch.isfinite(far).all() and (near <= far).all()
    assert_same(got, expected, "depths")


# ---- importance_sample -------------------------------------------------------------------------

WEIGHTS_VALID = st.one_of(st.floats(0, 10), st.sampled_from([0.0, 1e-45, 1e-30, 1e4, 1e6]))
WEIGHTS_INVALID = st.sampled_from([-1e-30, -1.0, -INF, INF, NAN, 1.000001e6, 1e30, 1e38])


@st.composite
def importance_inputs(draw):
    dtype = draw(DTYPES)
    batch, rays = draw(st.integers(1, 2)), draw(st.integers(0, 3))
    samples = draw(mostly(st.integers(4, 8), st.integers(2, 3), odds=8))
    num_importance = draw(mostly(st.integers(0, 5), st.sampled_from([-1, 2.5, True, None])))
    shape = (batch, rays, samples)
    depths = tensor_of(draw(value_lists(numel(shape), st.floats(0, 5), NON_FINITE)), shape, dtype)
    if not one_in(draw, 4):
        depths = torch.sort(depths, -1).values
    w_shape = (batch, rays, max(samples - 1, 0))
    weights = draw(value_lists(numel(w_shape), WEIGHTS_VALID, WEIGHTS_INVALID))
    tensors = {"depths": depths, "weights": tensor_of(weights, w_shape, dtype), "uniforms": None}
    mode = draw(st.sampled_from(["uniforms", "generator", "deterministic"]))
    if mode == "uniforms":
        count = num_importance if isinstance(num_importance, int) and num_importance >= 0 else 2
        u_shape = (batch, rays, count)
        uniforms = value_lists(numel(u_shape), st.floats(0, 1), ANY_FLOAT)
        tensors["uniforms"] = tensor_of(draw(uniforms), u_shape, dtype)
    corrupt(draw, tensors, ("depths", "weights", "uniforms"))
    return tensors, num_importance, mode, draw(st.integers(0, 2**31 - 1))


@PROPERTY_SETTINGS
@given(importance_inputs())
def test_importance_sample_refuses_or_matches_reference(case):
    tensors, num_importance, mode, seed = case

    def call(op):
        return lambda: op(
            tensors["depths"],
            tensors["weights"],
            num_importance,
            generator=torch.Generator().manual_seed(seed),
            uniforms=tensors["uniforms"],
            deterministic=mode == "deterministic",
        )

    got, error = outcome(call(ops.importance_sample))
    expected, ref_error = outcome(call(reference.importance_sample))
    if refused_alike("importance_sample", error, ref_error):
        return
    weights = tensors["weights"]
    assert torch.isfinite(weights).all() and (weights >= 0).all()  # accepted: a pdf's weights
    # The kernel sums the cdf in another order than the reference: where a deterministic uniform
    # falls next to a bin edge, a sample moves by up to ~1e-4 of the ray's depth span (7.9e-5 on
    # a [0, 1] span with weights 7.5 and 1). Compared at that level, relative to the span.
    finite = tensors["depths"].double()[torch.isfinite(tensors["depths"])]
    span = max(float(finite.max() - finite.min()), 1.0) if finite.numel() else 1.0
    assert_same(got, expected, "samples", atol_scale=5.0 * span)


def test_the_strategies_reach_both_outcomes():
    """The generated inputs are not all refused (nor all accepted): each property test compares
    values on part of its examples and refusals on the rest."""
    seen: dict[str, set[bool]] = {}

    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(triplane_inputs(), march_inputs())
    def collect(triplane, march):
        planes, points, box_warp, _ = triplane
        seen.setdefault("triplane", set()).add(
            outcome(lambda: ops.triplane_sample(planes, points, box_warp))[1] is None
        )
        seen.setdefault("march", set()).add(
            outcome(lambda: ops.composite_march(*march[0].values()))[1] is None
        )

    collect()
    assert seen == {"triplane": {True, False}, "march": {True, False}}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_blends_in_range_keep_weights_and_transmittance_sound(dtype):
    # With every blend weight in [0, 1], the weights are >= 0 and the transmittance never grows:
    # what a blend outside [0, 1] breaks (shown on the reference, which does not check values
    # when its check is bypassed), and the reason it is refused.
    g = torch.Generator().manual_seed(0)
    shape = (2, 64, 12)
    depths = torch.sort(torch.rand(shape, generator=g, dtype=dtype) * 3, -1).values
    density = 5 * torch.randn(shape, generator=g, dtype=dtype)
    features = torch.rand(*shape, 3, generator=g, dtype=dtype)
    blend = torch.rand(shape, generator=g, dtype=dtype)
    composite, _, weights = ops.composite_march(depths, density, features, density, features, blend)
    assert (weights >= 0).all()
    _, _, unchecked = reference_without_value_checks(depths, density, features, blend + 1.0)
    assert (unchecked < 0).any()
    with pytest.raises(ValueError, match="blend"):
        ops.composite_march(depths, density, features, density, features, blend + 1.0)
    with pytest.raises(ValueError, match="blend"):
        reference.composite_march(depths, density, features, density, features, blend + 1.0)


def reference_without_value_checks(depths, density, features, blend):
    """The reference's formula on a blend it would refuse (its value check patched out)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reference, "check_blend_values", lambda op, blend: None)
        return reference.composite_march(depths, density, features, density, features, blend)
