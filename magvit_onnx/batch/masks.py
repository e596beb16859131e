"""The `mask` key of a job (task `inpainting`, IPM): which pixels the model generates.

    "mask": "hole.png"                                   one image, the same region in every frame
    "mask": "masks/"                                     a folder: one image per frame, in name order
    "mask": "masks.mp4"                                  a video: one frame per frame of the clip
    "mask": [top, left, height, width]                   a box, in the model's pixels, every frame
    "mask": {"box": [top, left, height, width], "velocity": [dy, dx]}   a box moving dy, dx pixels a frame
    any of them as {"...": ..., "invert": true}          generate outside it instead (outpainting):
                                                         {"path": "keep.png", "invert": true}

White (grey >= 128) is generated, black kept. Images and videos are read like the input
(`video.read_video`): scaled to cover the model's size and centre-cropped, so a mask of
the input's size lines up with it; a mask video with the input's `start`, `stride` and
`fps`. Boxes are in the pixels of the clip the model sees (after that crop), rounded per
frame, and may leave the frame while moving.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from magvit_onnx import limits
from magvit_onnx.batch.errors import JobError
from magvit_onnx.limits import shown

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
FORMS = ('a path ("hole.png": one image; "masks/": a folder of one image per frame; "masks.mp4": a video), '
         'a box [top, left, height, width] in the model\'s pixels, or {"box": [...], "velocity": [dy, dx]} / '
         '{"path": "...", "invert": true}')


@dataclasses.dataclass(frozen=True)
class MaskSpec:
    """A validated `mask` value: a path (absolute) or a box with its velocity, maybe inverted."""

    path: Path | None = None
    box: tuple[int, int, int, int] | None = None
    velocity: tuple[float, float] = (0.0, 0.0)
    invert: bool = False

    def as_json(self) -> dict:
        """What determines the region, for the job's config hash: a mask file's bytes too (unlike
        an input video's: mask files are small, and redrawing one is how a region is edited)."""
        where = {"path": str(self.path), "sha256": _file_sha256(self.path)} if self.path is not None else \
            {"box": list(self.box), "velocity": list(self.velocity)}
        return {**where, "invert": self.invert}

    def read(self, video_shape: tuple[int, int, int], latent_shape: tuple[int, int, int], *, stride: int = 1,
             fps=None, start: int = 0) -> np.ndarray:
        """The mask as bool [H, W] or [T, H, W] (True = generate), checked (not empty, not every
        pixel or token); raises VideoError (unreadable file) or JobError."""
        from magvit_onnx.runtime import regions

        if self.box is not None:
            mask = box_mask(self.box, self.velocity, video_shape)
        else:
            mask = _read_path(self.path, video_shape, stride, fps, start)
        mask = ~mask if self.invert else mask
        try:
            regions.batched_mask(mask, video_shape, latent_shape)
        except ValueError as e:
            what = (f"{self.path} (white = generate)" if self.path is not None else
                    f"box {list(self.box)}" + (f" moving {list(self.velocity)}" if any(self.velocity) else ""))
            raise JobError(f"mask {what}{' inverted' if self.invert else ''}: {e}") from None
        return mask


def box_mask(box, velocity, video_shape: tuple[int, int, int]) -> np.ndarray:
    """A box [top, left, height, width] moving `velocity` (dy, dx) pixels a frame: bool [H, W]
    when still, else [T, H, W]; the part outside the frame is dropped."""
    frames, height, width = video_shape
    top, left, h, w = box
    if velocity == (0.0, 0.0):
        mask = np.zeros((height, width), bool)
        mask[max(top, 0):max(top + h, 0), max(left, 0):max(left + w, 0)] = True
        return mask
    mask = np.zeros(video_shape, bool)
    for frame in range(frames):
        y, x = round(top + frame * velocity[0]), round(left + frame * velocity[1])
        mask[frame, max(y, 0):max(y + h, 0), max(x, 0):max(x + w, 0)] = True
    return mask


def _file_sha256(path: Path) -> str | None:
    """sha256 of a mask file, or of a folder of mask frames (each file's name and bytes); None
    where it cannot be read (the job then fails when it reads the mask)."""
    digest = hashlib.sha256()
    try:
        for file in sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]:
            digest.update(f"{file.relative_to(path) if path.is_dir() else ''}\0".encode())
            digest.update(file.read_bytes())
    except OSError:
        return None
    return digest.hexdigest()


