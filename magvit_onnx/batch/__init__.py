"""`magvit-onnx run JOBS --out DIR`: many generation jobs from a JSONL file, resumable and shardable.

    magvit-onnx run jobs.jsonl --out results/ --artifacts artifacts/tiny --batch-size 8
    magvit-onnx run jobs.jsonl --out results/ --shard 3/16          # or from Slurm / Kubernetes env

Jobs (JSONL)
------------
One JSON object per line (blank lines are ignored; at most 65,536 bytes, a longer line is
refused unread; a key given twice is an error). Bounds are `magvit_onnx.limits`. Keys:

    key                   type / valid values                           default
    id                    string, 1-128 of A-Z a-z 0-9 . _ -, not       required; unique in the file
                          starting with '.'; names the output files
                          (ids differing only in case collide)
    task                  task id or abbreviation (FP, FI, OPC, OPV,    required
                          OPH, OPD, IPC, IPD, CG, CFP, inpainting =
                          IPM) served by the model
    input                 path of the input video (any container        required by tasks with an input
                          PyAV decodes; playlists and file lists are     video, refused by the others
                          not read); relative paths are relative
                          to the folder of the JOBS file; at most
                          4096 characters, no NUL
    class  (or class_id)  integer class, 0 .. num_classes - 1           required by CG and CFP, refused
                                                                        by the others
    seed                  integer, 0 <= seed < 2**64                    derived from the id (below)
    steps                 integer, 1 .. latent tokens (t*h*w)           the model's (official: 12)
    sampling_temperature  number in [1e-4, 1e4]                         the model's (1.0)
    mask_temperature      number in [1e-4, 1e4]                         the model's (4.5)
    guidance_scale        number in [-1000, 1000], 0 = no guidance      the model's (0)
    top_k                 integer, 0 .. codebook size (0 = off)         off
    top_p                 number in [1e-6, 1]; not together with top_k  off
    schedule              cosine, uniform, powN, log, exp               the model's (cosine)
    num_videos            integer, 1 .. 64: samples of this job         1
    format                mp4, gif, png (one PNG per frame), npy        mp4
                          (generated tokens, int64 [num_videos, t, h, w])
    side_by_side          true: also write input | condition | output   false
                          (not with npy)
    output_fps            frames per second of mp4 / gif outputs,       the rate the input was read at
                          [0.001, 10000] (gif: [0.0015, 50])            (below)
    stride | fps          frames of the input: every stride-th frame    stride 1
                          (1 .. 10000), or resampled to fps (number
                          in [0.001, 10000]); not both
    start                 first input frame (0-based), 0 .. 10**7       0
    replace_condition_pixels  true: the output keeps the input's pixels  false (official)
                          in the condition region exactly (tasks with
                          an input only)
    mask                  task inpainting (IPM): an image, a folder or   required by inpainting,
                          video of per-frame masks (white = generate),   refused by the others
                          or a box [top, left, height, width] in the
                          model's pixels, {"box", "velocity": [dy, dx]}
                          moving, "invert": true (`batch.masks`)

Input videos are read with `magvit_onnx.video.read_video`: the model's number of frames
from `start` by `stride` or `fps`, any pixel format (grayscale, alpha, YUV, palette)
converted to RGB, shown upright (display matrix or rotate tag, as phones record), scaled
to cover the model's size and centre-cropped (any size from 8 to 8192 pixels a side; odd
sizes are fine). A `start` past the end fails before decoding; a later one seeks to the
keyframe before it. Frame prediction (FP, CFP) reads only the first frame, so its input
may be shorter than the model's clip, down to a still image (padded by repeating the last
frame read); every other task needs the full clip.

Frame rate: an output plays at its input's speed: without output_fps its rate is the job's
`fps`, else the input's rate / `stride` (`outputs.output_rate`); 8 fps where there is no
input rate (class generation, key images, a still image); a GIF's within [0.0015, 50].
Outputs have no audio: an input's sound is neither read nor copied.

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
A job that fails after writing some of its outputs removes them again. An output never
replaces an input of the run (an `input`, `keys` or `mask` path of any job, the JOBS file)
nor a file in --out that no report there lists: such a job is refused in one line before
generating (`outputs.refused_replacements`). A job claims its output names in
`.{id}.outputs` before the first is written; the claim goes once the report lists them,
so the outputs of a run killed in between are still the run's own to replace.

Report (JSONL)
--------------
`report.jsonl` in --out, or `report.shard-IIIII-of-NNNNN.jsonl` per shard when sharded.
It is opened without following a symbolic link and must be a regular file. A line is
appended (written unbuffered and fsynced; a write that fails half-way, e.g. on a full
disk, is cut off again and ends the run with exit 1) after the job's outputs are in place:

    {"id": "clip-7", "line": 7, "status": "ok" | "error", "task": "frame_prediction",
     "input": "/abs/clip7.mp4" | null, "class": null, "seed": 123, "seed_from": "job" | "id",
     "num_videos": 1, "format": "mp4",
     "outputs": [{"path": "clip-7.mp4", "sha256": "..."}],      # relative to --out; [] on error
     "provider": "CPUExecutionProvider", "batch": 4,            # jobs generated in one call
     "seconds": {"read": 0.02, "generate": 1.9, "decode": 0.3, "write": 0.1, "total": 2.3},
     "config": "<sha256 of the job's resolved settings, input path and model>",
     "decoding": "model" | "official",                          # --decoding (runtime/decoding.py)
     "input_stat": [size, mtime_ns] | null, "error": null | "one line",
     "shard": [index, count], "finished": <unix time>}

`generate` is the time of the whole batched call the job was part of (`batch` jobs).
Lines of jobs that cannot be parsed have `"id": null` if no id could be read. Errors
name the job, the problem and what is valid; they are also printed to stderr as
`error: job 'ID' (line N): ...` (or `error: line N: ...`); values are echoed cut to 80
characters and error lines to 1000.

Progress goes to stderr: a bar (videos done, videos/s, ETA, failures) on a terminal,
otherwise a plain `progress: ...` line every 10 s; then a summary line. stdout gets one
JSON object: {"ok", "failed", "skipped", "report", "shard", "seconds", "stopped",
"interrupted"}.

The *report view* (`report_view(out)`) is the latest line per id over all report files
in --out. Rerunning the same command skips a job when its view line is "ok" for the same
config, its input file has the same size and mtime, its outputs are exactly the job's own
output names and each is still a regular file with the listed sha256 (a report's paths are
not trusted; any report file's latest line of the id counts, so clocks that differ between
machines do not matter); everything else (errors, changed jobs, missing or modified
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
writes its own report; one process per shard at a time (the report is locked), and a run
is refused while a run with another shard count writes to the same --out (their shards
would overlap).

Signals: SIGINT (Ctrl-C) and SIGTERM (Slurm, Kubernetes) start no further job; the jobs
being generated finish and get their report lines, then the summary is printed with
"stopped": true and "interrupted": "SIGINT" | "SIGTERM", exit 1. A rerun does the rest.

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
line stops it before any generation, a failing job after the batch it was part of), a
signal stopped the run, the model cannot be used (missing/tampered/damaged artifacts,
another format version, an unavailable provider), the report cannot be written, or a run
with another shard count writes to --out; 2 usage errors (JOBS missing or unreadable,
--out not writable or its report not a regular file, malformed --shard, shard variables
incomplete, bad option values).

Only numpy, onnxruntime and PyAV are used; this module never imports torch.
"""
from magvit_onnx.batch.command_line import command
from magvit_onnx.batch.errors import JobError, RunError
from magvit_onnx.batch.jobs import Invalid, Job, ModelFacts, derive_seed
from magvit_onnx.batch.outputs import remove_stale_temporaries
from magvit_onnx.batch.progress import Progress
from magvit_onnx.batch.report import ReportWriter, read_report, report_files, report_view
from magvit_onnx.batch.runner import (Plan, Runner, Summary, check_jobs_file, finish, groups, open_out, plan, run,
                                      stop_on_signals)
from magvit_onnx.batch.shards import parse_shard, shard_from_env

__all__ = ["Invalid", "Job", "JobError", "ModelFacts", "Plan", "Progress", "ReportWriter", "RunError", "Runner",
           "Summary", "check_jobs_file", "command", "derive_seed", "finish", "groups", "open_out", "parse_shard", "plan",
           "read_report", "remove_stale_temporaries", "report_files", "report_view", "run", "shard_from_env",
           "stop_on_signals"]
