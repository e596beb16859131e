"""Procedural training video, numpy only: moving dead leaves and camera moves over photographs.

The labelled synthetic set (`synthetic.py`) teaches the class-conditional tasks, but one shape
on a soft background is not what users film. These two families give the tokenizer and the
transformer the statistics of real footage without a single real recording:

* `dead_leaves(seed)`: many layered shapes (discs, rectangles, polygons, strokes, rings) with
  sizes drawn from a power law (the dead-leaves model, known to reproduce the scale
  invariance and edge statistics of natural images), colours over the whole HSV range, fills
  that are flat, gradients or procedural textures (noise, stripes, checkers); every layer
  moves, rotates and scales, occluding the ones below, under a camera that pans, zooms,
  rotates and shakes.
* `photo_moves(seed, photos)`: a camera moving over a still photograph (pan, zoom, rotation,
  shake), brightness / contrast / colour drifting over the clip, with sprites (shapes cut out
  of other photographs) moving across.

Every clip is uint8 [T, H, W, 3], deterministic in (seed, size) — and in the photo list for
`photo_moves`. `frames=1` renders a still (2D tokenizer pretraining). Splits are disjoint seed
ranges, as in `synthetic.py`; the photographs are shared by all splits (they are training
material, never the test: the model is judged on real recordings, which are never trained on).

`find_photos()` lists the sample photographs that ship inside installed packages
(scikit-image, scikit-learn, matplotlib: the `photos` extra) plus any folders given; only still
image files are taken.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

import numpy as np

from magvit_onnx.synthetic import SPLIT_SIZE, SPLIT_STARTS

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
# Sample-data folders of installed packages, relative to the package: (package, folder).
PACKAGE_PHOTO_DIRS = (("skimage", "data"), ("sklearn", "datasets/images"), ("matplotlib", "mpl-data/sample_data"))
MIN_PHOTO_SIDE = 96          # smaller files (icons, tiny thumbnails) are skipped

SHAPES = ("disc", "rectangle", "polygon", "stroke", "ring")
FILLS = ("flat", "gradient", "noise", "stripes", "checkers")


# ----------------------------------------------------------------------------- geometry

def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres in frame-height units, centred: u (x) [W], v (y) [H]."""
    v = (np.arange(height, dtype=np.float32) + 0.5 - height / 2) / height
    u = (np.arange(width, dtype=np.float32) + 0.5 - width / 2) / height
    return u, v


