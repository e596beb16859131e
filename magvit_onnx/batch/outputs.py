"""Writing a job's outputs atomically (temporary name, fsync, rename), removing stale
temporaries of a killed run, and the one-line description of a job's error."""
from __future__ import annotations

import errno
import os
import re
from fractions import Fraction
from pathlib import Path

import numpy as np

from magvit_onnx import limits
from magvit_onnx.batch.errors import JobError
from magvit_onnx.batch.jobs import Job

DEFAULT_FPS = 8
"""Frames per second of videos with no input rate to keep: class-conditional generation, key
images, a still image."""
_TEMP = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{8}\.tmp$")


def remove_stale_temporaries(out: Path, names: set[str]) -> list[Path]:
    """Delete temporary files (`.{name}.{8 hex}.tmp`) left by a killed run for the given output
    names only: other shards may be writing theirs in the same folder right now."""
    removed = []
    with os.scandir(out) as entries:
        for entry in entries:
            match = _TEMP.match(entry.name)
            if match and match["name"] in names:
                Path(entry.path).unlink(missing_ok=True)
                removed.append(Path(entry.path))
    return removed


def fsync_folder(folder: Path) -> None:
    """Make renames in `folder` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def output_rate(job: Job) -> Fraction:
    """Frames per second of `job`'s videos: its `output_fps` if given; else the rate its clip
    was read at, so the output plays at the input's speed (the job's `fps`, or the input's
    rate / `stride`); else DEFAULT_FPS. A GIF's rate is kept within video.GIF_FPS_RANGE."""
    from magvit_onnx import video as videoio

    if job.output_fps is not None:
        return Fraction(job.output_fps)
    rate = None
    if job.fps is not None:
        rate = Fraction(job.fps)
    elif job.input is not None and (source := videoio.frame_rate(job.input)) is not None:
        rate = source / (job.stride or 1)
    if rate is None:
        return Fraction(DEFAULT_FPS)
    if job.format == "gif":
        low, high = videoio.GIF_FPS_RANGE
        rate = min(max(rate, low), high)
    return rate


def write_outputs(job: Job, out: Path, frames: int, tokens: np.ndarray, videos: np.ndarray | None,
                  panels: tuple[np.ndarray, np.ndarray] | None) -> list[Path]:
    """Write every output of `job` (for a model of `frames`-frame clips) atomically; returns the paths in
    `job.output_names` order.
    On an error the files written so far are removed and the error is raised."""
    from magvit_onnx import video as videoio

    names = iter(job.output_names(frames))
    fps = output_rate(job) if job.format in ("mp4", "gif") else None
    written: list[Path] = []

    def target() -> Path:
        path = out / next(names)
        written.append(path)
        return path

    try:
        if job.format == "npy":
            with videoio.atomic_file(target()) as file:
                np.save(file, np.ascontiguousarray(tokens, np.int64))
            return written
        for clip in videos:
            shown = [clip] + ([videoio.side_by_side(*panels, clip)] if job.side_by_side else [])
            for frames in shown:
                if job.format == "png":
                    for frame in frames:
                        videoio.write_png(target(), frame)
                elif job.format == "gif":
                    videoio.write_gif(target(), frames, fps)
                else:
                    videoio.write_mp4(target(), frames, fps)
        return written
    except BaseException as error:
        for path in written:
            path.unlink(missing_ok=True)
        if isinstance(error, OSError) and written:  # name the output, not its temporary file
            raise OSError(error.errno, error.strerror or str(error), str(written[-1])) from error
        raise


def describe(error: BaseException, doing: str = "write") -> str:
    """One line for a job's error; `doing` names the phase it happened in (read, generate, write)
    for errors of the operating system, which do not say themselves."""
    if isinstance(error, OSError) and not isinstance(error, JobError):
        where = f" {Path(error.filename).name}" if getattr(error, "filename", None) else ""
        text = f"cannot {doing}{where}: {error.strerror or error} (errno {error.errno})"
        if error.errno == errno.ENOSPC:
            text += "; the output folder's disk is full: free space and rerun (finished jobs are kept)"
        return limits.shown_text(text)
    text = str(error) or type(error).__name__
    if not isinstance(error, ValueError):
        text = f"{type(error).__name__}: {text}"
    return limits.shown_text(" ".join(text.split()))
