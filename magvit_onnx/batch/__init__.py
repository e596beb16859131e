"""`magvit-onnx run JOBS --out DIR`: many generation jobs from a JSONL file, resumable and shardable.

    magvit-onnx run jobs.jsonl --out results/ --artifacts artifacts/tiny --batch-size 8
    magvit-onnx run jobs.jsonl --out results/ --shard 3/16          # or from Slurm / Kubernetes env

Jobs (JSONL)
------------
One JSON object per line (blank lines are ignored). Keys:

    key                   type / valid values                           default
    id                    string, 1-128 of A-Z a-z 0-9 . _ -, not       required; unique in the file
                          starting with '.'; names the output files
    task                  task id or abbreviation (FP, FI, OPC, OPV,    required
                          OPH, OPD, IPC, IPD, CG, CFP) served by the model
    input                 path of the input video (any container        required by tasks with an input
                          PyAV decodes); relative paths are relative     video, refused by the others
                          to the folder of the JOBS file
    class  (or class_id)  integer class, 0 .. num_classes - 1           required by CG and CFP, refused
                                                                        by the others
    seed                  integer, 0 <= seed < 2**64                    derived from the id (below)
    steps                 integer >= 1                                  the model's (official: 12)
    sampling_temperature  number > 0                                    the model's (1.0)
    mask_temperature      number > 0                                    the model's (4.5)
    guidance_scale        number, 0 = no classifier-free guidance       the model's (0)
    top_k                 integer >= 0 (0 = off)                        off
    top_p                 number in (0, 1]; not together with top_k     off
    schedule              cosine, uniform, powN, log, exp               the model's (cosine)
    num_videos            integer >= 1: samples of this job             1
    format                mp4, gif, png (one PNG per frame), npy        mp4
                          (generated tokens, int64 [num_videos, t, h, w])
    side_by_side          true: also write input | condition | output   false
                          (not with npy)
    stride | fps          frames of the input: every stride-th frame,   stride 1
                          or resampled to fps (not both)
    start                 first input frame (0-based)                    0

Input videos are read with `magvit_onnx.video.read_video`: the model's number of frames
from `start` by `stride` or `fps`, any pixel format (grayscale, alpha, YUV, palette)
converted to RGB, scaled to cover the model's size and centre-cropped (any size from 8 to
8192 pixels a side; odd sizes are fine).

Seeds: a job without `seed` gets `derive_seed(id)`: the first 8 bytes of
sha256("magvit-onnx/seed/" + id) as a big-endian integer, shifted right by 11 (so it is
below 2**53 and exact in any JSON reader). A rerun, another shard or another machine
therefore makes the same video; the report records the seed used.

Outputs (flat, in --out)
------------------------
With num_videos = 1 the base name is the id, else `{id}.{k}` for k = 0 .. num_videos - 1:
`{base}.mp4` / `{base}.gif`; png: `{base}.f000.png`, `{base}.f001.png`, ... (one per frame);
npy: `{id}.npy` (all samples of the job). side_by_side adds `{base}.sbs.{mp4|gif}` or
`{base}.sbs.f000.png` ... (input | condition | output, blank panels for class generation).
Two jobs whose output names collide (id "a" with num_videos 2 and id "a.0") are refused.

Every file is written to a hidden temporary name in --out (`.{name}.{8 hex}.tmp`),
flushed, fsynced and renamed into place, so an output name never holds a partial file.
A job that fails after writing some of its outputs removes them again.

Report (JSONL)
--------------
`report.jsonl` in --out, or `report.shard-IIIII-of-NNNNN.jsonl` per shard when sharded.
A line is appended (flushed and fsynced) after the job's outputs are in place:

    {"id": "clip-7", "line": 7, "status": "ok" | "error", "task": "frame_prediction",
     "input": "/abs/clip7.mp4" | null, "class": null, "seed": 123, "seed_from": "job" | "id",
     "num_videos": 1, "format": "mp4",
     "outputs": [{"path": "clip-7.mp4", "sha256": "..."}],      # relative to --out; [] on error
     "provider": "CPUExecutionProvider", "batch": 4,            # jobs generated in one call
     "seconds": {"read": 0.02, "generate": 1.9, "write": 0.1, "total": 2.1},
     "config": "<sha256 of the job's resolved settings, input path and model>",
     "input_stat": [size, mtime_ns] | null, "error": null | "one line",
     "shard": [index, count], "finished": <unix time>}

`generate` is the time of the whole batched call the job was part of (`batch` jobs).
Lines of jobs that cannot be parsed have `"id": null` if no id could be read. Errors
name the job, the problem and what is valid; they are also printed to stderr as
`error: job 'ID' (line N): ...` (or `error: line N: ...`).

Progress goes to stderr: a bar (videos done, videos/s, ETA, failures) on a terminal,
otherwise a plain `progress: ...` line every 10 s; then a summary line. stdout gets one
JSON object: {"ok", "failed", "skipped", "report", "shard", "seconds", "stopped"}.

The *report view* (`report_view(out)`) is the latest line per id over all report files
in --out. Rerunning the same command skips a job when its view line is "ok" for the same
config, its input file has the same size and mtime, and every listed output still exists
with the listed sha256; everything else (errors, changed jobs, missing or modified
outputs, jobs killed half-way) is done again. Skipped jobs add no line. So after a
`kill -9` at any moment and a rerun every job is in the view exactly once, with outputs
matching their sha256, and no temporary file is left (stale temporaries of this shard's
outputs are removed at start; a torn last report line is cut off).

Sharding
--------
`--shard INDEX/COUNT` runs the jobs whose id hashes to INDEX (first 8 bytes of sha256(id),
big-endian, mod COUNT; lines without a readable id hash "\\0line:N" instead), so shards
partition the file exactly and every shard can read the same JOBS file. Without
`--shard`: Slurm job arrays (`SLURM_ARRAY_TASK_ID` - `SLURM_ARRAY_TASK_MIN`,
`SLURM_ARRAY_TASK_COUNT`; use a contiguous `--array=0-N`), else Kubernetes Indexed Jobs
(`JOB_COMPLETION_INDEX` with `--num-shards` / `MAGVIT_NUM_SHARDS`), else 0/1. Each shard
writes its own report; one process per shard at a time (the report is locked).

Jobs with the same task and decoding settings (all keys but id, input, class, seed,
format, side_by_side and the input reading options) are generated together, up to
`--batch-size` jobs per call; every job keeps its own random stream (one seed per input,
`runtime.seeding.SeedStreams`), so
its tokens equal those of `Generator.generate(..., seed=job seed)` alone, and videos are
decoded per job as `Generator.generate` does. Verified token- and pixel-identical on the
CPU provider (tested); on GPUs a batched matrix product may differ from the unbatched one
in the last bits, which can change a token in a near-tie, so there batch size 1 is the
bit-exact reference (not verified on a GPU yet). `--workers N` runs N batches at a time
in threads sharing one Generator. `--ray` runs the same plan on Ray Data instead
(`magvit_onnx.ray_batch`, the [ray] extra).

Exit codes: 0 every job of this shard succeeded (or was already done); 1 some job failed
(the others still ran; with --fail-fast the run stops at the first failure: an invalid
line stops it before any generation, a failing job after the batch it was part of), or the
model cannot be used (missing/tampered artifacts, another format version, an unavailable
provider) or the report cannot be written; 2 usage errors (JOBS missing or unreadable,
--out not writable, malformed --shard, shard variables incomplete, bad option values).

Only numpy, onnxruntime and PyAV are used; this module never imports torch.
"""
from __future__ import annotations

