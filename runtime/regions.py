"""Any region: inpainting and outpainting from a mask (task `inpainting`, IPM), numpy only.

A caller says which pixels the model generates with a boolean mask, True = generate:
`[H, W]` (the same region in every frame), `[T, H, W]` (a region that moves) or, for
training, `[B, T, H, W]` (one region per example). Outpainting is the inverted mask.

    token_region     the token region of a pixel mask: every token a True pixel touches
                     (a token is frames x rows x columns pixels: 4 x 4 x 4 on the shipped model)
    pixel_region     a token region at pixel resolution (each token's pixels), the way back:
                     token_region(pixel_region(r)) == r
    mask_condition   the condition of a mask, built as the official inpainting condition is
                     from its region (`tasks.inpainting_cond`, docs/official-behaviour.md#tasks):
                     the pixels outside the mask are kept and the mask's pixels are 0 in the
                     condition video; the condition tokens are the tokens outside the token
                     region. For the official central square this *is* IPC's condition.
    random_regions   seeded random token regions for training: boxes of random size and
                     place, moving boxes, free-form blobs; optionally inverted (outpainting)

Runtime (`Generator.generate("inpainting", mask=...)`) and training
(`models/commit_training.py`) both build the condition with `mask_condition` (through
`tasks.condition("inpainting", video, latent_shape, mask=...)`), so a model sees the same
condition in both. The fill is 0, as in the official inpainting and the official sliding
outpainting (OPD): edge replication needs a rectangular kept block, which a free region is not.
"""
from __future__ import annotations

import numpy as np

KINDS = ("box", "moving_box", "blob")


