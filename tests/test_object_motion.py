"""The object field that follows a moving object: per-frame residual planes, the fit to the
evidence before the composite stage, the mask-free evidence, and the losses that came with them
(distortion, a blend entropy that survives a saturated blend)."""

from __future__ import annotations

import pytest
import torch
from innout.bench.quality import object_iou
from innout.invert import invert
from innout.invert import losses as losses_module
from innout.invert.clip import Clip
from innout.invert.object_field import ObjectField
from innout.invert.object_init import EVIDENCE_FLOOR, unexplained_pixels
from test_invert import TINY_RUN, synthetic_clip


def _pairwise_distortion(weights, depths, near, far):
    scaled = (depths - near) / (far - near)
    mid = (scaled[..., 1:] + scaled[..., :-1]) / 2
    delta = scaled[..., 1:] - scaled[..., :-1]
    pairs = (weights[..., :, None] * weights[..., None, :]
             * (mid[..., :, None] - mid[..., None, :]).abs()).sum((-1, -2))  # fmt: skip
    return (pairs + (weights.square() * delta).sum(-1) / 3).mean()


def test_distortion_equals_the_pairwise_sum_and_its_gradients_check():
    generator = torch.Generator().manual_seed(0)
    depths = 2.25 + 1.05 * torch.rand(3, 5, 12, generator=generator, dtype=torch.float64)
    depths = torch.sort(depths).values
    weights = torch.rand(3, 5, 11, generator=generator, dtype=torch.float64) / 11
    fast = losses_module.distortion(weights, depths, 2.25, 3.3)
    assert fast.item() == pytest.approx(_pairwise_distortion(weights, depths, 2.25, 3.3).item(),
                                        rel=1e-12)  # fmt: skip
    # A ray whose weight sits in one interval costs only that interval's own term.
    one = torch.zeros_like(weights)
    one[..., 4] = 1.0
    own = ((depths[..., 5] - depths[..., 4]) / 1.05 / 3).mean()
    assert losses_module.distortion(one, depths, 2.25, 3.3).item() == pytest.approx(own.item())
    weights.requires_grad_(True)
    depths.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda w, d: losses_module.distortion(w, d, 2.25, 3.3), (weights, depths)
    )


def test_blend_entropy_stays_finite_when_a_blend_weight_saturates():
    blend = torch.tensor([[1.0, 0.0, 0.5, 1 - 1e-9]], requires_grad=True)
    value = losses_module.blend_entropy(blend)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(blend.grad).all()


def test_zero_residual_planes_leave_the_research_field_unchanged():
    seeded = [torch.Generator().manual_seed(5) for _ in range(2)]
    plain = ObjectField(3, 8, generator=seeded[0])
    with_residual = ObjectField(3, 8, generator=seeded[1], residual_resolution=4)
    points = torch.rand(2, 50, 3) - 0.5
    frames = torch.tensor([2, 0])
    ours = with_residual.evaluate(points, frames, 1.0)
    for a, b in zip(plain.evaluate(points, frames, 1.0), ours):
        assert torch.equal(a, b)
    # A residual changes only its own frame.
    with torch.no_grad():
        with_residual.residual_planes[2].fill_(3.0)
    changed = with_residual.evaluate(points, frames, 1.0)[0]
    reference = plain.evaluate(points, frames, 1.0)[0]
    assert not torch.equal(changed[0], reference[0]) and torch.equal(changed[1], reference[1])
    assert with_residual.frame_planes(frames).shape == (2, 3, 32, 8, 8)
    with pytest.raises(ValueError, match="residual_resolution"):
        ObjectField(3, 8, residual_resolution=1)


def test_unexplained_pixels_are_where_the_reconstruction_misses_most():
    frames = torch.zeros(1, 3, 16, 16)
    reconstruction = torch.full_like(frames, 0.05)  # small error everywhere
    reconstruction[..., 5:9, 6:10] = 1.0  # the object: error 0.95
    masks = unexplained_pixels(reconstruction, frames)
    expected = torch.zeros(1, 1, 16, 16)
    # The 3x3 smoothing reaches one pixel out along the edges (0.05 + 0.95 * 3 / 9 > 0.2), not
    # at the corners (0.05 + 0.95 / 9 < 0.2).
    expected[..., 4:10, 5:11] = 1
    expected[..., 4:10:5, 5:11:5] = 0
    assert torch.equal(masks, expected)
    assert unexplained_pixels(torch.full_like(frames, EVIDENCE_FLOOR / 2), frames).sum() == 0


@pytest.fixture(scope="module")
def moving_ball() -> Clip:
    # Identity 3's ball crosses the face from one side to the other over the clip.
    return synthetic_clip(4, resolution=64)


def _iou_after_fit(clip: Clip, **settings) -> torch.Tensor:
    run = dict(TINY_RUN, composite_steps=0, sr_epochs=0, object_plane_resolution=64)
    result = invert(clip, method="innout", progress=False, **{**run, **settings})
    return object_iou(result, 1 - clip.masks)


def test_the_fitted_object_follows_a_moving_ball_frame_by_frame(moving_ball):
    following = _iou_after_fit(moving_ball)  # the fast preset: residual planes, fit to the masks
    shared = _iou_after_fit(moving_ball, object_residual_resolution=0)
    print("IoU per frame: residual planes", following.tolist(), "shared only", shared.tolist())
    assert (following > 0.4).all()
    assert following.mean() > shared.mean() + 0.2


def test_without_masks_invert_runs_the_mask_free_variant_and_finds_the_object(moving_ball):
    no_masks = Clip(moving_ball.frames, moving_ball.cameras, None, moving_ball.names)
    result = invert(no_masks, progress=False, **dict(TINY_RUN, composite_steps=0, sr_epochs=0,
                                                      object_plane_resolution=64))  # fmt: skip
    assert result.method == "innout-auto"
    iou = object_iou(result, 1 - moving_ball.masks)
    print("innout-auto IoU per frame", iou.tolist())
    assert iou.mean() > 0.3
