"""Tests of innout.eg3d's StyleGAN2 layers, super-resolution and decoder (docs/eg3d.md §1-2).

Numerical parity with the official EG3D code is checked outside the test suite (it needs NVIDIA's
code); these tests pin down the structure (parameter names, shapes, counts) and the maths with
independent, direct computations on small inputs.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from innout.eg3d import layers
from innout.eg3d.decoder import OSGDecoder
from innout.eg3d.layers import (
    FullyConnectedLayer,
    bias_act,
    downsample2d,
    filter2d,
    modulated_conv2d,
    normalize_2nd_moment,
    setup_filter,
    upfirdn2d,
    upsample2d,
)
from innout.eg3d.mapping import MappingNetwork
from innout.eg3d.superresolution import (
    SuperresolutionHybrid2X,
    SuperresolutionHybrid4X,
    SuperresolutionHybrid8X,
    SuperresolutionHybrid8XDC,
    SynthesisBlockNoUp,
)
from innout.eg3d.synthesis import (
    Generator,
    SynthesisBlock,
    SynthesisLayer,
    SynthesisNetwork,
    ToRGBLayer,
)

# ffhq512-128 constructor arguments (docs/eg3d.md §1.1).
FFHQ_BACKBONE = dict(
    z_dim=512,
    c_dim=25,
    w_dim=512,
    img_resolution=256,
    img_channels=96,
    mapping_kwargs={"num_layers": 2},
    channel_base=32768,
    channel_max=512,
    fused_modconv_default="inference_only",
    num_fp16_res=0,
    conv_clamp=None,
)
FFHQ_SR = dict(
    channels=32,
    img_resolution=512,
    sr_num_fp16_res=4,
    sr_antialias=True,
    channel_base=32768,
    channel_max=512,
    fused_modconv_default="inference_only",
)
DECODER_OPTIONS = {"decoder_lr_mul": 1.0, "decoder_output_dim": 32}

SMALL_SYNTHESIS = dict(
    w_dim=16,
    img_resolution=16,
    img_channels=6,
    channel_base=128,
    channel_max=16,
    num_fp16_res=0,
    conv_clamp=None,
    fused_modconv_default="inference_only",
)


def numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def randomise(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-zero noise strengths and biases, so that every parameter affects the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("noise_strength") or name.endswith("bias"):
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    return module


class _TriPlaneLike(torch.nn.Module):
    """The parameterised children of EG3D's TriPlaneGenerator, in its registration order."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = Generator(**FFHQ_BACKBONE)
        self.superresolution = SuperresolutionHybrid8XDC(**FFHQ_SR)
        self.decoder = OSGDecoder(32, DECODER_OPTIONS)
        self.register_buffer("dataset_label_std", torch.ones(25))


@pytest.fixture(scope="module")
def ffhq_model() -> _TriPlaneLike:
    torch.manual_seed(0)
    return _TriPlaneLike()


# ------------------------------------------------------------------------------------------------
# Structure of the ffhq512 configuration.


def test_parameter_counts_ffhq512(ffhq_model: _TriPlaneLike) -> None:
    assert numel(ffhq_model.backbone.synthesis) == 28_207_533
    assert numel(ffhq_model.backbone.mapping) == 800_768
    assert numel(ffhq_model.superresolution) == 1_649_578
    assert numel(ffhq_model.decoder) == 4_257
    assert numel(ffhq_model) == 30_662_136
    assert sum(b.numel() for b in ffhq_model.buffers()) == 831_049
    assert ffhq_model.backbone.num_ws == 14
    assert ffhq_model.backbone.synthesis.block_resolutions == [4, 8, 16, 32, 64, 128, 256]


