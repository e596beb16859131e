"""Writing a job's outputs atomically (temporary name, fsync, rename), what an output may
replace (`refused_replacements`), removing stale temporaries of a killed run, and the
one-line description of a job's error."""
from __future__ import annotations

import errno
import io
import json
import os
import re
import uuid
from fractions import Fraction
from pathlib import Path

import numpy as np

from magvit_onnx import limits
from magvit_onnx.batch.errors import JobError
from magvit_onnx.batch.jobs import Job
from magvit_onnx.batch.report import claim_path, open_plain

DEFAULT_FPS = 8
"""Frames per second of videos with no input rate to keep: class-conditional generation, key
images, a still image."""
_TEMP = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{8}\.tmp$")


def write_claim(out: Path, job: Job, names: list[str]) -> None:
    """Claim `names` for `job` (`report.claim_path`) before the first is written: atomically,
    so a kill leaves the previous attempt's claim whole, through a temporary name of the
    first output, so a stale one is removed like an output's (`remove_stale_temporaries`)."""
    temporary = out / f".{names[0]}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(open_plain(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "w") as file:
            json.dump(names, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, claim_path(out, job.id))
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _claimed(out: Path, job_id: str) -> set[str]:
    """The names of a job's claim; none if it has none (or none that can be read)."""
    try:
        with open(open_plain(claim_path(out, job_id)), "rb") as file:
            names = json.loads(file.read(1 << 24))
    except (OSError, ValueError):
        return set()
    return {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()


def _inputs_of(job: Job) -> list[Path]:
    """The files (or the folder of masks) a job reads."""
    mask = job.mask.path if job.mask is not None else None
    return [p for p in (job.input, *job.keys, mask) if p is not None]


def refused_replacements(jobs: list[Job], check: list[Job], out: Path, jobs_path: Path, frames: int,
                         listed: set[str]) -> dict[str, str]:
    """Job id -> why it may not run, for the jobs of `check` whose outputs (for a model of
    `frames`-frame clips) would replace an input of a job of `jobs` or the JOBS file, or a
    file in `out` that no run wrote: not among the `listed` output names of the reports in
    `out`, nor claimed by the job. A rerun replaces only outputs the run wrote itself."""
    inputs: dict[Path, str] = {Path(jobs_path).resolve(): "the JOBS file"}
    same_file: dict[tuple[int, int], str] = {}
    for job in jobs:
        for path in _inputs_of(job):
            what = f"an input of job {job.id!r} (line {job.line}), {path}"
            inputs.setdefault(path.resolve(), what)
            try:
                info = path.stat()
            except OSError:
                continue
            same_file.setdefault((info.st_dev, info.st_ino), what)  # a hard link to it in --out
    why: dict[str, str] = {}
    for job in check:
        claimed = None
        for name in job.output_names(frames):
            target = out / name
            try:
                info = target.stat()
            except OSError:
                info = None
            real = target.resolve()
            what = (inputs.get(real) or inputs.get(real.parent)  # a folder of masks is an input too
                    or (same_file.get((info.st_dev, info.st_ino)) if info is not None else None))
            if what is not None:
                why[job.id] = limits.shown_text(f"output {name} would replace {what}: an output never replaces an "
                                                "input of the run; write to another --out")
                break
            if name not in listed and os.path.lexists(target):
                claimed = _claimed(out, job.id) if claimed is None else claimed
                if name not in claimed:
                    why[job.id] = (f"output {name} would replace a file in --out that no run wrote (no report there "
                                   "lists it); move it away or choose another --out")
                    break
    return why


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

    all_names = job.output_names(frames)
    names = iter(all_names)
    fps = output_rate(job) if job.format in ("mp4", "gif") else None
    written: list[Path] = []

    def target() -> Path:
        path = out / next(names)
        written.append(path)
        return path

    try:
        write_claim(out, job, all_names)
        if job.format == "npy":
            with videoio.atomic_file(target()) as file:
                # via bytes: np.save into a real file reports a short write without its errno
                # ("1024 requested and 496 written"); file.write raises ENOSPC, named as a full disk
                buffer = io.BytesIO()
                np.save(buffer, np.ascontiguousarray(tokens, np.int64))
                file.write(buffer.getbuffer())
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
        for path in [*written, claim_path(out, job.id)]:
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
