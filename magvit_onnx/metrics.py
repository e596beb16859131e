"""Video quality metrics of the official evaluation (spec §10), numpy only.

Videos are float in [0, 1] (or uint8), `[B, T, H, W, 3]`.
"""
from __future__ import annotations

import numpy as np


def as_float(video) -> np.ndarray:
    video = np.asarray(video)
    return video.astype(np.float32) / 255.0 if video.dtype == np.uint8 else video.astype(np.float32)


def psnr(real, fake) -> np.ndarray:
    """Per-video PSNR `[B]`: per frame -10 log10(mean squared error over H, W, C), data range 1,
    no epsilon (identical frames give inf), averaged over the frames."""
    mse = ((as_float(real) - as_float(fake)) ** 2).mean(axis=(2, 3, 4))  # (B, T)
    with np.errstate(divide="ignore"):
        return (-10.0 * np.log10(mse)).mean(axis=1)
