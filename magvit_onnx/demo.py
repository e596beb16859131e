"""The demo: all ten tasks on one model, as videos and one contact sheet (numpy + onnxruntime + av).

For each task: an input clip from our synthetic test split, its condition video (what the
model is told), and the generated output, written as `<task>.mp4` and `<task>.gif`
(input | condition | output side by side), plus `contact_sheet.png` with one row per task.
Then a few tasks again on camera moves over photographs (`demo_clips/`, made by
scripts/make_demo_clips.py), written as `photo_<clip>_<task>.mp4` / `.gif`: something that
looks like real footage. Then any region (task `inpainting` with a mask, where the model
serves it): an object removal (a box following the moving shape of a test clip) and a
photograph clip extended to the right, written as `remove_object.*` and `extend_right.*`.
Beside them a long clip, stop motion and a panorama (`extended_demo`).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from magvit_onnx import synthetic
from magvit_onnx.extended_demo import write_extended
from magvit_onnx.generator import Generator, to_uint8
from magvit_onnx.runtime import tasks
from magvit_onnx.video import contact_sheet, read_video, side_by_side, write_gif, write_mp4, write_png

PHOTO_CLIPS = Path(__file__).parent / "demo_clips"
# (photograph clip, task): the rows shown on photographs, where the model has the task.
PHOTO_ROWS = (("cat", "frame_prediction"), ("astronaut", "inpainting_c"), ("cat", "outpainting_c"))
REMOVAL_CLASS = "circle moving right"  # the shape removed in the object-removal row
EXTENSION_CLIP = "astronaut"           # the photograph clip extended to the right
MASK_ROWS = ("remove_object", "extend_right")  # the file stems of the two rows of task inpainting


def demo_clips(count: int, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """`count` test-split clips (one per class in turn), resampled to `shape` (T, H, W) if needed."""
    seeds = synthetic.split_seeds("test", 10 * count)
    clips, labels = [], []
    for seed in seeds:  # take the first clip of each class, in class order
        clip, label = synthetic.render_clip(int(seed))
        if label == len(labels) % synthetic.NUM_CLASSES:
            clips.append(clip)
            labels.append(label)
        if len(clips) == count:
            break
    return synthetic.resize_clips(np.stack(clips), shape), np.array(labels)


def removal_clip(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The first test clip of REMOVAL_CLASS, resampled to `shape`, and a bool [T, H, W] mask of
    the box that follows its shape (synthetic.object_boxes): the object to remove."""
    label = synthetic.CLASS_NAMES.index(REMOVAL_CLASS)
    seed = next(int(s) for s in synthetic.split_seeds("test", synthetic.NUM_CLASSES) if s % synthetic.NUM_CLASSES == label)
    clip, _ = synthetic.render_clip(seed)
    mask = np.zeros(clip.shape[:3], bool)
    for frame, (top, left, height, width) in zip(mask, synthetic.object_boxes(seed)):
        frame[top:top + height, left:left + width] = True
    return synthetic.resize_clips(clip[None], shape)[0], synthetic.resize_clips(mask[None, ..., None], shape)[0, ..., 0]


def extension_mask(shape: tuple[int, int, int]) -> np.ndarray:
    """Bool [H, W]: the right quarter of the frame, generated; the rest of the photograph is kept."""
    mask = np.zeros(shape[1:], bool)
    mask[:, 3 * shape[2] // 4:] = True
    return mask


def photo_clip(name: str, shape: tuple[int, int, int]) -> np.ndarray:
    """The 16x64x64 photograph clip `name` of demo_clips/, resampled to `shape` (T, H, W)."""
    clip = read_video(PHOTO_CLIPS / f"{name}.mp4", num_frames=16, size=(64, 64))
    return synthetic.resize_clips(clip[None], shape)[0]


def run_demo(out: str | Path, artifacts=None, providers=None, *, seed: int = 0, steps: int | None = None,
             replace_condition_pixels: bool = False,
             log=lambda line: print(line, file=sys.stderr, flush=True)) -> dict:
    """Every task once; `replace_condition_pixels` keeps the inputs' known pixels exactly
    (see `Generator.generate`) in the tasks that have an input."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    generator = Generator(artifacts, providers)
    names = [name for name in generator.tasks if tasks.get_task(name).kind != "region"]  # masks below
    clips, labels = demo_clips(len(names), generator.video_shape)
    num_classes = len(generator.classes)
    blank = np.zeros_like(clips[0])
    rows, summary = [], {"artifacts": str(generator.artifacts), "providers": generator.providers,
                         "replace_condition_pixels": replace_condition_pixels, "tasks": {}}
    # (task, input clip, class, file stem, row title, condition overrides)
    items = [(name, clips[i], int(labels[i]) % num_classes, name, name, {}) for i, name in enumerate(names)]
    items += [(name, photo_clip(clip, generator.video_shape), 0, f"photo_{clip}_{name}", f"{name}, {clip} photo", {})
              for clip, name in PHOTO_ROWS if name in names]
    if tasks.serves_mask_task(generator.manifest["tasks"]):
        removal, moving_box = removal_clip(generator.video_shape)
        items += [("inpainting", removal, 0, MASK_ROWS[0], f"remove the {REMOVAL_CLASS.split()[0]}",
                   {"mask": moving_box}),
                  ("inpainting", photo_clip(EXTENSION_CLIP, generator.video_shape), 0, MASK_ROWS[1],
                   f"{EXTENSION_CLIP} extended right", {"mask": extension_mask(generator.video_shape)})]
    for i, (name, clip, label, stem, title, overrides) in enumerate(items):
        spec = tasks.get_task(name)
        started = time.time()
        kwargs = {"class_id": label} if spec.class_conditional else dict(overrides)
        if spec.needs_video:
            kwargs["video"] = clip
            condition = to_uint8(tasks.condition(name, clip[None].astype(np.float32) / 255,
                                                 generator.manifest["latent_shape"], **overrides)["video"][0])
        keep = replace_condition_pixels and spec.needs_video
        output = generator.generate(name, seed=seed, steps=steps, replace_condition_pixels=keep, **kwargs)[0]
        seconds = time.time() - started
        shown = (clip, condition) if spec.needs_video else (blank, blank)
        write_mp4(out / f"{stem}.mp4", side_by_side(*shown, output))
        write_gif(out / f"{stem}.gif", side_by_side(*shown, output))
        rows.append((f"{spec.abbreviation} {title}" + (f" c{label}" if spec.class_conditional else ""),
                     [clip, condition, output] if spec.needs_video else [None, None, output]))
        summary["tasks"][stem] = {"seconds": round(seconds, 3), "class_id": kwargs.get("class_id"),
                                  "files": [f"{stem}.mp4", f"{stem}.gif"]}
        log(f"[{i + 1}/{len(items)}] {stem}: {seconds:.2f} s -> {out / (stem + '.mp4')}")
    frames = generator.video_shape[0]
    picks = tuple(sorted({0, frames // 3, 2 * frames // 3, frames - 1}))
    write_png(out / "contact_sheet.png", contact_sheet(rows, frames=picks, headers=("input", "condition", "output")))
    summary["beyond_one_clip"] = write_extended(generator, clips[0], out, seed=seed, steps=steps, log=log)
    (out / "demo.json").write_text(json.dumps(summary, indent=2) + "\n")
    log(f"contact sheet: {out / 'contact_sheet.png'}")
    return summary