import dataclasses
import difflib
import errno
import hashlib
import json
import math
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

FORMATS = ("mp4", "gif", "png", "npy")
VIDEO_FORMATS = ("mp4", "gif", "png")
KEYS = ("id", "task", "input", "class", "class_id", "seed", "steps", "sampling_temperature", "mask_temperature",
        "guidance_scale", "top_k", "top_p", "schedule", "num_videos", "format", "side_by_side", "stride", "fps",
        "start")
ID_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
REPORT_VERSION = 1
OUTPUT_FPS = 8
SEED_LIMIT = 2 ** 64
_TEMP = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{8}\.tmp$")


class JobError(ValueError):
    """One job cannot run; the message names the problem and what is valid (not the job)."""


class RunError(Exception):
    """The run as a whole cannot go on; `exit_code` 2 for usage errors, 1 otherwise."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


# --------------------------------------------------------------------------- the model's facts


@dataclasses.dataclass(frozen=True)
class ModelFacts:
    """What validating and planning jobs needs from an artifacts folder, without sessions."""

    folder: Path
    tasks: dict[str, dict]        # name -> manifest task entry (needs_video, class_conditional, ...)
    num_classes: int
    video_shape: tuple[int, int, int]
    latent_shape: tuple[int, int, int]
    decoding: dict[str, Any]
    model_id: str                 # sha256 of manifest.json (which holds the sha256 of every graph)

    @classmethod
    def load(cls, artifacts: str | os.PathLike | None) -> "ModelFacts":
        """Read the manifest of `artifacts` (None: the shipped default model); raises ArtifactError."""
        from magvit_onnx.paths import default_artifacts
        from magvit_onnx.runtime.artifacts import load_manifest

        folder = default_artifacts() if artifacts is None else Path(artifacts)
        manifest = load_manifest(folder, verify=False)  # format version; sha256s are checked by Generator
        return cls(folder=folder, tasks=dict(manifest["tasks"]), num_classes=len(manifest["classes"]),
                   video_shape=tuple(manifest["video"]["shape"]), latent_shape=tuple(manifest["latent_shape"]),
                   decoding=dict(manifest["decoding"]),
                   model_id=hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest())


# --------------------------------------------------------------------------- jobs


@dataclasses.dataclass(frozen=True)
class Job:
    """One validated job line. Decoding settings are None where the model's default applies."""

    id: str
    line: int
    task: str                       # canonical task name
    input: Path | None = None       # absolute
    class_id: int | None = None
    seed: int = 0
    seed_from: str = "id"           # "job": given in the line; "id": derive_seed(id)
    steps: int | None = None
    sampling_temperature: float | None = None
    mask_temperature: float | None = None
    guidance_scale: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    schedule: str | None = None
    num_videos: int = 1
    format: str = "mp4"
    side_by_side: bool = False
    stride: int | None = None
    fps: float | None = None
    start: int | None = None

    def settings(self) -> dict[str, Any]:
        """The decoding settings as given (None = model default), for `Generator` checks."""
        return {"num_videos": self.num_videos, "steps": self.steps, "sampling_temperature": self.sampling_temperature,
                "mask_temperature": self.mask_temperature, "guidance_scale": self.guidance_scale,
                "top_k": self.top_k, "top_p": self.top_p, "schedule": self.schedule}

    def resolved(self, decoding: dict[str, Any]) -> dict[str, Any]:
        """Decoding settings with the model's defaults filled in."""
        given = self.settings()
        names = {"steps": "num_iter"}
        return {k: (v if v is not None else decoding[names.get(k, k)]) for k, v in given.items()}

    def group_key(self, decoding: dict[str, Any]) -> tuple:
        """Jobs with equal keys can be generated in one call."""
        return (self.task, *sorted(self.resolved(decoding).items()))

    def output_names(self, frames: int) -> list[str]:
        """File names (in --out) this job writes, in writing order."""
        if self.format == "npy":
            return [f"{self.id}.npy"]
        names = []
        for k in range(self.num_videos):
            base = self.id if self.num_videos == 1 else f"{self.id}.{k}"
            for stem in [base] + ([f"{base}.sbs"] if self.side_by_side else []):
                if self.format == "png":
                    names += [f"{stem}.f{t:03d}.png" for t in range(frames)]
                else:
                    names.append(f"{stem}.{self.format}")
        return names

    def config(self, facts: ModelFacts) -> str:
        """sha256 of everything that determines this job's outputs (not the input's bytes)."""
        data = {"version": REPORT_VERSION, "model": facts.model_id, "task": self.task,
                "input": None if self.input is None else str(self.input), "class": self.class_id,
                "seed": self.seed, **self.resolved(facts.decoding), "format": self.format,
                "side_by_side": self.side_by_side, "stride": self.stride or 1, "fps": self.fps,
                "start": self.start or 0}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class Invalid:
    """A job line that cannot run: its line number, its id if one could be read, the error."""

    line: int
    id: str | None
    error: str
    task: str | None = None


