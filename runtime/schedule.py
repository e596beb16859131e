"""Mask-ratio schedules (official `mask_schedule.schedule`), computed in float32 like JAX.

`mask_ratio(progress, total_unknown, method)` maps progress r in [0, 1] to the fraction
of tokens that stays masked. float32 matters: the official cosine schedule keeps 511
(not 512) of 1024 tokens masked at step 7 of 12, because float32 cos(pi/3) = 0.49999997.
"""
from __future__ import annotations

import math

import numpy as np

METHODS = ("cosine", "uniform", "powN (e.g. pow2)", "log", "exp")


def mask_ratio(progress, total_unknown, method: str = "cosine"):
    """Fraction of tokens to keep masked, clipped to [1e-6, 1] (float32, same shape as progress)."""
    r = np.asarray(progress, dtype=np.float32)
    n = np.float32(total_unknown)
    if method == "uniform":
        ratio = np.float32(1) - r
    elif method.startswith("pow"):
        try:
            exponent = np.float32(float(method[3:]))
        except ValueError:
            raise ValueError(f"bad schedule {method!r}: powN needs a number, e.g. 'pow2'") from None
        ratio = np.float32(1) - r ** exponent
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
