"""Every bound on what a caller may ask for, in one place, and the checks of the decoding
settings that `Generator` and the batch jobs share.

Why bounds at all: a value that passes a type check can still hang a run (10**9 steps),
ask ONNX Runtime for one 25 GB buffer (3,000 videos in one call) or turn into 0 or inf
in float32 inside the step graph (a temperature of 1e-300). The numbers below are where
results stop meaning anything, or where one call stops fitting in memory.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

SEED_LIMIT = 2 ** 64
"""Seeds are integers in 0 .. SEED_LIMIT - 1 (numpy's generators take 64-bit seeds)."""
MAX_NUM_VIDEOS = 64
"""Samples of one input (`num_videos`) at most."""
MAX_SAMPLES_PER_CALL = 64
"""Rows (inputs x num_videos) of one ONNX Runtime call; larger batches are split by input,
which changes no result (every input has its own random stream)."""
TEMPERATURE_RANGE = (1e-4, 1e4)
"""sampling_temperature and mask_temperature: outside this range float32 logits divided by,
or noise scaled by, the temperature become 0 or inf."""
MAX_GUIDANCE = 1e3
"""|guidance_scale| at most this (larger scales overflow float32 logits)."""
MIN_TOP_P = 1e-6
"""top_p below this rounds towards 0 in float32, which the step graph reads as 'off'."""
MAX_NUM_FRAMES = 1024
"""Long frame prediction: frames of one output at most (64x the official 16; a window per
3 latent frames, each `steps` transformer calls)."""
MAX_PANORAMA_FACTOR = 16
"""Panoramas: width (height) at most this many times the model's."""
MAX_STRIDE = 10_000
"""Input reading: every stride-th frame, stride at most this."""
MAX_START = 10_000_000
"""Input reading: first frame index at most this (about 4.6 days at 25 fps)."""
FPS_RANGE = (1e-3, 1e4)
"""Input reading: resampling rate in frames per second."""
MAX_LINE_BYTES = 65_536
"""One JOBS line (a job is a small JSON object; longer lines are refused unread)."""
MAX_INPUT_CHARS = 4096
"""Characters of a job's `input` path (PATH_MAX on Linux)."""
SHOWN_CHARS = 80
"""A value echoed in an error message is cut to this many characters."""
MAX_ERROR_CHARS = 1000
"""An error line in the report and on stderr is cut to this many characters."""
MAX_THREADS = 1024
"""ONNX Runtime's intra-op threads per session (0 = its default, one per physical core)."""


def max_steps(latent_shape) -> int:
    """Decoding steps at most: one token per step is the slowest meaningful schedule."""
    return int(np.prod(latent_shape))


def shown(value) -> str:
    """`repr(value)` for an error message, cut to SHOWN_CHARS (a 50 MB value is not echoed whole)."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS - 1]}… ({len(text)} characters)"


def shown_text(text: str) -> str:
    """An error line cut to MAX_ERROR_CHARS."""
    return text if len(text) <= MAX_ERROR_CHARS else f"{text[:MAX_ERROR_CHARS - 1]}…"


def is_integer(value) -> bool:
    """Python or numpy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_number(value) -> bool:
    """Finite Python or numpy real number, not a bool."""
    return (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
            and math.isfinite(value))


def check_integer(name: str, value, low: int, high: int | None = None) -> int:
    """An integer in low .. high (inclusive) as a Python int; raises ValueError naming `name`
    and the bound the value crossed (`<= high` for one too large, else `>= low`)."""
    if not is_integer(value) or value < low or (high is not None and value > high):
        crossed = f"<= {high}" if is_integer(value) and high is not None and value > high else f">= {low}"
        valid = "" if high is None else f" (valid: {low} .. {high})"
        raise ValueError(f"{name} must be an integer {crossed}, got {shown(value)}{valid}")
    return int(value)


def check_positive(name: str, value, low: float, high: float, why: str = "") -> float:
    """A finite number > 0 within [low, high] as a Python float; raises ValueError naming `name`
    and, when given, `why` the range is what it is."""
    if not is_number(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {shown(value)}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be within [{low:g}, {high:g}]{f' ({why})' if why else ''}, got {shown(value)}")
    return float(value)


def check_decoding(*, latent_shape, codebook_size: int, num_videos=1, steps=None, sampling_temperature=None,
                   mask_temperature=None, guidance_scale=None, top_k=None, top_p=None, schedule=None) -> dict:
    """The decoding settings of one call, checked against the bounds above and the model;
    None stays None (the model's default applies). Returns Python numbers; raises ValueError."""
    from magvit_onnx.runtime.schedule import METHODS, mask_ratio

    out = {"num_videos": check_integer("num_videos", num_videos, 1, MAX_NUM_VIDEOS),
           "steps": None if steps is None else check_integer("steps", steps, 1, max_steps(latent_shape))}
    for name, value in (("sampling_temperature", sampling_temperature), ("mask_temperature", mask_temperature)):
        out[name] = None if value is None else check_positive(name, value, *TEMPERATURE_RANGE,
                                                                    why="float32 degenerates outside")
    if guidance_scale is not None and (not is_number(guidance_scale) or abs(guidance_scale) > MAX_GUIDANCE):
        raise ValueError(f"guidance_scale must be a finite number within ±{MAX_GUIDANCE:g} (0 = no guidance), "
                         f"got {shown(guidance_scale)}")
    out["guidance_scale"] = None if guidance_scale is None else float(guidance_scale)
    out["top_k"] = None if top_k is None else check_integer("top_k", top_k, 0, codebook_size)
    if top_p is not None:
        if not is_number(top_p) or not 0 < top_p <= 1:
            raise ValueError(f"top_p must be a number in (0, 1], got {shown(top_p)}")
        if top_p < MIN_TOP_P:
            raise ValueError(f"top_p must be at least {MIN_TOP_P:g} (smaller values round to 0 = off in float32), "
                             f"got {shown(top_p)}")
    out["top_p"] = None if top_p is None else float(top_p)
    if out["top_k"] and out["top_p"] is not None and out["top_p"] < 1:
        raise ValueError("top_k and top_p cannot both be set (official sampling allows one of them)")
    if schedule is not None:
        if not isinstance(schedule, str) or len(schedule) > SHOWN_CHARS:
            raise ValueError(f"schedule must be a string ({', '.join(METHODS)}), got {shown(schedule)}")
        mask_ratio(np.linspace(0, 1, 9), 2, schedule)  # raises with the valid methods
    out["schedule"] = schedule
    return out


def check_extent(task: str, served: list[str], video_shape, latent_shape, *, num_frames=None, width=None,
                 height=None) -> tuple[str, int] | None:
    """The one of num_frames / width / height that asks for more than the model's clip, as
    (name, value), checked; None when all are unset or equal the model's (the ordinary task).
    num_frames: frame prediction (FP, CFP), video_shape[0] .. MAX_NUM_FRAMES. width / height:
    outpainting_v / outpainting_h, a multiple of the pixels per token up to
    MAX_PANORAMA_FACTOR x the model's. Raises ValueError naming the problem."""
    from magvit_onnx.runtime.tasks import get_task

    given = {k: v for k, v in (("num_frames", num_frames), ("width", width), ("height", height)) if v is not None}
    serving = {"num_frames": [n for n in served if get_task(n).kind == "frame_prediction"],
               "width": ["outpainting_v"], "height": ["outpainting_h"]}
    for name in given:
        if task not in serving[name]:
            raise ValueError(f"{name} applies to {' and '.join(serving[name]) or 'no task of this model'} only "
                             f"(task {task!r} makes {'x'.join(map(str, video_shape))} clips)")
    if not given:
        return None
    (name, value), = given.items()  # one task serves each, so at most one is given here
    axis = {"num_frames": 0, "height": 1, "width": 2}[name]
    model = video_shape[axis]
    if name == "num_frames":
        size = check_integer(name, value, model, MAX_NUM_FRAMES)
    else:
        step = model // latent_shape[axis]
        if not is_integer(value) or not model <= value <= MAX_PANORAMA_FACTOR * model or value % step:
            raise ValueError(f"{name} must be a multiple of {step} (pixels per token) in {model} .. "
                             f"{MAX_PANORAMA_FACTOR * model}, got {shown(value)}")
        size = int(value)
    return None if size == model else (name, size)
