"""Dead-code re-seeding (models/codebook.py)."""
import dataclasses

import torch

from magvit_onnx.models.codebook import CodeUsage
from magvit_onnx.models.losses import EMA
from magvit_onnx.models.vqvae import VQVAE


def test_unused_codes_are_reseeded_from_encoder_outputs_in_both_codebooks(config):
    torch.manual_seed(0)
    vq = VQVAE(dataclasses.replace(config.vq, codebook_size=16))
    ema = EMA(vq)
    usage = CodeUsage(16, decay=0.5, most=1.0)
    for _ in range(12):  # only codes 0..3 are ever chosen
        usage.observe(torch.randint(0, 4, (2, 8)))
    assert usage.dead().tolist() == list(range(4, 16))
    before = vq.quantizer.codebook.detach().clone()
    video = torch.rand(2, *config.vq.video_shape, 3)
    assert usage.reseed(vq, ema.model, video) == 12
    after = vq.quantizer.codebook.detach()
    assert torch.equal(after[:4], before[:4]) and not torch.equal(after[4:], before[4:])
    assert torch.equal(ema.model.quantizer.codebook, after)
    latents = vq.encode(video).reshape(-1, after.shape[1])
    nearest = torch.cdist(after[4:], latents).min(1).values  # each new code sits on an encoder output
    assert (nearest < 0.05 * latents.std() * after.shape[1] ** 0.5).all()
    assert usage.dead().numel() == 0 and usage.reseed(vq, ema.model, video) == 0


def test_reseeding_is_capped_and_takes_the_least_used_first():
    usage = CodeUsage(100, decay=0.0, most=0.05)
    usage.observe(torch.arange(50).repeat(3))  # codes 50..99 unused
    usage.usage[60] = 1e-6  # barely used, still dead: taken after the unused ones
    dead = usage.dead()
    assert len(dead) == 5 and 60 not in dead.tolist() and set(dead.tolist()) <= set(range(50, 100))
