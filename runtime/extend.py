"""Beyond one model-sized clip: long frame prediction, stop motion and panoramas, by
sliding the model's window over a larger token grid (numpy only).

All three work in tokens. A *window* is one model-sized token grid `(t, h, w)`; each
window after the first is one ordinary COMMIT decoding (`Pipeline.complete`, the
transformer call of the short tasks, with the same prefix and random source) whose
condition is the tokens already generated where it overlaps them. Tokens are never
decoded and re-encoded between windows, so nothing drifts through the tokenizer and the
result is token-for-token the same with the PyTorch reference engine.

    long frame prediction   window 0 = the official FP/CFP call; window k keeps the last
                            `context` latent frames of what exists and adds the rest of
                            the window (t - context latent frames); the Generator's
                            context is what the model was trained on (`trained_context`)
    stop motion             key images K0..Kn: one official FI call per pair (Ki first,
                            Ki+1 last), the pairs' token clips one after the other
    panorama                the input's tokens in the middle of a wider (or taller)
                            grid; each window overlaps the known part by half its width
                            and generates the other half, alternately right and left

`decode` turns any grid at least the model's size into pixels by decoding overlapping
windows (a quarter window apart on each axis larger than the model's) and blending them
with triangular weights, so no window's border shows as a seam.

Cost: (number of windows) x steps transformer calls (x2 rows with guidance);
`frame_windows` / `panorama_windows` give the plans.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from magvit_onnx.runtime import tasks
from magvit_onnx.runtime.seeding import random_source


# ----------------------------------------------------------------------------- plans

def frame_windows(latent_frames: int, window: int, context: int) -> list[tuple[int, int]]:
    """(start, known) per window over `latent_frames`: window k covers latent frames
    start .. start+window-1 of which the first `known` are given (0 for window 0).

    Each window starts `window - context` after the previous one; the last one is moved
    back to end at `latent_frames` (and then knows more than `context` frames)."""
    plan, end = [(0, 0)], window
    while end < latent_frames:
        start = min(end - context, latent_frames - window)
        plan.append((start, end - start))
        end = start + window
    return plan


def panorama_windows(size: int, window: int) -> list[tuple[int, int, int]]:
    """(start, known_from, known_to) per window over a latent axis of `size` with the input's
    `window` columns in the middle: each window overlaps the known part by half a window
    (window - window // 2 known, the rest new); right and left alternate, the side with
    more left to fill first. Positions known_from .. known_to - 1 of the window are given."""
    a = (size - window) // 2
    b, shift, plan = a + window, window // 2, []
    while a > 0 or b < size:
        if size - b >= a:  # extend to the right
            start = min(b + shift, size) - window
            plan.append((start, 0, b - start))
            b = start + window
        else:  # extend to the left
            start = max(a - shift, 0)
            plan.append((start, a - start, window))
            a = start
    return plan


def trained_context(manifest: dict) -> int:
    """Latent frames of context the model was trained to continue from: the most that its
    frame-prediction condition lengths reach (`train_transformer.py --fp-cond-frames 1,5`
    records "1,5" in the model card: 5 frames reach 2 latent frames), else 1 (the official
    single 1-frame condition). At most latent t - 1."""
    frames, latent = manifest["video"]["shape"][0], manifest["latent_shape"][0]
    recorded = ((manifest.get("model_card") or {}).get("training") or {}).get("fp_cond_frames", "1")
    try:
        lengths = [int(n) for n in str(recorded).split(",")]
    except ValueError:
        lengths = [1]
    return max(1, min(latent - 1, max(-(-n // (frames // latent)) for n in lengths)))


# ----------------------------------------------------------------------------- generation

def frame_prediction_tokens(pipeline, task: str, video: np.ndarray, class_ids=None, *, num_frames: int,
                            num_videos: int = 1, seed=None, condition: dict | None = None,
                            context: int | None = None, **decoding) -> np.ndarray:
    """Frame prediction (FP or CFP) continued to `num_frames` pixel frames: tokens
    [R, ceil(num_frames / frames per latent frame), h, w]. Window 0 is exactly
    `generate_tokens(task, video, **condition, ...)` (`condition`: the task's overrides,
    e.g. cond_frames); every later window is conditioned on the last `context` latent
    frames generated (default: the condition's cond_latent_frames)."""
    lt = pipeline.latent_shape[0]
    per_latent = pipeline.video_shape[0] // lt
    condition = condition or {}
    if context is None:
        context = {**tasks.get_task(task).defaults, **condition}["cond_latent_frames"]
    rng = random_source(seed, num_videos)
    cond, mask, class_rows = pipeline.condition_tokens(task, video, class_ids, num_videos, **condition)
    out = pipeline.complete(task, cond, mask, class_rows, rng, **decoding)
    for start, known in frame_windows(-(-num_frames // per_latent), lt, context)[1:]:
        window = np.zeros_like(out[:, :lt])
        window[:, :known] = out[:, start:start + known]
        mask = np.zeros((len(out), lt, 1, 1), bool)
        mask[:, :known] = True  # the official frame-prediction mask with cond_latent_frames = known
        new = pipeline.complete(task, window, mask, class_rows, rng, **decoding)
        out = np.concatenate([out, new[:, known:]], axis=1)
    return out


def interpolation_tokens(pipeline, key_frames: np.ndarray, *, num_videos: int = 1, seed=None,
                         **decoding) -> np.ndarray:
    """Stop motion: key images `key_frames[B, K, H, W, 3]` (K >= 2, float in [0, 1]) ->
    tokens [R, (K - 1) * t, h, w], one official frame-interpolation clip per pair of
    consecutive key images (the first key its first frame, the second its last)."""
    frames = pipeline.video_shape[0]
    rng = random_source(seed, num_videos)
    clips = []
    for first, last in zip(np.moveaxis(key_frames, 1, 0)[:-1], np.moveaxis(key_frames, 1, 0)[1:]):
        # FI (cond_frames 1) reads only the first and last frame of its clip
        clip = np.concatenate([np.repeat(first[:, None], frames - 1, axis=1), last[:, None]], axis=1)
        cond, mask, _ = pipeline.condition_tokens("frame_interpolation", clip, None, num_videos)
        clips.append(pipeline.complete("frame_interpolation", cond, mask, None, rng, **decoding))
    return np.concatenate(clips, axis=1)


def panorama_tokens(pipeline, task: str, video: np.ndarray, *, axis: int, size: int, num_videos: int = 1,
                    seed=None, **decoding) -> np.ndarray:
    """The model-sized `video[B, T, H, W, 3]` widened (axis 2, latent w) or heightened (axis 1,
    latent h) to `size` latent positions by repeated outpainting: tokens [R, t, h', w']."""
    window = pipeline.latent_shape[axis]
    rng = random_source(seed, num_videos)
    known = pipeline.encode(np.repeat(np.asarray(video, np.float32), num_videos, axis=0))
    shape = list(known.shape)
    shape[axis + 1] = size
    canvas = np.zeros(shape, np.int64)
    offset = (size - window) // 2
    _along(canvas, axis, offset, window)[...] = known
    for start, known_from, known_to in panorama_windows(size, window):
        cond = _along(canvas, axis, start, window).copy()
        mask_shape = [len(canvas), 1, 1, 1]
        mask_shape[axis + 1] = window
        mask = np.zeros(mask_shape, bool)
        _along(mask, axis, known_from, known_to - known_from)[...] = True
        new = pipeline.complete(task, cond, mask, None, rng, **decoding)
        keep = ~np.broadcast_to(mask, new.shape)  # known tokens stay as they are
        _along(canvas, axis, start, window)[keep] = new[keep]
    return canvas


def _along(grid: np.ndarray, axis: int, start: int, length: int) -> np.ndarray:
    """View of `grid[B, t, h, w]` at positions start .. start+length-1 of latent `axis` (0 t, 1 h, 2 w)."""
    index = [slice(None)] * grid.ndim
    index[axis + 1] = slice(start, start + length)
    return grid[tuple(index)]


# ----------------------------------------------------------------------------- decoding

def window_starts(size: int, window: int) -> list[int]:
    """Starts of windows of `window` covering `size` positions a quarter window apart (at
    least 1; the last one ends at `size`); one window when size == window. Half a window
    apart left seams up to 1.12x the largest change inside windows on the default model,
    a quarter 0.97x (6 clips, 48 frames, 1 and 2 latent frames of context)."""
    starts = list(range(0, size - window + 1, max(1, window // 4)))
    return starts if starts[-1] == size - window else starts + [size - window]


def decode(decode_window: Callable[[np.ndarray], np.ndarray], tokens: np.ndarray,
           latent_shape: tuple[int, int, int]) -> np.ndarray:
    """Tokens [B, t', h', w'] (each at least the model's) -> float32 video, by decoding
    overlapping model-sized windows and blending them with triangular weights (highest in a
    window's middle, where the decoder sees context on every side). A model-sized grid is
    one plain decoder call."""
    if tuple(tokens.shape[1:]) == tuple(latent_shape):
        return decode_window(tokens)
    out = weight = None
    for t0 in window_starts(tokens.shape[1], latent_shape[0]):
        for h0 in window_starts(tokens.shape[2], latent_shape[1]):
            for w0 in window_starts(tokens.shape[3], latent_shape[2]):
                pixels = decode_window(tokens[:, t0:t0 + latent_shape[0], h0:h0 + latent_shape[1],
                                              w0:w0 + latent_shape[2]])
                scale = [p // n for p, n in zip(pixels.shape[1:4], latent_shape)]
                if out is None:
                    out = np.zeros((len(tokens), *[s * n for s, n in zip(scale, tokens.shape[1:])], 3), np.float32)
                    weight = np.zeros(out.shape[1:4], np.float32)
                ramp = _triangle(pixels.shape[1])[:, None, None] * _triangle(pixels.shape[2])[None, :, None] \
                    * _triangle(pixels.shape[3])[None, None, :]
                where = (slice(None), slice(t0 * scale[0], t0 * scale[0] + pixels.shape[1]),
                         slice(h0 * scale[1], h0 * scale[1] + pixels.shape[2]),
                         slice(w0 * scale[2], w0 * scale[2] + pixels.shape[3]))
                out[where] += pixels * ramp[None, ..., None]
                weight[where[1:]] += ramp
    return out / weight[None, ..., None]


def _triangle(n: int) -> np.ndarray:
    """Blend weights of n positions: 1, 2, ... up to the middle and back down (all > 0)."""
    i = np.arange(n, dtype=np.float32)
    return np.minimum(i + 1, n - i)
