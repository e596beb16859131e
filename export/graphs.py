"""The three exported graphs as torch modules (also the PyTorch reference of the runtime).

    EncoderGraph     video [B, T, H, W, 3] float32 in [0, 1] -> tokens [B, t, h, w] int64
    StepGraph        one COMMIT step: masked tokens -> sampled token + its probability
    DecoderGraph     tokens [B, t, h, w] int64 -> video [B, T, H, W, 3] float32 (unclipped)

StepGraph samples inside the graph so logits never leave the device. Randomness comes in
as `seeds[B, N]` (one random integer per position, grown into Gumbel noise by an integer
hash inside the graph), never as `[B, N, K]` noise; the same seeds give the same tokens
in torch and in ONNX Runtime.

Classifier-free guidance needs no control flow: the runtime stacks the unconditional
rows under the conditional ones (`rows = 2B`) and the graph takes l_c = logits[:B],
l_u = logits[rows - B:]. Without guidance (`rows = B`) l_u is l_c, so
l_c + s * (l_c - l_u) = l_c and nothing is computed twice.
"""
from __future__ import annotations

import torch
from onnxscript import opset18 as op
from torch import nn

from magvit_onnx.models.transformer import Transformer
from magvit_onnx.models.vqvae import VQVAE

# Logit given to tokens that top-k / top-p filter out (official `sampling.py` uses -1e7).
FILTERED = -1e7


class EncoderGraph(nn.Module):
    def __init__(self, vq: VQVAE):
        super().__init__()
        self.vq = vq

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.vq.tokenize(video)


class DecoderGraph(nn.Module):
    def __init__(self, vq: VQVAE):
        super().__init__()
        self.vq = vq

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.vq.detokenize(tokens)


