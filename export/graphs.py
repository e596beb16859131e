"""The exported graphs as torch modules (also the PyTorch reference of the runtime).

    EncoderGraph     video [B, T, H, W, 3] float32 in [0, 1] -> tokens [B, t, h, w] int64
    BodyGraph        the step's transformer: masked tokens -> logits [rows, N, K] float32
    SamplerGraph     the step's sampling: logits -> sampled token + its probability (float32,
                     no weights; variants in SAMPLERS)
    DecoderGraph     tokens [B, t, h, w] int64 -> video [B, T, H, W, 3] float32 (unclipped)
    StepGraph        BodyGraph + the full sampler in one module: the PyTorch reference of a
                     COMMIT step (and the one step graph of artifacts made before the split)

One COMMIT step is two graphs chained by the runtime: the transformer body (fp16-eligible,
all the weights) and a sampler (float32 by construction, whatever the body runs in: it is
its own graph, so TensorRT's fp16 builder never sees it). The runtime keeps the logits on
the device between the two (IO binding). Randomness comes in as `seeds[B, N]` (one random
integer per position, grown into Gumbel noise by an integer hash inside the sampler),
never as `[B, N, K]` noise; the same seeds give the same tokens in torch and in ONNX Runtime.

Classifier-free guidance needs no control flow: the runtime stacks the unconditional
rows under the conditional ones (`rows = 2B`) and the sampler takes l_c = logits[:B],
l_u = logits[rows - B:]. Without guidance (`rows = B`) l_u is l_c, so
l_c + s * (l_c - l_u) = l_c; the 'plain' sampler (guidance, top-k and top-p all off, the
official default) skips that arithmetic and the filter altogether, with the same tokens.
"""
from __future__ import annotations

import copy

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


def filter_logits(logits: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor, *,
                  full_sort: bool = False) -> torch.Tensor:
    """Official top-k / top-p filtering with run-time k and p (0 = off), no control flow.

    top-k keeps logits >= the k-th largest; top-p keeps logits >= the logit at index
    `#(cumulative sorted probs < p)` (official rule), the rest become FILTERED.
    By default only as many sorted logits as the filters need are computed (a run-time
    TopK width): all of them for top-p, k for top-k, one when both are off. Sorting every
    class at every position for nothing was a quarter of a CPU step. `full_sort` (GPU
    exports) sorts all classes instead: on CUDA TopK's width is a CPU input, so a width
    computed in the graph costs a device-to-host copy and a sync every step, and TensorRT
    wants it fixed; the sort itself is cheap there.
    """
    num_classes = logits.shape[-1]
    use_k, use_p = top_k > 0, (top_p > 0) & (top_p < 1)
    # k is only read where use_k (k >= 1); Where, not clamp: TensorRT parses Clip for floats only
    k = torch.where(top_k > num_classes, torch.full_like(top_k, num_classes), top_k)
    if full_sort:  # a constant width: TopK's k becomes an initializer
        ordered, last = torch.topk(logits, num_classes, dim=-1).values, torch.full_like(top_k, num_classes - 1)
    else:
        width = torch.where(use_p, torch.full_like(top_k, num_classes), torch.where(use_k, k, torch.ones_like(top_k)))
        ordered, last = torch.topk(logits, width, dim=-1).values, width - 1  # (B, N, width), descending
    index_shape = (*ordered.shape[:2], 1)
    none = torch.full(index_shape, float("-inf"), dtype=logits.dtype, device=logits.device)
    kth = ordered.gather(-1, torch.where(use_k, k - 1, 0).reshape(1, 1, 1).expand(index_shape))
    cumulative = torch.cumsum(torch.softmax(ordered, dim=-1), dim=-1)
    cut = torch.minimum((cumulative < top_p).sum(-1, keepdim=True), last)
    threshold = torch.maximum(torch.where(use_k, kth, none), torch.where(use_p, ordered.gather(-1, cut), none))
    return torch.where(logits < threshold, torch.full_like(logits, FILTERED), logits)