def derive_seed(job_id: str) -> int:
    """The seed of a job without one: sha256("magvit-onnx/seed/" + id), 53 bits."""
    digest = hashlib.sha256(f"magvit-onnx/seed/{job_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 11


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(record: dict, key: str, low: int, high: int | None = None) -> int | None:
    value = record.get(key)
    if value is None:
        return None
    if not _is_int(value) or value < low or (high is not None and value >= high):
        bound = f">= {low}" if high is None else f"in {low} .. {high - 1}"
        raise JobError(f"{key} must be an integer {bound}, got {value!r}")
    return value


def _positive(record: dict, key: str) -> float | None:
    value = record.get(key)
    if value is None:
        return None
    if not _is_number(value) or value <= 0:
        raise JobError(f"{key} must be a finite number > 0, got {value!r}")
    return float(value)


def job_id_of(record: object) -> str | None:
    """The id of a parsed line if it is a valid id, else None."""
    if isinstance(record, dict):
        value = record.get("id")
        if isinstance(value, str) and ID_PATTERN.fullmatch(value):
            return value
    return None


def parse_job(record: object, line: int, facts: ModelFacts, base: Path) -> Job:
    """Validate one decoded JSON line against the model; raises JobError naming the problem."""
    from magvit_onnx.runtime import tasks as task_registry
    from magvit_onnx.runtime.schedule import mask_ratio

    if not isinstance(record, dict):
        raise JobError(f"a job must be a JSON object like {{\"id\": \"clip-1\", \"task\": \"FP\", "
                       f"\"input\": \"clip.mp4\"}}, got {type(record).__name__}")
    unknown = [k for k in record if k not in KEYS]
    if unknown:
        hints = [f"{k!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(k, KEYS, 1)) else repr(k)
                 for k in unknown]
        raise JobError(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(hints)}: valid keys are "
                       + ", ".join(KEYS))
    job_id = record.get("id")
    if job_id is None:
        raise JobError("missing 'id': every job needs a unique string id")
    if not isinstance(job_id, str) or not ID_PATTERN.fullmatch(job_id):
        raise JobError(f"id must be a string of 1-128 letters, digits, '.', '_' or '-' not starting with '.' "
                       f"(it names the output files), got {job_id!r}")
    task = record.get("task")
    if task is None:
        raise JobError("missing 'task': valid tasks are " + ", ".join(
            f"{name} ({entry['abbreviation']})" for name, entry in facts.tasks.items()))
    if not isinstance(task, str):
        raise JobError(f"task must be a string (a task id or abbreviation), got {task!r}")
    try:
        spec = task_registry.get_task(task)
    except ValueError as e:
        raise JobError(str(e)) from None
    if spec.name not in facts.tasks:
        raise JobError(f"task {spec.name!r} is not served by this model: valid tasks are {', '.join(facts.tasks)}")
    entry = facts.tasks[spec.name]
    fields: dict[str, Any] = {"id": job_id, "line": line, "task": spec.name}

    # input video and the options for reading it
    source = record.get("input")
    reading = [k for k in ("stride", "fps", "start") if record.get(k) is not None]
    if entry["needs_video"]:
        if source is None:
            raise JobError(f"task {spec.name!r} needs an input video: add \"input\": \"path/to/video\" "
                           f"(any video PyAV decodes; relative to the JOBS file's folder)")
        if not isinstance(source, str) or not source.strip():
            raise JobError(f"input must be the path of a video file (a non-empty string), got {source!r}")
        fields["input"] = (base / source).absolute()
        fields["stride"] = _integer(record, "stride", 1)
        fields["start"] = _integer(record, "start", 0)
        fields["fps"] = _positive(record, "fps")
        if fields["stride"] is not None and fields["fps"] is not None:
            raise JobError("give stride (every n-th frame) or fps (resample in time), not both")
    else:
        if source is not None:
            generating = [n for n, t in facts.tasks.items() if not t["needs_video"]]
            raise JobError(f"task {spec.name!r} takes no input video (it generates from a class); remove "
                           f"'input' (tasks without input: {', '.join(generating)})")
        if reading:
            raise JobError(f"{', '.join(reading)} only appl{'ies' if len(reading) == 1 else 'y'} to an input video; "
                           f"task {spec.name!r} takes none")

    # class
    if "class" in record and "class_id" in record:
        raise JobError("give 'class' or 'class_id' (the same thing), not both")
    label = record.get("class", record.get("class_id"))
    conditional = [n for n, t in facts.tasks.items() if t["class_conditional"]]
    if entry["class_conditional"]:
        if label is None:
            raise JobError(f"task {spec.name!r} needs a class: add \"class\": N with N in 0 .. {facts.num_classes - 1}")
        if not _is_int(label):
            raise JobError(f"class must be an integer in 0 .. {facts.num_classes - 1}, got {label!r}")
        if not 0 <= label < facts.num_classes:
            raise JobError(f"class {label!r} is out of range: valid classes are 0 .. {facts.num_classes - 1}")
        fields["class_id"] = label
    elif label is not None:
        raise JobError(f"task {spec.name!r} takes no class; remove it (class-conditional tasks: "
                       f"{', '.join(conditional)})")

    # seed and decoding settings
    seed = record.get("seed")
    if seed is None:
        fields["seed"], fields["seed_from"] = derive_seed(job_id), "id"
    else:
        fields["seed"], fields["seed_from"] = _integer(record, "seed", 0, SEED_LIMIT), "job"
    fields["steps"] = _integer(record, "steps", 1)
    fields["sampling_temperature"] = _positive(record, "sampling_temperature")
    fields["mask_temperature"] = _positive(record, "mask_temperature")
    guidance = record.get("guidance_scale")
    if guidance is not None and not _is_number(guidance):
        raise JobError(f"guidance_scale must be a finite number (0 = no guidance), got {guidance!r}")
    fields["guidance_scale"] = None if guidance is None else float(guidance)
    fields["top_k"] = _integer(record, "top_k", 0)
    top_p = record.get("top_p")
    if top_p is not None and (not _is_number(top_p) or not 0 < top_p <= 1):
        raise JobError(f"top_p must be a number in (0, 1], got {top_p!r}")
    fields["top_p"] = None if top_p is None else float(top_p)
    if fields["top_k"] and fields["top_p"] is not None and fields["top_p"] < 1:
        raise JobError("top_k and top_p cannot both be set (official sampling allows one of them)")
    schedule = record.get("schedule")
    if schedule is not None:
        if not isinstance(schedule, str):
            raise JobError(f"schedule must be a string (cosine, uniform, powN, log, exp), got {schedule!r}")
        try:
            mask_ratio(0.5, 2, schedule)
        except ValueError as e:
            raise JobError(str(e)) from None
        fields["schedule"] = schedule
    num_videos = _integer(record, "num_videos", 1)
    fields["num_videos"] = 1 if num_videos is None else num_videos

    # outputs
    fmt = record.get("format", "mp4")
    if fmt not in FORMATS:
        raise JobError(f"format must be one of {', '.join(FORMATS)} (png: one PNG per frame; npy: tokens), "
                       f"got {fmt!r}")
    fields["format"] = fmt
    side = record.get("side_by_side", False)
    if not isinstance(side, bool):
        raise JobError(f"side_by_side must be true or false, got {side!r}")
    if side and fmt == "npy":
        raise JobError("side_by_side needs a video format (mp4, gif or png); npy holds tokens")
    fields["side_by_side"] = side
    return Job(**fields)