def filter_logits(logits: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Official top-k / top-p filtering with run-time k and p (0 = off), no control flow.

    top-k keeps logits >= the k-th largest; top-p keeps logits >= the logit at index
    `#(cumulative sorted probs < p)` (official rule), the rest become FILTERED.
    Only as many sorted logits as the filters need are computed (a run-time TopK width):
    all of them for top-p, k for top-k, one when both are off. Sorting every class at
    every position for nothing was a quarter of the step's time.
    """
    num_classes = logits.shape[-1]
    use_k, use_p = top_k > 0, (top_p > 0) & (top_p < 1)
    k = torch.clamp(top_k, min=1, max=num_classes)
    width = torch.where(use_p, torch.full_like(top_k, num_classes), torch.where(use_k, k, torch.ones_like(top_k)))
    ordered = torch.topk(logits, width, dim=-1).values  # (B, N, width), descending
    index_shape = (*ordered.shape[:2], 1)
    none = torch.full(index_shape, float("-inf"), dtype=logits.dtype, device=logits.device)
    kth = ordered.gather(-1, torch.where(use_k, k - 1, 0).reshape(1, 1, 1).expand(index_shape))
    cumulative = torch.cumsum(torch.softmax(ordered, dim=-1), dim=-1)
    cut = torch.minimum((cumulative < top_p).sum(-1, keepdim=True), width - 1)
    threshold = torch.maximum(torch.where(use_k, kth, none), torch.where(use_p, ordered.gather(-1, cut), none))
    return torch.where(logits < threshold, torch.full_like(logits, FILTERED), logits)


MASK31 = 2 ** 31 - 1


@torch.library.custom_op("magvit::shift16", mutates_args=())
def shift16(x: torch.Tensor) -> torch.Tensor:
    """x >> 16 for non-negative int64 x, exported as ONE integer Div (see ONNX_TRANSLATIONS).

    The exporter writes `x // 65536` as nine nodes (floor-sign fix-ups around Div and
    Mod) and `x >> 16` through uint64 casts; over the step's [B, N, K] noise that was
    ~10 % of a CPU step. For x >= 0, ONNX's truncating integer Div is the exact shift.
    """
    return torch.bitwise_right_shift(x, 16)


@shift16.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


def _shift16_onnx(x):
    return op.Div(x, op.Constant(value_int=65536))


# torch op -> ONNX translation, for `torch.onnx.export(custom_translation_table=...)`.
ONNX_TRANSLATIONS = {torch.ops.magvit.shift16.default: _shift16_onnx}


def hash31(x: torch.Tensor) -> torch.Tensor:
    """Integer hash of int64 values in [0, 2^31): two multiply-xorshift rounds (constant
    0x45d9f3b). Products stay below 2^59 and every value stays non-negative, so the
    shifts are exact and the result is identical in torch and in every ONNX Runtime
    provider."""
    for _ in range(2):
        x = torch.bitwise_and(torch.bitwise_xor(x, shift16(x)) * 0x45D9F3B, MASK31)
    return torch.bitwise_xor(x, shift16(x))


def gumbel_noise(seeds: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Gumbel noise `[B, N, K]` grown in the graph from one seed per position `[B, N]`.

    Counter-based: noise of (position, k) = hash of (hash(seed) xor hash(k)), so only
    O(B x N) random numbers cross into the graph and torch / ONNX Runtime draw the same.
    """
    k = hash31(torch.arange(num_classes, dtype=torch.int64, device=seeds.device) + 0x2545F491)
    bits = hash31(torch.bitwise_xor(hash31(seeds).unsqueeze(-1), k))  # (B, N, K) in [0, 2^31)
    u = (bits.to(torch.float32) + 0.5) / float(2 ** 31)  # (0, 1)
    return -torch.log(-torch.log(u))


def sample(logits: torch.Tensor, seeds: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """Categorical sample of softmax(logits / temperature) by the Gumbel-max trick, as
    `jax.random.categorical` does. Unlike inverse-CDF sampling (K boundaries that float
    rounding can move) it differs between implementations only when the top two perturbed
    logits are within rounding (~1e-6), so torch and ONNX Runtime agree token for token."""
    return torch.argmax(logits / temperature + gumbel_noise(seeds, logits.shape[-1]), dim=-1)


class StepGraph(nn.Module):
    """One COMMIT step of the bidirectional transformer, sampling included.

    Inputs (rows = B, or 2B with guidance: unconditional rows stacked below):
        tokens [rows, N] int64         masked latent tokens (MASK = -1, condition tokens)
        prefix [rows, P] int64         task + class tokens (unconditional prefix below)
        segment_ids [rows, N] int64    1 where a condition token was inserted (unused by
                                       the official model, kept for interface parity)
        seeds [B, N] int64             random integers in [0, 2^31), this step's noise
        temperature [] float32         sampling temperature (> 0; official 1.0)
        top_k [] int64, top_p [] float32   0 = off
        guidance_scale [] float32      s in l_c + s (l_c - l_u); 0 = off
    Outputs:
        sampled [B, N] int64           a token per position
        probs [B, N] float32           softmax(guided logits)[sampled], untempered, unfiltered
    """

    def __init__(self, transformer: Transformer):
        super().__init__()
        self.transformer = transformer

    def logits(self, tokens, prefix, seeds, guidance_scale):
        all_logits = self.transformer.token_logits(torch.cat([prefix, tokens], dim=1))  # (rows, N, K)
        batch, rows = seeds.shape[0], tokens.shape[0]
        cond, uncond = all_logits[:batch], all_logits[rows - batch:]
        return cond + guidance_scale * (cond - uncond)

    def forward(self, tokens, prefix, segment_ids, seeds, temperature, top_k, top_p, guidance_scale):
        del segment_ids  # no segment embedding in the official model
        logits = self.logits(tokens, prefix, seeds, guidance_scale)
        sampled = sample(filter_logits(logits, top_k, top_p), seeds, temperature)
        probs = torch.softmax(logits, dim=-1).gather(-1, sampled.unsqueeze(-1)).squeeze(-1)
        return sampled, probs