def _rotate(x: np.ndarray, y: np.ndarray, angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(angle), np.sin(angle)
    return c * x - s * y, s * x + c * y


def _signed_distance(shape: str, params: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) to a shape of unit size at the origin, local units.

    params: shape-specific numbers drawn once per layer (aspect ratio, corners, thickness).
    """
    if shape == "disc":
        return np.hypot(x, y) - 1.0
    if shape == "rectangle":  # half-sides 1/aspect x aspect
        aspect = params[0]
        return np.maximum(np.abs(x) - 1.0 / aspect, np.abs(y) - aspect)
    if shape == "polygon":  # regular n-gon of circumradius 1: max over the edge normals
        corners = int(params[1])
        normals = np.arange(corners, dtype=np.float32) * np.float32(2 * np.pi / corners)
        projections = x[..., None] * np.cos(normals) + y[..., None] * np.sin(normals)
        return projections.max(-1) - np.float32(np.cos(np.pi / corners))
    if shape == "stroke":  # a capsule: segment from (-1, 0) to (1, 0), half-thickness t
        thickness = params[2]
        return np.hypot(np.maximum(np.abs(x) - 1.0, 0.0), y) - thickness
    if shape == "ring":
        thickness = params[2]
        return np.abs(np.hypot(x, y) - (1.0 - thickness)) - thickness
    raise ValueError(f"unknown shape {shape!r}: valid shapes are {SHAPES}")


def _hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """[..., 3] HSV in [0, 1] -> RGB in [0, 1]."""
    h, s, v = hsv[..., 0:1], hsv[..., 1:2], hsv[..., 2:3]
    rgb = np.clip(np.abs(h * 6 - np.array([3.0, 2.0, 4.0], np.float32)) * [1, -1, -1] + [-1, 2, 2], 0, 1)
    return (v * (1 - s + s * rgb)).astype(np.float32)


def _random_colours(rng: np.random.Generator, count: int) -> np.ndarray:
    """[count, 3] RGB over the whole range: any hue, saturation often low or high, any lightness."""
    hsv = np.stack([rng.uniform(0, 1, count), rng.beta(0.7, 0.7, count), rng.beta(1.2, 1.0, count)], -1)
    return _hsv_to_rgb(hsv.astype(np.float32))


# ----------------------------------------------------------------------------- fills

def _fill(rng: np.random.Generator, kind: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Colour [..., 3] of a layer at local coordinates (x, y): `kind` from FILLS."""
    first, second = _random_colours(rng, 2)
    if kind == "flat":
        return np.broadcast_to(first, x.shape + (3,))
    direction = rng.uniform(0, 2 * np.pi)
    along = x * np.float32(np.cos(direction)) + y * np.float32(np.sin(direction))
    if kind == "gradient":
        mix = np.clip(0.5 + 0.5 * along * np.float32(rng.uniform(0.5, 1.5)), 0, 1)
    elif kind == "noise":  # a sum of random plane waves: a cheap band-limited texture
        waves = np.zeros_like(x)
        for _ in range(4):
            angle, frequency, phase = rng.uniform(0, 2 * np.pi), rng.uniform(2, 14), rng.uniform(0, 2 * np.pi)
            waves += np.sin(frequency * (x * np.float32(np.cos(angle)) + y * np.float32(np.sin(angle))) + phase)
        mix = 0.5 + 0.5 * np.tanh(np.float32(rng.uniform(0.5, 2.0)) * waves)
    elif kind == "stripes":
        mix = 0.5 + 0.5 * np.tanh(np.float32(rng.uniform(1, 8)) * np.sin(np.float32(rng.uniform(3, 20)) * along))
    elif kind == "checkers":
        frequency = np.float32(rng.uniform(3, 14))
        mix = 0.5 + 0.5 * np.tanh(4 * np.sin(frequency * x) * np.sin(frequency * y))
    else:
        raise ValueError(f"unknown fill {kind!r}: valid fills are {FILLS}")
    return first + mix[..., None] * (second - first)


# ----------------------------------------------------------------------------- motion

def _camera(rng: np.random.Generator, frames: int) -> dict[str, np.ndarray]:
    """Per-frame camera: centre [T, 2], zoom [T] and roll [T], in frame-height units / radians."""
    t = np.arange(frames, dtype=np.float32)
    velocity = rng.normal(0, 0.015, 2) * (rng.uniform() < 0.7)
    centre = velocity[None] * t[:, None]
    if rng.uniform() < 0.25:  # hand-held shake
        centre = centre + rng.normal(0, 0.006, (frames, 2))
    zoom = np.exp(rng.uniform(-0.025, 0.025) * t * (rng.uniform() < 0.5))
    roll = rng.normal(0, 0.006) * t * (rng.uniform() < 0.3)
    return {"centre": centre.astype(np.float32), "zoom": zoom.astype(np.float32), "roll": roll.astype(np.float32)}


def _world_coordinates(camera: dict[str, np.ndarray], height: int, width: int,
                       rows: slice = slice(None), columns: slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
    """World coordinates (x, y) [T, h, w] of the pixels in rows x columns of every frame."""
    u, v = _pixel_grid(height, width)
    u, v = u[columns], v[rows]
    zoom, roll = camera["zoom"][:, None, None], camera["roll"][:, None, None]
    x, y = _rotate(u[None, None, :] * zoom, v[None, :, None] * zoom, roll)
    return x + camera["centre"][:, 0, None, None], y + camera["centre"][:, 1, None, None]


def _layer_sizes(rng: np.random.Generator, count: int, smallest: float, largest: float) -> np.ndarray:
    """Radii with density ~ r^-3 on [smallest, largest] (the dead-leaves size law), inverse CDF."""
    u = rng.uniform(0, 1, count)
    return (smallest ** -2 - u * (smallest ** -2 - largest ** -2)) ** -0.5


def _pixel_box(camera: dict[str, np.ndarray], height: int, width: int, path: np.ndarray,
               reach: np.ndarray) -> tuple[slice, slice] | None:
    """The pixel rows and columns a disc of radius reach [T] around path [T, 2] (world units)
    can touch in any frame, or None when it never enters the picture."""
    x, y = _rotate(path[:, 0] - camera["centre"][:, 0], path[:, 1] - camera["centre"][:, 1], -camera["roll"])
    column = x / camera["zoom"] * height + width / 2
    row = y / camera["zoom"] * height + height / 2
    extent = reach / camera["zoom"] * height + 2
    top, bottom = int(max(0, np.floor((row - extent).min()))), int(min(height, np.ceil((row + extent).max())))
    left, right = int(max(0, np.floor((column - extent).min()))), int(min(width, np.ceil((column + extent).max())))
    return (slice(top, bottom), slice(left, right)) if top < bottom and left < right else None


def _paint_layer(canvas: np.ndarray, camera: dict[str, np.ndarray], rng: np.random.Generator,
                 radius: float, centre: np.ndarray, fill: str | np.ndarray | None = None) -> None:
    """Composites one moving shape over `canvas` [T, H, W, 3] in place, seen through `camera`.

    The layer moves, rotates and scales at constant rates over the clip. fill: a name from
    FILLS, a photo (float [h, w, 3]) to cut the layer out of, or None (a random fill). Only the
    pixels the layer can reach are computed (most leaves are small).
    """
    frames, height, width = canvas.shape[:3]
    t = np.arange(frames, dtype=np.float32)
    shape = SHAPES[rng.integers(len(SHAPES))]
    params = np.array([rng.uniform(0.4, 1.6), rng.integers(3, 9), rng.uniform(0.08, 0.35)], np.float32)
    velocity = rng.normal(0, 0.012, 2) * rng.choice([0.0, 1.0, 2.5], p=[0.2, 0.6, 0.2])
    spin, growth = rng.normal(0, 0.04), rng.normal(0, 0.015)
    kind = fill if fill is not None else FILLS[rng.integers(len(FILLS))]
    path = (centre + velocity * t[:, None]).astype(np.float32)
    scale = (np.float32(radius) * np.exp(np.float32(growth) * t)).astype(np.float32)
    box = _pixel_box(camera, height, width, path, scale * 2.6)  # 2.6 bounds every shape's extent
    if box is None:
        return
    rows, columns = box
    world = _world_coordinates(camera, height, width, rows, columns)
    angle = (rng.uniform(0, 2 * np.pi) + spin * t)[:, None, None]
    x, y = _rotate(world[0] - path[:, 0, None, None], world[1] - path[:, 1, None, None], -angle)
    scale = scale[:, None, None]
    x, y = x / scale, y / scale
    pixel = (camera["zoom"] / height)[:, None, None]
    distance = _signed_distance(shape, params, x, y) * scale / pixel  # in pixels
    alpha = np.clip(0.5 - distance, 0, 1)
    if not alpha.any():
        return
    if isinstance(kind, np.ndarray):
        colour = _sample_photo(kind, 0.5 + 0.45 * np.clip(x, -1, 1), 0.5 + 0.45 * np.clip(y, -1, 1))
    else:
        colour = _fill(rng, kind, x, y)
    region = canvas[:, rows, columns]
    region += alpha[..., None] * (colour - region)


# ----------------------------------------------------------------------------- dead leaves

def dead_leaves(seed: int, frames: int = 16, size: tuple[int, int] = (64, 64)) -> np.ndarray:
    """A moving dead-leaves clip: uint8 [frames, H, W, 3], deterministic in (seed, frames, size)."""
    rng = np.random.default_rng([int(seed), 0xDEAD])
    height, width = size
    camera = _camera(rng, frames)
    world = _world_coordinates(camera, height, width)
    canvas = np.empty((frames, height, width, 3), np.float32)
    canvas[:] = _fill(rng, FILLS[rng.integers(len(FILLS))], world[0] * 0.5, world[1] * 0.5)
    count = int(rng.integers(20, 120))
    reach = 0.5 * max(1.0, width / height) + 0.4  # where leaves can start: the frame and around it
    for radius in sorted(_layer_sizes(rng, count, 0.04, 0.8), reverse=True):  # big ones at the back
        _paint_layer(canvas, camera, rng, radius, rng.uniform(-reach, reach, 2).astype(np.float32))
    return np.round(np.clip(canvas, 0, 1) * 255).astype(np.uint8)


# ----------------------------------------------------------------------------- photographs

def find_photos(folders: Sequence[str | Path] = (), packages: bool = True) -> list[Path]:
    """Still photographs: those shipped by installed packages (PACKAGE_PHOTO_DIRS) and those in
    `folders` (recursively); sorted, so a run is reproducible. Only PHOTO_SUFFIXES are taken."""
    roots = [Path(folder) for folder in folders]
    if packages:
        for package, folder in PACKAGE_PHOTO_DIRS:
            spec = importlib.util.find_spec(package)  # locates the package without importing it
            if spec is not None and spec.origin is not None:
                roots.append(Path(spec.origin).parent / folder)
    found = set()
    for root in roots:
        if root.is_dir():
            found.update(p for p in root.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and "tests" not in p.parts)
        elif root.is_file() and root.suffix.lower() in PHOTO_SUFFIXES:
            found.add(root)
    return sorted(found)


def load_photos(paths: Sequence[str | Path]) -> list[np.ndarray]:
    """Decodes still images to uint8 [h, w, 3]; files that fail or are smaller than
    MIN_PHOTO_SIDE are skipped. PyAV decodes them; where it is not installed (the lent GPU
    image has torch and scikit-image but not PyAV) scikit-image's reader, the 'photos' extra."""
    try:
        import av
    except ImportError:
        decode, errors = _read_with_scikit_image, (OSError, ValueError)
    else:
        def decode(path: str) -> np.ndarray:
            with av.open(path) as container:
                return next(container.decode(video=0)).to_ndarray(format="rgb24")
        errors = (av.FFmpegError, StopIteration, OSError)
    photos = []
    for path in paths:
        try:
            image = decode(str(path))
        except errors:
            continue
        if min(image.shape[:2]) >= MIN_PHOTO_SIDE:
            photos.append(image)
    return photos


def _read_with_scikit_image(path: str) -> np.ndarray:
    """uint8 [h, w, 3] as PyAV's rgb24 gives it: grey repeated, alpha dropped, 16 bits cut to 8."""
    from skimage.io import imread

    image = imread(path)
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    image = np.asarray(image, np.uint8)
    return np.repeat(image[..., None], 3, -1) if image.ndim == 2 else np.ascontiguousarray(image[..., :3])


def area_downscale(image: np.ndarray, factor: int) -> np.ndarray:
    """image [h, w, C] shrunk by an integer `factor`: each factor x factor block becomes its mean
    (float; the edge rows and columns that do not fill a block are dropped)."""
    if factor <= 1:
        return image
    h, w = image.shape[0] // factor * factor, image.shape[1] // factor * factor
    return image[:h, :w].reshape(h // factor, factor, w // factor, factor, image.shape[2]).mean((1, 3))


def _sample_photo(photo: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples [..., 3] of `photo` (float [h, w, 3]) at relative coordinates x, y in
    [0, 1] (outside: mirrored back in)."""
    h, w = photo.shape[:2]
    x = np.abs(np.mod(x + 1, 2) - 1) * (w - 1)  # mirror into [0, 1], then to pixels
    y = np.abs(np.mod(y + 1, 2) - 1) * (h - 1)
    x0, y0 = np.minimum(x.astype(np.int32), w - 2), np.minimum(y.astype(np.int32), h - 2)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    top = photo[y0, x0] * (1 - fx) + photo[y0, x0 + 1] * fx
    bottom = photo[y0 + 1, x0] * (1 - fx) + photo[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def photo_moves(seed: int, photos: Sequence[np.ndarray], frames: int = 16,
                size: tuple[int, int] = (64, 64)) -> np.ndarray:
    """A camera move over one of `photos` (uint8 [h, w, 3] each), with sprites cut out of
    others: uint8 [frames, H, W, 3], deterministic in (seed, frames, size, photos)."""
    if not photos:
        raise ValueError("photo_moves needs at least one photograph: see find_photos() and the 'photos' extra")
    rng = np.random.default_rng([int(seed), 0xF070])
    height, width = size
    photo = photos[rng.integers(len(photos))].astype(np.float32) / 255
    if rng.uniform() < 0.5:
        photo = photo[:, ::-1]
    # The view: its height as a share of the photo's, between a close-up and (nearly) all of it.
    view = rng.uniform(0.12, 0.9) * min(1.0, photo.shape[1] / photo.shape[0] * height / width)
    # Area-average first (photo pixels per output pixel), as a video scaler would, instead of aliasing.
    photo = area_downscale(photo, int(view * photo.shape[0] / height))
    ph, pw = photo.shape[:2]
    camera = _camera(rng, frames)
    camera["centre"] *= view * 2  # camera speeds are relative to what the view shows
    world = _world_coordinates(camera, height, width)
    half = np.minimum(0.5, 0.5 * view * np.array([width / height * ph / pw, 1.0]))  # the view's half extent
    centre = rng.uniform(half, 1 - half).astype(np.float32)
    canvas = _sample_photo(photo, centre[0] + world[0] * view * ph / pw, centre[1] + world[1] * view)
    for _ in range(rng.choice([0, 1, 2, 3], p=[0.4, 0.3, 0.2, 0.1])):  # sprites
        sprite = photos[rng.integers(len(photos))].astype(np.float32) / 255
        _paint_layer(canvas, camera, rng, _layer_sizes(rng, 1, 0.08, 0.35)[0],
                     rng.uniform(-0.6, 0.6, 2).astype(np.float32), fill=sprite)
    return np.round(np.clip(_photometric(rng, canvas), 0, 1) * 255).astype(np.uint8)


def _photometric(rng: np.random.Generator, clip: np.ndarray) -> np.ndarray:
    """Brightness, contrast, saturation and white balance, each drifting linearly over the clip."""
    frames = clip.shape[0]
    t = np.linspace(0, 1, frames, dtype=np.float32)[:, None, None, None]

    def drift(spread: float, shape=()) -> np.ndarray:
        start, end = rng.normal(0, spread, (2, *shape)).astype(np.float32)
        return start + (end - start) * t

    grey = clip.mean(-1, keepdims=True)
    clip = grey + (clip - grey) * np.exp(drift(0.15))            # saturation
    clip = clip * np.exp(drift(0.04, (3,)))                      # white balance (per channel gain)
    mean = clip.mean((1, 2, 3), keepdims=True)
    clip = mean + (clip - mean) * np.exp(drift(0.1))             # contrast
    return clip + drift(0.04)                                    # brightness


# ----------------------------------------------------------------------------- splits

def split_seed(split: str, index: int) -> int:
    """The index-th seed of a split (the split ranges of `synthetic.py`, disjoint)."""
    if split not in SPLIT_STARTS:
        raise ValueError(f"unknown split {split!r}: valid splits are {sorted(SPLIT_STARTS)}")
    return SPLIT_STARTS[split] + int(index) % SPLIT_SIZE
