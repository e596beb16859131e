"""Tokenizer side of MAGVIT: 3D-VQ, discriminator, inflation, losses
(docs/official-behaviour.md#tokenizer, #inflation, #tokenizer-training, #checkable-facts)."""
import dataclasses
import math
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from magvit_onnx.models.config import get_config
from magvit_onnx.models.discriminator import StyleGANDiscriminator
from magvit_onnx.models.inflation import inflate_2d_to_3d
from magvit_onnx.models.losses import (
    EMA, LeCam, TokenizerLoss, discriminator_adversarial_loss, generator_adversarial_loss, hard_pixel_loss,
    perceptual_loss, r1_penalty, reconstruction_loss, tokenizer_train_step, vq_optimizers)
from magvit_onnx.models.vqvae import (
    Downsample, ResBlock, Upsample, VQVAE, avg_pool_same, entropy_loss)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def bair(name: str):
    """The official BAIR configs: 16x64x64 clips, VQ (1,2,4), D (2,4,4,4)."""
    cfg = get_config(name)
    return (dataclasses.replace(cfg.vq, video_shape=(16, 64, 64), channel_multipliers=(1, 2, 4)),
            dataclasses.replace(cfg.discriminator, channel_multipliers=(2, 4, 4, 4)))


def small_vq(**overrides):
    """'tiny' on 8x32x32 clips with UCF's three poolings: latent 2x4x4."""
    small = {"video_shape": (8, 32, 32), "channel_multipliers": (1, 2, 2, 4), "temporal_downsample": (True, True, False)}
    return dataclasses.replace(get_config("tiny").vq, **{**small, **overrides})


def clip(shape, seed=0):
    torch.manual_seed(seed)
    return torch.rand(1, *shape, 3)


# ---------------------------------------------------------------- 3D-VQ architecture

def test_shapes_and_latent_grid():
    torch.manual_seed(0)
    cfg = small_vq()
    vq = VQVAE(cfg)
    video = torch.rand(2, *cfg.video_shape, 3)
    latent = vq.encode(video)
    assert latent.shape == (2, *cfg.latent_shape, cfg.embedding_dim) == (2, 2, 4, 4, 64)
    ids = vq.tokenize(video)
    assert ids.shape == (2, 2, 4, 4) and ids.dtype == torch.int64
    assert 0 <= ids.min() and ids.max() < cfg.codebook_size
    assert vq.detokenize(ids).shape == video.shape
    reconstruction, losses, train_ids = vq(video)
    assert reconstruction.shape == video.shape and torch.equal(train_ids, ids)
    assert get_config("tiny").vq.latent_shape == (4, 16, 16)  # BAIR layout
    assert get_config("B").vq.latent_shape == (4, 16, 16)


@pytest.mark.parametrize("name, encoder, decoder, disc", [
    ("B", 17_149_888, 23_167_811, 15_339_457),
    ("L", 68_443_776, 89_106_051, 61_341_569),
])
def test_parameter_counts_ucf(name, encoder, decoder, disc):
    cfg = get_config(name)
    with torch.device("meta"):  # shapes only, no allocation
        vq = VQVAE(cfg.vq)
        d = StyleGANDiscriminator(cfg.discriminator, cfg.vq.video_shape)
    assert (n_params(vq.encoder), n_params(vq.decoder), n_params(vq.quantizer)) == (encoder, decoder, 262_144)
    assert n_params(d) == disc
    assert d.dense.in_features == 16 * 4 * cfg.vq.filters  # final map 1x4x4x4F


def test_parameter_counts_bair_b():
    vq_cfg, d_cfg = bair("B")
    with torch.device("meta"):
        vq = VQVAE(vq_cfg)
        d = StyleGANDiscriminator(d_cfg, vq_cfg.video_shape)
    assert (n_params(vq.encoder), n_params(vq.decoder), n_params(d)) == (15_379_392, 20_954_819, 11_734_465)


def test_bias_placement():
    with torch.device("meta"):
        vq = VQVAE(get_config("B").vq)
    assert vq.encoder.conv_in.bias is None
    assert vq.encoder.conv_out.bias is not None and vq.encoder.conv_out.kernel_size == (1, 1, 1)
    assert vq.decoder.conv_in.bias is not None and vq.decoder.conv_out.bias is not None
    blocks = [m for m in vq.modules() if isinstance(m, ResBlock)]
    assert len(blocks) == 2 * (4 + 1) * 2  # encoder and decoder x (4 levels + mid) x 2 blocks
    for block in blocks:
        assert block.conv1.bias is None and block.conv2.bias is None
        cin, cout = block.conv1.in_channels, block.conv1.out_channels
        if cin == cout:
            assert isinstance(block.shortcut, nn.Identity)
        else:
            assert block.shortcut.kernel_size == (1, 1, 1) and block.shortcut.bias is None


