"""Bad inputs raise clear errors (naming the expected shape/dtype/device), never crash."""

from __future__ import annotations

import pytest
import torch
from innout import ops

F32, F64 = torch.float32, torch.float64


def planes(*shape, dtype=F32):
    return torch.randn(*shape, dtype=dtype)


TRIPLANE_CASES = [
    (
        "planes rank",
        lambda: ops.triplane_sample(planes(3, 4, 5, 5), planes(1, 10, 3)),
        ValueError,
        "[B or 1, 3, C, H, W]",
    ),
    (
        "points rank",
        lambda: ops.triplane_sample(planes(1, 3, 4, 5, 5), planes(10, 3)),
        ValueError,
        "[B, M, 3]",
    ),
    (
        "two planes",
        lambda: ops.triplane_sample(planes(1, 2, 4, 5, 5), planes(1, 10, 3)),
        ValueError,
        "3 planes",
    ),
    (
        "2-D points",
        lambda: ops.triplane_sample(planes(1, 3, 4, 5, 5), planes(1, 10, 2)),
        ValueError,
        "[B, M, 3]",
    ),
    (
        "batch mismatch",
        lambda: ops.triplane_sample(planes(2, 3, 4, 5, 5), planes(3, 10, 3)),
        ValueError,
        "planes batch must be 1",
    ),
    (
        "int planes",
        lambda: ops.triplane_sample(torch.ones(1, 3, 4, 5, 5, dtype=torch.int32), planes(1, 10, 3)),
        TypeError,
        "float32 or float64",
    ),
    (
        "half points",
        lambda: ops.triplane_sample(planes(1, 3, 4, 5, 5), planes(1, 10, 3).half()),
        TypeError,
        "float32 or float64",
    ),
    (
        "mixed dtypes",
        lambda: ops.triplane_sample(planes(1, 3, 4, 5, 5, dtype=F64), planes(1, 10, 3)),
        TypeError,
        "share one dtype",
    ),
    (
        "empty planes",
        lambda: ops.triplane_sample(planes(1, 3, 4, 0, 5), planes(1, 10, 3)),
        ValueError,
        "C, H, W > 0",
    ),
    (
        "box_warp",
        lambda: ops.triplane_sample(planes(1, 3, 4, 5, 5), planes(1, 10, 3), 0.0),
        ValueError,
        "box_warp must be finite and > 0",
    ),
    *[
        (
            f"box_warp {value}",
            lambda value=value: ops.triplane_sample(planes(1, 3, 4, 5, 5), planes(1, 10, 3), value),
            ValueError,
            f"box_warp must be finite and > 0, got {value}",
        )
        for value in (float("inf"), float("nan"), -1.0, -float("inf"))
    ],
    (
        "box_warp beyond float32",
        lambda: ops.triplane_sample(planes(1, 3, 4, 5, 5), planes(1, 10, 3), 1e300),
        ValueError,
        "box_warp must be finite and > 0 in torch.float32",
    ),
    (
        "box_warp not a number",
        lambda: ops.triplane_sample(planes(1, 3, 4, 5, 5), planes(1, 10, 3), "1.0"),
        TypeError,
        "box_warp must be a real number",
    ),
    (
        "not a tensor",
        lambda: ops.triplane_sample([[1.0]], planes(1, 10, 3)),
        TypeError,
        "must be a tensor",
    ),
]


def march_inputs(batch=2, rays=3, samples=8, channels=4):
    d = torch.sort(torch.rand(batch, rays, samples), -1).values
    return [
        d,
        torch.randn(batch, rays, samples),
        torch.rand(batch, rays, samples, channels),
        torch.randn(batch, rays, samples),
        torch.rand(batch, rays, samples, channels),
        torch.rand(batch, rays, samples),
    ]


def with_replaced(index, value):
    inputs = march_inputs()
    inputs[index] = value
    return lambda: ops.composite_march(*inputs)