def read_jobs(path: str | os.PathLike, facts: ModelFacts) -> tuple[list[Job], list[Invalid]]:
    """Parse and validate every line of a JOBS file (file order). Lines that cannot run become
    `Invalid`, including every line of an id given more than once and jobs whose output
    names collide with an earlier job's."""
    path = Path(path)
    base = path.absolute().parent
    records: list[tuple[int, object, str | None]] = []  # (line, decoded JSON or an error, error)
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            records.append((number, None, f"line is not UTF-8 text ({e.reason} at byte {e.start}); "
                                          "JOBS must be UTF-8 JSON Lines"))
            continue
        if not text.strip():
            continue
        try:
            records.append((number, json.loads(text), None))
        except json.JSONDecodeError as e:
            example = '{"id": "clip-1", "task": "CG", "class": 3}'
            records.append((number, None, f"malformed JSON ({e.msg} at column {e.colno}); each line must be "
                                          f"one JSON object like {example}"))
    lines_of: dict[str, list[int]] = {}
    for number, record, _ in records:
        if (job_id := job_id_of(record)) is not None:
            lines_of.setdefault(job_id, []).append(number)
    jobs: list[Job] = []
    invalid: list[Invalid] = []
    owners: dict[str, Job] = {}
    frames = facts.video_shape[0]
    for number, record, error in records:
        job_id = job_id_of(record)
        task = record.get("task") if isinstance(record, dict) and isinstance(record.get("task"), str) else None
        if error is None and job_id is not None and len(lines_of[job_id]) > 1:
            error = (f"duplicate id {job_id!r} on lines {', '.join(map(str, lines_of[job_id]))}: ids must be unique "
                     "(none of these lines runs)")
        if error is None:
            try:
                job = parse_job(record, number, facts, base)
            except JobError as e:
                error = str(e)
            else:
                clash = next((owners[n] for n in job.output_names(frames) if n in owners), None)
                if clash is not None:
                    error = (f"output names collide with job {clash.id!r} (line {clash.line}); choose another id "
                             f"(outputs are named {{id}}.{{k}}.* when num_videos > 1)")
                else:
                    owners.update((n, job) for n in job.output_names(frames))
                    jobs.append(job)
                    continue
        invalid.append(Invalid(number, job_id, error, task))
    return jobs, invalid


# --------------------------------------------------------------------------- shards


def shard_of(key: str, count: int) -> int:
    """Stable shard of a job id: first 8 bytes of sha256(key), big-endian, mod count."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % count


def line_key(line: int) -> str:
    """Shard key of a line without a readable id."""
    return f"\0line:{line}"


def parse_shard(text: str) -> tuple[int, int]:
    """'INDEX/COUNT' -> (index, count) with 0 <= index < count; raises ValueError."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise ValueError(f"--shard must be INDEX/COUNT with 0 <= INDEX < COUNT (e.g. 0/4), got {text!r}")
    index, count = int(match[1]), int(match[2])
    if count < 1 or index >= count:
        raise ValueError(f"--shard must be INDEX/COUNT with 0 <= INDEX < COUNT (e.g. 0/4), got {text!r}")
    return index, count


def shard_from_env(env: dict[str, str], num_shards: int | None = None) -> tuple[int, int]:
    """The shard of this process from Slurm array or Kubernetes Indexed Job variables
    (0/1 when neither is set); raises ValueError when they are incomplete."""
    if env.get("SLURM_ARRAY_TASK_ID", "").strip():
        task_id, count = env["SLURM_ARRAY_TASK_ID"], env.get("SLURM_ARRAY_TASK_COUNT", "")
        low = env.get("SLURM_ARRAY_TASK_MIN", "0") or "0"
        if not (task_id.strip().isdigit() and count.strip().isdigit() and low.strip().isdigit()):
            raise ValueError(f"SLURM_ARRAY_TASK_ID={task_id!r} needs integer SLURM_ARRAY_TASK_COUNT (got {count!r}) "
                             f"and SLURM_ARRAY_TASK_MIN (got {low!r}); or pass --shard INDEX/COUNT")
        index, count = int(task_id) - int(low), int(count)
        if not 0 <= index < count:
            raise ValueError(f"Slurm array task {task_id} (min {low}) is not in 0 .. {count - 1}: use a contiguous "
                             "--array=0-N (no step), or pass --shard INDEX/COUNT")
        return index, count
    if env.get("JOB_COMPLETION_INDEX", "").strip():
        index = env["JOB_COMPLETION_INDEX"].strip()
        if num_shards is None:
            raise ValueError(f"JOB_COMPLETION_INDEX={index} is set but the number of shards is not: pass "
                             "--num-shards N or set MAGVIT_NUM_SHARDS (= the Job's completions), "
                             "or --shard INDEX/COUNT")
        if not index.isdigit() or int(index) >= num_shards:
            raise ValueError(f"JOB_COMPLETION_INDEX={index!r} must be an integer in 0 .. {num_shards - 1} "
                             f"(--num-shards / MAGVIT_NUM_SHARDS = {num_shards})")
        return int(index), num_shards
    if num_shards not in (None, 1):
        raise ValueError(f"--num-shards / MAGVIT_NUM_SHARDS = {num_shards} needs JOB_COMPLETION_INDEX (a Kubernetes "
                         "Indexed Job) to say which shard this is; elsewhere pass --shard INDEX/COUNT")
    return 0, 1


