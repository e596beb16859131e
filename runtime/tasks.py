"""The ten MAGVIT tasks and their conditions, as small pure numpy functions
(docs/official-behaviour.md#tasks).

`condition(task, video, latent_shape, **overrides)` builds, for a batch of videos
`[B, T, H, W, C]` (float32, [0, 1]), the padded condition video, the pixel mask of the
condition region and the latent (token) mask, exactly as the official `cond_utils`:

    task                   kept (condition) region            fill of the rest
    frame_prediction       first `cond_frames` frames           'edge' (repeat last kept frame)
    frame_interpolation    first and last `cond_frames`         'interpolate' (linear blend)
    outpainting_c/v/h      central square / vertical / horizontal band   'edge'
    outpainting_dv         vertical band sliding over time      'constant' (0)
    inpainting_c / _dv     all but the central / sliding hole   'constant' (0)
    full_generation        nothing (class-conditional generation)
    frame_prediction_c     as frame_prediction, with a class token
    inpainting (IPM)       all but a given pixel mask           'constant' (0)
                           (any region, runtime/regions.py; not one of the ten: MASK_TASK)

Masks keep the official broadcast shapes: time masks are `[B, T, 1, 1, 1]` /
`[B, t, 1, 1]`, static regions `[B, 1, H, W, 1]` / `[B, 1, h, w]`, dynamic regions
`[B, T, H, W, 1]` / `[B, t, h, w]`. True = condition.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from magvit_onnx.runtime.regions import mask_condition
from magvit_onnx.runtime.vocab import SpecialTokens, Vocab

REGIONS = ("rectangle_central", "rectangle_vertical", "rectangle_horizontal",
           "dynamic_vertical", "dynamic_central", "quarter_topleft")


@dataclass(frozen=True)
class Task:
    name: str                 # official task id
    abbreviation: str         # the paper's name (accepted as an alias)
    token: SpecialTokens      # task token of the multi-task prefix
    kind: str | None          # condition family; None = no condition video
    class_conditional: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def needs_video(self) -> bool:
        return self.kind is not None

    def as_dict(self) -> dict:
        return {"name": self.name, "abbreviation": self.abbreviation, "token": int(self.token),
                "kind": self.kind, "class_conditional": self.class_conditional,
                "needs_video": self.needs_video, "condition": dict(self.defaults),
                "description": self.description}


_FP = {"cond_frames": 1, "cond_latent_frames": 1, "cond_padding": "edge"}
# Inpainting carries TASK_OUTPAINTING, as in the official registry (TASK_INPAINTING is only
# used with `bug_patches.inpainting_token`, which no released config sets).
TASKS: dict[str, Task] = {t.name: t for t in (
    Task("frame_prediction", "FP", SpecialTokens.TASK_FRAME_PREDICTION, "frame_prediction",
         defaults=_FP, description="predict the future from the first frame"),
    Task("frame_interpolation", "FI", SpecialTokens.TASK_FRAME_INTERPOLATION, "frame_interpolation",
         defaults={"cond_frames": 1, "cond_latent_frames": 1, "cond_padding": "interpolate"},
         description="fill the frames between the first and the last"),
    Task("outpainting_c", "OPC", SpecialTokens.TASK_OUTPAINTING, "outpainting",
         defaults={"cond_region": "rectangle_central", "cond_padding": "edge"},
         description="extend a central square outwards"),
    Task("outpainting_v", "OPV", SpecialTokens.TASK_OUTPAINTING, "outpainting",
         defaults={"cond_region": "rectangle_vertical", "cond_padding": "edge"},
         description="extend a central vertical band to the left and right"),
    Task("outpainting_h", "OPH", SpecialTokens.TASK_OUTPAINTING, "outpainting",
         defaults={"cond_region": "rectangle_horizontal", "cond_padding": "edge"},
         description="extend a central horizontal band up and down"),
    Task("outpainting_dv", "OPD", SpecialTokens.TASK_OUTPAINTING, "outpainting",
         defaults={"cond_region": "dynamic_vertical", "cond_padding": "constant"},
         description="extend a vertical band that slides left to right over time"),
    Task("inpainting_c", "IPC", SpecialTokens.TASK_OUTPAINTING, "inpainting",
         defaults={"cond_region": "rectangle_central", "cond_padding": "constant"},
         description="fill a central square hole"),
    Task("inpainting_dv", "IPD", SpecialTokens.TASK_OUTPAINTING, "inpainting",
         defaults={"cond_region": "dynamic_central", "cond_padding": "constant"},
         description="fill a central hole that slides left to right over time"),
    Task("full_generation", "CG", SpecialTokens.TASK_FULL_GENERATION, None, class_conditional=True,
         description="generate a clip of a given class from nothing"),
    Task("frame_prediction_c", "CFP", SpecialTokens.TASK_FRAME_PREDICTION, "frame_prediction",
         class_conditional=True, defaults=_FP,
         description="predict the future of a given class from the first frame"),
)}

# Any region the caller gives (runtime/regions.py): not one of the ten, so TASKS stays the
# official registry. Ours: a model trained on random regions lists it in its manifest under
# its own token, TASK_INPAINTING (defined by the official registry, never used by it), so
# learning any region does not move what IPC and IPD see. A model that does not list it
# (trained on the official tasks only, or 0.3.x's default model, which trained random regions
# under the shared token) serves it under the official inpainting token SHARED_TOKEN, that of
# IPC and IPD (`served`, `task_token`).
MASK_TASK = Task("inpainting", "IPM", SpecialTokens.TASK_INPAINTING, "region", defaults={"mask": None},
                 description="generate where a given mask is True (invert the mask to outpaint)")
SHARED_TOKEN = SpecialTokens.TASK_OUTPAINTING

_ALIASES = {t.abbreviation.lower(): t.name for t in (*TASKS.values(), MASK_TASK)} | {
    "class_generation": "full_generation",
    "class_frame_prediction": "frame_prediction_c",
}


def get_task(name: str) -> Task:
    """A task by official id or paper abbreviation (case-insensitive)."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key == MASK_TASK.name:
        return MASK_TASK
    if key not in TASKS:
        valid = ", ".join(f"{t.name} ({t.abbreviation})" for t in (*TASKS.values(), MASK_TASK))
        raise ValueError(f"unknown task {name!r}: valid tasks are {valid}")
    return TASKS[key]