MARCH_CASES = [
    ("depths rank", with_replaced(0, torch.rand(2, 3)), ValueError, "[B, R, K]"),
    (
        "density shape",
        with_replaced(1, torch.rand(2, 3, 7)),
        ValueError,
        "density_in must have shape [B, R, K]",
    ),
    ("features rank", with_replaced(2, torch.rand(2, 3, 8)), ValueError, "[B, R, K, C]"),
    (
        "features samples",
        with_replaced(2, torch.rand(2, 3, 9, 4)),
        ValueError,
        "features_in must have shape",
    ),
    (
        "ood channels",
        with_replaced(4, torch.rand(2, 3, 8, 5)),
        ValueError,
        "features_out must have shape",
    ),
    ("blend batch", with_replaced(5, torch.rand(1, 3, 8)), ValueError, "blend must have shape"),
    ("partial ood", with_replaced(5, None), ValueError, "must be given together"),
    (
        "float64 blend",
        with_replaced(5, torch.rand(2, 3, 8, dtype=F64)),
        TypeError,
        "share one dtype",
    ),
    (
        "int density",
        with_replaced(1, torch.ones(2, 3, 8, dtype=torch.int64)),
        TypeError,
        "float32 or float64",
    ),
    *[
        (
            f"blend {label}",
            with_replaced(5, torch.full((2, 3, 8), value)),
            ValueError,
            "blend must lie in [0, 1] everywhere",
        )
        for label, value in (("above 1", 1.5), ("below 0", -0.25), ("nan", float("nan")))
    ],
    ("one sample", lambda: ops.composite_march(*march_inputs(samples=1)), ValueError, "K >= 2"),
    (
        "no channels",
        lambda: ops.composite_march(*march_inputs(channels=0)),
        ValueError,
        "at least 1 channel",
    ),
]

SAMPLER_CASES = [
    (
        "few coarse samples",
        lambda: ops.importance_sample(torch.rand(1, 2, 3), torch.rand(1, 2, 2), 4),
        ValueError,
        "K >= 4",
    ),
    (
        "weights shape",
        lambda: ops.importance_sample(torch.rand(1, 2, 8), torch.rand(1, 2, 8), 4),
        ValueError,
        "[B, R, K-1]",
    ),
    (
        "uniforms shape",
        lambda: ops.importance_sample(
            torch.rand(1, 2, 8), torch.rand(1, 2, 7), 4, uniforms=torch.rand(1, 2, 5)
        ),
        ValueError,
        "uniforms must have shape (1, 2, 4)",
    ),
    (
        "negative count",
        lambda: ops.importance_sample(torch.rand(1, 2, 8), torch.rand(1, 2, 7), -1),
        ValueError,
        "num_importance must be >= 0",
    ),
    (
        "negative weights",
        lambda: ops.importance_sample(torch.rand(1, 2, 8), torch.rand(1, 2, 7) - 0.5, 4),
        ValueError,
        "weights must be in [0, 1e+06]",
    ),
    (
        "nan weights",
        lambda: ops.importance_sample(torch.rand(1, 2, 8), torch.full((1, 2, 7), float("nan")), 4),
        ValueError,
        "weights must be in [0, 1e+06], got a NaN",
    ),
    (
        "infinite weights",
        lambda: ops.importance_sample(torch.rand(1, 2, 8), torch.full((1, 2, 7), float("inf")), 4),
        ValueError,
        "weights must be in [0, 1e+06]",
    ),
    (
        "fractional count",
        lambda: ops.importance_sample(torch.rand(1, 2, 8), torch.rand(1, 2, 7), 2.5),
        TypeError,
        "num_importance must be an int",
    ),
    (
        "near after far",
        lambda: ops.stratified_sample(torch.full((1, 4), 3.0), torch.full((1, 4), 2.0), 8),
        ValueError,
        "near must be <= far on every ray, got near=3.0, far=2.0 at ray (0, 0)",
    ),
    (
        "nan near",
        lambda: ops.stratified_sample(torch.full((1, 4), float("nan")), torch.ones(1, 4), 8),
        ValueError,
        "near must be finite on every ray",
    ),
    (
        "infinite far",
        lambda: ops.stratified_sample(torch.ones(1, 4), torch.full((1, 4), float("inf")), 8),
        ValueError,
        "far must be finite on every ray",
    ),
    (
        "overflowing range",
        lambda: ops.stratified_sample(torch.full((1, 2), -3e38), torch.full((1, 2), 3e38), 8),
        ValueError,
        "|near| + 2 (far - near) must be finite in torch.float32",
    ),
    (
        "bool count",
        lambda: ops.stratified_sample(torch.ones(1, 4), torch.ones(1, 4), True),
        TypeError,
        "num_samples must be an int",
    ),
    (
        "near rank",
        lambda: ops.stratified_sample(torch.rand(4), torch.rand(4), 8),
        ValueError,
        "[B, R]",
    ),
    (
        "far shape",
        lambda: ops.stratified_sample(torch.rand(1, 4), torch.rand(1, 5), 8),
        ValueError,
        "far must have shape",
    ),
    (
        "one sample",
        lambda: ops.stratified_sample(torch.rand(1, 4), torch.rand(1, 4), 1),
        ValueError,
        "at least 2 samples",
    ),
]


@pytest.mark.parametrize(
    ("case", "call", "error", "message"),
    TRIPLANE_CASES + MARCH_CASES + SAMPLER_CASES,
    ids=[c[0] for c in TRIPLANE_CASES + MARCH_CASES + SAMPLER_CASES],
)
def test_bad_input_raises_a_clear_error(case, call, error, message):
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value), f"{case}: message was {info.value}"