def test_group_norm_and_no_strided_convs():
    for name, groups in (("B", 32), ("tiny", 8)):
        with torch.device("meta"):
            vq = VQVAE(get_config(name).vq)
        norms = [m for m in vq.modules() if isinstance(m, nn.GroupNorm)]
        assert norms and all(m.num_groups == groups and m.eps == 1e-6 for m in norms)
        convs = [m for m in vq.modules() if isinstance(m, nn.Conv3d)]
        assert all(m.stride == (1, 1, 1) and m.padding_mode == "zeros" for m in convs)


def test_downsample_is_average_pooling():
    with torch.device("meta"):
        vq = VQVAE(get_config("B").vq)
    windows = [m.window for m in vq.encoder.modules() if isinstance(m, Downsample)]
    assert windows == [(2, 2, 2), (2, 2, 2), (1, 2, 2)]  # UCF: 16->8->4->4, 128->64->32->16
    x = torch.randn(1, 2, 4, 6, 6)
    blocks = x.reshape(1, 2, 2, 2, 3, 2, 3, 2).mean((3, 5, 7))
    torch.testing.assert_close(avg_pool_same(x, (2, 2, 2)), blocks)
    # TF 'SAME': an odd trailing cell is averaged alone; a size-1 axis stays 1, value unchanged.
    y = torch.randn(1, 1, 1, 3, 2)
    pooled = avg_pool_same(y, (2, 2, 2))
    assert pooled.shape == (1, 1, 1, 2, 1)
    torch.testing.assert_close(pooled[0, 0, 0, :, 0], torch.stack([y[0, 0, 0, :2].mean(), y[0, 0, 0, 2].mean()]))


def test_upsample_is_nearest_then_conv_with_bias():
    with torch.device("meta"):
        vq = VQVAE(get_config("B").vq)
    ups = [m for m in vq.decoder.modules() if isinstance(m, Upsample)]
    # Run order (levels 3, 2, 1) uses the flags of poolings 2, 1, 0.
    assert [m.factors for m in reversed(ups)] == [(1, 2, 2), (2, 2, 2), (2, 2, 2)]
    assert all(m.conv.bias is not None and m.conv.kernel_size == (3, 3, 3) for m in ups)
    torch.manual_seed(0)
    up = Upsample(4, (1, 2, 2))
    x = torch.randn(1, 4, 2, 3, 3)
    nearest = x[:, :, :, [0, 0, 1, 1, 2, 2]][:, :, :, :, [0, 0, 1, 1, 2, 2]]
    torch.testing.assert_close(up(x), up.conv(nearest))


# ---------------------------------------------------------------- quantizer

def test_quantizer_argmin_matches_brute_force():
    torch.manual_seed(0)
    vq = VQVAE(small_vq())
    bound = math.sqrt(3 / 1024)
    assert vq.quantizer.codebook.abs().max() <= bound
    z = torch.randn(2, 2, 4, 4, 64) * 0.05
    brute = ((z[..., None, :] - vq.quantizer.codebook) ** 2).sum(-1).argmin(-1)
    assert torch.equal(vq.quantizer.distances(z).argmin(-1), brute)
    # Ties go to the lowest index, like argmin.
    vq.quantizer.codebook.data[7] = vq.quantizer.codebook.data[3]
    assert vq.quantizer.distances(vq.quantizer.codebook[3:4]).argmin(-1).item() == 3


def test_quantizer_losses_and_straight_through():
    torch.manual_seed(0)
    cfg = small_vq()
    vq = VQVAE(cfg)
    video = clip(cfg.video_shape)
    reconstruction, losses, _ = vq(video)
    assert set(losses) == {"commitment_loss", "codebook_loss", "entropy_loss", "quantizer_loss"}
    assert all(torch.isfinite(v) for v in losses.values())
    # Both latent terms are mean((q - z)^2), weighted 0.25 and 1.
    torch.testing.assert_close(losses["commitment_loss"], 0.25 * losses["codebook_loss"])
    torch.testing.assert_close(losses["quantizer_loss"], sum(losses[k] for k in ("commitment_loss", "codebook_loss", "entropy_loss")))
    # Straight-through: the reconstruction gradient reaches the encoder, never the codebook.
    reconstruction_loss(video, reconstruction).backward()
    assert vq.encoder.conv_in.weight.grad.abs().sum() > 0
    assert vq.quantizer.codebook.grad is None