def serves_mask_task(served: dict) -> bool:
    """Whether a model serving the manifest tasks `served` (name -> entry) serves the mask task:
    it lists it, or an official inpainting or outpainting task (whose token it carries)."""
    return MASK_TASK.name in served or any(get_task(n).kind in ("inpainting", "outpainting")
                                           for n in served if n != MASK_TASK.name)


def served(listed: dict[str, dict]) -> dict[str, dict]:
    """The tasks a model serves, name -> manifest entry: the manifest's `listed` tasks, and the
    mask task (any region) where the model serves it without listing it."""
    if MASK_TASK.name in listed or not serves_mask_task(listed):
        return dict(listed)
    return {**listed, MASK_TASK.name: {**MASK_TASK.as_dict(), "token": int(SHARED_TOKEN)}}


def task_token(task: str, listed: dict) -> int:
    """The task token of `task` on a model whose manifest lists the tasks `listed` (name ->
    entry): the registry's, except that the mask task takes its entry's token where the
    manifest lists it, else the official inpainting token (`served`)."""
    spec = get_task(task)
    if spec is not MASK_TASK:
        return int(spec.token)
    return int(listed[spec.name]["token"]) if spec.name in listed else int(SHARED_TOKEN)


# ----------------------------------------------------------------------------- regions

def dynamic_starts(length: int, frames: int) -> np.ndarray:
    """Left edge per frame of a band of width length/2 sliding over `frames` steps.

    round(linspace(0, length/2, frames)) in float32, half-to-even like `jnp.round`.
    """
    return np.round(np.linspace(0, length / 2, frames, dtype=np.float32)).astype(np.int64)