def report_name(index: int, count: int) -> str:
    return "report.jsonl" if count == 1 else f"report.shard-{index:05d}-of-{count:05d}.jsonl"


# --------------------------------------------------------------------------- the report


def read_report(path: Path) -> Iterator[dict]:
    """The complete, valid lines of one report file (a torn last line is skipped)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    for raw in data.split(b"\n"):
        try:
            row = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(row, dict) and "status" in row:
            yield row


def report_files(out: str | os.PathLike) -> list[Path]:
    out = Path(out)
    return sorted(p for p in out.glob("report*.jsonl")
                  if p.name == "report.jsonl" or p.name.startswith("report.shard-"))


def report_view(out: str | os.PathLike) -> dict[str, dict]:
    """The latest line per job id over all report files in `out` (lines with an id only)."""
    view: dict[str, dict] = {}
    for path in report_files(out):
        for row in read_report(path):
            job_id = row.get("id")
            if not isinstance(job_id, str):
                continue
            if job_id not in view or row.get("finished", 0) >= view[job_id].get("finished", 0):
                view[job_id] = row
    return view


def input_stat(path: Path | None) -> list[int] | None:
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def is_done(job: Job, row: dict | None, out: Path, config: str) -> bool:
    """True when the report line says this job (same config, same input file) is done and
    every output it lists still has its sha256."""
    from magvit_onnx.runtime.artifacts import sha256

    if not row or row.get("status") != "ok" or row.get("config") != config or not row.get("outputs"):
        return False
    stat = input_stat(job.input)
    if job.input is not None and stat is not None and row.get("input_stat") != stat:
        return False  # the input file changed (a missing input does not undo finished work)
    for output in row["outputs"]:
        try:
            if sha256(out / output["path"]) != output["sha256"]:
                return False
        except (OSError, KeyError, TypeError):
            return False
    return True


class ReportWriter:
    """Appends report lines: one write per line, flushed and fsynced; locked against a second
    process on the same shard. A torn last line (a kill during a write) is cut off first."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._file = open(path, "a+b")
        try:
            import fcntl

            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise RunError(f"{path} is being written by another run of this shard; run each shard once at a time")
        except (ImportError, OSError):
            pass  # no flock on this platform or file system
        self._repair()

    def _repair(self) -> None:
        size = self._file.seek(0, os.SEEK_END)
        if size == 0:
            return
        position = size
        while position > 0:
            step = min(65536, position)
            self._file.seek(position - step)
            block = self._file.read(step)
            if position == size and block.endswith(b"\n"):
                return
            newline = block.rfind(b"\n")
            if newline >= 0:
                self._file.truncate(position - step + newline + 1)
                break
            position -= step
        else:
            self._file.truncate(0)
        self._file.flush()
        os.fsync(self._file.fileno())

    def append(self, row: dict) -> None:
        data = (json.dumps(row, ensure_ascii=False) + "\n").encode()
        with self._lock:
            self._file.seek(0, os.SEEK_END)
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


# --------------------------------------------------------------------------- planning


@dataclasses.dataclass
class Plan:
    """This shard's share of a JOBS file."""

    shard: tuple[int, int]
    jobs: list[Job]                 # this shard's valid jobs, file order
    invalid: list[Invalid]          # this shard's lines that cannot run
    pending: list[Job]              # jobs to run now
    done: list[Job]                 # jobs already done (skipped)
    configs: dict[str, str]         # id -> config hash


def plan(jobs_path: str | os.PathLike, out: str | os.PathLike, facts: ModelFacts,
         shard: tuple[int, int] = (0, 1)) -> Plan:
    """Read JOBS, keep this shard's lines, and split its jobs into pending and done."""
    out = Path(out)
    index, count = shard
    jobs, invalid = read_jobs(jobs_path, facts)
    mine = [j for j in jobs if shard_of(j.id, count) == index]
    bad = [b for b in invalid if shard_of(b.id if b.id is not None else line_key(b.line), count) == index]
    view = report_view(out)
    configs = {j.id: j.config(facts) for j in mine}
    done = [j for j in mine if is_done(j, view.get(j.id), out, configs[j.id])]
    finished = {j.id for j in done}
    return Plan(shard, mine, bad, [j for j in mine if j.id not in finished], done, configs)


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


def groups(jobs: Iterable[Job], batch_size: int, decoding: dict) -> Iterator[list[Job]]:
    """Batches of up to `batch_size` jobs with equal group keys, each emitted as soon as it is full
    (the rest at the end, in order of first appearance)."""
    buckets: dict[tuple, list[Job]] = {}
    for job in jobs:
        bucket = buckets.setdefault(job.group_key(decoding), [])
        bucket.append(job)
        if len(bucket) == batch_size:
            yield buckets.pop(job.group_key(decoding))
    yield from buckets.values()


# --------------------------------------------------------------------------- generating


def generate_tokens(generator, jobs: list[Job], clips: list[np.ndarray | None]) -> np.ndarray:
    """Tokens [len(jobs) * num_videos, t, h, w] for jobs with one group key, in one call; job k's
    rows are k*n .. k*n+n-1 and equal `generator.generate` of that job alone (one seed per job)."""
    first = jobs[0]
    video = np.stack(clips) if clips[0] is not None else None
    classes = [j.class_id for j in jobs] if jobs[0].class_id is not None else None
    settings = {k: v for k, v in first.settings().items() if k != "seed"}
    return generator.generate_tokens(first.task, video, classes, seed=[j.seed for j in jobs], **settings)


