"""Our synthetic video set: one coloured shape moving over a soft background, numpy only.

Every clip is 16 frames of 64x64 RGB (uint8 [T, H, W, 3]) rendered from one seed (>= 0):

* background: a low-contrast, low-saturation linear gradient plus a faint sinusoidal
  pattern, colours varied by seed, static over the clip;
* object: an antialiased circle or apex-up triangle, 12-18 px, of a saturated colour at
  least MIN_COLOUR_DISTANCE (Euclidean RGB in [0, 1]) from every background pixel;
* motion: constant velocity (2-3.2 px/frame plus a small drift across) with elastic
  bounces off the walls, or standing still. No bounce comes before frame
  BOUNCE_FREE_FRAMES, so the first frames show the initial direction.

A class is shape x motion (10 classes, `CLASS_NAMES`); label = seed % NUM_CLASSES, so any
run of consecutive seeds is balanced. `classify` recovers the class without learning: it
segments the object as the pixels far from a robust plane fit of each frame, fits the
centroid's velocity over the bounce-free first frames (direction, or still) and tells the
shape by the vertical skewness of the object mask (circle ~0, apex-up triangle ~-0.57),
a measure that blur and noise hardly move.
"""
from __future__ import annotations

import numpy as np

from magvit_onnx.metrics import as_float

FRAMES, SIZE = 16, 64
SHAPES = ("circle", "triangle")
MOTIONS = ("moving right", "moving left", "moving up", "moving down", "standing still")
CLASS_NAMES: tuple[str, ...] = tuple(f"{shape} {motion}" for shape in SHAPES for motion in MOTIONS)
NUM_CLASSES = len(CLASS_NAMES)

MIN_COLOUR_DISTANCE = 0.4   # object colour vs every background pixel, Euclidean RGB in [0, 1]
BOUNCE_FREE_FRAMES = 9      # frames 0..8 come before any bounce
SPLIT_STARTS = {"train": 0, "val": 10_000_000, "test": 20_000_000}
SPLIT_SIZE = 10_000_000

_DIRECTIONS = {"moving right": (1, 0), "moving left": (-1, 0), "moving up": (0, -1),
               "moving down": (0, 1), "standing still": (0, 0)}  # image axes (x, y), y down
_STILL_SPEED = 1.0   # px/frame; moving objects go at >= 2
_SKEW_SPLIT = -0.12  # vertical skewness of the mask: circle 0, apex-up triangle -0.57 (blur: ~-0.3)
_NEAR = 15           # px: mask pixels farther than this from the frame's median pixel are specks


# ----------------------------------------------------------------------------- rendering

def _hue_colour(hue: float, saturation: float, value: float) -> np.ndarray:
    """HSV -> RGB float [3]."""
    rgb = np.clip(np.abs(hue * 6 - np.array([3.0, 2.0, 4.0])) * [1, -1, -1] + [-1, 2, 2], 0, 1)
    return value * (1 - saturation + saturation * rgb)


def _background(rng: np.random.Generator) -> np.ndarray:
    """Float [SIZE, SIZE, 3]: a tinted grey gradient with a faint sinusoidal pattern."""
    lightness = rng.uniform(0.15, 0.85)
    ends = np.clip(lightness + rng.uniform(-0.12, 0.12, (2, 1)) + rng.uniform(-0.07, 0.07, (2, 3)), 0, 1)
    y, x = (np.mgrid[:SIZE, :SIZE] + 0.5) / SIZE
    angle = rng.uniform(0, 2 * np.pi)
    ramp = x * np.cos(angle) + y * np.sin(angle)
    ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
    fx, fy = rng.uniform(-3, 3, 2)
    pattern = rng.uniform(0.0, 0.04) * np.sin(2 * np.pi * (fx * x + fy * y) + rng.uniform(0, 2 * np.pi))
    return np.clip(ends[0] + ramp[..., None] * (ends[1] - ends[0]) + pattern[..., None], 0, 1)


