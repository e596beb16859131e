"""The demo's outputs beyond one model-sized clip, written beside the contact sheet: a long
frame prediction (4x the model's frames from one image), stop motion between three key
images and a 3x wide panorama (README "Long videos, stop motion and panoramas")."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from magvit_onnx.generator import Generator
from magvit_onnx.video import write_gif, write_mp4


def write_extended(generator: Generator, clip: np.ndarray, out: Path, *, seed: int = 0, steps: int | None = None,
                   log: Callable[[str], None] = print) -> dict:
    """From one uint8 test clip [T, H, W, 3]: `long_frame_prediction`, `stop_motion` and
    `panorama` as .mp4 and .gif in `out`; returns {name: {seconds, shape, files}}. Each needs
    its task (frame_prediction, frame_interpolation, outpainting_v); a model without it skips it."""
    frames, _, width = generator.video_shape
    calls = {
        "long_frame_prediction": ("frame_prediction", {"video": clip[:1], "num_frames": 4 * frames}),
        "stop_motion": ("frame_interpolation", {"video": clip[[0, frames // 2, frames - 1]]}),
        "panorama": ("outpainting_v", {"video": clip, "width": 3 * width}),
    }
    summary = {}
    for name, (task, kwargs) in calls.items():
        if task not in generator.tasks:
            log(f"{name}: skipped (the model has no {task} task)")
            continue
        started = time.time()
        video = generator.generate(task, seed=seed, steps=steps, **kwargs)[0]
        seconds = time.time() - started
        write_mp4(out / f"{name}.mp4", video)
        write_gif(out / f"{name}.gif", video)
        summary[name] = {"seconds": round(seconds, 3), "shape": list(video.shape),
                         "files": [f"{name}.mp4", f"{name}.gif"]}
        log(f"{name}: {'x'.join(map(str, video.shape[:3]))} in {seconds:.2f} s -> {out / (name + '.mp4')}")
    return summary