# --------------------------------------------------------------------------- writing


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


def write_outputs(job: Job, out: Path, tokens: np.ndarray, videos: np.ndarray | None,
                  panels: tuple[np.ndarray, np.ndarray] | None) -> list[Path]:
    """Write every output of `job` atomically; returns the paths in `job.output_names` order.
    On an error the files written so far are removed and the error is raised."""
    from magvit_onnx import video as videoio

    names = iter(job.output_names(len(videos[0]) if videos is not None else 0))
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
                    videoio.write_gif(target(), frames, OUTPUT_FPS)
                else:
                    videoio.write_mp4(target(), frames, OUTPUT_FPS)
        return written
    except BaseException as error:
        for path in written:
            path.unlink(missing_ok=True)
        if isinstance(error, OSError) and written:  # name the output, not its temporary file
            raise OSError(error.errno, error.strerror or str(error), str(written[-1])) from error
        raise


def describe(error: BaseException) -> str:
    """One line for a job's error."""
    if isinstance(error, OSError) and not isinstance(error, JobError):
        where = f" {Path(error.filename).name}" if getattr(error, "filename", None) else ""
        text = f"cannot write{where}: {error.strerror or error} (errno {error.errno})"
        if error.errno == errno.ENOSPC:
            text += "; the output folder's disk is full: free space and rerun (finished jobs are kept)"
        return text
    text = str(error) or type(error).__name__
    if not isinstance(error, ValueError):
        text = f"{type(error).__name__}: {text}"
    return " ".join(text.split())


# --------------------------------------------------------------------------- progress


