"""Write sample clips of the synthetic set to look at: `python scripts/write_samples.py --out samples`.

For each class, the first `--per-class` clips of `--split` become `OUT/CC_class_name_SEED.mp4`
(8 fps); `OUT/overview.png` shows frames 0, 5, 10 and 15 of all of them, one row per clip.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from magvit_onnx import synthetic
from magvit_onnx.video import contact_sheet, write_mp4, write_png


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    p.add_argument("--per-class", type=int, default=2, help="clips per class (>= 1)")
    p.add_argument("--split", default="train", choices=sorted(synthetic.SPLIT_STARTS))
    p.add_argument("--fps", type=float, default=8)
    args = p.parse_args(argv)
    if args.per_class < 1:
        p.error("--per-class must be >= 1")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    samples = {label: [] for label in range(synthetic.NUM_CLASSES)}  # label -> [(seed, clip)]
    # Labels are spread evenly over seeds, so a few times per_class x classes seeds are plenty.
    count = min(synthetic.SPLIT_SIZE, 20 * args.per_class * synthetic.NUM_CLASSES)
    for seed in synthetic.split_seeds(args.split, count):
        clip, label = synthetic.render_clip(int(seed))
        if len(samples[label]) < args.per_class:
            samples[label].append((int(seed), clip))
        if all(len(clips) == args.per_class for clips in samples.values()):
            break
    rows = []
    for label, clips in samples.items():
        name = synthetic.CLASS_NAMES[label]
        for seed, clip in clips:
            path = args.out / f"{label:02d}_{name.replace(' ', '_')}_{seed}.mp4"
            write_mp4(path, clip, fps=args.fps)
            rows.append((f"{name} ({seed})", [clip]))
            print(path)
    write_png(args.out / "overview.png", contact_sheet(rows, frames=(0, 5, 10, 15)))
    print(args.out / "overview.png")


if __name__ == "__main__":
    main()