def _expected_ffhq_tensors() -> list[tuple[str, list[int]]]:
    """The ordered list of docs/eg3d.md §1.3: named_parameters() then named_buffers()."""
    params: list[tuple[str, list[int]]] = []
    buffers: list[tuple[str, list[int]]] = [("dataset_label_std", [25])]

    def layer(prefix: str, cin: int, cout: int, res: int) -> None:
        params.extend(
            [
                (f"{prefix}.weight", [cout, cin, 3, 3]),
                (f"{prefix}.noise_strength", []),
                (f"{prefix}.bias", [cout]),
                (f"{prefix}.affine.weight", [cin, 512]),
                (f"{prefix}.affine.bias", [cin]),
            ]
        )
        buffers.extend(
            [(f"{prefix}.resample_filter", [4, 4]), (f"{prefix}.noise_const", [res, res])]
        )

    def block(prefix: str, cin: int, cout: int, res: int, img_channels: int) -> None:
        buffers.append((f"{prefix}.resample_filter", [4, 4]))
        if cin == 0:
            params.append((f"{prefix}.const", [cout, 4, 4]))
        else:
            layer(f"{prefix}.conv0", cin, cout, res)
        layer(f"{prefix}.conv1", cout, cout, res)
        params.extend(
            [
                (f"{prefix}.torgb.weight", [img_channels, cout, 1, 1]),
                (f"{prefix}.torgb.bias", [img_channels]),
                (f"{prefix}.torgb.affine.weight", [cout, 512]),
                (f"{prefix}.torgb.affine.bias", [cout]),
            ]
        )

    channels = {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128}
    for res, cout in channels.items():
        block(f"backbone.synthesis.b{res}", channels.get(res // 2, 0), cout, res, 96)
    params.extend(
        [
            ("backbone.mapping.embed.weight", [512, 25]),
            ("backbone.mapping.embed.bias", [512]),
            ("backbone.mapping.fc0.weight", [512, 1024]),
            ("backbone.mapping.fc0.bias", [512]),
            ("backbone.mapping.fc1.weight", [512, 512]),
            ("backbone.mapping.fc1.bias", [512]),
        ]
    )
    buffers.append(("backbone.mapping.w_avg", [512]))
    block("superresolution.block0", 32, 256, 256, 3)
    block("superresolution.block1", 256, 128, 512, 3)
    params.extend(
        [
            ("decoder.net.0.weight", [64, 32]),
            ("decoder.net.0.bias", [64]),
            ("decoder.net.2.weight", [33, 64]),
            ("decoder.net.2.bias", [33]),
        ]
    )
    return params + buffers


def test_state_dict_names_ffhq512(ffhq_model: _TriPlaneLike) -> None:
    actual = [(n, list(p.shape)) for n, p in ffhq_model.named_parameters()]
    actual += [(n, list(b.shape)) for n, b in ffhq_model.named_buffers()]
    expected = _expected_ffhq_tensors()
    assert len(actual) == 177
    assert actual == expected
    # A few rows of the table, verbatim.
    table = dict(actual)
    assert table["backbone.synthesis.b128.conv0.weight"] == [256, 512, 3, 3]
    assert table["backbone.synthesis.b256.torgb.affine.weight"] == [128, 512]
    assert table["superresolution.block0.conv0.affine.weight"] == [32, 512]
    assert table["superresolution.block1.conv1.noise_const"] == [512, 512]
    # state_dict() interleaves parameters and buffers per module but holds the same names.
    state = ffhq_model.state_dict()
    assert {k: list(v.shape) for k, v in state.items()} == table
    assert all(v.dtype == torch.float32 for v in state.values())


def test_structural_attributes_ffhq512(ffhq_model: _TriPlaneLike) -> None:
    syn = ffhq_model.backbone.synthesis
    assert (syn.num_ws, syn.img_resolution_log2, syn.num_fp16_res) == (14, 8, 0)
    assert not any(getattr(syn, f"b{r}").use_fp16 for r in syn.block_resolutions)
    sr = ffhq_model.superresolution
    assert sr.input_resolution == 128 and sr.sr_antialias is True
    assert sr.block0.use_fp16 and sr.block0.conv0.conv_clamp == 256
    assert sr.block1.is_last and sr.block1.torgb.conv_clamp == 256
    assert ffhq_model.backbone.mapping.w_avg_beta == 0.998
    assert ffhq_model.decoder.hidden_dim == 64
    layer0 = syn.b8.conv0
    assert (layer0.up, layer0.padding, layer0.activation) == (2, 1, "lrelu")
    assert layer0.act_gain == pytest.approx(math.sqrt(2))


@pytest.mark.parametrize(
    "cls, img_res, has_filter",
    [
        (SuperresolutionHybrid8X, 512, True),
        (SuperresolutionHybrid4X, 256, True),
        (SuperresolutionHybrid2X, 128, True),
    ],
)
def test_other_superresolution_variants(cls, img_res: int, has_filter: bool) -> None:
    sr = cls(**dict(FFHQ_SR, img_resolution=img_res, sr_num_fp16_res=0))
    assert numel(sr) == 574_954
    assert ("resample_filter" in dict(sr.named_buffers(recurse=False))) == has_filter
    assert sr.block0.conv0.conv_clamp is None  # no fp16 -> no clamp
    with pytest.raises(ValueError):
        cls(**dict(FFHQ_SR, img_resolution=img_res * 2))


# ------------------------------------------------------------------------------------------------
# FIR filtering.


def _direct_upfirdn(x, f, up, down, pad, flip, gain):
    """Loop-free but independent: scatter into a zero-stuffed canvas, then a dense 2-D
    convolution written as an explicit sum over taps."""
    n, c, h, w = x.shape
    (ux, uy), (dx, dy) = up, down
    px0, px1, py0, py1 = pad
    top, left = max(py0, 0), max(px0, 0)
    height = h * uy + top + max(py1, 0)
    width = w * ux + left + max(px1, 0)
    canvas = torch.zeros(n, c, height, width, dtype=x.dtype)
    canvas[:, :, top : top + h * uy : uy, left : left + w * ux : ux] = x
    canvas = canvas[:, :, max(-py0, 0) : height - max(-py1, 0), max(-px0, 0) : width - max(-px1, 0)]
    f2 = f if f.ndim == 2 else torch.outer(f, f)
    f2 = f2.to(x.dtype) * gain
    fh, fw = f2.shape
    out_h, out_w = canvas.shape[2] - fh + 1, canvas.shape[3] - fw + 1
    out = torch.zeros(n, c, out_h, out_w, dtype=x.dtype)
    for i in range(fh):
        for j in range(fw):
            # True convolution: out[y] = sum_k canvas[y + k] * f[fh - 1 - k].
            tap = f2[i, j] if flip else f2[fh - 1 - i, fw - 1 - j]
            out += tap * canvas[:, :, i : i + out_h, j : j + out_w]
    return out[:, :, ::dy, ::dx]


@pytest.mark.parametrize(
    "up, down, pad, flip, gain, separable",
    [
        ((1, 1), (1, 1), (0, 0, 0, 0), False, 1.0, False),
        ((2, 2), (1, 1), (2, 1, 2, 1), False, 4.0, False),
        ((1, 1), (2, 2), (1, 1, 1, 1), True, 1.0, False),
        ((3, 2), (2, 1), (0, -1, 2, 1), False, 2.5, False),
        ((2, 2), (1, 1), (1, 2, -1, 3), True, 1.0, True),
    ],
)
def test_upfirdn2d_matches_direct_convolution(up, down, pad, flip, gain, separable) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 7, 6, generator=g, dtype=torch.float64)
    # A 1-D filter is applied separably (gain^(1/2) per axis): the same as its outer product.
    f = torch.rand(9, generator=g) if separable else torch.rand(4, 3, generator=g)
    f = f.double()  # float64 filter: the gain product is then exact to 1e-16
    actual = upfirdn2d(
        x, f, up=list(up), down=list(down), padding=list(pad), flip_filter=flip, gain=gain
    )
    expected = _direct_upfirdn(x, f, up, down, pad, flip, gain)
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)


