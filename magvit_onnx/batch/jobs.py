"""Jobs: the JOBS keys, the model facts they are checked against, and parsing and
validating JOBS lines into `Job`s (or `Invalid` lines)."""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import json
import os
import re
from fractions import Fraction
from pathlib import Path
from typing import IO, Any, Iterator

from magvit_onnx import limits
from magvit_onnx.batch.errors import JobError
from magvit_onnx.batch.masks import MaskSpec, parse_mask
from magvit_onnx.limits import shown
from magvit_onnx.runtime import decoding as decoding_rules, tasks as task_registry

FORMATS = ("mp4", "gif", "png", "npy")
KEYS = ("id", "task", "input", "class", "class_id", "seed", "steps", "sampling_temperature", "mask_temperature",
        "guidance_scale", "top_k", "top_p", "schedule", "num_videos", "format", "side_by_side", "stride", "fps",
        "start", "replace_condition_pixels", "num_frames", "width", "height", "keys", "output_fps",
        "mask")
ID_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
REPORT_VERSION = 1
SEED_LIMIT = limits.SEED_LIMIT


@dataclasses.dataclass(frozen=True)
class ModelFacts:
    """What validating and planning jobs needs from an artifacts folder, without sessions."""

    folder: Path
    tasks: dict[str, dict]        # name -> manifest task entry (needs_video, class_conditional, ...)
    num_classes: int
    video_shape: tuple[int, int, int]
    latent_shape: tuple[int, int, int]
    decoding: dict[str, Any]      # the manifest's (official) defaults
    codebook_size: int
    model_id: str                 # sha256 of manifest.json (which holds the sha256 of every graph)
    decoding_by_task: dict[str, dict] = dataclasses.field(default_factory=dict)  # applied per task; {} = official
    decoding_choice: str = "model"  # "model" or "official" (runtime/decoding.py)

    @classmethod
    def load(cls, artifacts: str | os.PathLike | None, decoding: str = "model") -> "ModelFacts":
        """Read the manifest of `artifacts` (None: the shipped default model); raises ArtifactError.
        `decoding`: "model" applies the model's per-task decoding defaults, "official" does not."""
        from magvit_onnx.paths import default_artifacts
        from magvit_onnx.runtime.artifacts import load_manifest

        folder = default_artifacts() if artifacts is None else Path(artifacts)
        manifest = load_manifest(folder, verify=False)  # format version; sha256s are checked by Generator
        return cls(folder=folder, tasks=task_registry.served(manifest["tasks"]), num_classes=len(manifest["classes"]),
                   video_shape=tuple(manifest["video"]["shape"]), latent_shape=tuple(manifest["latent_shape"]),
                   decoding=dict(manifest["decoding"]), codebook_size=manifest["vocab"]["codebook_size"],
                   model_id=hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest(),
                   decoding_by_task={task: decoding_rules.by_task(manifest, task, decoding) for task in manifest["tasks"]},
                   decoding_choice=decoding)

    def defaults(self, task: str) -> dict[str, Any]:
        """The decoding defaults of canonical task `task`."""
        return {**self.decoding, **self.decoding_by_task.get(task, {})}


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
    replace_condition_pixels: bool = False
    num_frames: int | None = None   # long frame prediction
    width: int | None = None        # panorama (outpainting_v)
    height: int | None = None       # panorama (outpainting_h)
    keys: tuple[Path, ...] = ()     # key images (absolute) of frame interpolation, instead of input
    output_fps: float | None = None  # the videos' rate; None: the input's (outputs.output_rate)
    mask: MaskSpec | None = None    # the region of task inpainting (IPM)

    def extent(self) -> dict[str, int]:
        """num_frames / width / height where given, for `Generator.generate_tokens`."""
        return {k: v for k, v in (("num_frames", self.num_frames), ("width", self.width), ("height", self.height))
                if v is not None}

    def output_frames(self, frames: int) -> int:
        """Frames of each output video, for a model of `frames`-frame clips."""
        if self.num_frames:
            return self.num_frames
        return (len(self.keys) - 1) * frames if self.keys else frames

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
        return (self.task, len(self.keys), *sorted(self.resolved(decoding).items()), *sorted(self.extent().items()),
                self.mask)  # one mask per call

    def output_names(self, frames: int) -> list[str]:
        """File names (in --out) this job writes, in writing order, for a model of `frames`-frame clips."""
        if self.format == "npy":
            return [f"{self.id}.npy"]
        frames = self.output_frames(frames)
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
                "seed": self.seed, **self.resolved(facts.defaults(self.task)), "format": self.format,
                "side_by_side": self.side_by_side, "stride": self.stride or 1, "fps": self.fps,
                "start": self.start or 0}
        if self.replace_condition_pixels:  # only when on, so reports written before the key stay valid
            data["replace_condition_pixels"] = True
        data |= self.extent()  # the same: only when given
        if self.output_fps is not None:
            data["output_fps"] = self.output_fps
        if self.keys:
            data["keys"] = [str(k) for k in self.keys]
        if self.mask is not None:
            data["mask"] = self.mask.as_json()
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


