"""Colour and flatness statistics of training sources: how often a source shows what the test card asks for.

    python scripts/data_stats.py --data photos,dead_leaves,synthetic,graphics --count 48 --json stats.json

Per source, over `--count` training clips (16x64x64): the share of pixels that are saturated
(HSV saturation and value both >= 0.8), near white (every channel >= 240), near black (every
channel <= 15), the share of 4x4x4 blocks that are flat (standard deviation <= 2 grey levels
in every channel) and the share of clips that are one flat colour throughout — what a tokenizer must reproduce exactly on flat colours and colour bars.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from magvit_onnx.metrics import emit_report
from magvit_onnx.models.data import parse_data


def statistics(clips: np.ndarray) -> dict[str, float]:
    """clips uint8 [N, T, H, W, 3] -> shares (0..1) of saturated / white / black pixels, flat blocks and flat clips."""
    x = clips.astype(np.float32)
    high, low = x.max(-1), x.min(-1)
    saturation = (high - low) / np.maximum(high, 1)
    n, t, h, w, c = x.shape
    blocks = x.reshape(n, t // 4, 4, h // 4, 4, w // 4, 4, c).std(axis=(2, 4, 6))
    return {"saturated_pixels": float(((saturation >= 0.8) & (high >= 204)).mean()),
            "white_pixels": float((low >= 240).mean()), "black_pixels": float((high <= 15).mean()),
            "flat_blocks": float((blocks <= 2).all(-1).mean()),
            "flat_clips": float((x.reshape(n, -1, c).std(1) <= 2).all(-1).mean())}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="photos,dead_leaves,synthetic,graphics", help="comma-separated sources")
    p.add_argument("--count", type=int, default=48, help="training clips per source")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    report = {name: statistics(parse_data(name, (16, 64, 64), "train").take(args.count)[0])
              for name in filter(None, (s.strip() for s in args.data.split(",")))}
    report["command"] = " ".join(["python scripts/data_stats.py", *(argv if argv is not None else sys.argv[1:])])
    emit_report(report, args.json)


if __name__ == "__main__":
    main()
