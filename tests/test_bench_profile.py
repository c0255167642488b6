"""`innout bench invert --profile`: every op's time, forward and backward, is charged to the part of
the composite step that ran it."""

from __future__ import annotations

import torch
from innout.bench.invert import BACKWARD, FORWARD
from innout.bench.profile import PARTS, REST, attribute, format_profile, profile_composite_step
from innout.cli import main as cli_main
from innout.profiling import region

DECODER = "face decoder"
PLANES = "face tri-planes (StyleGAN2 backbone)"


def test_backward_nodes_go_to_the_part_whose_forward_made_them():
    x = torch.randn(512, 512, requires_grad=True)
    weight = torch.randn(512, 512)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        with torch.profiler.record_function(FORWARD):
            with region("face_planes"):
                planes = (x @ weight).tanh()
            noise = torch.randn(16, 16)  # no node: its time is forward "rest" only
            with region("face_decoder"):
                out = (planes[:16, :16] * noise).sin()
            loss = out.square().mean()
        with torch.profiler.record_function(BACKWARD):
            loss.backward()
    times = attribute(profiler.events())
    assert times[PLANES]["forward"] > 0 and times[PLANES]["backward"] > 0
    assert times[DECODER]["forward"] > 0 and times[DECODER]["backward"] > 0
    assert times[REST]["forward"] > 0  # randn, square, mean outside the regions
    # The matmul's backward (two 512^3 products) outweighs by far the decoder's elementwise
    # backward on 16 x 16 values, even on a loaded machine.
    assert times[PLANES]["backward"] > times[DECODER]["backward"]
    untouched = set(PARTS) - {PLANES, DECODER}
    assert all(times[part] == {"forward": 0.0, "backward": 0.0} for part in untouched)


def test_a_composite_step_is_profiled_part_by_part():
    report = profile_composite_step(frames=1, resolution=16, steps=1, paper_step=True)
    parts = report["parts_ms"]
    assert set(parts) == {*PARTS, REST}
    # Everything a step does forward shows up, and every differentiable part has a backward.
    assert all(parts[part]["forward"] > 0 for part in PARTS), parts
    for part in ("face tri-planes (StyleGAN2 backbone)", "tri-plane sampling (face and object)",
                 "face decoder", "object decoder", "volume rendering (marches)", "super-resolution",
                 "other losses"):  # fmt: skip
        assert parts[part]["backward"] > 0, part
    # Importance and stratified sampling run without gradients.
    assert parts["depth sampling (stratified, importance)"]["backward"] == 0
    attributed = sum(halves["forward"] + halves["backward"] for halves in parts.values())
    assert 0.5 * report["wall_ms_per_step"] < attributed <= 1.05 * report["wall_ms_per_step"]
    table = format_profile(report)
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]  # after the header
    assert len(rows) == len(PARTS) + 1  # one row a part, plus the rest


def test_the_fast_step_runs_neither_the_backbone_nor_the_super_resolution_nor_face_backward():
    # The fast preset freezes the face (its tri-planes are computed once, before the steps) and
    # leaves the super-resolution out of step 2.
    parts = profile_composite_step(frames=1, resolution=16, steps=1)["parts_ms"]
    assert parts[PLANES] == {"forward": 0.0, "backward": 0.0}
    assert parts["super-resolution"] == {"forward": 0.0, "backward": 0.0}
    assert parts[DECODER]["forward"] > 0 and parts[DECODER]["backward"] == 0
    assert parts["object decoder"]["backward"] > 0


def test_the_profile_is_a_bench_invert_option(capsys):
    code = cli_main(["bench", "invert", "--profile", "--frames", "1", "--resolution", "16",
                     "--steps", "1"])  # fmt: skip
    assert code == 0
    assert "| tri-plane sampling (face and object) |" in capsys.readouterr().out