@torch.library.custom_op("magvit::shift_right", mutates_args=())
def shift_right(x: torch.Tensor, bits: int) -> torch.Tensor:
    """x >> bits for non-negative int64 x, exported as ONE integer Div (see ONNX_TRANSLATIONS).

    The exporter writes `x // 65536` as nine nodes (floor-sign fix-ups around Div and
    Mod) and `x >> 16` through uint64 casts; over the step's [B, N, K] noise that was
    ~10 % of a CPU step. For x >= 0, ONNX's truncating integer Div is the exact shift.
    """
    return torch.bitwise_right_shift(x, bits)


@shift_right.register_fake
def _(x: torch.Tensor, bits: int) -> torch.Tensor:
    return torch.empty_like(x)


def _shift_right_onnx(x, bits: int):
    return op.Div(x, op.Constant(value_int=1 << bits))


# torch op -> ONNX translation, for `torch.onnx.export(custom_translation_table=...)`.
ONNX_TRANSLATIONS = {torch.ops.magvit.shift_right.default: _shift_right_onnx}

MOD31 = 2 ** 31
MIX = 0x45D9F3B  # odd, < 2^27: no product below exceeds 2^61 (int64 is exact)


def mix31(x: torch.Tensor) -> torch.Tensor:
    """One round of the noise hash, for int64 x in [0, 2^32): with h = x >> 16,
    x -> ((x + h) * (2h + MIX)) mod 2^31.

    Only integer Add, Mul, Div and Mod, which ONNX Runtime's CUDA provider and TensorRT
    both run on int64 (neither has Bitwise* ops: the old xor-shift hash put the whole
    noise chain on the CPU). The multiplier depends on the high bits, which makes the
    round non-linear: a constant multiplier with add-shift is nearly linear mod 2^31, and
    neighbouring classes then got visibly correlated noise (the tests caught it). Values
    stay non-negative and below 2^61, so the result is exact in torch and in every ONNX
    Runtime provider."""
    h = shift_right(x, 16)
    return ((x + h) * (h * 2 + MIX)) % MOD31


def hash31(x: torch.Tensor) -> torch.Tensor:
    """Hash of int64 values in [0, 2^32) to [0, 2^31): a multiply that spreads small and
    consecutive inputs (seeds 0, 1, 2, ...; class ids) over the range, then two rounds."""
    return mix31(mix31((x * MIX) % MOD31))


