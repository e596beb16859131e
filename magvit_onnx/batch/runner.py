"""Planning a shard's jobs, grouping them into batched calls, and running them
(`Runner`, `run`) into the outputs and the report."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from magvit_onnx.batch.errors import RunError
from magvit_onnx.batch.jobs import Invalid, Job, ModelFacts, read_jobs
from magvit_onnx.batch.outputs import (describe, fsync_folder, refused_replacements, remove_stale_temporaries,
                                       write_outputs)
from magvit_onnx.batch.progress import Progress
from magvit_onnx.batch.report import (ReportWriter, claim_path, input_stat, is_done, latest_lines, listed_outputs,
                                      open_plain, report_files, report_name)
from magvit_onnx.batch.shards import line_key, shard_of
from magvit_onnx.folders import unwritable, writable_folder

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
    lines = latest_lines(out)  # every report file's latest line of a job: clocks of machines may differ
    configs = {j.id: j.config(facts) for j in mine}
    frames = facts.video_shape[0]
    done = [j for j in mine if any(is_done(j, row, out, configs[j.id], j.output_names(frames))
                                   for row in lines.get(j.id, []))]
    finished = {j.id for j in done}
    for job in done:  # killed after its report line, before its claim was removed
        claim_path(out, job.id).unlink(missing_ok=True)
    pending = [j for j in mine if j.id not in finished]
    # an output never replaces an input of the run, nor a file no run wrote: such a job is refused
    refused = refused_replacements(jobs, pending, out, Path(jobs_path), frames, listed_outputs(out))
    bad += [Invalid(j.line, j.id, refused[j.id], j.task) for j in pending if j.id in refused]
    return Plan(shard, mine, bad, [j for j in pending if j.id not in refused], done, configs)


def groups(jobs: Iterable[Job], batch_size: int, facts: ModelFacts) -> Iterator[list[Job]]:
    """Batches of up to `batch_size` jobs with equal group keys, each emitted as soon as it is full
    (the rest at the end, in order of first appearance)."""
    buckets: dict[tuple, list[Job]] = {}
    for job in jobs:
        key = job.group_key(facts.defaults(job.task))
        bucket = buckets.setdefault(key, [])
        bucket.append(job)
        if len(bucket) == batch_size:
            yield buckets.pop(key)
    yield from buckets.values()


# --------------------------------------------------------------------------- generating


def generate_tokens(generator, jobs: list[Job], clips: list[np.ndarray | None], mask: np.ndarray | None = None
                    ) -> np.ndarray:
    """Tokens [len(jobs) * num_videos, t, h, w] for jobs with one group key (so one `mask`, of
    task inpainting), in one call; job k's rows are k*n .. k*n+n-1 and equal
    `generator.generate` of that job alone (one seed per job)."""
    first = jobs[0]
    video = np.stack(clips) if clips[0] is not None else None
    classes = [j.class_id for j in jobs] if jobs[0].class_id is not None else None
    settings = {k: v for k, v in first.settings().items() if k != "seed"}
    return generator.generate_tokens(first.task, video, classes, seed=[j.seed for j in jobs], **settings,
                                     **first.extent(), **({} if mask is None else {"mask": mask}))


# --------------------------------------------------------------------------- running


@dataclasses.dataclass
class Summary:
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    report: str = ""
    shard: tuple[int, int] = (0, 1)
    seconds: float = 0.0
    stopped: bool = False           # --fail-fast or a signal stopped the run early
    interrupted: str | None = None  # the signal that stopped it: "SIGINT" or "SIGTERM"

    def as_dict(self) -> dict:
        return {"ok": self.ok, "failed": self.failed, "skipped": self.skipped, "report": self.report,
                "shard": list(self.shard), "seconds": round(self.seconds, 3), "stopped": self.stopped,
                "interrupted": self.interrupted}


class Runner:
    """Runs groups of jobs on one Generator and appends their report lines."""

    def __init__(self, generator, facts: ModelFacts, out: Path, report: ReportWriter, plan: Plan,
                 progress: Progress, log: Callable[[str], None]):
        self.generator, self.facts, self.out, self.report = generator, facts, out, report
        self.plan, self.progress, self.log = plan, progress, log
        self.provider = generator.providers[0] if generator is not None else None
        self._lock = threading.Lock()
        self.ok = self.failed = 0
        self._recorded: set[str] = set()
        self.stop = threading.Event()   # set by a signal: start no further job
        self.interrupted: str | None = None

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
                "config": self.plan.configs[job.id], "decoding": self.facts.decoding_choice,
                "input_stat": input_stat(job.input), "error": error,
                "shard": list(self.plan.shard), "finished": time.time()}

    def record(self, row: dict, videos: int) -> None:
        """Append the line (outputs are already in place) and count it."""
        self.report.append(row)
        failed = row["status"] != "ok"
        with self._lock:
            self.failed += failed
            self.ok += not failed
            if row["id"] is not None:
                self._recorded.add(row["id"])
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

    def fail(self, job: Job, error: BaseException | str, doing: str = "write", **kwargs) -> None:
        text = error if isinstance(error, str) else describe(error, doing)
        self.record(self.row(job, status="error", error=text, **kwargs), job.num_videos)

    def interrupt(self, name: str) -> None:
        """Stop starting jobs (a signal handler calls this: it only sets flags)."""
        if not self.stop.is_set():
            self.interrupted = name
            self.stop.set()

    def run_group(self, jobs: list[Job]) -> bool:
        """Read inputs, generate, write and report one group; returns False if any job failed.
        An unexpected error fails every job of the group that has no report line yet, so no job
        is ever lost without a line; a report that cannot be written (RunError) ends the run."""
        try:
            return self._run_group(jobs)
        except RunError:
            raise
        except Exception as e:  # noqa: BLE001
            for job in jobs:
                if job.id not in self._recorded:
                    self.fail(job, e, doing="run")
            return False

    def _run_group(self, jobs: list[Job]) -> bool:
        from magvit_onnx import video as videoio
        from magvit_onnx.runtime import tasks as task_registry

        if self.stop.is_set():
            return True  # interrupted before this group started: its jobs stay pending for a rerun

        frames, height, width = self.facts.video_shape
        ready, clips, reads, masks = [], [], {}, {}
        all_ok = True
        for job in jobs:
            started = time.monotonic()
            if job.input is None and not job.keys:
                ready.append(job)
                clips.append(None)
                reads[job.id] = 0.0
                continue
            try:
                if job.keys:  # key images: the first frame of each file
                    clip = np.concatenate([videoio.read_video(key, num_frames=1, size=(height, width))
                                           for key in job.keys])
                else:
                    clip = videoio.read_video(job.input, num_frames=frames, size=(height, width),
                                              stride=job.stride or 1, fps=job.fps, start=job.start or 0,
                                              min_frames=task_registry.frames_needed(job.task, frames))
                if job.mask is not None:  # read like the input, and checked: a bad mask fails as this job's read
                    masks[job.id] = job.mask.read(self.facts.video_shape, self.facts.latent_shape,
                                                  stride=job.stride or 1, fps=job.fps, start=job.start or 0)
            except Exception as e:  # noqa: BLE001 - one job's bad input must not stop the others
                error = describe(e, "read")
                if isinstance(e, videoio.TooFewFrames):
                    error += (f"; the model reads {frames}-frame clips (only frame prediction, FP and CFP, "
                              "reads just the first frame and takes shorter videos or a still image)")
                self.fail(job, error, seconds={"read": round(time.monotonic() - started, 4)})
                all_ok = False
                continue
            ready.append(job)
            clips.append(clip)
            reads[job.id] = time.monotonic() - started
        if not ready:
            return all_ok
        started = time.monotonic()
        try:
            tokens = generate_tokens(self.generator, ready, clips, masks.get(ready[0].id))
        except Exception as e:  # noqa: BLE001
            if len(ready) > 1:  # find out which job it was: run them one by one
                for job, clip in zip(ready, clips):
                    if not self.stop.is_set():
                        all_ok &= self._run_single(job, clip, reads[job.id], masks.get(job.id))
                return all_ok
            self.fail(ready[0], e, doing="generate", seconds={"read": round(reads[ready[0].id], 4)}, batch=1)
            return False
        generate_seconds = time.monotonic() - started
        n = ready[0].num_videos
        for k, (job, clip) in enumerate(zip(ready, clips)):
            all_ok &= self._finish(job, clip, tokens[k * n:(k + 1) * n], reads[job.id], generate_seconds, len(ready),
                                   masks.get(job.id))
        return all_ok

    def _run_single(self, job: Job, clip, read_seconds: float, mask: np.ndarray | None) -> bool:
        started = time.monotonic()
        try:
            tokens = generate_tokens(self.generator, [job], [clip], mask)
        except Exception as e:  # noqa: BLE001
            self.fail(job, e, doing="generate", seconds={"read": round(read_seconds, 4)}, batch=1)
            return False
        return self._finish(job, clip, tokens, read_seconds, time.monotonic() - started, 1, mask)

    def _finish(self, job: Job, clip, tokens, read_seconds: float, generate_seconds: float, batch: int,
                mask: np.ndarray | None = None) -> bool:
        """Decode (per job, as Generator.generate does), write, hash and report one generated job."""
        from magvit_onnx.generator import to_uint8
        from magvit_onnx.runtime import tasks as task_registry
        from magvit_onnx.runtime.artifacts import sha256

        started = time.monotonic()
        seconds = {"read": round(read_seconds, 4), "generate": round(generate_seconds, 4)}
        try:
            videos = panels = None
            if job.format != "npy":
                # per job, as Generator.generate decodes (and cuts a long clip to its whole frames)
                videos = self.generator.decode(tokens)[:, :job.output_frames(self.facts.video_shape[0])]
                region = {} if mask is None else {"mask": mask}
                if job.replace_condition_pixels:
                    inputs = np.repeat(clip[None], len(videos), axis=0)
                    videos = task_registry.replace_condition_pixels(videos, job.task, inputs, self.facts.latent_shape,
                                                                    **region)
                if job.side_by_side:
                    if clip is None:
                        blank = np.zeros_like(videos[0])
                        panels = (blank, blank)
                    else:
                        condition = task_registry.condition(job.task, clip[None].astype(np.float32) / 255.0,
                                                            self.facts.latent_shape, **region)["video"][0]
                        panels = (clip, to_uint8(condition))
            seconds["decode"] = round(time.monotonic() - started, 4)
            started = time.monotonic()
            paths = write_outputs(job, self.out, self.facts.video_shape[0], tokens, videos, panels)
            outputs = [{"path": p.name, "sha256": sha256(p)} for p in paths]
            fsync_folder(self.out)
        except Exception as e:  # noqa: BLE001
            phase = "write" if "decode" in seconds else "decode"
            seconds[phase] = round(time.monotonic() - started, 4)
            self.fail(job, e, doing=phase, seconds=seconds, batch=batch)
            return False
        seconds["write"] = round(time.monotonic() - started, 4)
        seconds["total"] = round(sum(seconds.values()), 4)
        self.record(self.row(job, status="ok", outputs=outputs, seconds=seconds, batch=batch), job.num_videos)
        return True


def check_jobs_file(path: Path) -> None:
    """JOBS must be a regular file; RunError (usage, exit 2) naming what it is otherwise (a
    device such as /dev/zero never ends, a FIFO blocks until someone writes to it)."""
    try:
        mode = path.stat().st_mode
    except OSError as e:
        raise RunError(f"JOBS {path}: {'no such file' if isinstance(e, FileNotFoundError) else e.strerror or e}",
                       exit_code=2) from None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                                              (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                                              (stat.S_ISSOCK, "a socket")) if test(mode)), "not a regular file")
        raise RunError(f"JOBS {path}: {kind}, not a file; give a JSONL file with one job per line", exit_code=2)


def open_out(out: str | os.PathLike, shard: tuple[int, int]) -> tuple[Path, ReportWriter]:
    """Create --out and open this shard's report in it; raises RunError (usage, exit 2) when
    the folder cannot be made or written, and (exit 1) while a run with another shard count
    writes to it: its shards would overlap this run's, so both would do the same jobs."""
    try:
        out = writable_folder(out)
    except OSError as e:
        raise RunError(unwritable(out, e), exit_code=2) from None
    try:
        report = ReportWriter(out / report_name(*shard))
    except OSError as e:  # the folder is fine: its report is not a file that can be opened (a folder, ...)
        raise RunError(f"--out {out}: its report {report_name(*shard)} cannot be opened "
                       f"({e.strerror or e}); move that away or give another --out", exit_code=2) from None
    try:
        check_no_other_shard_count(out, shard[1])
    except RunError:
        report.close()
        raise
    return out, report


