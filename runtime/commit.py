"""COMMIT decoding (official `parallel_decode.decode` as driven by `fast_decode`), numpy only.

Every latent position starts *unknown*, condition positions included: they hold their
condition token, the rest hold MASK. Each of `num_iter` steps:

    1. the model samples a token at every position (`model_fn`);
    2. unknown positions take their sample; committed positions keep their token;
    3. confidence = log p(sample) + mask_temperature * (1 - progress) * Gumbel noise,
       +inf for committed positions (they are never re-masked);
    4. the `floor(N * schedule(progress))` least confident positions (at least 1, at most
       unknown - 1) are re-masked: condition token inside the condition region, MASK outside.

The output is the step's sampled tokens of the last step (its re-masking is discarded).
`model_fn(masked_tokens[B, N], segment_ids[B, N], uncond_masked_tokens[B, N])` returns
`(sampled_tokens[B, N], probs[B, N])`: a sample per position and its untempered softmax
probability. It owns the task/class prefix and any randomness of its own sampling.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from magvit_onnx.runtime.masking import random_mask
from magvit_onnx.runtime.seeding import RandomSource
from magvit_onnx.runtime.schedule import mask_ratio

ModelFn = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def gumbel(rng: RandomSource, shape) -> np.ndarray:
    """Standard Gumbel noise, float32: -log(-log(u)), u ~ U[tiny, 1) like `jax.random.gumbel`."""
    u = np.maximum(rng.random(shape, dtype=np.float32), np.finfo(np.float32).tiny)
    return -np.log(-np.log(u))


def decode(cond_tokens, cond_mask, model_fn: ModelFn, *, num_iter: int = 12, schedule: str = "cosine",
           mask_temperature: float = 4.5, rng: RandomSource | None = None,
           return_intermediates: bool = False):
    """Decode tokens `[B, t, h, w]` given condition tokens and their boolean region.

    cond_mask broadcasts to cond_tokens (e.g. a latent mask `[B, t, 1, 1]`); all False
    means no condition (class-conditional generation). With `return_intermediates`,
    also returns one dict per step: the sampled 'tokens' and the 'unknown' positions the
    model was asked about (both `[B, t, h, w]`).
    """
    if int(num_iter) != num_iter or num_iter < 1:
        raise ValueError(f"num_iter must be an integer >= 1, got {num_iter!r}")
    if not mask_temperature >= 0:
        raise ValueError(f"mask_temperature must be >= 0, got {mask_temperature!r}")
    rng = np.random.default_rng() if rng is None else rng
    cond_tokens = np.asarray(cond_tokens, np.int64)
    shape = cond_tokens.shape
    batch = shape[0]
    cond_mask = np.broadcast_to(np.asarray(cond_mask, bool), shape)

    def remask(tokens, ratio, score, limits=(None, None)):
        state = random_mask(tokens.reshape(shape), ratio, mask_score=score.reshape(shape), cond_inputs=cond_tokens, cond_mask=cond_mask,
                            condition_mode="cond->input", num_masked_limits=limits, weight_mode="mask+refine")
        # With weight mode 'mask+refine' the weights are exactly the re-masked positions.
        flat = {k: v.reshape(batch, -1) for k, v in state.items()}
        return flat, flat["weights"] > 0

    # Ratio 1 with equal scores masks every position: condition tokens in the region, MASK elsewhere.
    state, unknown = remask(np.zeros(shape, np.int64), 1.0, np.zeros(shape, np.float32))
    total_unknown = unknown.sum(axis=1)
    intermediates = []
    for step in range(num_iter):
        sampled, probs = model_fn(state["masked_inputs"], state["segment_ids"], state["uncond_masked_inputs"])
        sampled = np.asarray(sampled, np.int64).reshape(batch, -1)
        probs = np.asarray(probs, np.float32).reshape(batch, -1)
        tokens = np.where(unknown, sampled, state["masked_inputs"])
        if return_intermediates:
            intermediates.append({"tokens": tokens.reshape(shape), "unknown": unknown.reshape(shape)})
        if step == num_iter - 1:
            break  # the last re-masking would not change the output
        progress = np.float32(step + 1) / np.float32(num_iter)
        ratio = mask_ratio(progress, total_unknown, schedule)
        with np.errstate(divide="ignore"):  # p = 0 gives -inf: masked first
            log_p = np.log(np.where(unknown, probs, np.float32(np.inf)))
        noise_scale = np.float32(mask_temperature) * (np.float32(1) - progress)
        score = log_p + noise_scale * gumbel(rng, log_p.shape)
        state, unknown = remask(tokens, ratio, score, limits=(1, unknown.sum(axis=1) - 1))
    out = tokens.reshape(shape)
    return (out, intermediates) if return_intermediates else out
