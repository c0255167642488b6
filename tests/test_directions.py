"""Attribute directions: the fit recovers a known linear attribute and its calibration."""

from __future__ import annotations

import pytest
import torch
from innout.edit import Direction, fit_direction, load_direction


def labelled(samples=400, dims=16, slope=3.0, noise=0.01, seed=0):
    g = torch.Generator().manual_seed(seed)
    truth = torch.randn(dims, generator=g)
    truth = truth / truth.norm()
    latents = torch.randn(samples, dims, generator=g)
    labels = 0.5 + slope * latents @ truth + noise * torch.randn(samples, generator=g)
    return latents, labels, truth


def test_fit_recovers_direction_slope_and_linearity():
    latents, labels, truth = labelled(samples=20000)
    direction = fit_direction("smile", latents, labels)
    # The mean latent step per unit of label: exact in expectation, ~1/sqrt(N) noise per dimension.
    assert torch.dot(direction.unit, truth) > 0.998
    assert direction.slope == pytest.approx(3.0, rel=0.02)
    assert direction.r2 > 0.99 and direction.samples == 20000


def test_strength_one_changes_the_attribute_by_one_unit():
    latents, labels, truth = labelled(slope=2.0)
    direction = fit_direction("eye_size", latents, labels)
    moved = direction.apply(latents[:5], 1.0)
    change = 2.0 * (moved - latents[:5]) @ truth  # the true attribute's change
    torch.testing.assert_close(change, torch.ones(5), atol=0.02, rtol=0)
    wplus = latents[:3].unsqueeze(1).repeat(1, 14, 1)
    moved_wplus = direction.apply(wplus, torch.tensor([1.0, -1.0, 0.0]))
    torch.testing.assert_close(
        moved_wplus[:, 7], direction.apply(latents[:3], torch.tensor([1.0, -1.0, 0.0]))
    )


def test_save_and_load_round_trip(tmp_path):
    latents, labels, _ = labelled()
    direction = fit_direction("hair_color", latents, labels)
    path = tmp_path / "hair_color.safetensors"
    direction.save(path)
    loaded = load_direction(path)
    assert loaded.name == "hair_color" and loaded.slope == direction.slope
    assert torch.equal(loaded.unit, direction.unit)


def test_bad_inputs_are_refused(tmp_path):
    latents, labels, _ = labelled(samples=10)
    with pytest.raises(ValueError, match=r"labels must have shape \[N\]"):
        fit_direction("x", latents, labels[:5])
    with pytest.raises(ValueError, match="do not vary"):
        fit_direction("x", latents, torch.ones(10))
    with pytest.raises(ValueError, match="at least 3"):
        fit_direction("x", latents[:2], labels[:2])
    with pytest.raises(ValueError, match="dimensions"):
        Direction("x", torch.ones(4), 1.0, 1.0, 3).apply(torch.zeros(2, 5), 1.0)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"nope")
    with pytest.raises(ValueError, match="cannot read direction file"):
        load_direction(junk)
