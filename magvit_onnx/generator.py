"""`magvit_onnx.Generator`: MAGVIT's ten tasks over ONNX Runtime, numpy in, uint8 video out.

    from magvit_onnx import Generator
    g = Generator("artifacts/tiny")                         # or Generator() for the shipped model
    clip = g.generate("frame_prediction", video=frames, seed=0)     # uint8 [1, T, H, W, 3]
    clip = g.generate("full_generation", class_id=3, num_videos=4)  # uint8 [4, T, H, W, 3]

Everything a caller passes is checked here, with errors that name the problem and the
valid values; the runtime below (`magvit_onnx.runtime.pipeline`) assumes valid input.
Thread-safe: one Generator may be shared by several threads.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from magvit_onnx import limits
from magvit_onnx.paths import default_artifacts
from magvit_onnx.runtime import decoding as decoding_rules, extend, regions, tasks as task_registry
from magvit_onnx.runtime.pipeline import Pipeline


class Generator:
    def __init__(self, artifacts: str | Path | None = None, providers=None, *, allow_fallback: bool = False,
                 intra_op_num_threads: int = 0, use_tf32: bool | None = None, batch_profile: dict | None = None,
                 decoding: str = "model"):
        """Load an artifacts folder (None: the shipped default model) on `providers`
        ('cpu', 'cuda', 'tensorrt', a list of them, or (name, options) pairs).
        `use_tf32` (CUDA's TF32 math; None: ORT's default, on) and `batch_profile`
        ({'opt', 'max'}: TensorRT's batch range) only matter on GPUs. `decoding`: "model" takes the
        per-task decoding defaults chosen for this model where its manifest has them
        (`decoding_by_task`), "official" the official ones (`runtime/decoding.py`)."""
        self.decoding = decoding_rules.check_choice(decoding)
        if not (artifacts is None or isinstance(artifacts, (str, os.PathLike))):
            raise ValueError(f"artifacts must be a folder path (str or Path) or None for the shipped model, "
                             f"got {type(artifacts).__name__} {limits.shown(artifacts)}")
        # 0 = ONNX Runtime's default (one thread per physical core)
        intra_op_num_threads = limits.check_integer("intra_op_num_threads", intra_op_num_threads, 0,
                                                    limits.MAX_THREADS)
        self.artifacts = default_artifacts() if artifacts is None else Path(artifacts)
        self._pipeline = Pipeline.from_artifacts(self.artifacts, providers, allow_fallback=allow_fallback,
                                                 intra_op_num_threads=intra_op_num_threads, use_tf32=use_tf32,
                                                 batch_profile=batch_profile)
        self.manifest = self._pipeline.manifest
        self.video_shape = tuple(self.manifest["video"]["shape"])  # (T, H, W)

    # ------------------------------------------------------------------ facts

    @property
    def tasks(self) -> list[str]:
        """The tasks this model serves: the manifest's, and `inpainting` (any region, IPM) where an
        official inpainting or outpainting task carries its token."""
        return list(task_registry.served(self.manifest["tasks"]))

    @property
    def classes(self) -> dict[int, str | None]:
        """Class id -> name, e.g. {0: 'circle moving right', ...}; a name is None where the
        manifest has none (a random init, or a folder exported before names were carried)."""
        return {entry["id"]: entry["name"] for entry in class_entries(self.manifest)}

    @property
    def providers(self) -> list[str]:
        """Execution providers the sessions actually run on."""
        return list(self._pipeline.engine.providers)

    def info(self) -> dict:
        m = self.manifest
        return {"artifacts": str(self.artifacts), "preset": m["preset"], "providers": self.providers,
                "video_shape": list(self.video_shape), "latent_shape": m["latent_shape"],
                "tasks": self.tasks, "num_classes": len(self.classes), "classes": class_entries(m),
                "decoding": m["decoding"], "decoding_by_task": m.get("decoding_by_task", {}),
                "decoding_choice": self.decoding, "precision": m["precision"], "weights": m["weights"], "versions": m["versions"]}

    # ------------------------------------------------------------------ the three graphs

    def encode(self, video) -> np.ndarray:
        """Video (uint8, or float in [0, 1]; [T, H, W, 3] or [B, T, H, W, 3]) -> tokens [B, t, h, w]."""
        return self._pipeline.encode(self._video(video))

    def decode(self, tokens) -> np.ndarray:
        """Tokens [B, t, h, w] (or [t, h, w]) -> uint8 video [B, T, H, W, 3]. Grids larger than
        the model's (long clips, panoramas) decode in blended windows."""
        tokens = np.asarray(tokens)
        latent = tuple(self.manifest["latent_shape"])
        largest = (limits.MAX_NUM_FRAMES * latent[0] // self.video_shape[0],
                   *(limits.MAX_PANORAMA_FACTOR * n for n in latent[1:]))
        if (tokens.ndim not in (3, 4) or not all(n <= m <= x for n, m, x in zip(latent, tokens.shape[-3:], largest))
                or not np.issubdtype(tokens.dtype, np.integer) or tokens.size == 0):
            raise ValueError(f"tokens must be integers shaped [B, {', '.join(map(str, latent))}] with B >= 1 "
                             f"(t, h, w may be larger, up to {', '.join(map(str, largest))}), "
                             f"got {tokens.dtype} {tokens.shape}")
        size = self.manifest["vocab"]["codebook_size"]
        if tokens.min() < 0 or tokens.max() >= size:
            raise ValueError(f"token ids must be in 0..{size - 1}, got {tokens.min()}..{tokens.max()}")
        return self._decode(tokens.reshape(-1, *tokens.shape[-3:]))

    def _decode(self, tokens: np.ndarray) -> np.ndarray:
        """Checked tokens -> uint8 video, at most MAX_SAMPLES_PER_CALL model-sized clips of
        pixels at a time (a 64x long clip decodes one row at a time: its float32 blend is
        what one call of 64 model-sized rows would hold)."""
        size = int(np.prod(tokens.shape[1:])) // int(np.prod(self.manifest["latent_shape"]))
        step = max(1, limits.MAX_SAMPLES_PER_CALL // max(1, size))
        return np.concatenate([to_uint8(self._pipeline.decode(tokens[i:i + step]))
                               for i in range(0, len(tokens), step)])

    # ------------------------------------------------------------------ generation

    def generate(self, task: str, video=None, class_id=None, *, replace_condition_pixels: bool = False,
                 **settings) -> np.ndarray:
        """Run one of the ten tasks, or 'inpainting' of any region (`mask=`); returns uint8
        video [B * num_videos, T, H, W, 3].

        Takes the arguments of `generate_tokens`; the tokens are decoded and clipped to [0, 1].
        replace_condition_pixels: keep the given pixels exactly (the official option,
        docs/official-behaviour.md#decoding): the condition region of the output (the kept frames, band or border) is the input's,
        not the decoder's rendering of it. Off by default, as in the official configs: the
        published numbers are measured without it, and pasted pixels can show a seam where
        they meet the decoder's.
        """
        if not isinstance(replace_condition_pixels, bool):
            raise ValueError(f"replace_condition_pixels must be True or False, got {replace_condition_pixels!r}")
        spec = self._task(task)
        if replace_condition_pixels and not spec.needs_video:
            raise ValueError(f"replace_condition_pixels applies to tasks with an input video; task {spec.name!r} "
                             "has no condition pixels")
        extents = [k for k in ("num_frames", "width", "height") if settings.get(k) is not None]
        if replace_condition_pixels and (extents or self._key_frames(spec, video)):
            raise ValueError("replace_condition_pixels applies to model-sized outputs only; leave it off with "
                             + (", ".join(extents) if extents else "key images"))
        output = self._decode(self.generate_tokens(task, video, class_id, **settings))
        if settings.get("num_frames") is not None:  # the tokens cover whole latent frames
            output = output[:, :settings["num_frames"]]
        if replace_condition_pixels:  # both uint8: a uint8 input is kept bit for bit
            overrides = {k: v for k, v in settings.items() if k in spec.defaults}
            known = self._video(video, task_registry.frames_needed(spec.name, self.video_shape[0], **overrides))
            known = np.repeat(to_uint8(known), settings.get("num_videos", 1), axis=0)
            output = task_registry.replace_condition_pixels(output, spec.name, known, self.manifest["latent_shape"],
                                                            **overrides)
        return output

    def generate_tokens(self, task: str, video=None, class_id=None, *, num_videos: int = 1,
                        steps: int | None = None, seed: int | Sequence[int] | None = None,
                        sampling_temperature: float | None = None, mask_temperature: float | None = None,
                        guidance_scale: float | None = None, top_k: int | None = None, top_p: float | None = None,
                        schedule: str | None = None, num_frames: int | None = None, width: int | None = None,
                        height: int | None = None, **condition_overrides) -> np.ndarray:
        """Run one of the ten tasks; returns the generated tokens [B * num_videos, t, h, w].

        video: the input clip(s) of conditional tasks (uint8, or float in [0, 1]). Frame
        prediction (FP, CFP) reads only its first `cond_frames` frames (1), so it also takes
        a shorter clip, down to one frame (a still image as [1, H, W, 3]); the clip is padded
        by repeating its last frame. Every other task takes exactly T frames.
        class_id: class of class-conditional tasks (an int, or one per input / clip).
        mask: task 'inpainting' (IPM) only, and required there: bool [H, W] (the same region in
        every frame), [T, H, W] (a region that moves) or [B, T, H, W] (one region per input
        clip), True where the model generates; it
        generates every token a True pixel touches and keeps the others as the condition
        (`runtime/regions.py`). Outpainting is the same call with the mask inverted.
        seed: an int, or one int per input: then every input's clips equal those of a call
        with that input alone (batching never changes a result).
        Unset decoding settings come from the manifest: this model's per-task choice where it
        has one and the Generator was made with decoding="model" (the default), else the
        official defaults (12 steps, cosine, mask temperature 4.5, sampling temperature 1, no
        guidance, no top-k/top-p).

        Beyond one model-sized clip (README "Long videos, stop motion and panoramas";
        each costs (windows) x steps transformer calls, `runtime/extend.py`):
        num_frames: frame prediction (FP, CFP) continued to this many frames (T .. MAX_NUM_FRAMES);
        the tokens cover whole latent frames (`generate` cuts the video to num_frames). Each
        window after the first continues from the last `cond_latent_frames` latent frames, by
        default as many as the model was trained on (`extend.trained_context`: 2 after
        --fp-cond-frames 1,5, else 1).
        key images: frame interpolation (FI) of a video with 2 .. T-1 frames generates the
        frames between each consecutive pair: (K - 1) * T frames from K key images.
        width / height: a panorama of this many pixels (a multiple of the model's pixels per
        token, up to MAX_PANORAMA_FACTOR x the model's), grown from the whole input frame by
        repeated outpainting; width with outpainting_v (which extends sideways), height with
        outpainting_h (which extends up and down).
        """
        spec = self._task(task)
        tuned = decoding_rules.by_task(self.manifest, spec.name, self.decoding)  # fills what the call leaves unset
        sampling_temperature, mask_temperature, top_k, top_p = (
            tuned.get(name) if value is None else value for name, value in (
                ("sampling_temperature", sampling_temperature), ("mask_temperature", mask_temperature),
                ("top_k", top_k), ("top_p", top_p)))
        settings = self._settings(num_videos, steps, sampling_temperature, mask_temperature,
                                  guidance_scale, top_k, top_p, schedule)
        extent = self._extent(spec, num_frames, width, height)
        keys = self._key_frames(spec, video)
        if condition_overrides and (keys or (extent and extent[0] != "num_frames")):
            raise ValueError(f"{'key images take' if keys else extent[0] + ' takes'} no {sorted(condition_overrides)}: "
                             + ("each pair is the official frame interpolation of its two images" if keys else
                                "the whole input frame is kept and grown"))
        if spec.needs_video:
            if video is None:
                raise ValueError(f"task {spec.name!r} needs an input video of shape "
                                 f"[B, {', '.join(map(str, self.video_shape))}, 3]")
            video = self._video(video, 2 if keys else task_registry.frames_needed(
                spec.name, self.video_shape[0], **condition_overrides), pad=not keys)
        elif video is not None:
            raise ValueError(f"task {spec.name!r} takes no input video (it generates from a class)")
        class_id = self._class_ids(spec, class_id, None if video is None else video.shape[0])
        inputs = video.shape[0] if video is not None else (1 if np.ndim(class_id) == 0 else len(class_id))
        seed = self._seed(seed, inputs)
        if spec is task_registry.MASK_TASK:
            condition_overrides["mask"] = self._mask(condition_overrides.get("mask"), inputs)
        if condition_overrides and not spec.needs_video:
            raise ValueError(f"task {spec.name!r} takes no keyword {sorted(condition_overrides)}: valid settings are "
                             "num_videos, steps, seed, sampling_temperature, mask_temperature, guidance_scale, "
                             "top_k, top_p, schedule")
        # Calls of more than MAX_SAMPLES_PER_CALL rows are split by input; with one seed per input
        # (or none) that changes no result, with one seed for all inputs it would, so it is refused.
        per_call = max(1, limits.MAX_SAMPLES_PER_CALL // settings["num_videos"])
        if inputs > per_call and np.ndim(seed) == 0 and seed is not None:
            raise ValueError(f"{inputs} inputs x {settings['num_videos']} videos is more than "
                             f"{limits.MAX_SAMPLES_PER_CALL} samples for one seed: give one seed per input "
                             "(seed=[...]) so the call can be split without changing results")
        parts = []
        for first in range(0, inputs, per_call):
            part = slice(first, first + per_call)
            args = (spec.name, None if video is None else video[part])
            kwargs = {**settings, "seed": seed if np.ndim(seed) == 0 else seed[part]}
            classes = class_id if np.ndim(class_id) == 0 else class_id[part]
            condition = {name: value[part] if name == "mask" and np.ndim(value) == 4 else value
                         for name, value in condition_overrides.items()}  # one region per input: this part's
            if keys:
                parts.append(extend.interpolation_tokens(self._pipeline, args[1], **kwargs))
            elif extent is None:
                parts.append(self._pipeline.generate_tokens(*args, classes, **kwargs, **condition))
            elif extent[0] == "num_frames":  # later windows: the given cond_latent_frames, else what it was trained on
                context = (condition_overrides["cond_latent_frames"] if "cond_latent_frames" in condition_overrides
                           else extend.trained_context(self.manifest))
                parts.append(extend.frame_prediction_tokens(self._pipeline, *args, classes, num_frames=extent[1],
                                                            condition=condition, context=context, **kwargs))
            else:  # a panorama: latent axis 2 (w) for width, 1 (h) for height
                axis = 2 if extent[0] == "width" else 1
                size = extent[1] * self.manifest["latent_shape"][axis] // self.video_shape[axis]
                parts.append(extend.panorama_tokens(self._pipeline, *args, axis=axis, size=size, **kwargs))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    # ------------------------------------------------------------------ checks

    def _task(self, task) -> task_registry.Task:
        spec = task_registry.get_task(task)
        served = self.manifest["tasks"]
        if spec.name not in served and not (spec is task_registry.MASK_TASK and task_registry.serves_mask_task(served)):
            raise ValueError(f"task {spec.name!r} is not served by this model: valid tasks are {self.tasks}")
        return spec

    def _extent(self, spec, num_frames, width, height) -> tuple[str, int] | None:
        return limits.check_extent(spec.name, self.tasks, self.video_shape, self.manifest["latent_shape"],
                                   num_frames=num_frames, width=width, height=height)

    def _mask(self, mask, inputs: int) -> np.ndarray:
        """The region of task 'inpainting': bool [H, W], [T, H, W] or [inputs, T, H, W] at the
        model's size, neither empty nor everything (raises ValueError naming the problem)."""
        frames, height, width = self.video_shape
        valid = (f"[{height}, {width}] (every frame), [{frames}, {height}, {width}] (per frame) or "
                 f"[{inputs}, {frames}, {height}, {width}] (one region per input clip)")
        if mask is None:
            raise ValueError(f"task 'inpainting' needs mask=...: a bool {valid} array, True where the model generates "
                             "(invert it to outpaint)")
        mask = np.asarray(mask)
        if mask.shape not in ((height, width), (frames, height, width), (inputs, frames, height, width)):
            raise ValueError(f"mask must be shaped {valid}, got {mask.shape}")
        regions.batched_mask(mask, self.video_shape, tuple(self.manifest["latent_shape"]))
        return mask

    def _key_frames(self, spec, video) -> bool:
        """Whether `video` is a sequence of key images for frame interpolation (2 .. T-1 frames)."""
        shape = np.shape(video) if video is not None else ()
        frames = shape[-4] if len(shape) in (4, 5) else None
        return spec.name == "frame_interpolation" and frames is not None and 2 <= frames < self.video_shape[0]

    def _video(self, video, min_frames: int | None = None, pad: bool = True) -> np.ndarray:
        """uint8 or float video, [T, H, W, 3] or [B, T, H, W, 3] -> float32 [B, T, H, W, 3] in [0, 1].

        With `min_frames`, clips of min_frames..T frames are accepted and, with `pad`, padded
        to T by repeating their last frame."""
        video = np.asarray(video)
        frames, height, width = self.video_shape
        low = frames if min_frames is None else min_frames
        expected = f"[B, {', '.join(map(str, self.video_shape))}, 3] (or without B)"
        if not pad:
            expected += f"; key images: T may be {low}..{frames - 1}"
        elif low < frames:
            expected += f"; this task reads only the first {low}, so T may be {low}..{frames}"
        if video.ndim == 4:
            video = video[None]
        if (video.ndim != 5 or video.shape[2:] != (height, width, 3) or not low <= video.shape[1] <= frames
                or video.shape[0] < 1):
            hint = ("; only frame prediction (FP, CFP) and key images for frame interpolation (FI) take fewer "
                    "frames" if video.ndim == 5 and low == frames and video.shape[1] < frames else "")
            raise ValueError(f"video must be shaped {expected}, got {video.shape}{hint}")
        if pad:
            video = task_registry.pad_frames(video, frames)
        if video.dtype == np.uint8:
            return video.astype(np.float32) / 255.0
        if not np.issubdtype(video.dtype, np.floating):
            raise ValueError(f"video must be uint8 (0..255) or float in [0, 1], got dtype {video.dtype}")
        if not np.isfinite(video).all():
            raise ValueError(f"float video must be finite and in [0, 1], got {np.size(video) - np.isfinite(video).sum()} "
                             "NaN or infinite values")
        if video.min() < 0 or video.max() > 1:
            raise ValueError(f"float video must be finite and in [0, 1], got range {video.min():.3g}..{video.max():.3g}")
        return video.astype(np.float32)

    def _class_ids(self, spec, class_id, inputs: int | None):
        if not spec.class_conditional:
            if class_id is not None:
                raise ValueError(f"task {spec.name!r} takes no class; class-conditional tasks are "
                                 + ", ".join(n for n, t in self.manifest["tasks"].items() if t["class_conditional"]))
            return None
        num = len(self.classes)
        if class_id is None:
            raise ValueError(f"task {spec.name!r} needs class_id: valid classes are 0..{num - 1}")
        ids = np.asarray(class_id)
        if not np.issubdtype(ids.dtype, np.integer) or ids.ndim > 1 or ids.size == 0:
            raise ValueError(f"class_id must be an int or a list of ints in 0..{num - 1}, got {class_id!r}")
        if ids.min() < 0 or ids.max() >= num:
            raise ValueError(f"class_id {class_id!r} out of range: valid classes are 0..{num - 1}")
        if inputs is not None and ids.ndim == 1 and ids.size != inputs:
            raise ValueError(f"class_id gives {ids.size} classes for {inputs} input videos: give one, or one per video")
        return ids

    @staticmethod
    def _seed(seed, inputs: int):
        """None, an int >= 0, or one int >= 0 per input."""
        seeds = [seed] if seed is None or np.ndim(seed) == 0 else list(seed)
        valid = all(s is None or (limits.is_integer(s) and 0 <= s < limits.SEED_LIMIT) for s in seeds)
        if not valid or (np.ndim(seed) == 1 and (len(seeds) != inputs or None in seeds)):
            raise ValueError(f"seed must be an integer >= 0 (below 2**64), or a list of {inputs} of them "
                             f"(one per input), got {limits.shown(seed)}")
        return seed if np.ndim(seed) == 0 else [int(s) for s in seeds]

    def _settings(self, num_videos, steps, sampling_temperature, mask_temperature, guidance_scale,
                  top_k, top_p, schedule) -> dict:
        return limits.check_decoding(latent_shape=self.manifest["latent_shape"],
                                     codebook_size=self.manifest["vocab"]["codebook_size"], num_videos=num_videos,
                                     steps=steps, sampling_temperature=sampling_temperature,
                                     mask_temperature=mask_temperature, guidance_scale=guidance_scale, top_k=top_k,
                                     top_p=top_p, schedule=schedule)

def class_entries(manifest: dict) -> list[dict]:
    """The manifest's classes as [{'id': 0, 'name': ...}, ...]; older manifests list bare ids."""
    return [entry if isinstance(entry, dict) else {"id": entry, "name": None} for entry in manifest["classes"]]


def to_uint8(video: np.ndarray) -> np.ndarray:
    """float video in [0, 1] -> uint8 0..255 (rounded)."""
    return np.round(np.clip(video, 0.0, 1.0) * 255.0).astype(np.uint8)
