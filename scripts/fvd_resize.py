"""How far the resize convention moves FVD on our clips: FVD with the reference's TF1
bilinear resize (no half-pixel centres, the default of `magvit_onnx.fvd`) and with the
half-pixel one, on synthetic test clips at the default model's 16 x 64 x 64; writes JSON.

    nice python scripts/fvd_resize.py --count 8 --json scripts/fvd_resize.json
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from magvit_onnx import synthetic
from magvit_onnx.fvd import I3D, frechet_distance
from magvit_onnx.fvd.preprocess import preprocess
from magvit_onnx.metrics import emit_report


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=8, help="clips per set")
    p.add_argument("--noise", type=float, default=25.0, help="std of the Gaussian noise (0..255 scale)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    clips = synthetic.resize_clips(synthetic.make_dataset("test", 2 * args.count)[0], (16, 64, 64))
    noisy = np.clip(clips + np.random.default_rng(0).normal(0, args.noise, clips.shape), 0, 255).astype(np.uint8)
    i3d = I3D()
    report: dict = {}
    for name, half_pixel in (("tf1_no_half_pixel", False), ("half_pixel", True)):
        features = lambda v: i3d.logits(preprocess(v, half_pixel=half_pixel), preprocess=False)  # noqa: E731
        a, b, n = features(clips[:args.count]), features(clips[args.count:]), features(noisy[:args.count])
        report[name] = {"split_a_vs_split_b": frechet_distance(a, b), "clean_vs_noisy": frechet_distance(a, n)}
    report |= {"clips_per_set": args.count, "noise_std": args.noise,
               "clips": "synthetic test split, 16x64x64, bilinear to 224",
               "command": "python scripts/fvd_resize.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    emit_report(report, args.json)


if __name__ == "__main__":
    main()
