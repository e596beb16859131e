"""Mask-ratio schedules (official `mask_schedule.schedule`), computed in float32 like JAX.

`mask_ratio(progress, total_unknown, method)` maps progress r in [0, 1] to the fraction
of tokens that stays masked. float32 matters: the official cosine schedule keeps 511
(not 512) of 1024 tokens masked at step 7 of 12, because float32 cos(pi/3) = 0.49999997.
"""
from __future__ import annotations

import math

import numpy as np

METHODS = ("cosine", "uniform", "powN (e.g. pow2)", "log", "exp")
POW_RANGE = (1e-6, 1e6)


def pow_exponent(method: str) -> float:
    """N of 'powN': a number in [1e-6, 1e6], else ValueError. pow0 and a negative N keep every
    token masked until the last step, and one beyond float32 gives no ratio at all; N outside
    the range is one of those in float32 (or all but)."""
    try:
        exponent = float(method[3:])
    except ValueError:
        exponent = float("nan")
    if not POW_RANGE[0] <= exponent <= POW_RANGE[1]:  # also refuses NaN
        raise ValueError(f"bad schedule {method!r}: powN needs a finite N > 0 (from {POW_RANGE[0]:g} to "
                         f"{POW_RANGE[1]:g}), e.g. 'pow2'")
    return exponent


def mask_ratio(progress, total_unknown, method: str = "cosine"):
    """Fraction of tokens to keep masked, clipped to [1e-6, 1] (float32, same shape as progress)."""
    r = np.asarray(progress, dtype=np.float32)
    n = np.float32(total_unknown)
    if method == "uniform":
        ratio = np.float32(1) - r
    elif method.startswith("pow"):
        ratio = np.float32(1) - r ** np.float32(pow_exponent(method))
    elif method == "cosine":
        ratio = np.cos(np.float32(math.pi / 2) * r)
    elif method == "log":
        with np.errstate(divide="ignore"):  # r = 0 gives +inf, clipped to 1 below
            ratio = -np.log2(r) / np.log2(n)
    elif method == "exp":
        ratio = np.float32(1) - np.exp2(-np.log2(n) * (np.float32(1) - r))
    else:
        raise ValueError(f"unknown mask schedule {method!r}: valid methods are {', '.join(METHODS)}")
    return np.clip(ratio, np.float32(1e-6), np.float32(1)).astype(np.float32)
