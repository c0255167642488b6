"""The typed boundary of innout._C: every op direction takes exactly the fields of its params struct
that it reads, and refuses an unknown, missing or wrongly typed field with an error naming the op
and the field (a misspelt key used to become a null pointer silently)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from innout.ops import _native

F64 = torch.float64
CPU = torch.device("cpu")
INF, NAN = float("inf"), float("nan")
RAYS, SAMPLES, CHANNELS = 3, 6, 4


def nan(*shape: int) -> torch.Tensor:
    """An output buffer that shows whether the op wrote it."""
    return torch.full(shape, float("nan"), dtype=F64)


def triplane_fields(direction: str) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    points = 5
    fields: dict[str, Any] = {
        "planes": torch.randn(1, 3, 8, 8, CHANNELS, generator=g, dtype=F64),
        "plane_batch": 1,
        "channels": CHANNELS,
        "height": 8,
        "width": 8,
        "points": 0.8 * torch.rand(1, points, 3, generator=g, dtype=F64) - 0.4,
        "batch": 1,
        "num_points": points,
        "box_warp": 1.0,
    }
    if direction == "forward":
        fields["features"] = nan(1, points, CHANNELS)
    else:
        fields["grad_features"] = torch.randn(1, points, CHANNELS, generator=g, dtype=F64)
        fields["grad_planes"] = nan(1, 3, 8, 8, CHANNELS)
        fields["grad_points"] = nan(1, points, 3)
    return fields


def composite_inputs() -> dict[str, Any]:
    g = torch.Generator().manual_seed(1)
    return {
        "num_rays": RAYS,
        "num_samples": SAMPLES,
        "channels": CHANNELS,
        "depths": torch.sort(2.25 + torch.rand(RAYS, SAMPLES, generator=g, dtype=F64)).values,
        "density_in": torch.randn(RAYS, SAMPLES, generator=g, dtype=F64),
        "features_in": torch.rand(RAYS, SAMPLES, CHANNELS, generator=g, dtype=F64),
        "density_out": None,
        "features_out": None,
        "blend": None,
        "weights": nan(RAYS, SAMPLES - 1),
        "transmittance": nan(RAYS, SAMPLES - 1),
        "interval_record": None,
    }


def composite_forward_fields() -> dict[str, Any]:
    return {**composite_inputs(), "composite": nan(RAYS, CHANNELS), "depth": nan(RAYS)}


def composite_backward_fields() -> dict[str, Any]:
    forward = composite_forward_fields()
    _native.call("composite_march_forward", CPU, F64, forward)
    fields = {key: forward[key] for key in composite_inputs()}
    fields.update(
        grad_composite=torch.ones(RAYS, CHANNELS, dtype=F64),
        grad_depth=None,
        grad_weights=None,
        grad_depths=nan(RAYS, SAMPLES),
        grad_density_in=nan(RAYS, SAMPLES),
        grad_features_in=nan(RAYS, SAMPLES, CHANNELS),
        grad_density_out=None,
        grad_features_out=None,
        grad_blend=None,
    )
    return fields


def importance_fields() -> dict[str, Any]:
    g = torch.Generator().manual_seed(2)
    fine = 5
    return {
        "num_rays": RAYS,
        "num_samples": SAMPLES,
        "num_importance": fine,
        "depths": torch.sort(2.25 + torch.rand(RAYS, SAMPLES, generator=g, dtype=F64)).values,
        "weights": torch.rand(RAYS, SAMPLES - 1, generator=g, dtype=F64),
        "uniforms": torch.rand(RAYS, fine, generator=g, dtype=F64),
        "cdf": nan(RAYS, SAMPLES - 2),
        "samples": nan(RAYS, fine),
    }


def stratified_fields() -> dict[str, Any]:
    return {
        "num_rays": RAYS,
        "num_samples": SAMPLES,
        "near": torch.full((RAYS,), 2.25, dtype=F64),
        "far": torch.full((RAYS,), 3.3, dtype=F64),
        "uniforms": None,
        "depths": nan(RAYS, SAMPLES),
    }


#: Each bound function, the fields of a correct call, a size field, a buffer field that may be
#: None, and the outputs the call writes.
OPS: dict[str, tuple[Callable[[], dict[str, Any]], str, str, tuple[str, ...]]] = {
    "triplane_sample_forward": (
        lambda: triplane_fields("forward"),
        "num_points",
        "features",
        ("features",),
    ),
    "triplane_sample_backward": (
        lambda: triplane_fields("backward"),
        "channels",
        "grad_planes",
        ("grad_planes", "grad_points"),
    ),
    "composite_march_forward": (
        composite_forward_fields,
        "num_samples",
        "density_out",
        ("composite", "depth", "weights", "transmittance"),
    ),
    "composite_march_backward": (
        composite_backward_fields,
        "num_rays",
        "grad_blend",
        ("grad_depths", "grad_density_in", "grad_features_in"),
    ),
    "importance_sample": (importance_fields, "num_importance", "uniforms", ("samples",)),
    "stratified_sample": (stratified_fields, "num_samples", "uniforms", ("depths",)),
}


def refusal(function: str, fields: dict[str, Any], error: type[Exception]) -> str:
    with pytest.raises(error) as info:
        _native.call(function, CPU, F64, fields)
    message = str(info.value)
    assert message.startswith(f"{function}: "), message
    return message


@pytest.mark.parametrize("function", OPS)
def test_a_correct_call_writes_every_output(function):
    make_fields, _, _, outputs = OPS[function]
    fields = make_fields()
    _native.call(function, CPU, F64, fields)
    for name in outputs:
        assert torch.isfinite(fields[name]).all(), f"{function}: {name} was not written"


@pytest.mark.parametrize("function", OPS)
def test_an_unknown_field_is_refused_with_the_expected_fields(function):
    make_fields = OPS[function][0]
    fields = make_fields()
    message = refusal(function, {**fields, "bogus": None}, ValueError)
    assert "unknown field 'bogus'" in message
    listed = message.split("expected fields: ")[1].split(", ")
    assert sorted(listed) == sorted(fields)


@pytest.mark.parametrize("function", OPS)
def test_a_misspelt_optional_buffer_is_refused(function):
    make_fields, _, optional, _ = OPS[function]
    fields = make_fields()
    fields[optional + "s"] = fields.pop(optional)
    message = refusal(function, fields, ValueError)
    assert f"unknown field '{optional}s'" in message


@pytest.mark.parametrize("function", OPS)
def test_a_missing_field_is_refused(function):
    make_fields, _, optional, _ = OPS[function]
    fields = make_fields()
    del fields[optional]
    message = refusal(function, fields, ValueError)
    assert f"missing field '{optional}'" in message


@pytest.mark.parametrize("function", OPS)
def test_a_size_of_the_wrong_type_is_refused(function):
    make_fields, size, _, _ = OPS[function]
    for wrong, type_name in [(float(RAYS), "float"), (str(RAYS), "str"), (True, "bool")]:
        message = refusal(function, {**make_fields(), size: wrong}, TypeError)
        assert f"field '{size}' must be an int, got {type_name}" in message


@pytest.mark.parametrize("function", OPS)
def test_a_buffer_of_the_wrong_type_is_refused(function):
    make_fields, _, optional, _ = OPS[function]
    fields = make_fields()
    address = fields[optional].data_ptr() if fields[optional] is not None else 4096
    message = refusal(function, {**fields, optional: address}, TypeError)
    assert f"field '{optional}' must be a tensor or None, got int" in message


@pytest.mark.parametrize("function", OPS)
def test_every_wrongly_typed_field_is_named(function):
    make_fields, size, optional, _ = OPS[function]
    message = refusal(function, {**make_fields(), size: "1", optional: 1.0}, TypeError)
    assert f"field '{size}'" in message
    assert f"field '{optional}'" in message


def test_a_field_of_the_other_direction_is_refused():
    fields = {**triplane_fields("forward"), "grad_points": None}
    message = refusal("triplane_sample_forward", fields, ValueError)
    assert "unknown field 'grad_points'" in message


def test_a_scalar_of_the_wrong_type_is_refused():
    fields = {**triplane_fields("forward"), "box_warp": "1.0"}
    message = refusal("triplane_sample_forward", fields, TypeError)
    assert "field 'box_warp' must be a float, got str" in message


def test_an_empty_tensor_is_an_absent_buffer():
    # As None: the backward skips the gradient (the planes' here) and writes the others.
    fields = triplane_fields("backward")
    fields["grad_planes"] = torch.empty(0, dtype=F64)
    _native.call("triplane_sample_backward", CPU, F64, fields)
    assert torch.isfinite(fields["grad_points"]).all()
    with_none = {**triplane_fields("backward"), "grad_planes": None}
    _native.call("triplane_sample_backward", CPU, F64, with_none)
    assert torch.equal(fields["grad_points"], with_none["grad_points"])


def test_an_absent_required_buffer_is_refused_by_the_core():
    message = refusal("stratified_sample", {**stratified_fields(), "near": None}, ValueError)
    assert "near, far and depths pointers" in message


BAD_BOX_WARPS = [
    *[(dtype, value) for dtype in (torch.float32, F64) for value in (0.0, -1.0, INF, NAN)],
    (torch.float32, 1e300),  # a finite double, but inf in the float32 params
]


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize(("dtype", "box_warp"), BAD_BOX_WARPS)
def test_the_core_refuses_a_box_warp_that_is_not_finite_and_positive(direction, dtype, box_warp):
    # The C++ API validates its scalar parameter itself, for callers that embed it without the
    # Python ops.
    fields = {**triplane_fields(direction), "box_warp": box_warp}
    fields = {k: v.to(dtype) if isinstance(v, torch.Tensor) else v for k, v in fields.items()}
    with pytest.raises(ValueError) as info:
        _native.call(f"triplane_sample_{direction}", CPU, dtype, fields)
    assert str(info.value).startswith("triplane_sample: expected a finite box_warp > 0, got ")