def _object_colour(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """A saturated colour at least MIN_COLOUR_DISTANCE from every background pixel."""
    while True:
        colour = _hue_colour(rng.uniform(), rng.uniform(0.8, 1.0), rng.uniform(0.8, 1.0))
        if np.linalg.norm(background - colour, axis=-1).min() >= MIN_COLOUR_DISTANCE:
            return colour


def _bounce(start: float, velocity: float, low: float, high: float) -> np.ndarray:
    """Positions [FRAMES] of a point moving at constant velocity, reflected elastically in [low, high]."""
    span = high - low
    unfolded = np.mod(start - low + velocity * np.arange(FRAMES), 2 * span)
    return low + np.where(unfolded <= span, unfolded, 2 * span - unfolded)


def _trajectory(rng: np.random.Generator, motion: str, size: float) -> np.ndarray:
    """Object centres [FRAMES, 2] (x, y) in pixels; no bounce before BOUNCE_FREE_FRAMES."""
    low, high = size / 2, SIZE - size / 2
    start = rng.uniform(low, high, 2)
    direction = np.array(_DIRECTIONS[motion], float)
    if not direction.any():
        return np.tile(start, (FRAMES, 1))
    speed = rng.uniform(2.0, 3.2)
    velocity = speed * direction + rng.uniform(-0.35, 0.35) * direction[::-1]  # plus a drift across
    # Along the motion, start far enough from the wall ahead to travel BOUNCE_FREE_FRAMES first.
    axis = int(np.flatnonzero(direction)[0])
    ahead = rng.uniform(low, high - speed * BOUNCE_FREE_FRAMES)
    start[axis] = ahead if direction[axis] > 0 else SIZE - ahead
    return np.stack([_bounce(start[i], velocity[i], low, high) for i in range(2)], axis=1)


def _coverage(shape: str, centres: np.ndarray, size: float) -> np.ndarray:
    """Antialiased object coverage [FRAMES, SIZE, SIZE] in [0, 1] (about 1 px of soft edge)."""
    y, x = np.mgrid[:SIZE, :SIZE].astype(np.float32) + 0.5
    centres = centres.astype(np.float32)
    dx = x - centres[:, 0, None, None]
    dy = y - centres[:, 1, None, None]
    if shape == "circle":
        distance = np.hypot(dx, dy) - size / 2
    else:  # apex up, base at the bottom; the slanted sides have normals (+-2, -1) / sqrt(5)
        below_apex = dy + size / 2
        distance = np.maximum(dy - size / 2, (2 * np.abs(dx) - below_apex) / np.float32(np.sqrt(5)))
    return np.clip(0.5 - distance, 0, 1)


def _draw(seed: int) -> tuple[int, str, np.ndarray, np.ndarray, float, np.ndarray]:
    """The random choices of clip `seed`, in drawing order: label, shape, background, colour,
    size and the object's centres [FRAMES, 2] (x, y)."""
    label = int(seed) % NUM_CLASSES
    shape, motion = SHAPES[label // len(MOTIONS)], MOTIONS[label % len(MOTIONS)]
    rng = np.random.default_rng(int(seed))
    background = _background(rng)
    colour = _object_colour(rng, background)
    size = rng.uniform(12.0, 18.0)
    return label, shape, background, colour, size, _trajectory(rng, motion, size)


def object_boxes(seed: int) -> np.ndarray:
    """Where the object of clip `seed` is: int [FRAMES, 4] boxes (top, left, height, width) in
    pixels that hold it whole (its soft edge included), clipped to the frame."""
    *_, size, centres = _draw(seed)
    low = np.floor(centres[:, ::-1] - size / 2 - 1).astype(int).clip(0, SIZE)
    high = np.ceil(centres[:, ::-1] + size / 2 + 1).astype(int).clip(0, SIZE)
    return np.concatenate([low, high - low], axis=1)


def render_clip(seed: int) -> tuple[np.ndarray, int]:
    """The clip of `seed`: uint8 [FRAMES, SIZE, SIZE, 3] and its label; deterministic in seed."""
    label, shape, background, colour, size, centres = _draw(seed)
    alpha = _coverage(shape, centres, size)[..., None]
    background, colour = background.astype(np.float32), colour.astype(np.float32)
    frames = background + alpha * (colour - background)  # [FRAMES, SIZE, SIZE, 3]
    return np.round(frames * 255).astype(np.uint8), label


# ----------------------------------------------------------------------------- splits

def split_seeds(split: str, count: int) -> np.ndarray:
    """The first `count` seeds (int64 [count]) of a split; the splits' seed ranges are disjoint."""
    if split not in SPLIT_STARTS:
        raise ValueError(f"unknown split {split!r}: valid splits are {sorted(SPLIT_STARTS)}")
    if not 0 <= count <= SPLIT_SIZE:
        raise ValueError(f"count must be in [0, {SPLIT_SIZE}], got {count}")
    return np.arange(SPLIT_STARTS[split], SPLIT_STARTS[split] + count, dtype=np.int64)


def make_dataset(split: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` clips of a split: uint8 [count, FRAMES, SIZE, SIZE, 3] and int64 labels [count]."""
    videos = np.empty((count, FRAMES, SIZE, SIZE, 3), np.uint8)
    labels = np.empty(count, np.int64)
    for i, seed in enumerate(split_seeds(split, count)):
        videos[i], labels[i] = render_clip(int(seed))
    return videos, labels


# ----------------------------------------------------------------------------- classifier

def _plane_fit(pixels: np.ndarray, design: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least-squares plane per frame and channel: coefficients [T, 3, 3].
    pixels [T, N, 3], design [N, 3] (1, x, y), weights [T, N]."""
    weighted = weights[:, None, :] * design.T  # [T, 3, N]
    return np.linalg.pinv(weighted @ design) @ (weighted @ pixels)  # pinv: no singular-matrix error


def _distance(pixels: np.ndarray, design: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """Euclidean RGB distance [T, N] of each pixel from its frame's plane."""
    residual = pixels - design @ coefficients
    return np.sqrt(np.einsum("tnc,tnc->tn", residual, residual))


def _object_masks(frames: np.ndarray) -> np.ndarray:
    """Bool [T, H, W]: the pixels far from their frame's background. The background is a plane
    per channel, fit on every 4th pixel twice: the second fit uses only the 80% of them closest
    to the first, so the object does not pull it."""
    t, h, w, _ = frames.shape
    y, x = np.mgrid[:h, :w]
    design = np.stack([np.ones(h * w), x.ravel() / w - 0.5, y.ravel() / h - 0.5], axis=1).astype(np.float32)
    pixels = frames.reshape(t, h * w, 3)
    some_pixels, some_design = pixels[:, ::4], design[::4]
    first_fit = _plane_fit(some_pixels, some_design, np.ones(some_pixels.shape[:2]))
    first = _distance(some_pixels, some_design, first_fit)
    background = first <= np.quantile(first, 0.8, axis=1, keepdims=True)
    distance = _distance(pixels, design, _plane_fit(some_pixels, some_design, background))
    # Object contrast: the 16th-largest distance of each frame, median over frames. Cut halfway
    # between it and the typical pixel, but at least 0.05 above that (no object in flat frames).
    kth = min(16, h * w)
    peak = np.median(np.partition(distance, -kth, axis=1)[:, -kth])
    floor = np.median(distance)
    return (distance > floor + max((peak - floor) / 2, 0.05)).reshape(t, h, w)


def _median_index(counts: np.ndarray) -> np.ndarray:
    """Per row of counts [T, N], the index where the cumulative count reaches half the total."""
    cumulative = counts.cumsum(axis=1)
    return (cumulative < cumulative[:, -1:] / 2).sum(axis=1)


def classify_features(video) -> dict:
    """Measurements behind `classify` for one clip [T, H, W, 3] (uint8, or float in [0, 1]):
    'velocity' (x, y) in px/frame over the bounce-free first frames, 'skew' (median vertical
    skewness of the object mask: circle ~0, apex-up triangle ~-0.57) and 'found' (frames
    where the object was found)."""
    frames = np.asarray(video)
    if np.issubdtype(frames.dtype, np.integer):
        frames = np.clip(frames, 0, 255) / np.float32(255)
    else:
        frames = np.clip(np.nan_to_num(frames.astype(np.float32)), 0, 1)
    masks = _object_masks(frames)
    t, h, w = masks.shape
    # Keep the pixels near the frame's median mask pixel: far specks do not move the moments.
    columns, rows = masks.sum(axis=1), masks.sum(axis=2)  # [T, W], [T, H]
    x, y = np.arange(w), np.arange(h)
    near_x = np.abs(x - _median_index(columns)[:, None]) <= _NEAR
    near_y = np.abs(y - _median_index(rows)[:, None]) <= _NEAR
    near = masks & near_y[:, :, None] & near_x[:, None, :]
    columns, rows = near.sum(axis=1), near.sum(axis=2)
    count = rows.sum(axis=1)
    found = count >= 3
    count = np.maximum(count, 1)
    cx, cy = columns @ x / count, rows @ y / count
    dy = y - cy[:, None]
    variance = (rows * dy**2).sum(axis=1) / count
    skew = (rows * dy**3).sum(axis=1) / count / np.maximum(variance, 1e-6) ** 1.5
    times = np.arange(t)
    early = found & (times < BOUNCE_FREE_FRAMES)
    fitted = early if early.sum() >= 2 else found
    if fitted.sum() >= 2:  # least-squares slope per axis
        velocity = np.polyfit(times[fitted], np.stack([cx, cy], axis=1)[fitted], 1)[0]
    else:
        velocity = np.zeros(2)
    return {"velocity": (float(velocity[0]), float(velocity[1])),
            "skew": float(np.median(skew[found])) if found.any() else 0.0, "found": int(found.sum())}


def _label(features: dict) -> int:
    vx, vy = features["velocity"]
    if np.hypot(vx, vy) < _STILL_SPEED:
        motion = "standing still"
    elif abs(vx) >= abs(vy):
        motion = "moving right" if vx > 0 else "moving left"
    else:
        motion = "moving down" if vy > 0 else "moving up"
    shape = "triangle" if features["skew"] < _SKEW_SPLIT else "circle"
    return CLASS_NAMES.index(f"{shape} {motion}")


def classify(video) -> np.ndarray | int:
    """Analytic class of a clip [T, H, W, 3] (-> int) or a batch [B, T, H, W, 3] (-> int64 [B]),
    uint8 or float in [0, 1]. No learning; a best guess when no object is found."""
    video = np.asarray(video)
    if video.ndim not in (4, 5) or video.shape[-1] != 3:
        raise ValueError(f"expected a video [T, H, W, 3] or a batch [B, T, H, W, 3], got shape {video.shape}")
    if video.ndim == 4:
        return _label(classify_features(video))
    return np.array([_label(classify_features(clip)) for clip in video], np.int64)


def clip_features(video: np.ndarray) -> np.ndarray:
    """11 numbers describing a clip [T, H, W, 3], for Fréchet distances between sets of clips:
    the classifier's object velocity (x, y, px/frame), mask skewness (shape) and fraction of
    frames with an object found; the mean and standard deviation of each RGB channel; and the
    mean absolute frame difference (how much moves)."""
    f = classify_features(video)
    x = as_float(video)
    return np.array([*f["velocity"], f["skew"], f["found"] / len(x), *x.mean(axis=(0, 1, 2)),
                     *x.std(axis=(0, 1, 2)), np.abs(np.diff(x, axis=0)).mean()], np.float64)


def resize_clips(videos: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Nearest-neighbour resample of clips [B, T, H, W, 3] to (T', H', W'), for models whose
    clip size is not 16x64x64 (the small test models, or 128x128 presets)."""
    picks = [np.arange(n) * size // n for n, size in zip(shape, videos.shape[1:4])]
    return videos[:, picks[0]][:, :, picks[1]][:, :, :, picks[2]]
