"""What `replace_condition_pixels` changes, on validation clips of the shipped model (docs/design.md#known-pixels):

    nice python scripts/measure_seam.py --json scripts/measure_seam.json

Per task, each clip is generated once (12 steps, the model's decoding defaults); the output
with the known pixels pasted back is the same output with the condition region replaced.
Reports the squared error on the known region (off: the decoder's rendering of the input;
on: 0 by construction) and the seam: the mean absolute step between neighbouring pixels on
either side of the known/unknown border (per axis: time for frame prediction, rows and
columns for the spatial tasks), beside the same step in the true clip.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from magvit_onnx.generator import Generator
from magvit_onnx.models.data import parse_data
from magvit_onnx.runtime import tasks


def border_step(video: np.ndarray, known: np.ndarray) -> dict[str, float]:
    """Mean |video[a] - video[b]| over neighbours a, b on different sides of the border, per axis."""
    known = np.broadcast_to(known, video.shape[:4] + (1,))[..., 0]
    steps = {}
    for axis, name in ((1, "time"), (2, "rows"), (3, "cols")):
        ahead, behind = [slice(None)] * 4, [slice(None)] * 4
        ahead[axis], behind[axis] = slice(1, None), slice(None, -1)
        across = known[tuple(ahead)] != known[tuple(behind)]
        if across.any():
            step = np.abs(video[tuple(ahead)] - video[tuple(behind)]).mean(-1)
            steps[name] = float(step[across].mean())
    return steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--tasks", default="frame_prediction,outpainting_c,inpainting_c")
    p.add_argument("--clips", type=int, default=2, help="'val' clips per source (synthetic, dead leaves, photos)")
    args = p.parse_args()
    generator = Generator()
    clips = np.concatenate([parse_data(source, tuple(generator.video_shape), split="val").take(args.clips)[0]
                            for source in ("synthetic", "dead_leaves", "photos")])
    truth = clips.astype(np.float32) / 255
    report = {"clips": len(clips), "steps": 12}
    for task in args.tasks.split(","):
        out = generator.generate(task, clips, seed=list(range(len(clips))), steps=12).astype(np.float32) / 255
        known = tasks.condition(task, truth, generator.manifest["latent_shape"])["video_mask"]
        mask = np.broadcast_to(known, truth.shape[:4] + (1,))
        mse = float((((out - truth) ** 2) * mask).sum() / (3 * mask.sum()))
        report[task] = {"known_mse_off": mse, "known_psnr_off": float(-10 * np.log10(mse)), "known_mse_on": 0.0,
                        "seam_truth": border_step(truth, known), "seam_off": border_step(out, known),
                        "seam_on": border_step(np.where(known, truth, out), known)}
        print(task, report[task], flush=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
