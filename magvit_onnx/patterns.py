"""Elementary test patterns, numpy only: flat fields, colour bars, gradients, checkerboards, text.

What a user's first clip through a tokenizer usually is, and what photographs and dead leaves
rarely contain: whole frames of one saturated colour, hard edges between saturated colours,
smooth ramps, pixel-sharp periodic texture, small high-contrast glyphs.

* The renderers (`flat`, `bars`, `gradient`, `checkerboard`, `text`) take explicit parameters;
  `scripts/tokenizer_card.py` calls them with fixed ones (the test card, `CARD`).
* `graphics(seed)` draws random parameters for them: the `graphics` training source
  (models/data.py), so the tokenizer sees these statistics (docs/design.md says why).

Every clip is uint8 [T, H, W, 3]; motion is an integer number of pixels per frame, wrapping.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

Colour = tuple[int, int, int]

# The six primaries and secondaries, white, black and three greys (the test card's flat fields).
NAMED_COLOURS: dict[str, Colour] = {
    "white": (255, 255, 255), "black": (0, 0, 0), "grey25": (64, 64, 64), "grey50": (128, 128, 128),
    "grey75": (191, 191, 191), "red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255),
    "cyan": (0, 255, 255), "magenta": (255, 0, 255), "yellow": (255, 255, 0),
}
# SMPTE-style bars: white, yellow, cyan, green, magenta, red, blue, black.
BAR_COLOURS: tuple[Colour, ...] = ((255, 255, 255), (255, 255, 0), (0, 255, 255), (0, 255, 0),
                                   (255, 0, 255), (255, 0, 0), (0, 0, 255), (0, 0, 0))

# A 3x5 bitmap font of the ten digits (rows top to bottom, 3 bits each): enough for "text"
# (small, high-contrast glyphs with one-pixel strokes at scale 1).
_DIGITS = ("111101101101111", "010110010010111", "111001111100111", "111001111001111", "101101111001001",
           "111100111001111", "111100111101111", "111001001001001", "111101111101111", "111101111001111")


def _moving(frame: Callable[[np.ndarray, np.ndarray], np.ndarray], frames: int, size: tuple[int, int],
            velocity: tuple[int, int]) -> np.ndarray:
    """Render `frame(y, x) -> [H, W, 3] float in [0, 255]` at pixel coordinates shifted by
    t * velocity (dy, dx) for t = 0 .. frames - 1."""
    height, width = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([frame(y - t * velocity[0], x - t * velocity[1]) for t in range(frames)]).round().clip(0, 255).astype(np.uint8)


def flat(colour: Colour, frames: int = 16, size: tuple[int, int] = (64, 64)) -> np.ndarray:
    """Every pixel of every frame one colour."""
    return np.broadcast_to(np.asarray(colour, np.uint8), (frames, *size, 3)).copy()


def bars(colours: tuple[Colour, ...], width: int, frames: int = 16, size: tuple[int, int] = (64, 64),
         vertical: bool = True, velocity: int = 0) -> np.ndarray:
    """Bars `width` pixels wide cycling through `colours`, moving `velocity` px per frame across them."""
    palette = np.asarray(colours, np.float32)

    def frame(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        along = x if vertical else y
        return palette[(np.floor(along / width).astype(np.int64)) % len(palette)]

    return _moving(frame, frames, size, (0, velocity) if vertical else (velocity, 0))


def gradient(start: Colour, end: Colour, angle: float, frames: int = 16, size: tuple[int, int] = (64, 64),
             velocity: tuple[int, int] = (0, 0)) -> np.ndarray:
    """A linear ramp from `start` to `end` across the frame along direction `angle` (radians)."""
    height, width = size
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    corners = [x * c + y * s for y in (0, height - 1) for x in (0, width - 1)]
    low, high = min(corners), max(corners)
    a, b = np.asarray(start, np.float32), np.asarray(end, np.float32)

    def frame(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        mix = np.clip((x * c + y * s - low) / max(high - low, 1.0), 0, 1)[..., None]
        return a + mix * (b - a)

    return _moving(frame, frames, size, velocity)


def checkerboard(cell: int, frames: int = 16, size: tuple[int, int] = (64, 64),
                 colours: tuple[Colour, Colour] = ((0, 0, 0), (255, 255, 255)),
                 velocity: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Square cells `cell` pixels wide of two colours."""
    palette = np.asarray(colours, np.float32)

    def frame(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        return palette[(np.floor(y / cell).astype(np.int64) + np.floor(x / cell).astype(np.int64)) % 2]

    return _moving(frame, frames, size, velocity)


def text(digits: str, scale: int, frames: int = 16, size: tuple[int, int] = (64, 64),
         ink: Colour = (0, 0, 0), paper: Colour = (255, 255, 255), velocity: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Lines of digits in a 3x5 bitmap font, each font pixel `scale` x `scale` screen pixels,
    one font pixel between glyphs and between lines, repeated to fill the frame."""
    line = np.concatenate([np.pad(np.array(list(_DIGITS[int(d)]), np.int64).reshape(5, 3), ((0, 1), (0, 1)))
                           for d in digits], 1)                        # [6, 4 * len(digits)] of 0/1
    glyphs = np.kron(line, np.ones((scale, scale), np.int64))
    palette = np.asarray((paper, ink), np.float32)

    def frame(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        rows = np.floor(y).astype(np.int64) % glyphs.shape[0]
        columns = np.floor(x).astype(np.int64) % glyphs.shape[1]
        return palette[glyphs[rows, columns]]

    return _moving(frame, frames, size, velocity)


# ----------------------------------------------------------------------------- the test card

def card(frames: int = 16, size: tuple[int, int] = (64, 64)) -> dict[str, np.ndarray]:
    """The tokenizer test card: name -> clip (scripts/tokenizer_card.py; floors in tests)."""
    clips = {f"flat {name}": flat(colour, frames, size) for name, colour in NAMED_COLOURS.items()}
    clips.update({
        "colour bars 8 px": bars(BAR_COLOURS, 8, frames, size),
        "colour bars 16 px": bars(BAR_COLOURS, 16, frames, size),
        "gradient black-white": gradient((0, 0, 0), (255, 255, 255), 0.0, frames, size),
        "gradient red-blue diagonal": gradient((255, 0, 0), (0, 0, 255), np.pi / 4, frames, size),
        "checkerboard 8 px": checkerboard(8, frames, size),
        "checkerboard 8 px moving 1 px/frame": checkerboard(8, frames, size, velocity=(0, 1)),
        "checkerboard 4 px": checkerboard(4, frames, size),
        "text 2x": text("0123456789", 2, frames, size),
    })
    return clips


# ----------------------------------------------------------------------------- random graphics

def _colour(rng: np.random.Generator) -> Colour:
    """Half the time a corner of the RGB cube (saturated, white, black), else any colour."""
    if rng.random() < 0.5:
        return tuple(int(v) for v in rng.integers(0, 2, 3) * 255)
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def _velocity(rng: np.random.Generator) -> tuple[int, int]:
    """Still half the time, else up to 3 px per frame along each axis."""
    return (0, 0) if rng.random() < 0.5 else tuple(int(v) for v in rng.integers(-3, 4, 2))


def graphics(seed: int, frames: int = 16, size: tuple[int, int] = (64, 64)) -> np.ndarray:
    """A random elementary clip: a flat field, bars, a gradient, a checkerboard or text, with
    random colours (often saturated), sizes and motion; deterministic in (seed, frames, size)."""
    rng = np.random.default_rng([int(seed), 0x6AF])
    kind = rng.integers(5)
    if kind == 0:
        return flat(_colour(rng), frames, size)
    if kind == 1:
        colours = tuple(_colour(rng) for _ in range(int(rng.integers(2, 9))))
        return bars(colours, int(rng.integers(2, 33)), frames, size, bool(rng.integers(2)), int(rng.integers(-3, 4)))
    if kind == 2:
        return gradient(_colour(rng), _colour(rng), float(rng.uniform(0, 2 * np.pi)), frames, size, _velocity(rng))
    if kind == 3:
        return checkerboard(int(rng.integers(1, 17)), frames, size, (_colour(rng), _colour(rng)), _velocity(rng))
    digits = "".join(str(d) for d in rng.integers(0, 10, 12))
    return text(digits, int(rng.integers(1, 4)), frames, size, _colour(rng), _colour(rng), _velocity(rng))