def _integer(record: dict, key: str, low: int, high: int | None = None) -> int | None:
    value = record.get(key)
    if value is None:
        return None
    if not _is_int(value) or value < low or (high is not None and value >= high):
        bound = f">= {low}" if high is None else f"in {low} .. {high - 1}"
        raise JobError(f"{key} must be an integer {bound}, got {shown(value)}")
    return value


def _checked(check, *args, **kwargs):
    """A `limits` check whose ValueError becomes this job's JobError."""
    try:
        return check(*args, **kwargs)
    except ValueError as e:
        raise JobError(str(e)) from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """json.loads hook: a key given twice is an error, not 'the last one wins'."""
    data = dict(pairs)
    if len(data) < len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise JobError(f"key {shown(twice)} is given twice in one object; give each key once")
    return data


def _utf8(value: str) -> bool:
    """False for a string with a lone surrogate (a JSON \\udc80 escape), which no file system
    or UTF-8 report can hold."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def job_id_of(record: object) -> str | None:
    """The id of a parsed line if it is a valid id, else None."""
    if isinstance(record, dict):
        value = record.get("id")
        if isinstance(value, str) and ID_PATTERN.fullmatch(value):
            return value
    return None


def parse_job(record: object, line: int, facts: ModelFacts, base: Path) -> Job:
    """Validate one decoded JSON line against the model; raises JobError naming the problem."""
    if not isinstance(record, dict):
        raise JobError(f"a job must be a JSON object like {{\"id\": \"clip-1\", \"task\": \"FP\", "
                       f"\"input\": \"clip.mp4\"}}, got {type(record).__name__}")
    unknown = [k for k in record if k not in KEYS]
    if unknown:
        hints = [f"{shown(k)} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(k[:64], KEYS, 1))
                 else shown(k) for k in unknown[:5]]
        raise JobError(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(hints)}: valid keys are "
                       + ", ".join(KEYS))
    job_id = record.get("id")
    if job_id is None:
        raise JobError("missing 'id': every job needs a unique string id")
    if not isinstance(job_id, str) or not ID_PATTERN.fullmatch(job_id):
        raise JobError(f"id must be a string of 1-128 letters, digits, '.', '_' or '-' not starting with '.' "
                       f"(it names the output files), got {shown(job_id)}")
    task = record.get("task")
    if task is None:
        raise JobError("missing 'task': valid tasks are " + ", ".join(
            f"{name} ({entry['abbreviation']})" for name, entry in facts.tasks.items()))
    if not isinstance(task, str) or len(task) > limits.SHOWN_CHARS:
        raise JobError(f"task must be a string (a task id or abbreviation, at most {limits.SHOWN_CHARS} "
                       f"characters), got {shown(task)}")
    try:
        spec = task_registry.get_task(task)
    except ValueError as e:
        raise JobError(str(e)) from None
    if spec.name not in facts.tasks:
        raise JobError(f"task {spec.name!r} is not served by this model: valid tasks are {', '.join(facts.tasks)}")
    entry = facts.tasks[spec.name]
    fields: dict[str, Any] = {"id": job_id, "line": line, "task": spec.name}

    # input video (or key images) and the options for reading it
    source = record.get("input")
    reading = [k for k in ("stride", "fps", "start", "replace_condition_pixels") if record.get(k) is not None]
    keys = record.get("keys")
    if keys is not None:
        fields["keys"] = _key_paths(keys, spec.name, source, reading, facts.video_shape[0], base)
    elif entry["needs_video"]:
        if source is None:
            raise JobError(f"task {spec.name!r} needs an input video: add \"input\": \"path/to/video\" "
                           f"(any video PyAV decodes; relative to the JOBS file's folder)")
        if (not isinstance(source, str) or not source.strip() or len(source) > limits.MAX_INPUT_CHARS
                or "\0" in source or not _utf8(source)):
            raise JobError(f"input must be the path of a video file (a non-empty UTF-8 string of at most "
                           f"{limits.MAX_INPUT_CHARS} characters, no NUL), got {shown(source)}")
        fields["input"] = (base / source).absolute()
        for key, low, high in (("stride", 1, limits.MAX_STRIDE), ("start", 0, limits.MAX_START)):
            value = record.get(key)
            fields[key] = None if value is None else _checked(limits.check_integer, key, value, low, high)
        fps = record.get("fps")
        fields["fps"] = None if fps is None else _checked(limits.check_positive, "fps", fps, *limits.FPS_RANGE)
        if fields["stride"] is not None and fields["fps"] is not None:
            raise JobError("give stride (every n-th frame) or fps (resample in time), not both")
        keep = record.get("replace_condition_pixels", False)
        if not isinstance(keep, bool):
            raise JobError(f"replace_condition_pixels must be true or false, got {keep!r}")
        fields["replace_condition_pixels"] = keep
    else:
        if source is not None:
            generating = [n for n, t in facts.tasks.items() if not t["needs_video"]]
            raise JobError(f"task {spec.name!r} takes no input video (it generates from a class); remove "
                           f"'input' (tasks without input: {', '.join(generating)})")
        if reading:
            raise JobError(f"{', '.join(reading)} only appl{'ies' if len(reading) == 1 else 'y'} to an input video; "
                           f"task {spec.name!r} takes none")

    # longer, wider or taller outputs
    extent = {k: record.get(k) for k in ("num_frames", "width", "height") if record.get(k) is not None}
    _checked(limits.check_extent, spec.name, list(facts.tasks), facts.video_shape, facts.latent_shape, **extent)
    fields |= extent
    if (extent or keys is not None) and fields.get("replace_condition_pixels"):
        raise JobError("replace_condition_pixels applies to model-sized outputs only; remove it with "
                       + ", ".join([*extent, *(["keys"] if keys is not None else [])]))

    # class
    if "class" in record and "class_id" in record:
        raise JobError("give 'class' or 'class_id' (the same thing), not both")
    label = record.get("class", record.get("class_id"))
    conditional = [n for n, t in facts.tasks.items() if t["class_conditional"]]
    if entry["class_conditional"]:
        if label is None:
            raise JobError(f"task {spec.name!r} needs a class: add \"class\": N with N in 0 .. {facts.num_classes - 1}")
        if not _is_int(label):
            raise JobError(f"class must be an integer in 0 .. {facts.num_classes - 1}, got {shown(label)}")
        if not 0 <= label < facts.num_classes:
            raise JobError(f"class {shown(label)} is out of range: valid classes are 0 .. {facts.num_classes - 1}")
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
    fields.update(_checked(
        limits.check_decoding, latent_shape=facts.latent_shape, codebook_size=facts.codebook_size,
        num_videos=1 if record.get("num_videos") is None else record["num_videos"],
        **{k: record.get(k) for k in ("steps", "sampling_temperature", "mask_temperature", "guidance_scale",
                                      "top_k", "top_p", "schedule")}))

    # outputs
    fmt = record.get("format", "mp4")
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise JobError(f"format must be one of {', '.join(FORMATS)} (png: one PNG per frame; npy: tokens), "
                       f"got {shown(fmt)}")
    fields["format"] = fmt
    side = record.get("side_by_side", False)
    if not isinstance(side, bool):
        raise JobError(f"side_by_side must be true or false, got {shown(side)}")
    if side and fmt == "npy":
        raise JobError("side_by_side needs a video format (mp4, gif or png); npy holds tokens")
    if side and (extent or keys is not None):
        raise JobError("side_by_side shows model-sized clips only; remove it with "
                       + ", ".join([*extent, *(["keys"] if keys is not None else [])]))
    fields["side_by_side"] = side
    output_fps = record.get("output_fps")
    if output_fps is not None:
        if fmt not in ("mp4", "gif"):
            raise JobError(f"output_fps applies to mp4 and gif outputs; format {fmt!r} has no frame rate")
        rate = _checked(limits.check_positive, "output_fps", output_fps, *limits.FPS_RANGE)
        if fmt == "gif":
            from magvit_onnx.video import check_gif_fps

            _checked(check_gif_fps, "output_fps", Fraction(rate))
        fields["output_fps"] = rate
    fields["mask"] = parse_mask(record.get("mask"), spec.name, facts.video_shape, facts.latent_shape, base)
    return Job(**fields)


def _key_paths(keys, task: str, source, reading: list[str], frames: int, base: Path) -> tuple[Path, ...]:
    """The absolute paths of a job's key images (`"keys": [...]`, frame interpolation only)."""
    if task != "frame_interpolation":
        raise JobError(f"keys (key images) apply to frame_interpolation only, not {task!r}")
    if source is not None:
        raise JobError("give keys (key images) or input, not both; remove one of them")
    if reading:  # options of an input video
        raise JobError(f"{', '.join(reading)} appl{'ies' if len(reading) == 1 else 'y'} to an input video, not to "
                       f"key images; remove {', '.join(reading)}")
    if (not isinstance(keys, list) or not 2 <= len(keys) < frames
            or not all(isinstance(k, str) and k.strip() and len(k) <= limits.MAX_INPUT_CHARS and "\0" not in k
                       and _utf8(k) for k in keys)):
        raise JobError(f"keys must be a list of 2 .. {frames - 1} image paths (each file's first frame is one key "
                       f"image; relative to the JOBS file's folder), got {shown(keys)}")
    return tuple((base / k).absolute() for k in keys)