def uniforms(seeds: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Uniform numbers `[B, N, K]` in (0, 1) grown from one seed per position `[B, N]`.

    Counter-based: u of (position, k) = two mix31 rounds of hash(seed) + hash(k), so only
    O(B x N) random numbers cross into the graph and torch / ONNX Runtime draw the same.
    u takes the hash's top 23 bits m, u = (2m + 1) / 2^24: exact in float32 and strictly
    inside (0, 1). (Converting all 31 bits rounded the largest values to u = 1, an
    infinite noise that won the argmax whatever the logits.) It is computed as
    (m + 0.5) * 2^-23, the same float32 number exactly (m + 0.5 needs 24 bits), with two
    int64 passes over [B, N, K] fewer than 2m + 1.
    """
    k = hash31(torch.arange(num_classes, dtype=torch.int64, device=seeds.device) + 0x2545F491)
    bits = mix31(mix31(hash31(seeds).unsqueeze(-1) + k))  # (B, N, K) in [0, 2^31)
    return (shift_right(bits, 8).to(torch.float32) + 0.5) * float(2 ** -23)


def gumbel_noise(seeds: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Gumbel noise `[B, N, K]`: -log(-log(u)) of `uniforms`, in [-2.8, 16.6]."""
    return -torch.log(-torch.log(uniforms(seeds, num_classes)))


def sample(logits: torch.Tensor, seeds: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """Categorical sample of softmax(logits / temperature) by the Gumbel-max trick, as
    `jax.random.categorical` does. Unlike inverse-CDF sampling (K boundaries that float
    rounding can move) it differs between implementations only when the top two perturbed
    logits are within rounding (~1e-6), so torch and ONNX Runtime agree token for token.
    `l/T - log(-log u)` is bit for bit `l/T + gumbel_noise` (a + (-b) == a - b), one pass less."""
    return torch.argmax(logits / temperature - torch.log(-torch.log(uniforms(seeds, logits.shape[-1]))), dim=-1)


def guide(all_logits: torch.Tensor, batch: int, guidance_scale: torch.Tensor) -> torch.Tensor:
    """l_c + s (l_c - l_u) with l_c the first `batch` rows and l_u the last (see above)."""
    cond, uncond = all_logits[:batch], all_logits[all_logits.shape[0] - batch:]
    return cond + guidance_scale * (cond - uncond)


def sampled_probs(logits: torch.Tensor, sampled: torch.Tensor) -> torch.Tensor:
    """softmax(logits)[sampled]: the untempered, unfiltered probability COMMIT ranks by."""
    return torch.softmax(logits, dim=-1).gather(-1, sampled.unsqueeze(-1)).squeeze(-1)


class BodyGraph(nn.Module):
    """The step's transformer: tokens [rows, N], prefix [rows, P], segment_ids [rows, N]
    (int64; segment_ids unused by the official model, kept for interface parity) ->
    logits [rows, N, K] float32. `fp16`: the transformer in fp16 (a copy), its logits cast
    to float32 at the end."""

    def __init__(self, transformer: Transformer, *, fp16: bool = False):
        super().__init__()
        self.transformer = copy.deepcopy(transformer).half() if fp16 else transformer

    def forward(self, tokens, prefix, segment_ids):
        del segment_ids  # no segment embedding in the official model
        return self.transformer.token_logits(torch.cat([prefix, tokens], dim=1)).float()


# The sampler graphs of an artifacts folder. 'plain' is the official default (guidance,
# top-k and top-p off): Gumbel-max and the probability only. 'full' takes guidance and
# the filters at run time and sorts only what they need (a run-time TopK width, best on
# CPUs); 'full_gpu' sorts every class (a constant width: on CUDA a computed width is a
# device-to-host copy per step, and TensorRT wants it fixed). All give the same tokens.
SAMPLERS = {"plain": {"filtered": False, "full_sort": False},
            "full": {"filtered": True, "full_sort": False},
            "full_gpu": {"filtered": True, "full_sort": True}}
SAMPLER_INPUTS = {"plain": ["logits", "seeds", "temperature"],
                  "full": ["logits", "seeds", "temperature", "top_k", "top_p", "guidance_scale"]}


class SamplerGraph(nn.Module):
    """One COMMIT step's sampling, float32 throughout (no weights).

    Inputs: logits [rows, N, K] float32 (rows = B, or 2B with guidance), seeds [B, N] int64
    (random integers in [0, 2^31)), temperature [] float32 (> 0); the filtered variants
    also top_k [] int64 and top_p [] float32 (0 = off) and guidance_scale [] float32 (0 = off).
    Outputs: sampled [B, N] int64, probs [B, N] float32 (softmax(guided logits)[sampled],
    untempered, unfiltered)."""

    def __init__(self, *, filtered: bool, full_sort: bool = False):
        super().__init__()
        self.filtered, self.full_sort = filtered, full_sort

    def forward(self, logits, seeds, temperature, top_k=None, top_p=None, guidance_scale=None):
        if self.filtered:
            logits = guide(logits, seeds.shape[0], guidance_scale)
            sampled = sample(filter_logits(logits, top_k, top_p, full_sort=self.full_sort), seeds, temperature)
        else:
            sampled = sample(logits, seeds, temperature)
        return sampled, sampled_probs(logits, sampled)


class StepGraph(nn.Module):
    """One COMMIT step, sampling included: BodyGraph then the full SamplerGraph. The PyTorch
    reference of the runtime's chained step, and the single step graph of artifacts made
    before the split (the runtime still runs those).

    Inputs: tokens, prefix, segment_ids (BodyGraph), seeds, temperature, top_k, top_p,
    guidance_scale (SamplerGraph). Outputs: sampled [B, N] int64, probs [B, N] float32."""

    def __init__(self, transformer: Transformer, *, full_sort: bool = False, fp16_body: bool = False):
        super().__init__()
        self.body = BodyGraph(transformer, fp16=fp16_body)
        self.sampler = SamplerGraph(filtered=True, full_sort=full_sort)

    def logits(self, tokens, prefix, seeds, guidance_scale):
        """The guided float32 logits [B, N, K] the sampler draws from."""
        return guide(self.body(tokens, prefix, None), seeds.shape[0], guidance_scale)

    def forward(self, tokens, prefix, segment_ids, seeds, temperature, top_k, top_p, guidance_scale):
        return self.sampler(self.body(tokens, prefix, segment_ids), seeds, temperature, top_k, top_p, guidance_scale)
