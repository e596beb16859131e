"""Dead-code re-seeding for tokenizer training (ours; the official code has none).

A VQ codebook trained from scratch leaves many codes unused ("dead"): no encoder output is
nearest to them, so they never receive a gradient. The official recipe counts on the entropy
loss to spread usage; on short budgets that is not enough (half of the `tiny` codebook was
dead after 1,600 2D steps), and every dead code is a bit the tokenizer cannot spend. Every
`--reseed-every` steps, codes whose usage (an exponential moving average of how often each is
chosen) fell below a small share of the uniform rate get the values of randomly chosen
recent encoder outputs, plus a little noise, in the trained and the EMA codebook alike — a
few at a time (5 % of the codebook), so the decoder keeps up.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from magvit_onnx.models.vqvae import VQVAE


class CodeUsage:
    """EMA of each code's share of the chosen ids; `reseed` revives the dead ones."""

    def __init__(self, codebook_size: int, decay: float = 0.99, dead_share: float = 0.03, most: float = 0.05):
        self.usage = torch.full((codebook_size,), 1.0 / codebook_size)
        self.decay, self.dead_share = decay, dead_share
        self.most = max(1, int(most * codebook_size))  # codes re-seeded at once

    def observe(self, ids: torch.Tensor) -> None:
        """Count one batch's ids [B, ...]."""
        counts = torch.bincount(ids.reshape(-1).cpu(), minlength=self.usage.numel()).float()
        self.usage.mul_(self.decay).add_(counts / counts.sum(), alpha=1 - self.decay)

    def dead(self) -> torch.Tensor:
        """Ids of the codes used less than `dead_share` x the uniform rate, the least used first,
        at most `most` of them: re-seeding many codes at once moves so many latents to new
        codes that the decoder needs hundreds of steps to catch up (385 at once cost 3 dB)."""
        dead = torch.nonzero(self.usage < self.dead_share / self.usage.numel()).flatten()
        return dead[self.usage[dead].argsort()][:self.most]

    @torch.no_grad()
    def reseed(self, vq: VQVAE, ema_vq: VQVAE, video: torch.Tensor, world: int = 1) -> int:
        """Gives every dead code a random encoder output of `video` [B, T, H, W, 3]; returns how
        many were re-seeded. With several processes, usage is averaged first and rank 0's new
        codebook is broadcast, so all ranks keep identical weights."""
        if world > 1:
            dist.all_reduce(self.usage)
            self.usage /= world
        dead = self.dead()
        codebook = vq.quantizer.codebook
        if len(dead):
            latents = vq.encode(video).reshape(-1, codebook.shape[1]).float()
            picks = latents[torch.randint(len(latents), (len(dead),), device=latents.device)]
            noise = 0.01 * picks.std() * torch.randn_like(picks)
            codebook[dead.to(codebook.device)] = picks + noise
            ema_vq.quantizer.codebook[dead.to(codebook.device)] = codebook[dead.to(codebook.device)]
            self.usage[dead] = 1.0 / self.usage.numel()
        if world > 1:
            dist.broadcast(codebook, 0)
            dist.broadcast(ema_vq.quantizer.codebook, 0)
        return len(dead)