def test_entropy_loss_extremes():
    k = 16
    # Confident and all codes used: sample entropy 0, batch entropy log K.
    assert entropy_loss(10 * torch.eye(k), 0.01).item() == pytest.approx(-math.log(k), abs=1e-3)
    # Confident but one code for everything: both entropies 0.
    assert entropy_loss(10 * torch.eye(k)[[0] * k], 0.01).item() == pytest.approx(0.0, abs=1e-3)


# ---------------------------------------------------------------- inflation

def test_inflation_kernel_placement_and_average():
    torch.manual_seed(0)
    cfg = small_vq()
    vq2, vq3 = VQVAE(cfg, dims=2), VQVAE(cfg)
    state_2d = vq2.state_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        state_3d = inflate_2d_to_3d(state_2d, vq3)
    assert state_3d.keys() == state_2d.keys()
    w2, w3 = state_2d["encoder.conv_in.weight"], vq3.encoder.conv_in.weight
    assert w3.shape[2] == 3
    assert torch.equal(w3[:, :, 1], w2) and not w3[:, :, 0].any() and not w3[:, :, 2].any()
    shortcut = vq3.decoder.levels[0][0].shortcut.weight  # 1x1x1: index 0
    assert torch.equal(shortcut[:, :, 0], state_2d["decoder.levels.0.0.shortcut.weight"])
    assert torch.equal(vq3.quantizer.codebook, vq2.quantizer.codebook)
    average = inflate_2d_to_3d(state_2d, VQVAE(cfg), mode="average", load=False)["encoder.conv_in.weight"]
    torch.testing.assert_close(average, w2[:, :, None].expand(-1, -1, 3, -1, -1) / 3)
    # Mismatched leaves keep the 3D init, loudly.
    with pytest.warns(UserWarning, match="cannot inflate"):
        kept = inflate_2d_to_3d({"quantizer.codebook": torch.zeros(3, 3)}, vq3, load=False)
    assert torch.equal(kept["quantizer.codebook"], vq3.quantizer.codebook)


def test_central_inflation_reproduces_2d_model_on_static_video():
    # Central kernels have no temporal taps, and GN/pooling see identical frames, so the
    # inflated model on a static clip is exactly the 2D model on each frame.
    torch.manual_seed(0)
    cfg = small_vq()
    vq2, vq3 = VQVAE(cfg, dims=2), VQVAE(cfg)
    inflate_2d_to_3d(vq2.state_dict(), vq3)
    static = clip((1, 32, 32)).expand(-1, 8, -1, -1, -1)
    with torch.no_grad():
        latent_2d, latent_3d = vq2.encode(static), vq3.encode(static)
        torch.testing.assert_close(latent_3d, latent_2d[:, :2], atol=1e-5, rtol=1e-4)
        ids = torch.randint(0, cfg.codebook_size, (1, 1, 4, 4))
        video_2d = vq2.detokenize(ids.expand(-1, 8, -1, -1))
        video_3d = vq3.detokenize(ids.expand(-1, 2, -1, -1))
    torch.testing.assert_close(video_3d, video_2d, atol=1e-5, rtol=1e-4)


def test_discriminator_inflation_copies_dense_layers():
    torch.manual_seed(0)
    d_cfg = get_config("tiny").discriminator
    d2 = StyleGANDiscriminator(d_cfg, (8, 32, 32), dims=2)  # per frame: 32x32 -> 2x2
    d3 = StyleGANDiscriminator(d_cfg, (8, 32, 32))  # 8x32x32 -> 1x2x2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inflate_2d_to_3d(d2.state_dict(), d3)
    assert torch.equal(d3.dense.weight, d2.dense.weight)
    assert torch.equal(d3.blocks[0].conv1.weight[:, :, 1], d2.blocks[0].conv1.weight)


# ---------------------------------------------------------------- discriminator