def test_setup_filter_and_resampling_wrappers() -> None:
    f = setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and f.dtype == torch.float32
    assert torch.equal(
        f * 64, torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1]))
    )
    assert setup_filter(list(range(1, 9))).ndim == 1  # >= 8 taps: separable
    x = torch.full((2, 3, 8, 8), 0.5, dtype=torch.float64)
    up = upsample2d(x, f)
    down = downsample2d(x, f)
    same = filter2d(x, f)
    assert up.shape == (2, 3, 16, 16) and down.shape == (2, 3, 4, 4) and same.shape == x.shape
    # A normalised filter keeps a constant signal constant away from the borders.
    torch.testing.assert_close(up[..., 2:-2, 2:-2], torch.full_like(up[..., 2:-2, 2:-2], 0.5))
    torch.testing.assert_close(down[..., 1:-1, 1:-1], torch.full_like(down[..., 1:-1, 1:-1], 0.5))
    torch.testing.assert_close(same[..., 2:-2, 2:-2], torch.full_like(same[..., 2:-2, 2:-2], 0.5))
    # upsample2d with a 4x4 filter is upfirdn2d(up=2, pad=(2,1,2,1), gain=4) (docs/eg3d.md §2.7).
    y = torch.randn(1, 2, 5, 5)
    torch.testing.assert_close(
        upsample2d(y, f), upfirdn2d(y, f, up=2, padding=[2, 1, 2, 1], gain=4)
    )