def check_no_other_shard_count(out: Path, count: int) -> None:
    """Raise RunError if a report of another shard count in `out` is locked by a live run.
    Every run locks its own report first, so of two runs starting together at least one sees
    the other."""
    import fcntl

    for path in report_files(out):
        match = re.fullmatch(r"report\.shard-\d+-of-(\d+)\.jsonl", path.name)
        if (int(match[1]) if match else 1) == count:
            continue
        try:
            with open(open_plain(path), "rb") as other:
                fcntl.flock(other.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(f"{path} is being written by a run with another shard count; runs with different "
                           f"--shard counts on one --out would do jobs twice: wait for it to end, or use another "
                           "--out") from None
        except OSError:
            continue  # not a plain report file: not a run's


@contextlib.contextmanager
def stop_on_signals(runner: "Runner") -> Iterator[None]:
    """While running: SIGINT (Ctrl-C) and SIGTERM (Slurm, Kubernetes) start no further job; the
    jobs being generated finish and get their report lines. Once a signal stopped the run,
    repeated ones stay ignored (the process is finishing: a second Ctrl-C must not cut off
    its summary); otherwise the previous handlers come back. Only the main thread can install
    handlers; elsewhere (a library caller's thread) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = [signal.SIGINT, signal.SIGTERM]
    previous = {s: signal.signal(s, lambda number, frame: runner.interrupt(signal.Signals(number).name))
                for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_IGN if runner.interrupted else handler)


def run(jobs_path: str | os.PathLike, out: str | os.PathLike, *, artifacts=None, providers="cpu",
        batch_size: int = 1, shard: tuple[int, int] = (0, 1), fail_fast: bool = False, workers: int = 1,
        progress: Progress | None = None, log: Callable[[str], None] | None = None,
        generator_factory: Callable[[], Any] | None = None, decoding: str = "model") -> Summary:
    """Run this shard's jobs of JOBS into `out` (see the `magvit_onnx.batch` docstring). Returns a Summary;
    raises RunError for problems of the whole run (exit_code 2: usage, 1: model or report)."""
    from magvit_onnx.runtime.artifacts import ArtifactError
    try:
        from magvit_onnx.runtime.providers import ProviderError
    except ImportError as e:  # onnxruntime, an extra, is missing: the error names it
        raise RunError(str(e)) from None

    began = time.monotonic()
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    if batch_size < 1 or workers < 1:
        raise RunError(f"--batch-size and --workers must be >= 1, got {batch_size} and {workers}", exit_code=2)
    jobs_path = Path(jobs_path)
    check_jobs_file(jobs_path)
    out, report = open_out(out, shard)
    report_path = report.path
    try:
        facts = ModelFacts.load(artifacts, decoding)
        the_plan = plan(jobs_path, out, facts, shard)
        generator = None
        if the_plan.pending:  # a model that cannot be used fails the run before any line is written
            if generator_factory is not None:
                generator = generator_factory()
            else:
                from magvit_onnx.generator import Generator

                generator = Generator(facts.folder, providers, decoding=decoding)
    except (ArtifactError, ProviderError) as e:
        report.close()
        raise RunError(e.command_line() if isinstance(e, ProviderError) else str(e)) from None
    except OSError as e:
        report.close()
        raise RunError(f"JOBS {jobs_path}: cannot read ({e.strerror or e})", exit_code=2) from None
    except BaseException:
        report.close()
        raise
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
    failure = None
    try:
        with stop_on_signals(runner):
            summary.stopped = runner.record_invalid_lines(fail_fast)
            if not summary.stopped:
                summary.stopped = _run_groups(runner, groups(the_plan.pending, batch_size, facts),
                                              workers, fail_fast)
    except RunError as e:  # the report itself could not be appended: say what was done, then stop
        failure = e
    finally:
        progress.close()
        report.close()
    finish(summary, runner, began, report_path, log, "run")
    if failure is not None:
        raise failure
    return summary


def finish(summary: "Summary", runner: "Runner", began: float, report_path: Path, log, label: str) -> "Summary":
    """Fill in the summary of a finished run (local or Ray) and log its closing line."""
    summary.ok, summary.failed = runner.ok, runner.failed
    summary.seconds = time.monotonic() - began
    summary.interrupted = runner.interrupted
    summary.stopped |= runner.interrupted is not None
    why = (f" (stopped by {runner.interrupted}: the jobs already started were finished; rerun to do the rest)"
           if runner.interrupted else " (stopped at the first failure: --fail-fast)" if summary.stopped else "")
    log(f"{label}: {summary.ok} ok, {summary.failed} failed, {summary.skipped} already done{why}"
        f" in {summary.seconds:.1f} s; report: {report_path}")
    return summary


def _run_groups(runner: Runner, batches: Iterator[list[Job]], workers: int, fail_fast: bool) -> bool:
    """Run the groups (in `workers` threads sharing one Generator); True if --fail-fast stopped it.
    A signal (runner.stop) starts no further group; every group's result is collected, so an
    error of the run (RunError) raised in a worker ends the run here."""
    if workers == 1:
        for group in batches:
            if runner.stop.is_set():
                break
            if not runner.run_group(group) and fail_fast:
                return True
        return False
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    stop = False
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="magvit-run") as pool:
        running: set = set()
        submitted_all = False
        try:
            for group in batches:
                while len(running) >= 2 * workers and not runner.stop.is_set():  # only a few groups in memory
                    finished, running = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                    stop |= not all([f.result() for f in finished]) and fail_fast
                if stop or runner.stop.is_set():
                    break
                running.add(pool.submit(runner.run_group, group))
            else:
                submitted_all = True
        finally:
            if not submitted_all:  # stopping: queued groups do not start; running ones finish, recorded
                for future in running:
                    future.cancel()
            results = [f.result() for f in running if not f.cancelled()]
        stop |= fail_fast and not all(results)
    return stop