def test_raw_ops_validate_too():
    # Calling the registered op directly skips the Python wrapper; it must still not reach C++.
    with pytest.raises(ValueError, match="planes batch must be 1"):
        torch.ops.innout.triplane_sample(planes(2, 3, 4, 5, 5), planes(3, 10, 3), 1.0)
    with pytest.raises(ValueError, match="box_warp must be finite and > 0"):
        torch.ops.innout.triplane_sample(planes(1, 3, 4, 5, 5), planes(1, 10, 3), float("inf"))
    inputs = march_inputs()
    inputs[2] = torch.rand(2, 3, 5, 4)
    with pytest.raises(ValueError, match="features_in must have shape"):
        torch.ops.innout.composite_march(*inputs, False)
    inputs = march_inputs()
    inputs[5] = inputs[5] + 1
    with pytest.raises(ValueError, match=r"blend must lie in \[0, 1\]"):
        torch.ops.innout.composite_march(*inputs, False)
    with pytest.raises(ValueError, match="near must be <= far"):
        torch.ops.innout.stratified_sample(torch.ones(1, 2), torch.zeros(1, 2), 4, None)
    with pytest.raises(ValueError, match=r"weights must be in \[0, 1e\+06\]"):
        torch.ops.innout.importance_sample(
            torch.rand(1, 2, 8), -torch.rand(1, 2, 7), torch.rand(1, 2, 3)
        )


VALUE_CASES = [
    ("blend", lambda k: k.composite_march(*with_replaced_inputs(5, torch.full((2, 3, 8), 2.0)))),
    (
        "box_warp",
        lambda k: k.triplane_sample(planes(1, 3, 4, 5, 5), planes(1, 10, 3), float("nan")),
    ),
    ("near", lambda k: k.stratified_sample(torch.ones(1, 4), torch.zeros(1, 4), 8)),
    ("far", lambda k: k.stratified_sample(torch.ones(1, 4), torch.full((1, 4), -float("inf")), 8)),
    ("weights", lambda k: k.importance_sample(torch.rand(1, 2, 8), -torch.ones(1, 2, 7), 4)),
]


def with_replaced_inputs(index, value):
    inputs = march_inputs()
    inputs[index] = value
    return inputs


@pytest.mark.parametrize("backend", ops.BACKENDS)
@pytest.mark.parametrize(("name", "call"), VALUE_CASES, ids=[c[0] for c in VALUE_CASES])
def test_every_backend_refuses_out_of_range_values(backend, name, call):
    # The reference is the other backend: it refuses the same values with the same message.
    with pytest.raises(ValueError) as info:
        call(ops.backend(backend))
    assert f": {name} must" in str(info.value)


def test_checks_of_values_run_inside_compiled_graphs():
    # The value checks run in the op's kernel, not in traced Python: no graph break, still checked.
    compiled = torch.compile(ops.composite_march, backend="aot_eager", fullgraph=True)
    inputs = march_inputs()
    compiled(*inputs)
    inputs[5] = inputs[5] - 1
    with pytest.raises(ValueError, match="blend must lie in"):
        compiled(*inputs)


def test_mixed_devices_are_refused():
    inputs = march_inputs()
    inputs[0] = inputs[0].to("meta")
    with pytest.raises(ValueError, match="all inputs must be on one device"):
        ops.composite_march(*inputs)
    with pytest.raises(ValueError, match="all inputs must be on one device"):
        ops.triplane_sample(planes(1, 3, 4, 5, 5).to("meta"), planes(1, 10, 3))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_tensors_without_cuda_give_a_clear_error():
    from innout.ops import _native

    with pytest.raises((RuntimeError, ValueError)) as info:
        _native.call(
            "stratified_sample", torch.device("cuda"), F32, {"num_rays": 0, "num_samples": 2}
        )
    assert "CUDA" in str(info.value) or "cuda" in str(info.value)


def test_nan_inputs_propagate_without_crashing():
    inputs = [t.clone() for t in march_inputs()]
    inputs[2][0, 1, 3, 0] = float("nan")
    inputs[0][1, 2, 4] = float("nan")
    composite, depth, weights = ops.composite_march(*inputs)
    assert torch.isnan(composite[0, 1, 0])
    assert torch.isfinite(composite[0, 0]).all()
    # The NaN depth's ray has NaN weights: no pdf to sample, refused with the argument named.
    assert torch.isnan(weights[1, 2]).any()
    with pytest.raises(ValueError, match=r"weights must be in \[0, 1e\+06\], got a NaN"):
        ops.importance_sample(inputs[0], weights, 6, deterministic=True)
    out = ops.importance_sample(inputs[0][:1], weights[:1], 6, deterministic=True)
    assert out.shape == (1, 3, 6)
