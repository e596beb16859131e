"""Training clips: the synthetic set (rendered on the fly) or a folder of the user's videos.

Both give uint8 clips `[B, T, H, W, 3]` with int64 labels (-1 = unlabelled) through
`sample(batch, rng)`; `to_tensor` makes float [0, 1] tensors for the models.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from magvit_onnx import synthetic

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif", ".m4v", ".mpg", ".mpeg"}


class SyntheticClips:
    """Our synthetic set: every draw renders a fresh clip from a random seed of the split."""

    def __init__(self, split: str = "train", video_shape: tuple[int, int, int] = (16, 64, 64)):
        if tuple(video_shape) != (synthetic.FRAMES, synthetic.SIZE, synthetic.SIZE):
            raise ValueError(f"the synthetic set renders {synthetic.FRAMES}x{synthetic.SIZE}x{synthetic.SIZE} clips, "
                             f"the model wants {video_shape}")
        self.seeds = synthetic.split_seeds(split, 1_000_000)
        self.num_classes = synthetic.NUM_CLASSES

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        clips = [synthetic.render_clip(int(s)) for s in rng.choice(self.seeds, batch)]
        return np.stack([c for c, _ in clips]), np.array([label for _, label in clips], np.int64)


class FolderClips:
    """Every video under `root` (recursively), read once at the model's size.

    Labels: with one sub-folder per class (`root/<class>/*.mp4`), classes are the sorted
    sub-folder names; videos directly in `root` are unlabelled (-1).
    """

    def __init__(self, root: str | Path, video_shape: tuple[int, int, int]):
        from magvit_onnx.video import read_video

        root = Path(root)
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
        if not files:
            raise ValueError(f"no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) under {root}")
        self.class_names = sorted({p.relative_to(root).parts[0] for p in files if p.parent != root})
        index = {name: i for i, name in enumerate(self.class_names)}
        frames, height, width = video_shape
        self.clips = np.stack([read_video(p, num_frames=frames, size=(height, width)) for p in files])
        self.labels = np.array([index[p.relative_to(root).parts[0]] if p.parent != root else -1 for p in files])
        self.num_classes = len(self.class_names)

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        pick = rng.integers(0, len(self.clips), batch)
        return self.clips[pick], self.labels[pick]


def clip_source(data: str, video_shape: tuple[int, int, int], split: str = "train"):
    """'synthetic' -> SyntheticClips(split); anything else is a folder of videos."""
    return SyntheticClips(split, video_shape) if data == "synthetic" else FolderClips(data, video_shape)


def to_tensor(clips: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 [B, T, H, W, 3] -> float32 tensor in [0, 1] on `device`."""
    return torch.from_numpy(clips).to(device).float().div_(255.0)