def _scales(pixels: tuple[int, ...], tokens: tuple[int, ...]) -> tuple[int, ...]:
    """Pixels per token on each axis (1 on an axis of size 1 at both resolutions)."""
    return tuple(p // n for p, n in zip(pixels, tokens))


def batched_mask(mask, video_shape: tuple[int, int, int], latent_shape: tuple[int, int, int]) -> np.ndarray:
    """A bool mask `[H, W]`, `[T, H, W]` or `[B, T, H, W]` as `[B|1, T|1, H, W]`; raises
    ValueError naming the problem (dtype, shape, empty, every pixel, every token) for a
    mask of a `video_shape` = (T, H, W) clip of `latent_shape` tokens."""
    frames, height, width = video_shape
    mask = np.asarray(mask)
    valid = f"[{height}, {width}] (every frame), [{frames}, {height}, {width}] (per frame) or [B, {frames}, {height}, {width}]"
    if mask.dtype != np.bool_:
        raise ValueError(f"mask must be a bool array (True = generate), got dtype {mask.dtype}; "
                         "use mask > 0 or mask.astype(bool)")
    if mask.ndim not in (2, 3, 4) or mask.shape[-2:] != (height, width) or (mask.ndim >= 3 and mask.shape[-3] != frames):
        raise ValueError(f"mask must be shaped {valid}, got {mask.shape}")
    mask = mask.reshape((-1, *mask.shape[-3:]) if mask.ndim >= 3 else (1, 1, height, width))
    if not mask.reshape(len(mask), -1).any(axis=1).all():
        raise ValueError("mask is empty (no True pixel): nothing to generate; True marks the pixels to generate")
    if mask.reshape(len(mask), -1).all(axis=1).any():
        raise ValueError("mask covers every pixel: nothing of the input is kept; generate from nothing with "
                         "full_generation (CG), or leave some pixels False")
    if token_region(mask, latent_shape).reshape(len(mask), -1).all(axis=1).any():
        ft, fh, fw = _scales(video_shape, latent_shape)
        raise ValueError(f"mask touches every token (a token covers {ft} frames x {fh} x {fw} pixels), so no token "
                         "of the input is kept: leave all pixels of some token False")
    return mask


def token_region(mask: np.ndarray, latent_shape: tuple[int, int, int]) -> np.ndarray:
    """Bool `[..., T|1, H, W]` pixel mask -> `[..., t|1, h, w]`: a token is in the region when
    any pixel it covers (its frames x rows x columns block) is True."""
    mask = np.asarray(mask, bool)
    lead, (frames, height, width) = mask.shape[:-3], mask.shape[-3:]
    t = 1 if frames == 1 else latent_shape[0]
    ft, fh, fw = _scales((frames, height, width), (t, *latent_shape[1:]))
    blocks = mask.reshape(*lead, t, ft, latent_shape[1], fh, latent_shape[2], fw)
    n = len(lead)
    return blocks.any(axis=(n + 1, n + 3, n + 5))


def pixel_region(region: np.ndarray, video_shape: tuple[int, int, int]) -> np.ndarray:
    """Bool `[..., t|1, h, w]` token region -> `[..., T|1, H, W]`: every token's pixels."""
    region = np.asarray(region, bool)
    frames = 1 if region.shape[-3] == 1 else video_shape[0]
    ft, fh, fw = _scales((frames, *video_shape[1:]), region.shape[-3:])
    n = region.ndim
    return region.repeat(ft, axis=n - 3).repeat(fh, axis=n - 2).repeat(fw, axis=n - 1)


def mask_condition(video: np.ndarray, latent_shape: tuple[int, int, int], mask=None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The condition of `video[B, T, H, W, C]` for a pixel `mask` (True = generate; see
    `batched_mask`): (condition video, kept pixels `[B, T|1, H, W, 1]`, condition tokens
    `[B, t|1, h, w]`), in the layout of `tasks.condition` (static masks keep a time axis of 1).

    As `tasks.inpainting_cond` with the region `mask`: the condition video is the input
    where the mask is False and 0 where it is True; the condition tokens are those outside
    `token_region(mask)`."""
    if mask is None:
        raise ValueError("task 'inpainting' needs mask=...: a bool [H, W] or [T, H, W] array, True where the "
                         "model generates (invert it to outpaint)")
    batch, frames, height, width = video.shape[:4]
    mask = batched_mask(mask, (frames, height, width), latent_shape)
    if len(mask) not in (1, batch):
        raise ValueError(f"mask gives {len(mask)} regions for {batch} videos: give one, or one per video")
    generate_tokens = token_region(mask, latent_shape)
    kept = np.broadcast_to(~mask[..., None], (batch, *mask.shape[1:], 1)).copy()
    latent_kept = np.broadcast_to(~generate_tokens, (batch, *generate_tokens.shape[1:])).copy()
    return np.where(kept, video, np.zeros((), video.dtype)), kept, latent_kept


# ----------------------------------------------------------------------------- training regions

def random_regions(rng: np.random.Generator, count: int, latent_shape: tuple[int, int, int],
                   kinds: tuple[str, ...] = KINDS, invert: float = 0.0) -> np.ndarray:
    """`count` random token regions, bool `[count, t, h, w]` (True = generate), each neither
    empty nor the whole grid. Each region's kind is drawn uniformly from `kinds`:

        box         a box of random size (each side 1/5 .. 4/5 of the grid) and place, in every frame
        moving_box  such a box moving in a straight line, up to a third of the grid per latent frame
        blob        a union of 1-4 random ellipses, drifting as one, up to a sixth of the grid per frame

    With probability `invert` a region is inverted (the box is kept and the rest generated:
    outpainting). Draws only from `rng`, so a seeded generator gives the same regions."""
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        raise ValueError(f"unknown region kinds {unknown}: valid kinds are {', '.join(KINDS)}")
    if not 0 <= invert <= 1:
        raise ValueError(f"invert must be a probability in [0, 1], got {invert!r}")
    out = np.zeros((count, *latent_shape), bool)
    for i in range(count):
        kind = kinds[rng.integers(len(kinds))]
        while True:  # redraw the rare region that is empty or everything
            region = _DRAW[kind](rng, latent_shape)
            if rng.random() < invert:
                region = ~region
            if region.any() and not region.all():
                break
        out[i] = region
    return out


def _box(rng: np.random.Generator, latent_shape, moving: bool) -> np.ndarray:
    t, h, w = latent_shape
    size = np.array([rng.integers(max(1, round(n / 5)), max(1, round(4 * n / 5)) + 1) for n in (h, w)])
    start = np.array([rng.uniform(0, n - s) for n, s in zip((h, w), size)])
    velocity = rng.uniform(-1, 1, 2) * np.array([h, w]) / 3 if moving else np.zeros(2)
    region = np.zeros(latent_shape, bool)
    for frame in range(t):
        top, left = np.clip(np.round(start + frame * velocity).astype(int), 0, np.array([h, w]) - size)
        region[frame, top:top + size[0], left:left + size[1]] = True
    return region


def _blob(rng: np.random.Generator, latent_shape) -> np.ndarray:
    t, h, w = latent_shape
    rows, cols = np.mgrid[0:h, 0:w] + 0.5
    count = rng.integers(1, 5)
    centres = rng.uniform(0, 1, (count, 2)) * [h, w]
    radii = rng.uniform(0.1, 0.35, (count, 2)) * [h, w]
    angles = rng.uniform(0, np.pi, count)
    drift = rng.uniform(-1, 1, 2) * np.array([h, w]) / 6
    region = np.zeros(latent_shape, bool)
    for frame in range(t):
        for (cy, cx), (ry, rx), angle in zip(centres + frame * drift, radii, angles):
            dy, dx = rows - cy, cols - cx
            u, v = dy * np.cos(angle) + dx * np.sin(angle), -dy * np.sin(angle) + dx * np.cos(angle)
            region[frame] |= (u / ry) ** 2 + (v / rx) ** 2 <= 1
    return region


_DRAW = {"box": lambda rng, shape: _box(rng, shape, False), "moving_box": lambda rng, shape: _box(rng, shape, True),
         "blob": _blob}
