"""The tokenizer's test card: PSNR per elementary pattern, and a picture of each beside its reconstruction.

    python scripts/tokenizer_card.py                                   # the shipped model, torch-free
    python scripts/tokenizer_card.py --artifacts artifacts/mine --json card.json --png card.png
    python scripts/tokenizer_card.py --weights runs/tok3d/tokenizer.safetensors --data my_videos/

Patterns (`magvit_onnx.patterns.card`): flat fields of the primaries, secondaries, white,
black and greys; SMPTE-style colour bars 8 and 16 px wide; gradients; checkerboards, still
and moving; digits; then a still and a panning photograph (the demo's photo clip), and with
`--data DIR` up to `--count` 16-frame windows of the videos under DIR. Every clip goes
through tokenize -> detokenize once (`--artifacts`: the exported graphs via ONNX Runtime;
`--weights`: the PyTorch tokenizer) and is scored with the PSNR of scripts/evaluate.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from magvit_onnx import patterns
from magvit_onnx.metrics import emit_report, psnr
from magvit_onnx.demo import PHOTO_CLIPS
from magvit_onnx.video import contact_sheet, read_video, write_png

PHOTO_CLIP = "astronaut.mp4"


def card_clips(shape: tuple[int, int, int], data: Path | None, count: int) -> dict[str, np.ndarray]:
    """Name -> uint8 [T, H, W, 3] clip at the model's size."""
    frames, height, width = shape
    clips = patterns.card(frames, (height, width))
    pan = read_video(PHOTO_CLIPS / PHOTO_CLIP, num_frames=frames, size=(height, width))
    clips["photo still"] = np.repeat(pan[:1], frames, 0)
    clips["photo panning"] = pan
    if data is not None:
        from evaluate import video_windows  # scripts/evaluate.py

        for k, window in enumerate(video_windows(data, shape, count, gap=frames)):
            clips[f"{data.name} {k}"] = window
    return clips


def reconstructor(weights: Path | None, artifacts: Path | None):
    """(video shape, clips [N, T, H, W, 3] uint8 -> reconstructions uint8) for the chosen model."""
    if weights is not None:
        from evaluate_tokenizer import reconstruct  # scripts/evaluate_tokenizer.py (torch)
        from magvit_onnx.models.checkpoint import load_tokenizer

        vq = load_tokenizer(weights)
        return vq.config.video_shape, lambda clips: reconstruct(vq, clips, batch=4)
    from magvit_onnx import Generator

    g = Generator(artifacts)
    return g.video_shape, lambda clips: np.concatenate([g.decode(g.encode(clips[i:i + 4]))
                                                        for i in range(0, len(clips), 4)])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--weights", type=Path, default=None, help="tokenizer or model safetensors (PyTorch)")
    which.add_argument("--artifacts", type=Path, default=None, help="exported folder (default: the shipped model)")
    p.add_argument("--data", type=Path, default=None, help="a folder of videos: its windows join the card")
    p.add_argument("--count", type=int, default=8, help="windows of --data")
    p.add_argument("--json", type=Path, default=None, help="write the report here (default: print it)")
    p.add_argument("--png", type=Path, default=None, help="picture: each pattern beside its reconstruction")
    args = p.parse_args(argv)
    if args.count < 1:
        p.error(f"--count must be >= 1, got {args.count}")
    shape, run = reconstructor(args.weights, args.artifacts)
    clips = card_clips(shape, args.data, args.count)
    names = list(clips)
    inputs = np.stack([clips[n] for n in names])
    outputs = run(inputs)
    scores = psnr(inputs, outputs)
    report = {"model": str(args.weights or args.artifacts or "shipped default model"),
              "psnr_db": {n: round(float(s), 2) for n, s in zip(names, scores)},
              "command": " ".join(["python scripts/tokenizer_card.py", *(argv if argv is not None else sys.argv[1:])])}
    for name, score in report["psnr_db"].items():
        print(f"{score:6.2f} dB  {name}", file=sys.stderr)
    if args.png is not None:
        rows = [(f"{n}: {s:.1f} DB", [inputs[k], outputs[k]]) for k, (n, s) in enumerate(zip(names, scores))]
        write_png(args.png, contact_sheet(rows, headers=["input", "reconstruction"]))
    emit_report(report, args.json)
    return report


if __name__ == "__main__":
    main()
