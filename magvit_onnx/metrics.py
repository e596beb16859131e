"""Video quality metrics of the official evaluation (docs/official-behaviour.md#evaluation), numpy only.

Videos are float in [0, 1] (or uint8), `[B, T, H, W, 3]`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def as_float(video) -> np.ndarray:
    video = np.asarray(video)
    return video.astype(np.float32) / 255.0 if video.dtype == np.uint8 else video.astype(np.float32)


def unknown_mse(truth: np.ndarray, guess: np.ndarray, video_mask: np.ndarray) -> np.ndarray:
    """Per-clip mean squared error over the pixels outside the condition region."""
    unknown = ~np.broadcast_to(video_mask, truth.shape[:4] + (1,))
    err = (as_float(truth) - as_float(guess)) ** 2
    return (err * unknown).sum(axis=(1, 2, 3, 4)) / (3 * unknown.sum(axis=(1, 2, 3, 4)))


def psnr(real, fake) -> np.ndarray:
    """Per-video PSNR `[B]`: per frame -10 log10(mean squared error over H, W, C), data range 1,
    no epsilon (identical frames give inf), averaged over the frames."""
    mse = ((as_float(real) - as_float(fake)) ** 2).mean(axis=(2, 3, 4))  # (B, T)
    with np.errstate(divide="ignore"):
        return (-10.0 * np.log10(mse)).mean(axis=1)


def _gaussian_filter_valid(image: np.ndarray, size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Separable Gaussian filter with 'valid' borders over the last two axes."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    windows = np.lib.stride_tricks.sliding_window_view(image, size, axis=-1)
    image = windows @ kernel
    windows = np.lib.stride_tricks.sliding_window_view(image, size, axis=-2)
    return windows @ kernel


def ssim(real, fake) -> np.ndarray:
    """Per-video SSIM `[B]` as the official metric: frames to gray (0.2125 R + 0.7154 G +
    0.0721 B), Gaussian window 11, sigma 1.5, k1 0.01, k2 0.03, data range 1, 'valid'
    filtering, mean of the SSIM map per frame, averaged over the frames."""
    weights = np.array([0.2125, 0.7154, 0.0721])
    x, y = as_float(real).astype(np.float64) @ weights, as_float(fake).astype(np.float64) @ weights  # (B, T, H, W)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu_x, mu_y = _gaussian_filter_valid(x), _gaussian_filter_valid(y)
    var_x = _gaussian_filter_valid(x * x) - mu_x ** 2
    var_y = _gaussian_filter_valid(y * y) - mu_y ** 2
    cov = _gaussian_filter_valid(x * y) - mu_x * mu_y
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return index.mean(axis=(2, 3)).mean(axis=1)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets `[N, D]` and `[M, D]`:
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) (the FID/FVD formula)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    # tr((S_a S_b)^(1/2)) = tr((R S_b R)^(1/2)) with R = S_a^(1/2): both symmetric, so `eigh`
    # gives real eigenvalues, clipped at 0, and singular covariances (N <= D) stay stable
    # (the eigenvalues of the non-symmetric S_a S_b can come out complex or negative there).
    values, vectors = np.linalg.eigh(s_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    covmean_trace = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ s_b @ root_a), 0, None)).sum()
    distance = ((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * covmean_trace
    return float(max(distance, 0.0))  # >= 0 in exact arithmetic; rounding can dip just below


def paired_ratio(base: list[np.ndarray], new: list[np.ndarray], resamples: int = 10000,
                 seed: int = 0) -> dict:
    """How a per-clip score changed from `base` to `new`, scored on the same clips with the same
    random numbers: per stratum (a source, a list entry) the ratio of the means new / base,
    averaged over the strata, and its paired bootstrap 95 % interval (clips resampled within
    each stratum, the same clips for both). A resample whose base mean is 0 in a stratum has no
    ratio (nan): the interval is then nan, and shows nothing."""
    rng = np.random.default_rng(seed)
    ratios = np.zeros(resamples)
    with np.errstate(divide="ignore", invalid="ignore"):
        for b, n in zip(base, new):
            b, n = np.asarray(b, np.float64), np.asarray(n, np.float64)
            index = rng.integers(0, len(b), (resamples, len(b)))
            ratios += n[index].mean(axis=1) / b[index].mean(axis=1)
        ratios[~np.isfinite(ratios)] = np.nan
        low, high = np.percentile(ratios / len(base), [2.5, 97.5])
        ratio = np.mean([np.mean(n) / np.mean(b) for b, n in zip(base, new)])
    return {"ratio": float(ratio), "ci95": [float(low), float(high)]}


def emit_report(report: dict, path: Path | None) -> None:
    """Print an evaluation report as JSON, and write it to `path` too when one is given."""
    text = json.dumps(report, indent=2)
    if path:
        Path(path).write_text(text + "\n")
    print(text)