# ------------------------------------------------------------------------------------------------
# Elementwise ops, FC layers, modulated convolution.


def test_bias_act_order_and_gains() -> None:
    x = torch.tensor([[-2.0, 0.5, 3.0]]).reshape(1, 3, 1)
    b = torch.tensor([1.0, -1.0, 0.0])
    out = bias_act(x, b, act="lrelu", clamp=3.0)
    v = (x + b.reshape(1, 3, 1)).flatten()
    expected = torch.where(v > 0, v, 0.2 * v) * math.sqrt(2)
    torch.testing.assert_close(out.flatten(), expected.clamp(-3, 3))
    assert out.flatten()[2] == 3.0  # 3 * sqrt(2) clamped after the gain
    torch.testing.assert_close(bias_act(x, b), x + b.reshape(1, 3, 1))  # linear, gain 1
    torch.testing.assert_close(
        bias_act(x, None, act="linear", gain=2.0, clamp=1.0), (2 * x).clamp(-1, 1)
    )


def test_normalize_2nd_moment() -> None:
    x = torch.randn(4, 10, dtype=torch.float64)
    y = normalize_2nd_moment(x)
    torch.testing.assert_close(
        y.square().mean(1), torch.ones(4, dtype=torch.float64), rtol=1e-6, atol=0
    )


def test_fully_connected_equalised_lr() -> None:
    torch.manual_seed(0)
    fc = FullyConnectedLayer(6, 4, activation="lrelu", lr_multiplier=0.01, bias_init=0.5)
    torch.testing.assert_close(fc.bias, torch.full((4,), 0.5))
    x = torch.randn(3, 6)
    pre = x @ (fc.weight * 0.01 / math.sqrt(6)).t() + fc.bias * 0.01
    torch.testing.assert_close(fc(x), F.leaky_relu(pre, 0.2) * math.sqrt(2))
    linear = FullyConnectedLayer(6, 4)
    torch.testing.assert_close(linear(x), x @ (linear.weight / math.sqrt(6)).t() + linear.bias)


