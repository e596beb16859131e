"""`magvit-onnx run --ray`: the same jobs, outputs and report as `magvit_onnx.batch`, on Ray Data.

    pip install "magvit-onnx[ray]"
    magvit-onnx run jobs.jsonl --out results/ --artifacts artifacts/tiny --ray --workers 4 --gpus-per-worker 1

The driver reads and validates JOBS, keeps this shard's lines and skips finished jobs
exactly as `batch.run` does (so `--shard`, reruns and the report are unchanged), and forms
the same groups (`batch.groups`): the decoder's floats depend, in their last bits, on the
batch a clip is decoded in, so only the same groups give byte-identical outputs. The groups
become a Ray Dataset (`ray.data.from_items`, one row per group) and go through
`map_batches` with `RayWorker`, a callable class: Ray runs it as `--workers` stateful
actors, each holding one Generator (one set of ONNX Runtime sessions; with
`--gpus-per-worker 1` Ray sets CUDA_VISIBLE_DEVICES per actor, so 'cuda' means that actor's
GPU). A worker runs its groups with `batch.Runner` (same per-job random streams, same
atomic writes into --out, which must be storage every worker can reach) and returns one
report row per job; the driver streams the rows back and appends them to the shard's
report (flushed and fsynced), so a killed run resumes like a local one.

A signal (or --fail-fast's first failure) sets `StopFlag`, a small Ray actor every worker
asks before each group: no group starts after it, the groups already running finish, and
the driver records all their rows before it stops. So every output written has its report
line, and a rerun does only the jobs that never ran.

Groups travel to the workers pickled (`pack` / `unpack`), as Ray pickles everything it
sends: every field of a `Job` arrives as it was (paths, the key images' tuple, any key
added later), with no per-field conversion to forget.

Why not `ray.data.read_json`: a malformed line would fail the whole read instead of
becoming that line's error, and duplicate ids and line numbers need the whole file; the
driver reads JOBS once (it is small next to the videos) and Ray gets validated jobs.

Ray connects to the cluster named by RAY_ADDRESS, else starts a local instance.
"""
from __future__ import annotations

import json
import os
import pickle
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from magvit_onnx import batch


def pack(group: list[batch.Job]) -> bytes:
    """One group of jobs as a Ray Dataset cell (see the module docstring)."""
    return pickle.dumps(group, protocol=pickle.HIGHEST_PROTOCOL)


def unpack(cell: bytes) -> list[batch.Job]:
    """The jobs of `pack`; the driver made the cell, so unpickling trusts nothing new."""
    return pickle.loads(cell)


class _Rows:
    """Stands in for the ReportWriter inside a worker: collects the rows."""

    def __init__(self):
        self.rows: list[dict] = []

    def append(self, row: dict) -> None:
        self.rows.append(row)


class _Quiet:
    def advance(self, videos: int, failed: bool = False) -> None:
        pass

    def message(self, line: str) -> None:
        pass


class StopFlag:
    """Run as a Ray actor: the driver sets it to stop the run; workers read it before each group."""

    def __init__(self):
        self.value = False

    def set(self) -> None:
        self.value = True

    def is_set(self) -> bool:
        return self.value


class RayWorker:
    """A Ray Data callable class: one Generator per actor; groups of jobs in, report rows out."""

    def __init__(self, artifacts: str | None, providers: str, out: str, shard: tuple[int, int],
                 configs: dict[str, str], stop, decoding: str = "model"):
        from magvit_onnx.generator import Generator

        self.stop = stop
        self.facts = batch.ModelFacts.load(artifacts, decoding)
        self.generator = Generator(self.facts.folder, providers, decoding=decoding)
        self.out = Path(out)
        self.plan = batch.Plan(tuple(shard), [], [], [], [], configs)

    def __call__(self, rows: dict[str, Any]) -> dict[str, list]:
        import ray

        collected = _Rows()
        runner = batch.Runner(self.generator, self.facts, self.out, collected, self.plan, _Quiet(), lambda line: None)
        for cell in rows["group"]:
            group = unpack(cell)
            if ray.get(self.stop.is_set.remote()):
                break  # the run is stopping: these jobs stay pending for a rerun
            runner.run_group(group)
        return {"row": [json.dumps(row) for row in collected.rows]}