def test_discriminator_shapes_and_init():
    torch.manual_seed(0)
    d_cfg = get_config("tiny").discriminator  # 4 blocks
    d = StyleGANDiscriminator(d_cfg, (4, 32, 32))  # T: 4 -> 2 -> 1 -> 1 -> 1 (pools space only at T=1)
    assert d.dense.in_features == 1 * 2 * 2 * 64
    video = torch.rand(3, 4, 32, 32, 3)
    logits = d(video)
    assert logits.shape == (3,)
    # The Dense layer sees the final map flattened in (T, H, W, C) order, as the official one.
    x = F.leaky_relu(d.conv_out(d.blocks(F.leaky_relu(d.conv_in(video.permute(0, 4, 1, 2, 3)), 0.2))), 0.2)
    assert x.shape == (3, 64, 1, 2, 2)
    expected = d.logit(F.leaky_relu(d.dense(x.permute(0, 2, 3, 4, 1).reshape(3, -1)), 0.2)).squeeze(-1)
    torch.testing.assert_close(logits, expected)
    assert all(m.bias is None or not m.bias.any() for m in d.modules() if isinstance(m, (nn.Conv3d, nn.Linear)))
    assert d.blocks[0].skip.bias is None and d.blocks[0].conv1.bias is not None
    d2 = StyleGANDiscriminator(d_cfg, (4, 16, 16), dims=2)
    video = torch.rand(2, 4, 16, 16, 3)
    logits = d2(video)
    assert logits.shape == (2, 4)  # per-frame logits, as the official vmapped 2D D
    torch.testing.assert_close(logits[1, 2], d2(video[1:2, 2:3])[0, 0])


# ---------------------------------------------------------------- losses

def test_gan_losses_values():
    zeros = torch.zeros(4)
    assert generator_adversarial_loss(zeros).item() == pytest.approx(math.log(2))
    assert discriminator_adversarial_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))
    assert reconstruction_loss(torch.zeros(2, 3), torch.full((2, 3), 2.0)).item() == 4.0


def test_r1_penalty_exact_on_linear_discriminator():
    class Linear(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(2, 3, 3, 3))

        def forward(self, x):
            return (x * self.w).flatten(1).sum(1)

    torch.manual_seed(0)
    d = Linear()
    logits, penalty = r1_penalty(d, torch.rand(4, 2, 3, 3, 3))
    assert logits.shape == (4,)
    torch.testing.assert_close(penalty, 10 * d.w.pow(2).sum())  # dD/dx = w for every example, no 1/2
    penalty.backward()
    torch.testing.assert_close(d.w.grad, 20 * d.w.detach())


def test_lecam_ema_updates():
    lecam = LeCam()
    loss = lecam(torch.tensor([1.0, 3.0]), torch.tensor([-1.0, -3.0]))
    assert loss.item() == pytest.approx(2.0 ** 2 + 2.0 ** 2)  # EMAs start at 0 and are used before the update
    assert lecam.ema_real.item() == pytest.approx(0.001 * 2) and lecam.ema_fake.item() == pytest.approx(-0.001 * 2)


def test_perceptual_loss():
    real, fake = torch.rand(2, 3, 16, 16, 3), torch.rand(2, 3, 16, 16, 3)
    assert perceptual_loss(None, real, fake).item() == 0.0
    seen = []
    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv2d(3, 4, 7, stride=7), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    network.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    assert perceptual_loss(network, real, real).item() == 0.0
    assert perceptual_loss(network, real, fake).item() > 0
    assert seen[0] == (6, 3, 224, 224)  # every frame, resized to 224x224


def test_tokenizer_loss_terms():
    torch.manual_seed(0)
    cfg = small_vq()
    vq, d = VQVAE(cfg), StyleGANDiscriminator(get_config("tiny").discriminator, cfg.video_shape)
    loss_fn = TokenizerLoss(d)
    video = clip(cfg.video_shape)
    reconstruction, quantizer_losses, _ = vq(video)
    g_loss, d_loss, logs = loss_fn(video, reconstruction, quantizer_losses)
    assert all(math.isfinite(v) for v in logs.values())
    assert logs["grad_penalty"] > 0 and logs["lecam_loss"] == 0 and logs["perceptual_loss"] == 0
    assert loss_fn.lecam.ema_real.item() == 0  # LeCam off: EMAs untouched, as officially
    assert g_loss.item() == pytest.approx(logs["reconstruction_loss"] + logs["g_adversarial_loss"] + logs["quantizer_loss"], rel=1e-5)
    assert d_loss.item() == pytest.approx(logs["d_adversarial_loss"] + logs["grad_penalty"], rel=1e-5)