def _modconv_direct(x, weight, styles, demodulate, up, resample_filter):
    """Per-sample weights, then an ordinary (or transposed) convolution per sample."""
    outs = []
    for n in range(x.shape[0]):
        w = weight * styles[n].reshape(1, -1, 1, 1)
        if demodulate:
            w = w / torch.sqrt(w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
        if up == 1:
            outs.append(F.conv2d(x[n : n + 1], w, padding=w.shape[-1] // 2))
        else:
            y = F.conv_transpose2d(x[n : n + 1], w.transpose(0, 1), stride=2)
            outs.append(upfirdn2d(y, resample_filter, padding=1, gain=4))
    return torch.cat(outs)


@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv2d_fused_equals_unfused_and_direct(up: int, demodulate: bool) -> None:
    g = torch.Generator().manual_seed(2)
    f = setup_filter([1, 3, 3, 1])
    for dtype, tol in [(torch.float32, 1e-5), (torch.float64, 1e-12)]:
        x = torch.randn(3, 4, 6, 6, generator=g).to(dtype)
        weight = torch.randn(5, 4, 3, 3, generator=g).to(dtype)
        styles = torch.randn(3, 4, generator=g).to(dtype)
        noise = torch.randn(3, 1, 6 * up, 6 * up, generator=g).to(dtype)
        kw = dict(up=up, padding=1, resample_filter=f, demodulate=demodulate, flip_weight=(up == 1))
        fused = modulated_conv2d(x, weight, styles, fused_modconv=True, **kw)
        unfused = modulated_conv2d(x, weight, styles, fused_modconv=False, **kw)
        scale = fused.abs().max().item()
        torch.testing.assert_close(unfused, fused, rtol=0, atol=tol * scale)
        with_noise = modulated_conv2d(x, weight, styles, noise=noise, fused_modconv=False, **kw)
        torch.testing.assert_close(with_noise, fused + noise, rtol=0, atol=tol * scale)
        if dtype == torch.float64:
            direct = _modconv_direct(x, weight, styles, demodulate, up, f)
            torch.testing.assert_close(fused, direct, rtol=0, atol=1e-12 * scale)


# ------------------------------------------------------------------------------------------------
# Mapping network.


def test_mapping_truncation() -> None:
    torch.manual_seed(0)
    m = MappingNetwork(z_dim=8, c_dim=5, w_dim=16, num_ws=6, num_layers=2).eval()
    with torch.no_grad():
        m.w_avg.normal_()
    z, c = torch.randn(3, 8), torch.randn(3, 5)
    ws = m(z, c)
    assert ws.shape == (3, 6, 16)
    assert torch.equal(ws[:, 0], ws[:, 5])  # broadcast
    torch.testing.assert_close(m(z, c, truncation_psi=0), m.w_avg.expand(3, 6, 16))
    half = m(z, c, truncation_psi=0.5, truncation_cutoff=2)
    torch.testing.assert_close(half[:, :2], 0.5 * (ws[:, :2] + m.w_avg))
    assert torch.equal(half[:, 2:], ws[:, 2:])
    # Batch items are independent.
    torch.testing.assert_close(m(z[1:2], c[1:2]), ws[1:2])
    # update_emas moves w_avg towards the batch mean.
    before = m.w_avg.clone()
    m(z, c, update_emas=True)
    expected = ws[:, 0].mean(0).lerp(before, 0.998)
    torch.testing.assert_close(m.w_avg, expected)


def test_mapping_without_label_or_latent() -> None:
    m = MappingNetwork(z_dim=8, c_dim=0, w_dim=16, num_ws=None)
    assert not hasattr(m, "embed") and not hasattr(m, "w_avg")
    assert m(torch.randn(2, 8), None).shape == (2, 16)
    m2 = MappingNetwork(z_dim=0, c_dim=5, w_dim=16, num_ws=3, embed_features=7)
    assert m2.fc0.in_features == 7
    assert m2(None, torch.randn(2, 5)).shape == (2, 3, 16)


# ------------------------------------------------------------------------------------------------
# Synthesis layers and network.


def test_synthesis_layer_noise_modes() -> None:
    torch.manual_seed(0)
    layer = SynthesisLayer(4, 5, w_dim=8, resolution=8, up=2).eval()
    x, w = torch.randn(2, 4, 4, 4), torch.randn(2, 8)
    base = layer(x, w, noise_mode="none")
    assert base.shape == (2, 5, 8, 8)
    # noise_strength starts at 0, so every mode gives the same output.
    torch.testing.assert_close(layer(x, w, noise_mode="const"), base)
    with torch.no_grad():
        layer.noise_strength.fill_(0.7)
    const = layer(x, w, noise_mode="const")
    assert not torch.allclose(const, base)
    torch.testing.assert_close(layer(x, w, noise_mode="const"), const)
    r1 = layer(x, w, noise_mode="random", generator=torch.Generator().manual_seed(5))
    r2 = layer(x, w, noise_mode="random", generator=torch.Generator().manual_seed(5))
    r3 = layer(x, w, noise_mode="random", generator=torch.Generator().manual_seed(6))
    assert torch.equal(r1, r2) and not torch.allclose(r1, r3)
    with pytest.raises(ValueError):
        layer(x, w, noise_mode="fixed")
    with pytest.raises(ValueError):
        layer(torch.randn(2, 4, 8, 8), w)


def test_synthesis_layer_conv_clamp() -> None:
    torch.manual_seed(0)
    layer = SynthesisLayer(4, 5, w_dim=8, resolution=4, conv_clamp=0.25)
    out = layer(torch.randn(2, 4, 4, 4), torch.randn(2, 8), noise_mode="none")
    assert out.abs().max() <= 0.25 and (out.abs() == 0.25).any()


def test_torgb_layer() -> None:
    torch.manual_seed(0)
    rgb = ToRGBLayer(4, 3, w_dim=8)
    x, w = torch.randn(2, 4, 5, 5), torch.randn(2, 8)
    styles = rgb.affine(w) / 2.0  # weight gain 1/sqrt(4)
    expected = torch.einsum("oi,ni,nihw->nohw", rgb.weight[:, :, 0, 0], styles, x)
    expected = expected + rgb.bias.reshape(1, 3, 1, 1)
    torch.testing.assert_close(rgb(x, w), expected, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def small_synthesis() -> SynthesisNetwork:
    torch.manual_seed(0)
    return randomise(SynthesisNetwork(**SMALL_SYNTHESIS)).eval()


def test_synthesis_network_shapes_and_ws_split(small_synthesis: SynthesisNetwork) -> None:
    net = small_synthesis
    assert net.num_ws == 1 + 2 * 2 + 1
    ws = torch.randn(3, net.num_ws, 16)
    img = net(ws, noise_mode="const")
    assert img.shape == (3, 6, 16, 16) and img.dtype == torch.float32
    # Block k reads ws[:, i : i + num_conv + num_torgb] and advances i by num_conv, so each ToRGB
    # shares its w with the next block's conv0 (docs/eg3d.md §2.4).
    x, rgb = net.b4(None, None, ws[:, 0:2], noise_mode="const")
    x, rgb = net.b8(x, rgb, ws[:, 1:4], noise_mode="const")
    x, rgb = net.b16(x, rgb, ws[:, 3:6], noise_mode="const")
    assert torch.equal(rgb, img)
    with pytest.raises(ValueError):
        net(ws[:, :-1])


def test_synthesis_network_batch_determinism_fused(small_synthesis: SynthesisNetwork) -> None:
    net = small_synthesis
    ws = torch.randn(3, net.num_ws, 16)
    fused = net(ws, noise_mode="const")
    torch.testing.assert_close(net(ws, noise_mode="const"), fused, rtol=0, atol=0)
    torch.testing.assert_close(net(ws[1:2], noise_mode="const"), fused[1:2], rtol=1e-5, atol=1e-5)
    unfused = net(ws, noise_mode="const", fused_modconv=False)
    torch.testing.assert_close(unfused, fused, rtol=0, atol=2e-5 * fused.abs().max().item())
    net.train()
    try:  # 'inference_only' = non-fused in training mode
        torch.testing.assert_close(net(ws, noise_mode="const"), unfused, rtol=0, atol=0)
    finally:
        net.eval()
    r1 = net(ws, noise_mode="random", generator=torch.Generator().manual_seed(1))
    r2 = net(ws, noise_mode="random", generator=torch.Generator().manual_seed(1))
    assert torch.equal(r1, r2)
    assert not torch.allclose(net(ws, noise_mode="none"), fused)


def test_synthesis_network_float64_fused_equals_unfused(small_synthesis: SynthesisNetwork) -> None:
    net64 = SynthesisNetwork(**SMALL_SYNTHESIS).double().eval()
    net64.load_state_dict(small_synthesis.state_dict())
    ws = torch.randn(2, net64.num_ws, 16, dtype=torch.float64)
    fused = net64(ws, noise_mode="const")
    assert fused.dtype == torch.float64
    unfused = net64(ws, noise_mode="const", fused_modconv=False)
    torch.testing.assert_close(unfused, fused, rtol=0, atol=1e-12 * fused.abs().max().item())
    ref32 = small_synthesis(ws.float(), noise_mode="const")
    torch.testing.assert_close(ref32.double(), fused, rtol=0, atol=1e-5 * fused.abs().max().item())


@pytest.mark.parametrize("architecture", ["orig", "resnet"])
def test_other_architectures(architecture: str) -> None:
    torch.manual_seed(0)
    net = SynthesisNetwork(**dict(SMALL_SYNTHESIS, architecture=architecture)).eval()
    assert not hasattr(net.b8, "torgb") and hasattr(net.b16, "torgb")
    assert hasattr(net.b8, "skip") == (architecture == "resnet")
    img = net(torch.randn(2, net.num_ws, 16), noise_mode="const")
    assert img.shape == (2, 6, 16, 16) and torch.isfinite(img).all()


def test_generator_small_and_state_dict_roundtrip() -> None:
    kw = dict(FFHQ_BACKBONE, z_dim=8, c_dim=5, w_dim=16, img_resolution=16, img_channels=96,
              channel_base=128, channel_max=16)  # fmt: skip
    torch.manual_seed(0)
    g1 = randomise(Generator(**kw)).eval()
    torch.manual_seed(1)
    g2 = Generator(**kw).eval()
    g2.load_state_dict(g1.state_dict())
    z, c = torch.randn(2, 8), torch.randn(2, 5)
    out = g1(z, c, truncation_psi=0.7, truncation_cutoff=3, noise_mode="const")
    assert out.shape == (2, 96, 16, 16)
    assert torch.equal(g2(z, c, truncation_psi=0.7, truncation_cutoff=3, noise_mode="const"), out)
    ws = g1.mapping(z, c, truncation_psi=0.7, truncation_cutoff=3)
    assert torch.equal(g1.synthesis(ws, noise_mode="const"), out)
    assert layers.Generator is Generator  # lazy re-export


# ------------------------------------------------------------------------------------------------
# Super-resolution.


def test_superresolution_2x_inplace_quirk_and_shapes() -> None:
    torch.manual_seed(0)
    sr = randomise(SuperresolutionHybrid2X(**dict(FFHQ_SR, img_resolution=128))).eval()
    assert isinstance(sr.block0, SynthesisBlockNoUp)
    ws = torch.randn(2, 14, 512)
    feat = torch.randn(2, 32, 64, 64)
    clean = feat.clone()
    out = sr(clean[:, :3].clone(), clean, ws, noise_mode="none")
    assert out.shape == (2, 3, 128, 128)
    assert torch.equal(clean, feat)  # rgb was a copy: nothing written back
    # rgb as a view of the feature image (as TriPlaneGenerator passes it): block0 adds its ToRGB
    # output into it in place, and the result is the same.
    aliased = feat.clone()
    out2 = sr(aliased[:, :3], aliased, ws, noise_mode="none")
    torch.testing.assert_close(out2, out, rtol=0, atol=1e-5 * out.abs().max().item())
    assert torch.equal(aliased[:, 3:], feat[:, 3:])
    assert not torch.allclose(aliased[:, :3], feat[:, :3])
    # Only the last w is used.
    ws2 = ws.clone()
    ws2[:, :-1] = 0
    torch.testing.assert_close(sr(feat[:, :3].clone(), feat, ws2, noise_mode="none"), out)
    # A resize (32 -> 64) makes a new tensor, so the input is left alone.
    small = torch.randn(2, 32, 32, 32)
    small_copy = small.clone()
    assert sr(small[:, :3], small, ws, noise_mode="none").shape == (2, 3, 128, 128)
    assert torch.equal(small, small_copy)


def test_superresolution_4x_resizes_only_smaller_inputs() -> None:
    torch.manual_seed(0)
    sr = SuperresolutionHybrid4X(**dict(FFHQ_SR, img_resolution=256)).eval()
    ws = torch.randn(1, 14, 512)
    x = torch.randn(1, 32, 64, 64)
    assert sr(x[:, :3].clone(), x, ws, noise_mode="none").shape == (1, 3, 256, 256)


def test_synthesis_block_noup_keeps_resolution() -> None:
    torch.manual_seed(0)
    blk = SynthesisBlockNoUp(8, 4, w_dim=16, resolution=8, img_channels=3, is_last=False)
    assert blk.conv0.up == 1 and blk.num_conv == 2 and blk.num_torgb == 1
    img = torch.zeros(2, 3, 8, 8)
    x, out = blk(torch.randn(2, 8, 8, 8), img, torch.randn(2, 3, 16), noise_mode="none")
    assert x.shape == (2, 4, 8, 8) and out is img  # written in place, like EG3D
    up = SynthesisBlock(8, 4, w_dim=16, resolution=8, img_channels=3, is_last=False)
    img2 = torch.zeros(2, 3, 4, 4)
    _, out2 = up(torch.randn(2, 8, 4, 4), img2, torch.randn(2, 3, 16), noise_mode="none")
    assert out2.shape == (2, 3, 8, 8) and torch.equal(img2, torch.zeros(2, 3, 4, 4))


# ------------------------------------------------------------------------------------------------
# Decoder.


def test_osg_decoder() -> None:
    torch.manual_seed(0)
    dec = randomise(OSGDecoder(32, DECODER_OPTIONS))
    planes = torch.randn(2, 3, 50, 32) * 3
    out = dec(planes.mean(1))
    assert out["sigma"].shape == (2, 50, 1) and out["rgb"].shape == (2, 50, 32)
    assert out["rgb"].min() > -0.001 and out["rgb"].max() < 1.001
    per_plane = dec(planes, torch.randn(2, 50, 3))  # EG3D's call: per-plane input, directions
    torch.testing.assert_close(per_plane["sigma"], out["sigma"])
    h = F.softplus(planes.mean(1) @ (dec.net[0].weight / math.sqrt(32)).t() + dec.net[0].bias)
    raw = h @ (dec.net[2].weight / 8.0).t() + dec.net[2].bias
    torch.testing.assert_close(out["sigma"], raw[..., :1])
    torch.testing.assert_close(out["rgb"], torch.sigmoid(raw[..., 1:]) * 1.002 - 0.001)
    half = OSGDecoder(32, {"decoder_lr_mul": 0.5, "decoder_output_dim": 4})
    assert half.net[2].out_features == 5 and half.net[0].weight_gain == 0.5 / math.sqrt(32)
