"""COMMIT masking (official `mask_utils.random_mask`), numpy only.

One rule serves training and decoding. Given latent tokens, a mask ratio and a score
per position, the `num_masked` lowest-score positions are masked:

    num_maskable = all positions            (condition modes None, 'prefix', 'cond->input')
                 = non-condition positions  ('input->input', 'cond->cond'; condition scores = +inf)
    num_masked   = floor(num_maskable * ratio), at least 1 (at most num_maskable for the
                   fixed-condition modes), then clipped to the caller's limits
    should_mask  = score <= (num_masked-th smallest score)   # ties at the cut-off all mask

What a masked position holds depends on the condition mode. In COMMIT ('cond->input')
it is the condition token inside the condition region (a *refine* target) and MASK
outside it (a *mask* target); unmasked positions keep the true token (*recons*).
"""
from __future__ import annotations

import numpy as np

MASK_TOKEN = -1  # SpecialTokens.MASK
CONDITION_MODES = (None, "prefix", "cond->input", "input->input", "cond->cond")
WEIGHT_MODES = {None: "mask+refine+recons", False: "mask+refine+recons", True: "mask+refine",
                "mask+refine+recons": "mask+refine+recons", "mask+refine": "mask+refine"}


def random_mask(inputs, mask_ratio, *, mask_score=None, cond_inputs=None, cond_mask=None,
                condition_mode=None, num_masked_limits=(None, None), weight_mode=None, rng=None) -> dict:
    """Mask latent tokens `inputs[B, ...]` (any trailing grid, e.g. `[B, t, h, w]`).

    mask_ratio: scalar or `[B]` fraction (float32). mask_score: `[B, ...]` scores, lowest
    masked first (default: U[0, 1) from `rng`). cond_inputs / cond_mask: condition tokens
    and a boolean condition region broadcastable to `inputs`. num_masked_limits: (low, high),
    each None, a scalar or a `[B]` array. weight_mode: None/False/'mask+refine+recons'
    (loss on every position) or True/'mask+refine' (loss on masked positions only).

    Returns arrays shaped like `inputs`: 'masked_inputs', 'uncond_masked_inputs' (masked
    positions hold MASK, never a condition token: the classifier-free-guidance pass),
    'segment_ids' (1 where a condition token was inserted), 'targets', 'weights' (float32).
    """
    if condition_mode not in CONDITION_MODES:
        raise ValueError(f"unknown condition_mode {condition_mode!r}: valid modes are {CONDITION_MODES}")
    if weight_mode not in WEIGHT_MODES:
        raise ValueError(f"unknown weight_mode {weight_mode!r}: valid modes are "
                         "None/False ('mask+refine+recons') and True ('mask+refine')")
    inputs = np.asarray(inputs)
    shape = inputs.shape
    batch = shape[0]
    conditioned = condition_mode in ("cond->input", "input->input", "cond->cond")
    if conditioned:
        if cond_inputs is None or cond_mask is None:
            raise ValueError(f"condition_mode {condition_mode!r} needs cond_inputs and cond_mask")
        cond_inputs = np.broadcast_to(np.asarray(cond_inputs, inputs.dtype), shape)
        cond_mask = np.broadcast_to(np.asarray(cond_mask, bool), shape)
    else:
        cond_mask = np.zeros(shape, bool)

    # Flatten the grid: (B, N)
    flat = inputs.reshape(batch, -1)
    cmask = cond_mask.reshape(batch, -1)
    if mask_score is None:
        rng = np.random.default_rng() if rng is None else rng
        score = rng.random(flat.shape, dtype=np.float32)
    else:
        score = np.array(np.broadcast_to(mask_score, shape), dtype=np.float32).reshape(batch, -1)
    fixed_condition = condition_mode in ("input->input", "cond->cond")
    if fixed_condition:  # the condition region is never masked and has no loss
        score = np.where(cmask, np.float32(np.inf), score)
        num_maskable = (~cmask).sum(axis=1)
    else:
        num_maskable = np.full(batch, flat.shape[1])

    ratio = np.broadcast_to(np.asarray(mask_ratio, np.float32).reshape(-1), (batch,))
    num_masked = np.floor(num_maskable.astype(np.float32) * ratio).astype(np.int64)
    num_masked = np.maximum(num_masked, 1)
    if fixed_condition:
        num_masked = np.minimum(num_masked, num_maskable)
    low, high = num_masked_limits
    if low is not None:
        num_masked = np.maximum(num_masked, np.asarray(low, np.int64))
    if high is not None:
        num_masked = np.minimum(num_masked, np.asarray(high, np.int64))
    num_masked = np.broadcast_to(num_masked, (batch,))

    # The num_masked-th smallest score is the cut-off; everything at or below it masks.
    sorted_score = np.sort(score, axis=1)
    cutoff = np.take_along_axis(sorted_score, (num_masked - 1).clip(0, flat.shape[1] - 1)[:, None], axis=1)
    should_mask = score <= cutoff

    targets = flat
    if condition_mode == "cond->cond":  # condition tokens replace the truth in their region
        targets = np.where(cmask, cond_inputs.reshape(batch, -1), flat)
    mask = np.asarray(MASK_TOKEN, flat.dtype)
    if condition_mode == "cond->input":
        fill = np.where(cmask, cond_inputs.reshape(batch, -1), mask)
        segment_ids = (cmask & should_mask).astype(np.int32)
    else:
        fill = mask
        segment_ids = np.zeros(flat.shape, np.int32)
    masked_inputs = np.where(should_mask, fill, targets)
    uncond_masked_inputs = np.where(should_mask, mask, targets)

    if WEIGHT_MODES[weight_mode] == "mask+refine":
        weights = should_mask.astype(np.float32)
    elif fixed_condition:
        weights = (~cmask).astype(np.float32)
    else:
        weights = np.ones(flat.shape, np.float32)

    out = {"masked_inputs": masked_inputs, "uncond_masked_inputs": uncond_masked_inputs,
           "segment_ids": segment_ids, "targets": targets, "weights": weights}
    return {k: v.reshape(shape) for k, v in out.items()}


def with_prefix(masked: dict, prefix: np.ndarray, uncond_prefix: np.ndarray | None = None) -> dict:
    """Prepend the task/class prefix `[B, P]` to flattened masking outputs: `[B, P + N]`.

    Prefix positions have segment id 0 and weight 0; their targets are the prefix ids
    themselves (outside the codebook, they carry no loss), as in `generate_masked_tokens`.
    """
    batch = prefix.shape[0]
    flat = {k: v.reshape(batch, -1) for k, v in masked.items()}
    uncond_prefix = prefix if uncond_prefix is None else uncond_prefix
    zeros = np.zeros(prefix.shape, np.int32)
    return {
        "masked_inputs": np.concatenate([prefix, flat["masked_inputs"]], axis=1),
        "uncond_masked_inputs": np.concatenate([uncond_prefix, flat["uncond_masked_inputs"]], axis=1),
        "segment_ids": np.concatenate([zeros, flat["segment_ids"]], axis=1),
        "targets": np.concatenate([prefix, flat["targets"]], axis=1),
        "weights": np.concatenate([zeros.astype(np.float32), flat["weights"]], axis=1),
    }