EXAMPLE_LINE = '{"id": "clip-1", "task": "CG", "class": 3}'
BOM = b"\xef\xbb\xbf"


def file_lines(file: IO[bytes]) -> Iterator[tuple[int, bytes | None, int]]:
    """(line number, its bytes without the newline, its size) of each line of a JOBS file
    (a UTF-8 BOM on line 1 dropped), read line by line: the bytes of a line over
    limits.MAX_LINE_BYTES are never held (None), only counted, so one huge line cannot
    fill the memory."""
    limit = limits.MAX_LINE_BYTES + len(BOM) + 1  # the longest line kept, with a BOM and its newline
    for number in itertools.count(1):
        raw = file.readline(limit)
        if not raw:
            return
        size, ended = len(raw), raw.endswith(b"\n")
        if not ended and size == limit:  # longer still: count the rest a block at a time, unread
            raw = None
            while not ended and (block := file.readline(1 << 16)):
                size, ended = size + len(block), block.endswith(b"\n")
        size -= ended
        if raw is not None:
            raw = raw[len(BOM):size] if number == 1 and raw.startswith(BOM) else raw[:size]
            size = len(raw)
        yield number, (None if size > limits.MAX_LINE_BYTES else raw), size


def decode_line(raw: bytes) -> tuple[object, str | None]:
    """One JOBS line -> (decoded JSON, None), or (None, the error) for a line that cannot be read."""
    example = EXAMPLE_LINE
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, f"line is not UTF-8 text ({e.reason} at byte {e.start}); JOBS must be UTF-8 JSON Lines"
    try:
        return json.loads(text, object_pairs_hook=_unique_keys), None
    except json.JSONDecodeError as e:
        return None, (f"malformed JSON ({e.msg} at column {e.colno}); each line must be one JSON object "
                      f"like {example}")
    except JobError as e:
        return None, str(e)
    except RecursionError:
        return None, f"JSON nested too deeply; each line must be one flat JSON object like {example}"
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        return None, f"unreadable JSON value ({shown(str(e))}); each line must be one JSON object like {example}"


