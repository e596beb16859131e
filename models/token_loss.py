"""COMMIT training objective and optimiser of the transformer (docs/official-behaviour.md#commit-training).

    loss, per_example = token_loss(model(ids), targets, weights)
    opt = transformer_optimizer(model)            # AdamW(0.9, 0.96, 1e-8), wd on kernels only
    lr = warmup_cosine(step, 1e-4, 5000, total)   # set on opt.param_groups each step

Gradient clipping (global norm 1.0, `torch.nn.utils.clip_grad_norm_`) is the caller's job,
between backward() and step(), as in the official `train_step`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def token_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    label_smoothing: float = 1e-4,
    codebook_size: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted, label-smoothed cross-entropy over the codebook (docs/official-behaviour.md#commit-training).

    logits (B, L, >=K), targets (B, L) int, weights (B, L) float -> (loss (), per_example (B,)).

    Only logits[..., :K] are used. Target distribution: on = 1 - eps + eps/K at the target,
    off = eps/K elsewhere; CE_i = -sum_k target_ik * log_softmax(logits_i)_k.
    Targets outside 0..K-1 (the prefix ids: task / class tokens) get an all-`off` row, as
    the official one-hot (comparison with arange(K)) gives them; they carry weight 0.
    per_example = sum_i w_i CE_i / (sum_i w_i + 1e-8); loss = mean over the batch.
    """
    k = codebook_size
    log_probs = F.log_softmax(logits[..., :k].float(), dim=-1)  # (B, L, K)
    off = label_smoothing / k
    on = 1.0 - label_smoothing + off
    # sum_k t_k log p_k = off * sum_k log p_k + (on - off) * log p_target, without
    # materialising the (B, L, K) one-hot. Out-of-range targets: clamp only to index
    # safely, then drop the (on - off) term so the row is all `off` like the official.
    in_range = (targets >= 0) & (targets < k)
    picked = log_probs.gather(-1, targets.clamp(0, k - 1).long().unsqueeze(-1)).squeeze(-1)
    ce = -(off * log_probs.sum(-1) + (on - off) * picked * in_range.to(log_probs.dtype))  # (B, L)
    weights = weights.to(ce.dtype)
    per_example = (ce * weights).sum(-1) / (weights.sum(-1) + 1e-8)  # (B,)
    return per_example.mean(), per_example


def transformer_optimizer(model: nn.Module, lr: float = 1e-4, weight_decay: float = 0.045) -> torch.optim.AdamW:
    """AdamW(beta1 0.9, beta2 0.96, eps 1e-8) with decay only on Linear weights.

    The official decays only params named `kernel` (Flax Dense: q/k/v/out, MLP, MLM dense);
    embeddings (incl. the tied output matrix), LayerNorm, biases and mlm_bias get none.
    """
    decay = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    decay_ids = {id(p) for p in decay}
    no_decay = [p for p in model.parameters() if id(p) not in decay_ids]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.96), eps=1e-8)


def warmup_cosine(step: int, base_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Scenic `constant * cosine_decay * linear_warmup` (official warmup 5000 steps).

    lr = base * min(1, s / warmup) * 0.5 * (1 + cos(pi * min(1, max(0, s - warmup) / (total - warmup)))).
    """
    warmup = min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0
    progress = min(1.0, max(0.0, step - warmup_steps) / max(1, total_steps - warmup_steps))
    return base_lr * warmup * 0.5 * (1.0 + math.cos(math.pi * progress))
