"""FVD preprocessing as in Unterthiner et al.'s `frechet_video_distance.preprocess`: every
frame resized bilinearly to 224 x 224, then x * 2 / 255 - 1 (float, not rounded).

The reference calls TF1's `tf.image.resize_bilinear` with its defaults (align_corners=False,
half_pixel_centers=False): output pixel i samples the input at i * in / out, no half-pixel
offset. That is the default here; `half_pixel=True` gives the half-pixel convention
(TF2's `tf.image.resize`, PyTorch's align_corners=False), for comparison (docs/fvd.md).
"""
from __future__ import annotations

import numpy as np


def interpolation_matrix(size_in: int, size_out: int, half_pixel: bool = False) -> np.ndarray:
    """[size_out, size_in] weights of 1-D bilinear resizing (each row sums to 1)."""
    scale = size_in / size_out
    i = np.arange(size_out, dtype=np.float64)
    x = (i + 0.5) * scale - 0.5 if half_pixel else i * scale
    x = np.clip(x, 0, size_in - 1)
    lo = np.floor(x).astype(int)
    hi = np.minimum(lo + 1, size_in - 1)
    frac = x - lo
    m = np.zeros((size_out, size_in))
    np.add.at(m, (np.arange(size_out), lo), 1 - frac)
    np.add.at(m, (np.arange(size_out), hi), frac)
    return m


def resize_bilinear(frames: np.ndarray, size: tuple[int, int], half_pixel: bool = False) -> np.ndarray:
    """Frames [..., H, W, C] -> float32 [..., size[0], size[1], C], separably (rows, then columns)."""
    rows = interpolation_matrix(frames.shape[-3], size[0], half_pixel).astype(np.float32)
    cols = interpolation_matrix(frames.shape[-2], size[1], half_pixel).astype(np.float32)
    x = np.asarray(frames, np.float32)
    x = np.einsum("oh,...hwc->...owc", rows, x)
    return np.einsum("pw,...owc->...opc", cols, x)


def preprocess(videos: np.ndarray, size: int = 224, half_pixel: bool = False) -> np.ndarray:
    """uint8 videos [N, T, H, W, 3] -> float32 [N, T, size, size, 3] in [-1, 1]."""
    return resize_bilinear(videos, (size, size), half_pixel) * np.float32(2 / 255) - np.float32(1)