def read_jobs(path: str | os.PathLike, facts: ModelFacts) -> tuple[list[Job], list[Invalid]]:
    """Parse and validate every line of a JOBS file (file order). Lines that cannot run become
    `Invalid`, including every line of an id given more than once and jobs whose output
    names collide with an earlier job's."""
    path = Path(path)
    base = path.absolute().parent
    records: list[tuple[int, object, str | None]] = []  # (line, decoded JSON or an error, error)
    with open(path, "rb") as file:
        for number, raw, size in file_lines(file):
            if raw is None:
                records.append((number, None, f"line is {size} bytes; a job line may be at most "
                                              f"{limits.MAX_LINE_BYTES} bytes, one JSON object like {EXAMPLE_LINE}"))
            elif raw.strip():
                records.append((number, *decode_line(raw)))
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
        task = record.get("task") if isinstance(record, dict) else None
        task = task if isinstance(task, str) and len(task) <= limits.SHOWN_CHARS and _utf8(task) else None
        if error is None and job_id is not None and len(lines_of[job_id]) > 1:
            error = (f"duplicate id {job_id!r} on lines {', '.join(map(str, lines_of[job_id]))}: ids must be unique "
                     "(none of these lines runs)")
        if error is None:
            try:
                job = parse_job(record, number, facts, base)
            except JobError as e:
                error = str(e)
            else:
                # names are compared case-folded: on macOS and Windows 'A.mp4' and 'a.mp4' are one file
                names = [n.lower() for n in job.output_names(frames)]
                clash = next((owners[n] for n in names if n in owners), None)
                if clash is not None:
                    error = (f"output names collide with job {clash.id!r} (line {clash.line}); choose another id "
                             f"(outputs are named {{id}}.{{k}}.* when num_videos > 1, and names that differ "
                             "only in case are one file on case-insensitive file systems)")
                else:
                    owners.update((n, job) for n in names)
                    jobs.append(job)
                    continue
        invalid.append(Invalid(number, job_id, error, task))
    return jobs, invalid
