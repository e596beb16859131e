"""Training data as indexed streams, for one process or many (torchrun).

Every source is a map-style `torch.utils.data.Dataset` over an endless index: item `i` is a
`Sample` (clip uint8 [T, H, W, 3], label int, -1 = unlabelled), a pure function of
(source, seed, i). `IndexSampler` hands each rank its slice of every global batch, so the
data a run sees depends only on (seed, step, global batch) — not on the number of
processes, workers or resumes: 2 processes x batch 2 see exactly what 1 process x batch 4
sees, and a resumed run continues the same stream.

Sources (`parse_data` builds them from a command-line spec):
    synthetic         our labelled synthetic set (`magvit_onnx.synthetic`; class-conditional tasks)
    dead_leaves       moving dead leaves (`magvit_onnx.procedural`)
    graphics          elementary graphics: flat fields, bars, gradients, checkerboards, text (`magvit_onnx.patterns`)
    photos[=DIR]      camera moves over still photographs (packages' sample photos, or DIR)
    DIR               a folder of videos (class = first sub-folder; files directly in DIR: unlabelled)
    FILE.csv|.jsonl   a manifest: one video per row, `path` (relative to the manifest) and optional `label`
    images=DIR        a folder of still images (2D tokenizer pretraining)
A spec mixes sources with weights: "synthetic:1,dead_leaves:2,photos:2".

Videos yield random T-frame windows (every `stride`-th frame, or resampled to `fps`), scaled so
the short side is the model's size, a random crop along the long side and a random horizontal
flip (the official UCF-101 input: `min_resize` = `crop_size`, random crop and flip in training;
evaluation takes the first window, centre crop, no flip). A file that cannot be read is skipped
with a warning (the next file takes its place) and counted in `Sample.skipped`, never fatal.
Validation: the synthetic and procedural sources have disjoint seed splits; folders and
manifests hold out `VAL_PERCENT` per cent of their files (at least one; `split_files`).
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from magvit_onnx import patterns, procedural, synthetic
from magvit_onnx.formats import VIDEO_SUFFIXES

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
VAL_PERCENT = 5
SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """A data spec that gives no training data: the scripts end with its one line."""


class Sample(NamedTuple):
    clip: np.ndarray   # uint8 [T, H, W, 3]
    label: int         # class index, -1 = unlabelled
    skipped: int = 0   # unreadable files passed over to make this sample


def sample_rng(seed: int, index: int, salt: int = 0) -> np.random.Generator:
    """The generator of item `index`: independent of every other item and of who computes it."""
    return np.random.default_rng([int(seed), int(index), int(salt)])


class Source(Dataset):
    """An endless indexed stream of `Sample`s; subclasses define `item(index)`."""

    num_classes = 0
    class_names: tuple[str, ...] = ()

    def __init__(self, video_shape: tuple[int, int, int], split: str = "train", seed: int = 0):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}: valid splits are {SPLITS}")
        self.video_shape, self.split, self.seed = tuple(video_shape), split, seed

    def __len__(self) -> int:  # endless; DataLoader only needs a size for its default sampler
        return sys.maxsize

    def __getitem__(self, index: int) -> Sample:
        return self.item(int(index))

    def item(self, index: int) -> Sample:
        raise NotImplementedError

    def take(self, count: int, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """`count` items from `start` in this process: clips [N, T, H, W, 3] and labels [N]."""
        items = [self.item(i) for i in range(start, start + count)]
        return np.stack([s.clip for s in items]), np.array([s.label for s in items], np.int64)


class SyntheticClips(Source):
    """The labelled synthetic set: item i renders a random seed of the split."""

    num_classes = synthetic.NUM_CLASSES
    class_names = synthetic.CLASS_NAMES

    def item(self, index: int) -> Sample:
        seed = procedural.split_seed(self.split, sample_rng(self.seed, index, 1).integers(synthetic.SPLIT_SIZE))
        clip, label = synthetic.render_clip(seed)
        if clip.shape[:3] != self.video_shape:  # other presets: resampled (nearest) to their size
            clip = synthetic.resize_clips(clip[None], self.video_shape)[0]
        return Sample(clip, label)


class DeadLeaves(Source):
    """Moving dead leaves, unlabelled."""

    def item(self, index: int) -> Sample:
        frames, height, width = self.video_shape
        seed = procedural.split_seed(self.split, sample_rng(self.seed, index, 3).integers(synthetic.SPLIT_SIZE))
        return Sample(procedural.dead_leaves(seed, frames, (height, width)), -1)


class Graphics(Source):
    """Elementary graphics (flat fields, bars, gradients, checkerboards, text; magvit_onnx/patterns.py), unlabelled."""

    def item(self, index: int) -> Sample:
        frames, height, width = self.video_shape
        seed = procedural.split_seed(self.split, sample_rng(self.seed, index, 5).integers(synthetic.SPLIT_SIZE))
        return Sample(patterns.graphics(seed, frames, (height, width)), -1)


class PhotoMoves(Source):
    """Camera moves over still photographs (the packages' sample photos, or those in `folders`)."""

    def __init__(self, video_shape, split="train", seed=0, folders: Sequence[str | Path] = ()):
        super().__init__(video_shape, split, seed)
        paths = procedural.find_photos(folders, packages=not folders)
        self.photos = procedural.load_photos(paths)
        if not self.photos:
            where = ", ".join(map(str, folders)) or "installed packages (install the 'photos' extra: scikit-image)"
            raise DataError(f"no photographs found in {where}")

    def item(self, index: int) -> Sample:
        frames, height, width = self.video_shape
        seed = procedural.split_seed(self.split, sample_rng(self.seed, index, 4).integers(synthetic.SPLIT_SIZE))
        return Sample(procedural.photo_moves(seed, self.photos, frames, (height, width)), -1)


@dataclass(frozen=True)
class FileEntry:
    path: Path
    label: int


def split_files(entries: list[FileEntry], root: Path, split: str) -> list[FileEntry]:
    """The files of a split: VAL_PERCENT per cent (at least one, when there are two or more)
    go to validation — those whose path relative to `root` hashes highest, so the split is
    the same on every machine and never shares a file; the rest train."""
    def rank(entry: FileEntry) -> str:
        return hashlib.sha256(Path(os.path.relpath(entry.path, root)).as_posix().encode()).hexdigest()

    held_out = max(1, round(len(entries) * VAL_PERCENT / 100)) if len(entries) > 1 else 0
    ordered = sorted(entries, key=rank)
    chosen = ordered[len(ordered) - held_out:] if split != "train" else ordered[:len(ordered) - held_out]
    return sorted(chosen or entries, key=lambda e: e.path)  # one file alone serves both


class FileSource(Source):
    """Files listed from a folder (class = first sub-folder) or a manifest (CSV / JSONL with
    `path` and optional `label`), split into train and validation by path hash."""

    suffixes = VIDEO_SUFFIXES

    def __init__(self, location: str | Path, video_shape, split="train", seed=0, stride: int = 1,
                 fps: float | None = None):
        super().__init__(video_shape, split, seed)
        self.stride, self.fps = stride, fps
        location = Path(location)
        rows = self._manifest_rows(location) if location.is_file() else self._folder_rows(location)
        names = sorted({label for _, label in rows if label is not None})
        self.class_names = tuple(names)
        self.num_classes = len(names)
        index = {name: i for i, name in enumerate(names)}
        entries = [FileEntry(path, index[label] if label is not None else -1) for path, label in rows]
        self.files = split_files(entries, location.parent if location.is_file() else location, split)
        if not self.files:
            raise DataError(f"no files ({', '.join(sorted(self.suffixes))}) in {location}")
        self.failures = 0

    def _folder_rows(self, root: Path) -> list[tuple[Path, str | None]]:
        if not root.is_dir():
            raise DataError(f"{root}: no such folder or manifest file")
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in self.suffixes and p.is_file())
        return [(p, p.relative_to(root).parts[0] if p.parent != root else None) for p in files]

    @staticmethod
    def _manifest_rows(manifest: Path) -> list[tuple[Path, str | None]]:
        suffix = manifest.suffix.lower()
        if suffix not in (".csv", ".jsonl"):
            raise DataError(f"{manifest}: a manifest is a .csv or .jsonl file with a 'path' column")
        line = 0
        try:
            text = manifest.read_text(encoding="utf-8")
            if suffix == ".jsonl":
                records = []
                for line, row in enumerate(text.splitlines(), 1):
                    records += [json.loads(row)] if row.strip() else []
            else:
                records = list(csv.DictReader(text.splitlines()))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as error:
            where = f" line {line}" if line else ""
            raise DataError(f"{manifest}{where}: not a readable {suffix[1:].upper()} manifest ({error})") from None
        if not all(isinstance(r, dict) and isinstance(r.get("path"), str) and r["path"] for r in records):
            raise DataError(f"{manifest}: every row needs a 'path' string (and may have a 'label')")
        label = lambda r: None if r.get("label") in (None, "") else str(r["label"])  # noqa: E731
        return [((manifest.parent / r["path"]), label(r)) for r in records]

    def item(self, index: int) -> Sample:
        """File `perm_epoch[index % n]`, where every epoch is a fresh permutation; a bad file
        passes the turn to the next one in the permutation."""
        n = len(self.files)
        epoch, position = divmod(index, n)
        order = sample_rng(self.seed, epoch, 5).permutation(n)
        rng = sample_rng(self.seed, index, 6)
        for skipped in range(n):
            entry = self.files[order[(position + skipped) % n]]
            try:
                return Sample(self.read(entry.path, rng), entry.label, skipped)
            except ValueError as error:  # VideoError and decode errors are ValueErrors
                self.failures += 1
                print(f"warning: skipping {entry.path}: {error}", file=sys.stderr, flush=True)
        raise DataError(f"none of the {n} {self.split} files can be read (the warnings above name them)")

    def read(self, path: Path, rng: np.random.Generator) -> np.ndarray:
        """A random window: short side scaled to the model's size, random crop, random flip."""
        from magvit_onnx.video import VideoError, read_video

        frames, height, width = self.video_shape
        count, rate, (source_height, source_width) = probe(path)
        span = (frames - 1) * self.stride + 1 if self.fps is None else int(np.ceil((frames - 1) * rate / self.fps)) + 1
        last = count - span
        start = int(rng.integers(last + 1)) if self.split == "train" and last > 0 else 0
        scale = max(height / source_height, width / source_width)
        cover = (max(height, round(source_height * scale)), max(width, round(source_width * scale)))
        try:
            clip = read_video(path, num_frames=frames, size=cover, stride=self.stride, fps=self.fps, start=start)
        except VideoError:
            if start == 0:
                raise
            clip = read_video(path, num_frames=frames, size=cover, stride=self.stride, fps=self.fps)  # frame count was off
        return crop_and_flip(clip, (height, width), rng if self.split == "train" else None)


