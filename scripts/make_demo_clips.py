"""Render the demo's photograph clips into magvit_onnx/demo_clips/ (needs scikit-image):

    python scripts/make_demo_clips.py

Each clip is a camera move over one still photograph that scikit-image ships
(`magvit_onnx.procedural.photo_moves`), 16x64x64, written as MP4. Only photographs free of
copyright restrictions are used; the demo reads the MP4s, so it needs no scikit-image.
"""
from __future__ import annotations

from pathlib import Path

import skimage.data

from magvit_onnx import procedural
from magvit_onnx.video import write_mp4

# name: (photograph, photo_moves seed, where it comes from). Seeds picked by eye for a clear
# move that keeps the subject in view.
CLIPS = {
    "cat": (skimage.data.chelsea, 0, "scikit-image `chelsea`: CC0 by the photographer (Stefan van der Walt)"),
    "astronaut": (skimage.data.astronaut, 2, "scikit-image `astronaut`: NASA, public domain"),
}
OUT = Path(__file__).resolve().parents[1] / "magvit_onnx" / "demo_clips"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, (photo, seed, source) in CLIPS.items():
        write_mp4(OUT / f"{name}.mp4", procedural.photo_moves(seed, [photo()], frames=16, size=(64, 64)))
        print(f"{OUT / name}.mp4  <- {source}, seed {seed}")


if __name__ == "__main__":
    main()
