"""Tokenizer (VQGAN) training losses and optimisation helpers
(docs/official-behaviour.md#tokenizer-training), as the
official `vqgan_trainer.train_g_d` / `losses.py`:

    g_loss = reconstruction + 0.1 * G_GAN + 0.1 * perceptual + quantizer
    d_loss = D_GAN + R1 (+ lecam_weight * LeCam, weight 0 in every official config)

Both come from one forward pass; the generator's gradients are taken from g_loss only and
the discriminator's from d_loss only (`tokenizer_train_step`). Non-saturating GAN losses,
active from the first step (no discriminator warm-up).
Not here: the lr schedule (linear warmup of one epoch, then cosine decay; the first
optax update uses lr 0).
"""
from __future__ import annotations

import copy
from typing import Callable, Iterable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

RESNET_SIZE = 224  # the official perceptual network's input size


def reconstruction_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """L2: mean over all elements of (x - x_hat)^2."""
    return F.mse_loss(fake, real)


def hard_pixel_loss(real: torch.Tensor, fake: torch.Tensor, fraction: float) -> torch.Tensor:
    """Mean squared error of the worst `fraction` of each video's pixels (ours, not official).

    Plain L2 is dominated by easy, large regions (backgrounds); small moving objects are a
    few percent of the pixels and are learned last. This term puts the weight on whatever is
    reconstructed worst, standing in for the sharpening that the official perceptual and GAN
    losses give and that 2 CPU cores cannot afford early in training. [B, T, H, W, C]."""
    err = (real.float() - fake.float()).pow(2).mean(-1).flatten(1)  # (B, T*H*W)
    k = max(1, int(err.shape[1] * fraction))
    return err.topk(k, dim=1).values.mean()


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating: mean softplus(-D(x_hat)) = -log sigmoid(D(x_hat))."""
    return F.softplus(-fake_logits).mean()


def discriminator_adversarial_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating: mean softplus(-D(x)) + mean softplus(D(x_hat))."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def r1_penalty(discriminator: nn.Module, real: torch.Tensor, cost: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """R1 on real videos: cost * mean_b sum (dD/dx)^2 (no 1/2), gradient of the summed logits.

    Returns (real_logits, penalty): the official code reuses this forward's logits for
    the adversarial loss. The penalty is differentiable w.r.t. the discriminator.
    """
    real = real.detach().requires_grad_(True)
    logits = discriminator(real)
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    return logits, cost * grad.flatten(1).pow(2).sum(1).mean()


class LeCam(nn.Module):
    """LeCam regularisation (Tseng et al. 2021) with EMAs of the mean real/fake logits:
    relu(mean D(x) - ema_fake)^2 + relu(ema_real - mean D(x_hat))^2.

    Implemented officially but switched off: `lecam_weight` is unset (0) in all configs.
    The loss uses the EMAs from before this step; then they move (decay = `polyak_decay`).
    """

    def __init__(self, decay: float = 0.999):
        super().__init__()
        self.decay = decay
        self.register_buffer("ema_real", torch.zeros(()))
        self.register_buffer("ema_fake", torch.zeros(()))

    def forward(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        real_pred, fake_pred = real_logits.mean(), fake_logits.mean()
        loss = F.relu(real_pred - self.ema_fake).pow(2) + F.relu(self.ema_real - fake_pred).pow(2)
        with torch.no_grad():
            self.ema_real.lerp_(real_pred, 1 - self.decay)
            self.ema_fake.lerp_(fake_pred, 1 - self.decay)
        return loss


def perceptual_loss(network: nn.Module | None, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """MSE between the logits of `network` on every frame of real and fake [B, T, H, W, 3].

    `network` maps images [N, 3, 224, 224] to logits; officially an ImageNet ResNet-50, fed
    frames bilinearly resized to 224x224 with no mean/std normalisation. None gives 0:
    no pretrained weights can be downloaded here, and the official release's ResNet path
    is None too (its random init has a zero head, so the logit MSE would be 0 anyway).
    """
    if network is None:
        return real.new_zeros(())

    def frames(video: torch.Tensor) -> torch.Tensor:
        x = video.flatten(0, 1).permute(0, 3, 1, 2)  # (B*T, 3, H, W)
        if x.shape[2] != RESNET_SIZE and x.shape[3] != RESNET_SIZE:  # official condition ('and')
            # jax.image.resize antialiases when shrinking; enlarging is plain bilinear.
            x = F.interpolate(x, size=(RESNET_SIZE, RESNET_SIZE), mode="bilinear", align_corners=False, antialias=True)
        return x

    return F.mse_loss(network(frames(fake)), network(frames(real)))


class TokenizerLoss(nn.Module):
    """Official tokenizer objective for one batch; holds the discriminator, the (frozen)
    perceptual network and the LeCam EMAs. The official weights are the defaults."""

    def __init__(self, discriminator: nn.Module, perceptual_network: nn.Module | None = None, *,
                 g_adversarial_weight: float = 0.1, perceptual_weight: float = 0.1,
                 r1_cost: float = 10.0, lecam_weight: float = 0.0, lecam_decay: float = 0.999,
                 hard_pixel_weight: float = 0.0, hard_pixel_fraction: float = 0.05):
        super().__init__()
        self.discriminator = discriminator
        self.perceptual_network = perceptual_network
        if perceptual_network is not None:
            perceptual_network.requires_grad_(False).eval()
        self.g_adversarial_weight, self.perceptual_weight = g_adversarial_weight, perceptual_weight
        self.r1_cost, self.lecam_weight = r1_cost, lecam_weight
        self.hard_pixel_weight, self.hard_pixel_fraction = hard_pixel_weight, hard_pixel_fraction  # 0: official
        self.lecam = LeCam(lecam_decay)

    def forward(self, real: torch.Tensor, reconstruction: torch.Tensor, quantizer_losses: dict[str, torch.Tensor],
                *, adversarial: bool = True, r1_scale: float = 1.0
                ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, float]]:
        """real, reconstruction: [B, T, H, W, 3]. Returns (g_loss, d_loss, logged terms, weighted).

        Official: adversarial=True, r1_scale=1 every step. Our CPU training may switch the
        GAN terms off for a warm-up (adversarial=False: no discriminator call, d_loss None)
        and apply R1 lazily (r1_scale = k every k-th step, 0 otherwise; StyleGAN2's trick).
        """
        terms = {
            "reconstruction_loss": reconstruction_loss(real, reconstruction),
            "perceptual_loss": self.perceptual_weight * perceptual_loss(self.perceptual_network, real, reconstruction),
            "quantizer_loss": quantizer_losses["quantizer_loss"],
        }
        g_loss = terms["reconstruction_loss"] + terms["perceptual_loss"] + terms["quantizer_loss"]
        if self.hard_pixel_weight > 0:
            terms["hard_pixel_loss"] = self.hard_pixel_weight * hard_pixel_loss(real, reconstruction,
                                                                                self.hard_pixel_fraction)
            g_loss = g_loss + terms["hard_pixel_loss"]
        d_loss = None
        if adversarial:
            if r1_scale > 0:
                real_logits, grad_penalty = r1_penalty(self.discriminator, real, self.r1_cost * r1_scale)
            else:
                real_logits, grad_penalty = self.discriminator(real.detach()), real.new_zeros(())
            fake_logits = self.discriminator(reconstruction)  # not detached: see tokenizer_train_step
            terms["g_adversarial_loss"] = self.g_adversarial_weight * generator_adversarial_loss(fake_logits)
            terms["d_adversarial_loss"] = discriminator_adversarial_loss(real_logits, fake_logits)
            terms["grad_penalty"] = grad_penalty
            # Like the official code, the LeCam EMAs only run when the term is on.
            terms["lecam_loss"] = (self.lecam_weight * self.lecam(real_logits, fake_logits) if self.lecam_weight > 0
                                   else real.new_zeros(()))
            g_loss = g_loss + terms["g_adversarial_loss"]
            d_loss = terms["d_adversarial_loss"] + terms["grad_penalty"] + terms["lecam_loss"]
        logs = {"g_loss": g_loss.item(), **{k: v.item() for k, v in terms.items()}}
        if d_loss is not None:
            logs["d_loss"] = d_loss.item()
        return g_loss, d_loss, logs


def vq_optimizers(vqvae: nn.Module, discriminator: nn.Module, lr: float = 1e-4
                  ) -> tuple[torch.optim.AdamW, torch.optim.AdamW]:
    """Official G and D optimisers: optax.adamw(b1=0, b2=0.99, eps=1e-8), no weight decay, no clipping.
    Frozen tokenizer parameters (requires_grad False, e.g. a decoder-only fine-tune's encoder) are left out."""
    def adamw(params: Iterable[nn.Parameter]) -> torch.optim.AdamW:
        return torch.optim.AdamW(params, lr=lr, betas=(0.0, 0.99), eps=1e-8, weight_decay=0.0)
    generator = [p for p in vqvae.parameters() if p.requires_grad]
    return adamw(generator), adamw(discriminator.parameters())


class EMA:
    """Polyak average of a model's parameters: ema <- decay * ema + (1 - decay) * new after
    every step, no bias correction, starting from the initial weights. The EMA copy
    (`.model`) is what the official code releases and tokenizes with."""

    def __init__(self, model: nn.Module, decay: float = 0.999):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for ema, new in zip(self.model.parameters(), model.parameters()):
            ema.lerp_(new, 1 - self.decay)


def tokenizer_train_step(vqvae: nn.Module, loss_fn: TokenizerLoss, g_opt: torch.optim.Optimizer,
                         d_opt: torch.optim.Optimizer, video: torch.Tensor | Sequence[torch.Tensor],
                         ema: EMA | None = None, *, adversarial: bool = True, r1_scale: float = 1.0,
                         sync: Callable[[Iterable[nn.Parameter]], None] | None = None,
                         observe: Callable[[torch.Tensor], None] | None = None) -> dict[str, float]:
    """One official step: one forward; G grads from g_loss only, D grads from d_loss only
    (both at the current weights); both optimisers step; then the EMA moves.

    `video` may be a list of micro-batches (gradient accumulation): their gradients are
    averaged. `sync(parameters)` then averages gradients across processes (data parallelism).
    `observe(ids)` sees every micro-batch's code ids (codebook usage statistics).
    `adversarial` / `r1_scale`: see `TokenizerLoss.forward` (defaults = official)."""
    micro_batches = [video] if isinstance(video, torch.Tensor) else list(video)
    g_params = [p for group in g_opt.param_groups for p in group["params"]]
    d_params = [p for group in d_opt.param_groups for p in group["params"]]
    g_opt.zero_grad(set_to_none=True)
    d_opt.zero_grad(set_to_none=True)
    logs: dict[str, float] = {}
    for micro in micro_batches:
        reconstruction, quantizer_losses, ids = vqvae(micro)
        if observe is not None:
            observe(ids)
        g_loss, d_loss, micro_logs = loss_fn(micro, reconstruction, quantizer_losses,
                                             adversarial=adversarial, r1_scale=r1_scale)
        share = 1.0 / len(micro_batches)
        (g_loss * share).backward(inputs=g_params, retain_graph=d_loss is not None)
        if d_loss is not None:
            (d_loss * share).backward(inputs=d_params)
        for key, value in micro_logs.items():
            logs[key] = logs.get(key, 0.0) + value * share
    if sync is not None:
        sync(g_params + (d_params if adversarial else []))
    if adversarial:
        d_opt.step()
    g_opt.step()
    if ema is not None:
        ema.update(vqvae)
    return logs