def _read_path(path: Path, video_shape, stride, fps, start) -> np.ndarray:
    from magvit_onnx import video as videoio

    frames, height, width = video_shape
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(files) < frames:
            raise JobError(f"mask folder {path} holds {len(files)} images ({', '.join(IMAGE_SUFFIXES)}); it needs "
                           f"one per frame of the clip, {frames}, in name order")
        pixels = np.concatenate([videoio.read_video(f, num_frames=1, size=(height, width)) for f in files[:frames]])
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        pixels = videoio.read_video(path, num_frames=1, size=(height, width))
    else:
        pixels = videoio.read_video(path, num_frames=frames, size=(height, width), stride=stride, fps=fps, start=start)
    mask = pixels.astype(np.float32).mean(axis=-1) >= 128
    return mask[0] if len(mask) == 1 else mask


def parse_mask(value, task: str, video_shape: tuple[int, int, int], latent_shape: tuple[int, int, int],
               base: Path) -> MaskSpec | None:
    """Validate a job's `mask` for `task` on a model of `video_shape` clips of `latent_shape`
    tokens (a box completely; a path's file is read with the input); raises JobError."""
    from magvit_onnx.runtime import tasks as task_registry

    mask_task = task_registry.MASK_TASK
    if task != mask_task.name:
        if value is None:
            return None
        raise JobError(f"mask applies to task {mask_task.name} ({mask_task.abbreviation}) only, not {task!r}; "
                       "remove it")
    if value is None:
        raise JobError(f"task {mask_task.name!r} needs a mask (white = generate): {FORMS}")
    invert = False
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"path", "box", "velocity", "invert"})
        if unknown or ("path" in value) == ("box" in value) or ("velocity" in value and "box" not in value):
            raise JobError(f"mask object must be {{\"box\": [top, left, height, width]}} with an optional "
                           f"\"velocity\": [dy, dx], or {{\"path\": \"...\"}}, each with an optional \"invert\": "
                           f"true, got {shown(value)}")
        invert = value.get("invert", False)
        if not isinstance(invert, bool):
            raise JobError(f"mask invert must be true or false, got {shown(invert)}")
        if "path" in value:
            return dataclasses.replace(_path(value["path"], base), invert=invert)
        return _box(value["box"], value.get("velocity", [0, 0]), invert, video_shape, latent_shape)
    if isinstance(value, str):
        return _path(value, base)
    if isinstance(value, list):
        return _box(value, [0, 0], False, video_shape, latent_shape)
    raise JobError(f"mask must be {FORMS}; got {shown(value)}")


def _path(value, base: Path) -> MaskSpec:
    if (not isinstance(value, str) or not value.strip() or len(value) > limits.MAX_INPUT_CHARS or "\0" in value):
        raise JobError(f"mask path must be a non-empty string of at most {limits.MAX_INPUT_CHARS} characters, "
                       f"no NUL (relative to the JOBS file's folder), got {shown(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise JobError(f"mask path must be UTF-8 text, got {shown(value)}") from None
    return MaskSpec(path=(base / value).absolute())


def _box(box, velocity, invert: bool, video_shape, latent_shape) -> MaskSpec:
    frames, height, width = video_shape
    if (not isinstance(box, list) or len(box) != 4 or not all(limits.is_integer(v) for v in box)
            or box[2] < 1 or box[3] < 1 or not all(abs(v) <= 16 * max(height, width) for v in box)):
        raise JobError(f"mask box must be 4 integers [top, left, height, width] in the model's pixels "
                       f"({height} x {width}; height and width >= 1), got {shown(box)}")
    if (not isinstance(velocity, list) or len(velocity) != 2 or not all(limits.is_number(v) for v in velocity)
            or not all(abs(v) <= max(height, width) for v in velocity)):
        raise JobError(f"mask velocity must be 2 numbers [dy, dx], pixels per frame within ±{max(height, width)}, "
                       f"got {shown(velocity)}")
    spec = MaskSpec(box=tuple(box), velocity=(float(velocity[0]) + 0.0, float(velocity[1]) + 0.0), invert=invert)
    spec.read(video_shape, latent_shape)  # empty, every pixel or every token: refused now, before any reading
    return spec