def region(name: str, t: int, h: int, w: int) -> np.ndarray:
    """Boolean region of a grid `(t, h, w)`: shape (1, h, w) if static, (t, h, w) if dynamic."""
    rows = np.zeros(h, bool)
    rows[h // 4: 3 * h // 4] = True  # h//4 .. 3h//4 - 1
    cols = np.zeros(w, bool)
    cols[w // 4: 3 * w // 4] = True
    everywhere_h, everywhere_w = np.ones(h, bool), np.ones(w, bool)
    if name == "rectangle_central":
        return (rows[:, None] & cols[None, :])[None]
    if name == "rectangle_vertical":  # a vertical band: all rows, central columns
        return (everywhere_h[:, None] & cols[None, :])[None]
    if name == "rectangle_horizontal":  # a horizontal band: central rows, all columns
        return (rows[:, None] & everywhere_w[None, :])[None]
    if name == "quarter_topleft":
        out = np.zeros((1, h, w), bool)
        out[0, : h // 2, : w // 2] = True
        return out
    if name in ("dynamic_vertical", "dynamic_central"):
        band = np.zeros((t, w), bool)
        for i, start in enumerate(dynamic_starts(w, t)):
            band[i, start: start + w // 2] = True
        vertical = rows if name == "dynamic_central" else everywhere_h
        return vertical[None, :, None] & band[:, None, :]
    raise ValueError(f"unknown cond_region {name!r}: valid regions are {', '.join(REGIONS)}")


# ----------------------------------------------------------------------------- conditions

def _time_masks(batch, frames, latent_frames, keep, latent_keep):
    video_mask = np.zeros((batch, frames, 1, 1, 1), bool)
    video_mask[:, keep] = True
    latent_mask = np.zeros((batch, latent_frames, 1, 1), bool)
    latent_mask[:, latent_keep] = True
    return video_mask, latent_mask


def frame_prediction_cond(video, latent_shape, cond_frames=1, cond_latent_frames=1, cond_padding="edge"):
    """Keep the first `cond_frames` frames; the rest repeats the last kept frame ('edge') or is 0."""
    batch, frames = video.shape[:2]
    _check_count("cond_frames", cond_frames, 1, frames - 1)
    _check_count("cond_latent_frames", cond_latent_frames, 1, latent_shape[0] - 1)
    _check_padding(cond_padding, ("edge", "constant"))
    kept = video[:, :cond_frames]
    fill = kept[:, -1:] if cond_padding == "edge" else np.zeros_like(kept[:, -1:])
    cond = np.concatenate([kept, np.repeat(fill, frames - cond_frames, axis=1)], axis=1)
    masks = _time_masks(batch, frames, latent_shape[0], slice(0, cond_frames), slice(0, cond_latent_frames))
    return cond, *masks


def frame_interpolation_cond(video, latent_shape, cond_frames=1, cond_latent_frames=1, cond_padding="interpolate"):
    """Keep `cond_frames` at each end; frames in between blend linearly from start to end."""
    batch, frames = video.shape[:2]
    c, cl, lt = cond_frames, cond_latent_frames, latent_shape[0]
    _check_count("cond_frames", c, 1, (frames - 1) // 2)
    _check_count("cond_latent_frames", cl, 1, lt // 2)
    _check_padding(cond_padding, ("interpolate",))
    start, end = video[:, c - 1: c], video[:, frames - c: frames - c + 1]
    n = frames - 2 * c
    weight = (np.arange(1, n + 1, dtype=np.float32) / np.float32(n + 1)).reshape(1, n, 1, 1, 1)
    middle = start + (end - start) * weight
    cond = np.concatenate([video[:, :c], middle.astype(video.dtype), video[:, frames - c:]], axis=1)
    keep = np.r_[0:c, frames - c:frames]
    latent_keep = np.r_[0:cl, lt - cl:lt]
    return cond, *_time_masks(batch, frames, lt, keep, latent_keep)


def _spatial_cond(video, latent_shape, region_name, keep_inside, cond_padding):
    batch, frames, height, width = video.shape[:4]
    pixel_region = region(region_name, frames, height, width)
    latent_region = region(region_name, *latent_shape)
    kept = pixel_region if keep_inside else ~pixel_region
    latent_kept = latent_region if keep_inside else ~latent_region
    video_mask = np.broadcast_to(kept[None, ..., None], (batch, *kept.shape, 1)).copy()
    latent_mask = np.broadcast_to(latent_kept[None], (batch, *latent_kept.shape)).copy()
    if cond_padding == "constant":
        cond = np.where(video_mask, video, np.zeros((), video.dtype))
    else:  # 'edge': replicate the border of the kept block (static regions only)
        rows, cols = np.nonzero(kept[0].any(axis=1))[0], np.nonzero(kept[0].any(axis=0))[0]
        r0, r1, c0, c1 = rows[0], rows[-1], cols[0], cols[-1]
        block = video[:, :, r0: r1 + 1, c0: c1 + 1]
        pad = ((0, 0), (0, 0), (r0, height - 1 - r1), (c0, width - 1 - c1), (0, 0))
        cond = np.pad(block, pad, mode="edge")
    return cond, video_mask, latent_mask


def outpainting_cond(video, latent_shape, cond_region="quarter_topleft", cond_padding="edge"):
    """Keep the region; fill outside by edge replication or zeros."""
    _check_region(cond_region)
    _check_padding(cond_padding, ("edge", "constant"))
    if cond_padding == "edge" and cond_region.startswith("dynamic"):
        raise ValueError(f"cond_padding 'edge' needs a static region, got {cond_region!r}: "
                         "use cond_padding='constant' for dynamic regions")
    return _spatial_cond(video, latent_shape, cond_region, True, cond_padding)


def inpainting_cond(video, latent_shape, cond_region="rectangle_central", cond_padding="constant"):
    """Keep everything but the region, which is set to 0."""
    _check_region(cond_region)
    _check_padding(cond_padding, ("constant",))
    return _spatial_cond(video, latent_shape, cond_region, False, cond_padding)


def no_cond(video, latent_shape):
    """Class-conditional generation: nothing is known."""
    batch = video.shape[0]
    return (np.zeros_like(video), np.zeros((batch, 1, 1, 1, 1), bool), np.zeros((batch, 1, 1, 1), bool))


def region_cond(video, latent_shape, mask=None):
    """Any region: generate where the pixel `mask` is True (runtime/regions.py)."""
    return mask_condition(video, latent_shape, mask)


_COND_FNS = {
    "region": region_cond,
    "frame_prediction": frame_prediction_cond,
    "frame_interpolation": frame_interpolation_cond,
    "outpainting": outpainting_cond,
    "inpainting": inpainting_cond,
    None: no_cond,
}


def condition(task: str, video: np.ndarray, latent_shape: tuple[int, int, int], **overrides) -> dict:
    """Condition of `task` for `video[B, T, H, W, C]`: {'video', 'video_mask', 'latent_mask'}."""
    spec = get_task(task)
    video = np.asarray(video)
    if video.ndim != 5:
        raise ValueError(f"video must be [B, T, H, W, C], got shape {video.shape}")
    if not np.issubdtype(video.dtype, np.floating):
        raise ValueError(f"video must be float in [0, 1], got dtype {video.dtype}")
    if len(latent_shape) != 3:
        raise ValueError(f"latent_shape must be (t, h, w), got {latent_shape}")
    allowed = tuple(spec.defaults)
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        valid = ", ".join(allowed) if allowed else "none"
        raise ValueError(f"task {spec.name!r} does not take {unknown}: valid overrides are {valid}")
    params = {**spec.defaults, **overrides}
    cond, video_mask, latent_mask = _COND_FNS[spec.kind](video, tuple(latent_shape), **params)
    return {"video": cond.astype(video.dtype, copy=False), "video_mask": video_mask, "latent_mask": latent_mask}


def frames_needed(task: str, frames: int, **overrides) -> int:
    """How many leading input frames `task` reads from a `frames`-frame clip.

    Frame prediction (FP, CFP) keeps only its first `cond_frames` frames (1 by default) and
    fills the rest by repeating the last kept one, so any clip of at least `cond_frames`
    frames (a still image too) serves once padded that way; every other task reads all
    `frames`. An invalid `cond_frames` counts as all frames (`condition` reports it)."""
    spec = get_task(task)
    kept = {**spec.defaults, **overrides}.get("cond_frames")
    if spec.kind == "frame_prediction" and isinstance(kept, (int, np.integer)) and 1 <= kept <= frames:
        return int(kept)
    return frames


def pad_frames(video: np.ndarray, frames: int) -> np.ndarray:
    """`video[B, T', ...]` with T' <= frames, padded to `frames` by repeating its last frame."""
    return np.concatenate([video, np.repeat(video[:, -1:], frames - video.shape[1], axis=1)], axis=1)


def replace_condition_pixels(generated: np.ndarray, task: str, video: np.ndarray,
                             latent_shape: tuple[int, int, int], **overrides) -> np.ndarray:
    """The official `sampling.replace_condition_pixels` (docs/official-behaviour.md#decoding):
    `generated` with the condition region (where `condition(...)['video_mask']`) set to the
    input `video`'s pixels, so what the user gave is kept exactly. Both [B, T, H, W, C], on
    the same scale (both uint8, or both float in [0, 1])."""
    mask = condition(task, np.asarray(video, np.float32), latent_shape, **overrides)["video_mask"]
    return np.where(mask, video, generated)


# ----------------------------------------------------------------------------- prefix

def prefix(task: str, vocab: Vocab, batch: int, class_ids=None, token: int | None = None) -> np.ndarray:
    """Sequence prefix `[B, prefix_length]`: task token (multi-task) then class token.

    The class token is always present: the label's id for class-conditional tasks,
    UNCOND otherwise (official `generate_masked_tokens`). `token`: the task token where
    the model's manifest says another than the registry (`task_token`).
    """
    spec = get_task(task)
    if spec.class_conditional:
        if class_ids is None:
            raise ValueError(f"task {spec.name!r} needs a class: valid classes are 0..{vocab.num_classes - 1}")
        labels = np.broadcast_to(np.asarray(class_ids, dtype=np.int64), (batch,))
        classes = np.array([vocab.class_id(int(c)) for c in labels], np.int64)
    else:
        if class_ids is not None:
            raise ValueError(f"task {spec.name!r} takes no class; class-conditional tasks are "
                             + ", ".join(t.name for t in TASKS.values() if t.class_conditional))
        classes = np.full(batch, vocab.uncond_id, np.int64)
    token = int(spec.token) if token is None else token
    columns = ([np.full(batch, token, np.int64)] if vocab.multi_task else []) + [classes]
    return np.stack(columns, axis=1)


def uncond_prefix(vocab: Vocab, batch: int) -> np.ndarray:
    """Prefix of the unconditional pass of classifier-free guidance.

    The official code swaps the task token for TASK_FULL_GENERATION when a full-generation
    task is configured (always, with our ten tasks) and the class for UNCOND.
    """
    columns = ([np.full(batch, int(SpecialTokens.TASK_FULL_GENERATION), np.int64)] if vocab.multi_task else [])
    return np.stack(columns + [np.full(batch, vocab.uncond_id, np.int64)], axis=1)


# ----------------------------------------------------------------------------- validation

def _check_count(name, value, low, high):
    if not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")


def _check_padding(value, valid):
    if value not in valid:
        raise ValueError(f"cond_padding {value!r} is not valid here: valid values are {', '.join(valid)}")


def _check_region(value):
    if value not in REGIONS:
        raise ValueError(f"unknown cond_region {value!r}: valid regions are {', '.join(REGIONS)}")