def test_hard_pixel_loss_weights_the_worst_pixels():
    real = torch.zeros(2, 2, 4, 4, 3)
    fake = real.clone()
    fake[0, 0, 0, 0] = 1.0  # one wrong pixel (all channels) in video 0, none in video 1
    # fraction 1/32 of 32 pixels = the single worst pixel per video: errors 1 and 0
    assert hard_pixel_loss(real, fake, 1 / 32).item() == pytest.approx(0.5)
    assert hard_pixel_loss(real, fake, 1.0).item() == pytest.approx(F.mse_loss(fake, real).item())
    torch.manual_seed(0)
    cfg = small_vq()
    vq, d = VQVAE(cfg), StyleGANDiscriminator(get_config("tiny").discriminator, cfg.video_shape)
    video = clip(cfg.video_shape)
    reconstruction, quantizer_losses, _ = vq(video)
    g_loss, _, logs = TokenizerLoss(d, hard_pixel_weight=0.5)(video, reconstruction, quantizer_losses,
                                                             adversarial=False)
    assert logs["hard_pixel_loss"] > 0.5 * logs["reconstruction_loss"]  # the worst 5 % are above the mean
    assert g_loss.item() == pytest.approx(logs["reconstruction_loss"] + logs["quantizer_loss"]
                                          + logs["hard_pixel_loss"], rel=1e-5)
    assert "hard_pixel_loss" not in TokenizerLoss(d)(video, reconstruction, quantizer_losses, adversarial=False)[2]


def test_optimizers_and_ema():
    vq, d = nn.Linear(2, 2), nn.Linear(2, 1)
    g_opt, d_opt = vq_optimizers(vq, d)
    for opt in (g_opt, d_opt):
        group = opt.param_groups[0]
        assert (group["lr"], group["betas"], group["eps"], group["weight_decay"]) == (1e-4, (0.0, 0.99), 1e-8, 0.0)
    ema = EMA(vq)
    before = vq.weight.detach().clone()
    with torch.no_grad():
        vq.weight.add_(1.0)
    ema.update(vq)
    torch.testing.assert_close(ema.model.weight, 0.999 * before + 0.001 * vq.weight.detach())


def small_gan():
    """A small VQ + D and one smooth 4x16x16 clip, for training steps."""
    torch.manual_seed(0)
    cfg = dataclasses.replace(get_config("tiny").vq, video_shape=(4, 16, 16), filters=8, channel_multipliers=(1, 2, 2),
                              norm_groups=4, embedding_dim=16, codebook_size=64)
    d_cfg = dataclasses.replace(get_config("tiny").discriminator, filters=8, channel_multipliers=(2, 4, 4))
    t, y, x = torch.meshgrid(*(torch.linspace(0, 1, n) for n in cfg.video_shape), indexing="ij")
    video = (0.5 + 0.4 * torch.sin(6 * x[..., None] + 3 * y[..., None] + 2 * t[..., None] + torch.arange(3.0)))[None]
    return VQVAE(cfg), StyleGANDiscriminator(d_cfg, cfg.video_shape), video


def test_train_step_takes_generator_and_discriminator_gradients_separately():
    vq, d, video = small_gan()
    loss_fn = TokenizerLoss(d)
    g_opt, d_opt = vq_optimizers(vq, d, lr=0.0)  # gradients only, weights stay put
    tokenizer_train_step(vq, loss_fn, g_opt, d_opt, video)
    reconstruction, quantizer_losses, _ = vq(video)
    g_loss, d_loss, _ = loss_fn(video, reconstruction, quantizer_losses)
    g_expected = torch.autograd.grad(g_loss, list(vq.parameters()), retain_graph=True)
    d_expected = torch.autograd.grad(d_loss, list(d.parameters()))
    for p, expected in zip([*vq.parameters(), *d.parameters()], [*g_expected, *d_expected]):
        torch.testing.assert_close(p.grad, expected)


def test_training_reduces_reconstruction_loss():
    vq, d, video = small_gan()  # official optimiser settings (lr 1e-4)
    loss_fn, ema = TokenizerLoss(d), EMA(vq)
    g_opt, d_opt = vq_optimizers(vq, d)
    history = [tokenizer_train_step(vq, loss_fn, g_opt, d_opt, video, ema)["reconstruction_loss"] for _ in range(30)]
    assert all(math.isfinite(v) for v in history)
    assert history[-1] < 0.5 * history[0]  # measured 0.20-0.29 over seeds 0-4
    assert not torch.equal(ema.model.encoder.conv_in.weight, vq.encoder.conv_in.weight)