class ImageFiles(FileSource):
    """A folder of still images: item i is one image as a 1-frame clip (2D pretraining)."""

    suffixes = IMAGE_SUFFIXES

    def read(self, path: Path, rng: np.random.Generator) -> np.ndarray:
        _, height, width = self.video_shape
        photo = procedural.load_photos([path])
        if not photo:
            raise ValueError("not a readable image of at least "
                             f"{procedural.MIN_PHOTO_SIDE} pixels on each side")
        image = photo[0]
        factor = min(image.shape[0] // height, image.shape[1] // width)
        if factor > 1:  # scale towards the model's size by area averaging, keeping some zoom variety
            factor = int(rng.integers(1, factor + 1)) if self.split == "train" else factor
            image = procedural.area_downscale(image, factor).astype(np.uint8)
        return crop_and_flip(image[None], (height, width), rng if self.split == "train" else None)


def probe(path: Path) -> tuple[int, float, tuple[int, int]]:
    """(frame count, frames per second, (height, width)) of a video's first stream, from its
    header (the count is estimated from the duration where the container does not store it)."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError("no video stream")
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 25)
            count = stream.frames
            if not count and stream.duration and stream.time_base:
                count = int(stream.duration * stream.time_base * rate)
            elif not count and container.duration:
                count = int(container.duration / av.time_base * rate)
            return count, rate, (stream.codec_context.height, stream.codec_context.width)
    except av.FFmpegError as error:
        raise ValueError(f"cannot open ({error})") from error


def crop_and_flip(clip: np.ndarray, size: tuple[int, int], rng: np.random.Generator | None) -> np.ndarray:
    """A (random, or with rng None the centre) crop of `size` from clip [T, H', W', 3], flipped
    left-right with probability 1/2 when random."""
    height, width = size
    top_room, left_room = clip.shape[1] - height, clip.shape[2] - width
    if rng is None:
        return np.ascontiguousarray(clip[:, top_room // 2:top_room // 2 + height, left_room // 2:left_room // 2 + width])
    top, left = int(rng.integers(top_room + 1)), int(rng.integers(left_room + 1))
    clip = clip[:, top:top + height, left:left + width]
    return np.ascontiguousarray(clip[:, :, ::-1] if rng.uniform() < 0.5 else clip)


class Mixture(Source):
    """Item i comes from source k with probability weight_k (chosen by the item's own generator)."""

    def __init__(self, sources: Sequence[Source], weights: Sequence[float], seed: int = 0):
        super().__init__(sources[0].video_shape, sources[0].split, seed)
        self.sources = list(sources)
        self.weights = np.asarray(weights, np.float64) / np.sum(weights)
        labelled = [s for s in sources if s.num_classes]
        if len({s.class_names for s in labelled}) > 1:
            raise DataError("a mixture can hold one labelled source (or several with the same classes)")
        self.num_classes = labelled[0].num_classes if labelled else 0
        self.class_names = labelled[0].class_names if labelled else ()

    def item(self, index: int) -> Sample:
        k = sample_rng(self.seed, index, 7).choice(len(self.sources), p=self.weights)
        return self.sources[k].item(index)


def parse_data(spec: str, video_shape: tuple[int, int, int], split: str = "train", seed: int = 0,
               stride: int = 1, fps: float | None = None) -> Source:
    """A source from a command-line spec (see the module docstring); weights default to 1."""
    sources, weights = [], []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if ":" in part and not _has_weight(part) and not Path(part).exists():
            raise DataError(f"{part!r}: the weight after ':' must be a number > 0, e.g. 'synthetic:2'")
        name, _, weight = part.rpartition(":") if _has_weight(part) else (part, "", "1")
        kind, _, where = name.partition("=")
        if kind == "synthetic":
            source = SyntheticClips(video_shape, split, seed)
        elif kind == "dead_leaves":
            source = DeadLeaves(video_shape, split, seed)
        elif kind == "graphics":
            source = Graphics(video_shape, split, seed)
        elif kind == "photos":
            source = PhotoMoves(video_shape, split, seed, [where] if where else ())
        elif kind == "images":
            source = ImageFiles(where, video_shape, split, seed)
        else:
            source = FileSource(name, video_shape, split, seed, stride, fps)
        sources.append(source)
        weights.append(float(weight))
    if not sources:
        raise DataError("empty data spec: e.g. 'synthetic', 'dead_leaves:2,photos:2' or a folder of videos")
    return sources[0] if len(sources) == 1 else Mixture(sources, weights, seed)


def _has_weight(part: str) -> bool:
    head, sep, tail = part.rpartition(":")
    try:
        return bool(sep) and 0 < float(tail) < float("inf") and bool(head)
    except ValueError:
        return False


class IndexSampler(Sampler[int]):
    """Endless item indices of this rank: global batch s covers items [s*G, (s+1)*G), G =
    batch x world x accumulation; micro-batch m of rank r takes its b consecutive items at
    offset (m * world + r) * b. Starts at `start_step`."""

    def __init__(self, batch: int, rank: int = 0, world: int = 1, accumulation: int = 1, start_step: int = 0):
        self.batch, self.rank, self.world, self.accumulation, self.start_step = batch, rank, world, accumulation, start_step

    def __iter__(self) -> Iterator[int]:
        global_batch = self.batch * self.world * self.accumulation
        step = self.start_step
        while True:
            for micro in range(self.accumulation):
                first = step * global_batch + (micro * self.world + self.rank) * self.batch
                yield from range(first, first + self.batch)
            step += 1

    def __len__(self) -> int:
        return sys.maxsize


def collate(samples: list[Sample]) -> Sample:
    return Sample(torch.from_numpy(np.stack([s.clip for s in samples])),
                  torch.tensor([s.label for s in samples], dtype=torch.int64),
                  sum(s.skipped for s in samples))


def batches(source: Source, batch: int, *, rank: int = 0, world: int = 1, accumulation: int = 1,
            start_step: int = 0, workers: int = 0) -> Iterator[Sample]:
    """Micro-batches (uint8 clips [b, T, H, W, 3] tensor, labels [b], skipped) of this rank, in
    order, decoded / rendered in `workers` DataLoader processes (0 = in this process)."""
    sampler = IndexSampler(batch, rank, world, accumulation, start_step)
    # Workers are spawned, not forked: a fork of a process whose thread pools (torch, ONNX
    # Runtime, FFmpeg) are running can deadlock in the child.
    loader = DataLoader(source, batch_size=batch, sampler=sampler, num_workers=workers, collate_fn=collate,
                        persistent_workers=workers > 0, prefetch_factor=2 if workers else None,
                        multiprocessing_context="spawn" if workers else None)
    return iter(loader)


def chunks(source: Source, first: int, count: int, chunk: int, workers: int = 0) -> Iterator[Sample]:
    """Items [first, first + count) of `source` in order, `chunk` at a time (the last may be
    shorter), rendered / decoded in `workers` DataLoader processes (0 = in this process): the
    same clips as `source.take`, made in parallel (token pools, evaluation sets)."""
    loader = DataLoader(Subset(source, range(first, first + count)), batch_size=chunk, num_workers=workers,
                        collate_fn=collate, multiprocessing_context="spawn" if workers else None)
    return iter(loader)


def to_tensor(clips: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 [B, T, H, W, 3] -> float32 tensor in [0, 1] on `device`."""
    clips = torch.from_numpy(clips) if isinstance(clips, np.ndarray) else clips
    return clips.to(device).float().div_(255.0)