def run_ray(jobs_path: str | os.PathLike, out: str | os.PathLike, *, artifacts=None, providers="cpu",
            batch_size: int = 1, shard: tuple[int, int] = (0, 1), fail_fast: bool = False, workers: int = 1,
            gpus_per_worker: float = 0.0, progress: batch.Progress | None = None,
            log: Callable[[str], None] | None = None, decoding: str = "model") -> batch.Summary:
    """`batch.run` on Ray Data (see the module docstring); same Summary and RunError."""
    try:
        import ray
    except ImportError:
        raise batch.RunError("--ray needs Ray Data: pip install 'magvit-onnx[ray]'", exit_code=2) from None
    from magvit_onnx.runtime.artifacts import ArtifactError

    began = time.monotonic()
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    jobs_path = Path(jobs_path)
    batch.check_jobs_file(jobs_path)
    out, report = batch.open_out(out, shard)
    try:
        facts = batch.ModelFacts.load(artifacts, decoding)
        the_plan = batch.plan(jobs_path, out, facts, shard)
    except ArtifactError as e:
        report.close()
        raise batch.RunError(str(e)) from None
    names = {n for j in the_plan.jobs for n in j.output_names(facts.video_shape[0])}
    batch.remove_stale_temporaries(out, names)
    summary = batch.Summary(skipped=len(the_plan.done), report=str(report.path), shard=shard)
    progress = progress or batch.Progress(sum(j.num_videos for j in the_plan.pending))
    runner = batch.Runner(None, facts, out, report, the_plan, progress, log)
    progress.message(f"run (ray): {len(the_plan.pending)} jobs to run, {len(the_plan.done)} already done, "
                     f"{len(the_plan.invalid)} invalid (shard {shard[0]}/{shard[1]}, batch size {batch_size}, "
                     f"{workers} workers) -> {report.path}")
    failure = None
    try:
        with batch.stop_on_signals(runner):
            summary.stopped = runner.record_invalid_lines(fail_fast)
            if the_plan.pending and not summary.stopped:
                summary.stopped = _run_on_ray(ray, runner, the_plan, facts, artifacts, providers, out, shard,
                                              batch_size, workers, gpus_per_worker, fail_fast)
    except batch.RunError as e:  # the report could not be appended
        failure = e
    finally:
        progress.close()
        report.close()
    batch.finish(summary, runner, began, report.path, log, "run (ray)")
    if failure is not None:
        raise failure
    return summary


def _run_on_ray(ray, runner: batch.Runner, the_plan: batch.Plan, facts: batch.ModelFacts, artifacts, providers: str,
                out: Path, shard: tuple[int, int], batch_size: int, workers: int, gpus_per_worker: float,
                fail_fast: bool) -> bool:
    """Generate the pending jobs on Ray actors and record their rows as they come back; True
    if --fail-fast stopped the run. A signal or that failure sets the workers' StopFlag; the
    rows of the groups already running are still recorded (see the module docstring)."""
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=False)
    stop = ray.remote(StopFlag).remote()
    finished = threading.Event()
    threading.Thread(target=_forward_stop, args=(runner.stop, stop, finished), daemon=True).start()
    dataset = ray.data.from_items([{"group": pack(group)}
                                   for group in batch.groups(the_plan.pending, batch_size, facts)])
    results = dataset.map_batches(
        RayWorker, batch_size=1, concurrency=workers, num_gpus=gpus_per_worker or None,
        fn_constructor_kwargs={"artifacts": None if artifacts is None else str(facts.folder),
                               "providers": providers, "out": str(out), "shard": list(shard),
                               "configs": the_plan.configs, "stop": stop,
                               "decoding": facts.decoding_choice})
    failed_fast = False
    try:
        for item in results.iter_rows():
            row = json.loads(item["row"])
            runner.provider = runner.provider or row.get("provider")
            runner.record(row, row.get("num_videos") or 0)
            if fail_fast and row["status"] != "ok" and not failed_fast:
                failed_fast = True
                runner.stop.set()
    finally:
        finished.set()
    return failed_fast


def _forward_stop(stop: threading.Event, flag, finished: threading.Event) -> None:
    """Set the workers' flag as soon as the driver is told to stop (by a signal or --fail-fast)."""
    while not finished.is_set():
        if stop.wait(0.2):
            flag.set.remote()
            return