class Progress:
    """A one-line bar (videos, videos/s, ETA) on a terminal; else a plain line every `interval` s."""

    def __init__(self, total_videos: int, stream=None, tty: bool | None = None, interval: float = 10.0):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.total, self.done, self.failed = total_videos, 0, 0
        self.interval = interval
        self.started = self.last = time.monotonic()
        self._lock = threading.Lock()
        self._drawn = False

    def _status(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        left = self.total - self.done
        eta = f"{_clock(left / rate)}" if rate > 0 else "?"
        failed = f", {self.failed} failed" if self.failed else ""
        return f"{self.done}/{self.total} videos, {rate:.2f} videos/s, ETA {eta}{failed}"

    def advance(self, videos: int, failed: bool = False) -> None:
        with self._lock:
            self.done += videos
            self.failed += failed
            now = time.monotonic()
            if self.tty:
                if now - self.last >= 0.1 or self.done >= self.total:
                    self._draw()
                    self.last = now
            elif now - self.last >= self.interval:
                print(f"progress: {self._status()}", file=self.stream, flush=True)
                self.last = now

    def _draw(self) -> None:
        width = 24
        filled = width if not self.total else int(width * self.done / self.total)
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r\x1b[2K[{bar}] {self._status()}")
        self.stream.flush()
        self._drawn = True

    def message(self, line: str) -> None:
        with self._lock:
            if self.tty and self._drawn:
                self.stream.write("\r\x1b[2K")
            print(line, file=self.stream, flush=True)
            if self.tty and self._drawn:
                self._draw()

    def close(self) -> None:
        with self._lock:
            if self.tty and self._drawn:
                self.stream.write("\n")
                self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# --------------------------------------------------------------------------- running


@dataclasses.dataclass
class Summary:
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    report: str = ""
    shard: tuple[int, int] = (0, 1)
    seconds: float = 0.0
    stopped: bool = False           # --fail-fast stopped the run early

    def as_dict(self) -> dict:
        return {"ok": self.ok, "failed": self.failed, "skipped": self.skipped, "report": self.report,
                "shard": list(self.shard), "seconds": round(self.seconds, 3), "stopped": self.stopped}


class Runner:
    """Runs groups of jobs on one Generator and appends their report lines."""

    def __init__(self, generator, facts: ModelFacts, out: Path, report: ReportWriter, plan: Plan,
                 progress: Progress, log: Callable[[str], None]):
        self.generator, self.facts, self.out, self.report = generator, facts, out, report
        self.plan, self.progress, self.log = plan, progress, log
        self.provider = generator.providers[0] if generator is not None else None
        self._lock = threading.Lock()
        self.ok = self.failed = 0

    def row(self, job: Job | None, *, status: str, invalid: Invalid | None = None, outputs=(), seconds=None,
            batch: int = 0, error: str | None = None) -> dict:
        if job is None:
            return {"id": invalid.id, "line": invalid.line, "status": status, "task": invalid.task, "input": None,
                    "class": None, "seed": None, "seed_from": None, "num_videos": None, "format": None,
                    "outputs": [], "provider": None, "batch": 0, "seconds": None, "config": None,
                    "input_stat": None, "error": error, "shard": list(self.plan.shard), "finished": time.time()}
        return {"id": job.id, "line": job.line, "status": status, "task": job.task,
                "input": None if job.input is None else str(job.input), "class": job.class_id, "seed": job.seed,
                "seed_from": job.seed_from, "num_videos": job.num_videos, "format": job.format,
                "outputs": list(outputs), "provider": self.provider, "batch": batch, "seconds": seconds,
                "config": self.plan.configs[job.id], "input_stat": input_stat(job.input), "error": error,
                "shard": list(self.plan.shard), "finished": time.time()}

    def record(self, row: dict, videos: int) -> None:
        """Append the line (outputs are already in place) and count it."""
        self.report.append(row)
        failed = row["status"] != "ok"
        with self._lock:
            self.failed += failed
            self.ok += not failed
        if failed:
            who = f"job {row['id']!r} (line {row['line']})" if row["id"] is not None else f"line {row['line']}"
            self.progress.message(f"error: {who}: {row['error']}")
        self.progress.advance(videos, failed)

    def invalid(self, bad: Invalid) -> None:
        self.record(self.row(None, status="error", invalid=bad, error=bad.error), 0)

    def record_invalid_lines(self, fail_fast: bool) -> bool:
        """Report every invalid line of the plan; True when --fail-fast stops the run at one."""
        for bad in self.plan.invalid:
            self.invalid(bad)
            if fail_fast:
                return True
        return False

    def fail(self, job: Job, error: BaseException | str, **kwargs) -> None:
        text = error if isinstance(error, str) else describe(error)
        self.record(self.row(job, status="error", error=text, **kwargs), job.num_videos)

    def run_group(self, jobs: list[Job]) -> bool:
        """Read inputs, generate, write and report one group; returns False if any job failed."""
        from magvit_onnx import video as videoio

        frames, height, width = self.facts.video_shape
        ready, clips, reads = [], [], {}
        all_ok = True
        for job in jobs:
            started = time.monotonic()
            if job.input is None:
                ready.append(job)
                clips.append(None)
                reads[job.id] = 0.0
                continue
            try:
                clip = videoio.read_video(job.input, num_frames=frames, size=(height, width),
                                          stride=job.stride or 1, fps=job.fps, start=job.start or 0)
            except Exception as e:  # noqa: BLE001 - one job's bad input must not stop the others
                self.fail(job, e, seconds={"read": round(time.monotonic() - started, 4)})
                all_ok = False
                continue
            ready.append(job)
            clips.append(clip)
            reads[job.id] = time.monotonic() - started
        if not ready:
            return all_ok
        started = time.monotonic()
        try:
            tokens = generate_tokens(self.generator, ready, clips)
        except Exception as e:  # noqa: BLE001
            if len(ready) > 1:  # find out which job it was: run them one by one
                for job, clip in zip(ready, clips):
                    all_ok &= self._run_single(job, clip, reads[job.id])
                return all_ok
            self.fail(ready[0], e, seconds={"read": round(reads[ready[0].id], 4)}, batch=1)
            return False
        generate_seconds = time.monotonic() - started
        n = ready[0].num_videos
        for k, (job, clip) in enumerate(zip(ready, clips)):
            all_ok &= self._finish(job, clip, tokens[k * n:(k + 1) * n], reads[job.id], generate_seconds, len(ready))
        return all_ok

    def _run_single(self, job: Job, clip, read_seconds: float) -> bool:
        started = time.monotonic()
        try:
            tokens = generate_tokens(self.generator, [job], [clip])
        except Exception as e:  # noqa: BLE001
            self.fail(job, e, seconds={"read": round(read_seconds, 4)}, batch=1)
            return False
        return self._finish(job, clip, tokens, read_seconds, time.monotonic() - started, 1)

    def _finish(self, job: Job, clip, tokens, read_seconds: float, generate_seconds: float, batch: int) -> bool:
        """Decode (per job, as Generator.generate does), write, hash and report one generated job."""
        from magvit_onnx.generator import to_uint8
        from magvit_onnx.runtime import tasks as task_registry
        from magvit_onnx.runtime.artifacts import sha256

        started = time.monotonic()
        seconds = {"read": round(read_seconds, 4), "generate": round(generate_seconds, 4)}
        try:
            videos = panels = None
            if job.format != "npy":
                videos = self.generator.decode(tokens)  # per job, as Generator.generate decodes
                if job.side_by_side:
                    if clip is None:
                        blank = np.zeros_like(videos[0])
                        panels = (blank, blank)
                    else:
                        condition = task_registry.condition(job.task, clip[None].astype(np.float32) / 255.0,
                                                            self.facts.latent_shape)["video"][0]
                        panels = (clip, to_uint8(condition))
            paths = write_outputs(job, self.out, tokens, videos, panels)
            outputs = [{"path": p.name, "sha256": sha256(p)} for p in paths]
            fsync_folder(self.out)
        except Exception as e:  # noqa: BLE001
            seconds["write"] = round(time.monotonic() - started, 4)
            self.fail(job, e, seconds=seconds, batch=batch)
            return False
        seconds["write"] = round(time.monotonic() - started, 4)
        seconds["total"] = round(sum(seconds.values()), 4)
        self.record(self.row(job, status="ok", outputs=outputs, seconds=seconds, batch=batch), job.num_videos)
        return True


def open_out(out: str | os.PathLike, shard: tuple[int, int]) -> tuple[Path, ReportWriter]:
    """Create --out and open this shard's report in it; raises RunError (usage, exit 2) when
    the folder cannot be made or written."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not os.access(out, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "permission denied")
        return out, ReportWriter(out / report_name(*shard))
    except OSError as e:
        raise RunError(f"--out {out}: cannot write there ({e.strerror or e}); give a writable folder",
                       exit_code=2) from None


def run(jobs_path: str | os.PathLike, out: str | os.PathLike, *, artifacts=None, providers="cpu",
        batch_size: int = 1, shard: tuple[int, int] = (0, 1), fail_fast: bool = False, workers: int = 1,
        progress: Progress | None = None, log: Callable[[str], None] | None = None,
        generator_factory: Callable[[], Any] | None = None) -> Summary:
    """Run this shard's jobs of JOBS into `out` (see the module docstring). Returns a Summary;
    raises RunError for problems of the whole run (exit_code 2: usage, 1: model or report)."""
    from magvit_onnx.runtime.artifacts import ArtifactError
    from magvit_onnx.runtime.providers import ProviderError

    began = time.monotonic()
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    if batch_size < 1 or workers < 1:
        raise RunError(f"--batch-size and --workers must be >= 1, got {batch_size} and {workers}", exit_code=2)
    jobs_path = Path(jobs_path)
    if not jobs_path.is_file():
        raise RunError(f"JOBS {jobs_path}: no such file", exit_code=2)
    out, report = open_out(out, shard)
    report_path = report.path
    try:
        facts = ModelFacts.load(artifacts)
        the_plan = plan(jobs_path, out, facts, shard)
        generator = None
        if the_plan.pending:  # a model that cannot be used fails the run before any line is written
            if generator_factory is not None:
                generator = generator_factory()
            else:
                from magvit_onnx.generator import Generator

                generator = Generator(facts.folder, providers)
    except (ArtifactError, ProviderError) as e:
        report.close()
        raise RunError(str(e)) from None
    except OSError as e:
        report.close()
        raise RunError(f"JOBS {jobs_path}: cannot read ({e.strerror or e})", exit_code=2) from None
    summary = Summary(skipped=len(the_plan.done), report=str(report_path), shard=shard)
    names = {n for j in the_plan.jobs for n in j.output_names(facts.video_shape[0])}
    remove_stale_temporaries(out, names)
    progress = progress or Progress(sum(j.num_videos for j in the_plan.pending))
    runner = Runner(generator, facts, out, report, the_plan, progress, log)
    index, count = shard
    progress.message(f"run: {len(the_plan.pending)} jobs to run, {len(the_plan.done)} already done, "
                     f"{len(the_plan.invalid)} invalid (shard {index}/{count}, batch size {batch_size}, "
                     f"{workers} worker{'s' if workers > 1 else ''}"
                     + (f", {runner.provider}" if runner.provider else "") + f") -> {report_path}")
    try:
        summary.stopped = runner.record_invalid_lines(fail_fast)
        if not summary.stopped:
            summary.stopped = _run_groups(runner, groups(the_plan.pending, batch_size, facts.decoding),
                                          workers, fail_fast)
    except OSError as e:  # the report itself could not be appended
        raise RunError(f"{report_path}: cannot append to the report ({e.strerror or e}); "
                       "finished outputs are kept, rerun to continue") from None
    finally:
        progress.close()
        report.close()
    return finish(summary, runner, began, report_path, log, "run")


def finish(summary: "Summary", runner: "Runner", began: float, report_path: Path, log, label: str) -> "Summary":
    """Fill in the summary of a finished run (local or Ray) and log its closing line."""
    summary.ok, summary.failed = runner.ok, runner.failed
    summary.seconds = time.monotonic() - began
    log(f"{label}: {summary.ok} ok, {summary.failed} failed, {summary.skipped} already done"
        + (" (stopped at the first failure: --fail-fast)" if summary.stopped else "")
        + f" in {summary.seconds:.1f} s; report: {report_path}")
    return summary


def _run_groups(runner: Runner, batches: Iterator[list[Job]], workers: int, fail_fast: bool) -> bool:
    """Run the groups (in `workers` threads sharing one Generator); True if --fail-fast stopped it."""
    if workers == 1:
        for group in batches:
            if not runner.run_group(group) and fail_fast:
                return True
        return False
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    stop = False
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="magvit-run") as pool:
        running: set = set()
        for group in batches:
            while len(running) >= 2 * workers:  # keep inputs of only a few groups in memory
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                stop |= fail_fast and not all(f.result() for f in finished)
            if stop:
                break
            running.add(pool.submit(runner.run_group, group))
        for future in running:
            stop |= fail_fast and not future.result()
    return stop


# --------------------------------------------------------------------------- the command


def _command():
    import click

    @click.command("run", context_settings={"help_option_names": ["-h", "--help"]})
    @click.argument("jobs", type=click.Path(exists=True, dir_okay=False, readable=True))
    @click.option("--out", type=click.Path(file_okay=False), required=True,
                  help="Folder for the outputs and the report (created if missing).")
    @click.option("--artifacts", type=click.Path(file_okay=False), default=None,
                  help="Artifacts folder (default: the shipped default model).")
    @click.option("--providers", default="cpu", show_default=True,
                  help="Execution providers, comma-separated: cpu, cuda, tensorrt.")
    @click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True,
                  help="Jobs with the same task and settings generated in one call (results equal batch size 1).")
    @click.option("--shard", default=None, metavar="INDEX/COUNT",
                  help="Run only this shard's jobs (stable hash of the id). Default: from SLURM_ARRAY_TASK_ID/"
                       "SLURM_ARRAY_TASK_COUNT, or JOB_COMPLETION_INDEX with --num-shards, else 0/1.")
    @click.option("--num-shards", type=click.IntRange(min=1), default=None, envvar="MAGVIT_NUM_SHARDS",
                  help="Shard count for Kubernetes Indexed Jobs (JOB_COMPLETION_INDEX) [env: MAGVIT_NUM_SHARDS].")
    @click.option("--fail-fast", is_flag=True, help="Stop at the first failed job (exit 1).")
    @click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
                  help="Batches run at a time, in threads sharing one model (with --ray: Ray actors).")
    @click.option("--ray", "use_ray", is_flag=True,
                  help="Run the jobs on Ray Data (needs the [ray] extra; RAY_ADDRESS selects a cluster).")
    @click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=0.0, show_default=True,
                  help="With --ray: GPUs per Ray actor.")
    def run_command(jobs, out, artifacts, providers, batch_size, shard, num_shards, fail_fast, workers, use_ray,
                    gpus_per_worker):
        """Run the generation jobs of JOBS (JSON Lines) into --out, resumably.

        Each line: {"id", "task", "input"?, "class"?, "seed"?, "steps"?, "sampling_temperature"?,
        "mask_temperature"?, "guidance_scale"?, "top_k"?, "top_p"?, "schedule"?, "num_videos"?,
        "format"? (mp4|gif|png|npy), "side_by_side"?, "stride"?|"fps"?, "start"?}. A rerun skips
        finished jobs. Exit 0: all jobs ok; 1: some failed; 2: usage error.
        """
        ctx = click.get_current_context()
        try:
            where = parse_shard(shard) if shard is not None else shard_from_env(dict(os.environ), num_shards)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--shard") from None
        try:
            if use_ray:
                from magvit_onnx.ray_batch import run_ray

                summary = run_ray(jobs, out, artifacts=artifacts, providers=providers, batch_size=batch_size,
                                  shard=where, fail_fast=fail_fast, workers=workers, gpus_per_worker=gpus_per_worker)
            else:
                summary = run(jobs, out, artifacts=artifacts, providers=providers, batch_size=batch_size,
                              shard=where, fail_fast=fail_fast, workers=workers)
        except RunError as e:
            if e.exit_code == 2:
                raise click.UsageError(str(e), ctx) from None
            raise click.ClickException(str(e)) from None
        click.echo(json.dumps(summary.as_dict()))
        ctx.exit(1 if summary.failed else 0)

    return run_command


command = _command()
