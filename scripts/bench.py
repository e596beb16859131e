#!/usr/bin/env python
"""Benchmark ONNX Runtime against the PyTorch reference, side by side, on the same inputs.

    python scripts/bench.py --quick --json /tmp/bench.json    # tiny, batch 1, 2 steps, FP + CG: < 1 min
    python scripts/bench.py --presets tiny --json scripts/bench_cpu.json   # tiny, batch 1 and 2, ten tasks
    python scripts/bench.py                                    # tiny and B, batch 1 and 2, ten tasks

What is timed, per preset and batch size (random weights, `seeded_random_models(config, 0)`):
  - each graph alone: vq_encoder (video -> tokens), transformer_step (one COMMIT step with
    sampling, no guidance), vq_decoder (tokens -> video);
  - whole generations, one per task: `pipeline.generate(task, ...)` = encode the condition,
    `--steps` COMMIT steps, decode. ONNX Runtime runs `Pipeline.from_artifacts(...)`, the
    reference runs `export.reference.reference_pipeline(...)`: the same generation code,
    only the engine differs.

Backends: `ort` (the exported graphs in ONNX Runtime), `ort_int8` (the same export with the
transformer step's MatMuls dynamically quantised to int8, `export_all.py --int8`; off with
--no-int8), `torch_eager` (the modules they were
exported from, under torch.inference_mode) and `torch_compile` (the same modules through
`torch.compile`; a failure, or a call (the first one compiles) longer than --compile-timeout,
is recorded as an error in the JSON instead of a number).

Method:
  - Every backend runs in its own fresh process per preset and batch size. Peak memory is
    that process's VmHWM (peak RSS of its own address space, from /proc/self/status),
    read at the end; ru_maxrss is not used because Linux carries the parent's peak over
    into a spawned child. The ort process never imports torch. On CUDA, device memory is
    torch.cuda.max_memory_allocated for torch and the process's nvidia-smi usage for ort.
  - Rounds alternate: for each round, for each item, ort, torch_eager, torch_compile in
    turn. --warmup untimed rounds first (compilation, allocations), then --repeats timed
    rounds, so every item's samples are spread over the whole run (the box is noisy).
    The backend process times its own call with time.perf_counter.
  - Reported per item: wall-clock median, min, max and quartiles in ms; cpu_median_ms, the
    process CPU time of the call over all its threads (less sensitive than wall time to
    other load on the box, but it counts spin-waiting); speedup = torch median / ort median
    (> 1: ONNX Runtime is faster; `int8_speedup_...` the same for ort_int8), and `..._by_min` =
    torch min / ort min, the estimate least
    disturbed by other processes; max_abs_diff of each backend's output against torch_eager
    (0 where tokens agree). Per setting, `speedup_vs_torch_eager` is the geometric mean of
    the tasks' whole-generation speedups (likewise `speedup_vs_torch_eager_by_min`).
  - python_overhead_pct (ort backends, whole generations): the share of the call's wall time
    spent outside ONNX Runtime's session runs (the numpy COMMIT loop, feeds, masking).

On a machine shared with other jobs, torch's OpenMP threads spin-wait at barriers and can
stall a call by about a second (seen on the 2-core bench box: a 50 ms tiny step took 1080 ms);
OMP_WAIT_POLICY=PASSIVE gives a torch baseline free of that. The OMP_/GOMP_/KMP_/MKL_
environment is recorded in the JSON, with the load average at start and end.

Exported artifacts are cached in --cache-dir (default ~/.cache/magvit-onnx-bench) under
`<preset>-<hash>`, the hash covering the export/ and models/ sources and the torch version.
Progress goes to stderr, the table to stdout, the JSON to --json (rewritten after every
setting, so an interrupted run keeps what it measured).
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import importlib.util
import json
import math
import multiprocessing
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from magvit_onnx.models.config import PRESETS, MagvitConfig, get_config
from magvit_onnx.runtime import tasks
from magvit_onnx.runtime.artifacts import GRAPHS, ArtifactError, load_manifest
from magvit_onnx.runtime.masking import MASK_TOKEN

SEED = 0  # random weights, inputs and generation seed: both backends get the same
BACKENDS = ("ort", "ort_int8", "torch_eager", "torch_compile")
ORT_BACKENDS = ("ort", "ort_int8")
SPEEDUP_PREFIX = {"ort": "", "ort_int8": "int8_"}  # ort's keys stay `speedup_vs_torch_eager`
SETTLE_S = 0.05  # pause before each timed call, so the previous backend's spinning threads go idle
DEFAULTS = {"presets": "tiny,B", "batch_sizes": "1,2", "tasks": "all", "steps": 12, "repeats": 5, "warmup": 1,
            "compile": True, "int8": True}
QUICK = {"presets": "tiny", "batch_sizes": "1", "tasks": "frame_prediction,full_generation", "steps": 2,
         "repeats": 2, "warmup": 1, "compile": False, "int8": True}
START = time.perf_counter()


def progress(message: str) -> None:
    print(f"[bench {time.perf_counter() - START:7.1f}s] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- options

def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", help=f"comma-separated presets of {sorted(PRESETS)} (default {DEFAULTS['presets']})")
    p.add_argument("--batch-sizes", help=f"comma-separated batch sizes (default {DEFAULTS['batch_sizes']})")
    p.add_argument("--tasks", help="comma-separated task ids or abbreviations (FP, CG, ...), or 'all' (default)")
    p.add_argument("--steps", type=int, help=f"COMMIT steps per generation (default {DEFAULTS['steps']})")
    p.add_argument("--repeats", type=int, help=f"timed rounds (default {DEFAULTS['repeats']})")
    p.add_argument("--warmup", type=int, help=f"untimed rounds first, >= 1 (default {DEFAULTS['warmup']})")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                   help="torch.set_num_threads and ORT intra_op_num_threads (default: all usable cores)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction,
                   help="also measure torch.compile (default on; off with --quick)")
    p.add_argument("--int8", action=argparse.BooleanOptionalAction,
                   help="also measure the int8 step graph (ort_int8; default on)")
    p.add_argument("--compile-timeout", type=float, default=600.0,
                   help="seconds a torch.compile'd call (the first one compiles) may take before torch_compile is "
                        "recorded as too slow and stopped (default 600)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cpu (ORT CPU EP, torch CPU) or cuda (ORT CUDA EP, torch cuda); default cpu")
    p.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "magvit-onnx-bench",
                   help="where exported artifacts are cached (default ~/.cache/magvit-onnx-bench)")
    p.add_argument("--json", type=Path, help="write the results as JSON to this path")
    p.add_argument("--quick", action="store_true",
                   help="small run, well under a minute: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()))
    args = p.parse_args(argv)

    for key, value in (QUICK if args.quick else DEFAULTS).items():  # explicit options win over --quick
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.presets = split_list(p, "--presets", args.presets)
    for name in args.presets:
        if name not in PRESETS:
            p.error(f"--presets: unknown preset {name!r}; valid presets are {', '.join(sorted(PRESETS))}")
    try:
        args.batch_sizes = [int(b) for b in split_list(p, "--batch-sizes", args.batch_sizes)]
    except ValueError:
        p.error(f"--batch-sizes: expected comma-separated integers, got {args.batch_sizes!r}")
    if args.tasks == "all":
        args.tasks = list(tasks.TASKS)
    else:
        try:
            args.tasks = [tasks.get_task(name).name for name in split_list(p, "--tasks", args.tasks)]
        except ValueError as e:
            p.error(f"--tasks: {e}")
    for option, values, low in (("--batch-sizes", args.batch_sizes, 1), ("--steps", [args.steps], 1),
                                ("--repeats", [args.repeats], 1), ("--warmup", [args.warmup], 1),
                                ("--threads", [args.threads], 1), ("--compile-timeout", [args.compile_timeout], 1)):
        if any(v < low for v in values):
            p.error(f"{option} must be >= {low}, got {', '.join(map(str, values))}")
    if args.device == "cuda":
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            p.error(f"--device cuda: onnxruntime {onnxruntime.__version__} has no CUDAExecutionProvider "
                    "(install onnxruntime-gpu instead of onnxruntime)")
    if args.json is not None and not args.json.parent.is_dir():
        p.error(f"--json: folder {args.json.parent} does not exist")
    return args


def split_list(parser: argparse.ArgumentParser, option: str, text: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        parser.error(f"{option}: expected a comma-separated list, got {text!r}")
    return items


# ----------------------------------------------------------------------------- artifacts

def artifacts_folder(cache_dir: Path, preset: str, int8: bool = False) -> Path:
    """Cache folder of a preset's artifacts: keyed by the export/ and models/ sources and torch."""
    digest = hashlib.sha256(f"seed={SEED} torch={importlib.metadata.version('torch')}".encode())
    for package in ("magvit_onnx.export", "magvit_onnx.models"):
        for source in sorted(Path(importlib.util.find_spec(package).submodule_search_locations[0]).glob("*.py")):
            digest.update(source.name.encode() + source.read_bytes())
    return cache_dir / f"{preset}{'-int8' if int8 else ''}-{digest.hexdigest()[:16]}"


def ensure_artifacts(cache_dir: Path, preset: str, int8: bool = False) -> tuple[Path, float | None]:
    """The preset's artifacts folder, exported unless a verified one is cached; export seconds or None."""
    folder = artifacts_folder(cache_dir, preset, int8)
    try:
        load_manifest(folder)
        progress(f"{preset}: cached artifacts {folder}")
        return folder, None
    except ArtifactError:
        pass
    progress(f"{preset}: exporting random-weight{' int8' if int8 else ''} artifacts to {folder} "
             "(once per source version) ...")
    import logging

    from magvit_onnx.export.exporter import export_all, seeded_random_models

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed" chatter
    start = time.perf_counter()
    config = get_config(preset)
    cache_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=cache_dir))  # renamed when complete
    export_all(config, *seeded_random_models(config, SEED), scratch, int8=int8,
               weights={"path": None, "sha256": None, "random_init": True, "seed": SEED})
    shutil.rmtree(folder, ignore_errors=True)
    scratch.rename(folder)
    seconds = time.perf_counter() - start
    progress(f"{preset}: exported in {seconds:.0f} s")
    return folder, seconds


# ----------------------------------------------------------------------------- inputs

@dataclass
class Inputs:
    """The same inputs for every backend, drawn from SEED."""

    video: np.ndarray       # [B, T, H, W, 3] float32 in [0, 1]
    tokens: np.ndarray      # [B, t, h, w] int64, decoder input
    step_feeds: dict        # transformer_step inputs: a first step (all MASK) of full_generation
    class_ids: np.ndarray   # [B]


def make_inputs(config: MagvitConfig, batch: int) -> Inputs:
    rng = np.random.default_rng(SEED)
    n = config.vq.num_tokens
    class_ids = np.arange(batch) % config.num_classes
    feeds = {"tokens": np.full((batch, n), MASK_TOKEN, np.int64),
             "prefix": tasks.prefix("full_generation", config.vocab, batch, class_ids).astype(np.int64),
             "segment_ids": np.zeros((batch, n), np.int64),
             "seeds": rng.integers(0, 2 ** 31 - 1, (batch, n), dtype=np.int64),
             "temperature": np.array(1.0, np.float32), "top_k": np.array(0, np.int64),
             "top_p": np.array(0.0, np.float32), "guidance_scale": np.array(0.0, np.float32)}
    return Inputs(video=rng.random((batch, *config.vq.video_shape, 3), dtype=np.float32),
                  tokens=rng.integers(0, config.vq.codebook_size, (batch, *config.vq.latent_shape)),
                  step_feeds=feeds, class_ids=class_ids)


def benchmark_calls(pipeline, config: MagvitConfig, batch: int, steps: int) -> dict:
    """Item name -> zero-argument call: the three graphs, then one whole generation per task."""
    engine, inputs = pipeline.engine, make_inputs(config, batch)
    calls = {"vq_encoder": lambda: engine.encode(inputs.video),
             "transformer_step": lambda: engine.run_step(inputs.step_feeds),
             "vq_decoder": lambda: engine.decode(inputs.tokens)}
    for name, task in tasks.TASKS.items():
        condition = {"video": inputs.video if task.needs_video else None,
                     "class_ids": inputs.class_ids if task.class_conditional else None}
        calls[name] = lambda name=name, condition=condition: pipeline.generate(name, **condition, steps=steps,
                                                                               seed=SEED)
    return calls


# ----------------------------------------------------------------------------- backend processes

def load_pipeline(backend: str, folder: Path, threads: int, device: str):
    """The backend's Pipeline. Imports torch only for the torch backends."""
    if backend in ORT_BACKENDS:
        from magvit_onnx.runtime.pipeline import Pipeline

        return Pipeline.from_artifacts(folder, providers=device, intra_op_num_threads=threads)
    import torch

    from magvit_onnx.export.exporter import seeded_random_models
    from magvit_onnx.export.reference import reference_pipeline

    torch.set_num_threads(threads)
    config = MagvitConfig.from_dict(load_manifest(folder, verify=False)["config"])
    pipeline = reference_pipeline(config, *seeded_random_models(config, SEED), device=device)
    if backend == "torch_compile":
        engine = pipeline.engine
        engine.encoder, engine.step, engine.decoder = (torch.compile(m) for m in
                                                       (engine.encoder, engine.step, engine.decoder))
    return pipeline


def memory_report(backend: str, device: str) -> dict:
    """Peak RSS of this process (VmHWM) and its current RSS, in MB; device memory on CUDA."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    report = {"peak_rss_mb": int(status["VmHWM"].split()[0]) / 1024, "rss_mb": int(status["VmRSS"].split()[0]) / 1024}
    if device == "cuda":
        report["device_memory_mb"] = device_memory_mb(backend)
    return report


def device_memory_mb(backend: str) -> float | None:
    """torch: peak allocated by the caching allocator; ort: this process's use per nvidia-smi (ORT's
    arena does not shrink, so current use is its peak). Untested here: no GPU on the bench box."""
    if backend not in ORT_BACKENDS:
        import torch

        return torch.cuda.max_memory_allocated() / 2 ** 20
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    used = [float(mb) for pid, mb in (line.split(",") for line in out.splitlines() if "," in line)
            if int(pid) == os.getpid()]
    return sum(used) if used else None


class EngineClock:
    """Wraps an engine's encode / run_step / decode and adds up the seconds spent inside them."""

    def __init__(self, engine):
        self.seconds = 0.0
        for name in ("encode", "run_step", "decode"):
            setattr(engine, name, self.timed(getattr(engine, name)))

    def timed(self, method):
        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
        return call


def backend_main(conn, backend: str, folder: Path, batch: int, steps: int, threads: int, device: str) -> None:
    """A backend's process: load, then answer ("run", item, want_output) and ("stop",) messages."""
    try:
        start = time.perf_counter()
        pipeline = load_pipeline(backend, folder, threads, device)
        clock = EngineClock(pipeline.engine)
        config = MagvitConfig.from_dict(load_manifest(folder, verify=False)["config"])
        calls = benchmark_calls(pipeline, config, batch, steps)
        conn.send(("ok", {"load_s": time.perf_counter() - start, **memory_report(backend, device)}))
    except Exception as e:  # noqa: BLE001 - reported to the parent, which decides
        conn.send(("error", f"loading failed: {type(e).__name__}: {e}"[:1000]))
        return
    while True:
        message = conn.recv()
        if message[0] == "stop":
            conn.send(("ok", memory_report(backend, device)))
            return
        _, item, want_output = message
        try:
            time.sleep(SETTLE_S)
            clock.seconds = 0.0
            wall, cpu = time.perf_counter(), time.process_time()
            output = calls[item]()
            seconds = (time.perf_counter() - wall, time.process_time() - cpu, clock.seconds)
        except Exception as e:  # noqa: BLE001
            conn.send(("error", f"{item}: {type(e).__name__}: {e}"[:1000]))
            continue
        conn.send(("ok", (seconds, output if want_output else None)))


class BackendError(RuntimeError):
    pass


class Backend:
    """Parent-side handle of one backend process."""

    def __init__(self, name: str, folder: Path, batch: int, steps: int, threads: int, device: str):
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: own memory, no torch in ort
        self.name = name
        self.conn, child = context.Pipe()
        self.process = context.Process(target=backend_main, args=(child, name, folder, batch, steps, threads, device),
                                       daemon=True)
        self.process.start()
        child.close()

    def reply(self, timeout: float | None = None):
        """The next answer; BackendError if the process failed, died or ran past `timeout`."""
        if not self.conn.poll(timeout):
            self.close()
            raise BackendError(f"no answer within {timeout:.0f} s (--compile-timeout); process stopped")
        try:
            status, payload = self.conn.recv()
        except EOFError:
            self.process.join(5)
            raise BackendError(f"process died (exit code {self.process.exitcode})") from None
        if status == "error":
            raise BackendError(payload)
        return payload

    def run(self, item: str, want_output: bool, timeout: float | None):
        self.conn.send(("run", item, want_output))
        return self.reply(timeout)

    def stop(self) -> dict:
        self.conn.send(("stop",))
        report = self.reply(60)
        self.process.join(30)
        return report

    def close(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(30)


# ----------------------------------------------------------------------------- measuring

def measure_setting(args: argparse.Namespace, folders: dict[str, Path], batch: int) -> dict:
    """All items of one preset x batch size: alternating rounds over the backends.
    `folders`: artifacts of each ORT backend (the torch backends use the fp32 one's config)."""
    names = ["ort"] + (["ort_int8"] if args.int8 else []) + ["torch_eager"] + (["torch_compile"] if args.compile else [])
    backends = {name: Backend(name, folders.get(name, folders["ort"]), batch, args.steps, args.threads, args.device)
                for name in names}
    results = {name: {"load": None, "samples": {}, "cpu_samples": {}, "engine_fraction": {}, "first_s": {},
                      "outputs": {}} for name in names}
    errors = {} if args.compile else {"torch_compile": "skipped (--no-compile or --quick)"}
    if not args.int8:
        errors["ort_int8"] = "skipped (--no-int8)"

    def fail(name: str, error: BackendError) -> None:
        if name in ("ort", "torch_eager"):  # the two required backends must work
            for backend in backends.values():
                backend.close()
            raise SystemExit(f"bench: {name} failed: {error}")
        errors[name] = str(error)
        progress(f"  {name}: {error} (recorded, continuing without it)")
        backends.pop(name).close()

    for name in names:
        try:
            results[name]["load"] = backends[name].reply()
        except BackendError as e:
            fail(name, e)
    items = list(GRAPHS) + args.tasks
    for round_index in range(args.warmup + args.repeats):
        warm = round_index < args.warmup
        progress(f"  batch {batch}: {'warm-up' if warm else 'timed'} round {round_index + 1}/"
                 f"{args.warmup + args.repeats}")
        for item in items:
            for name in list(backends):
                timeout = args.compile_timeout if name == "torch_compile" else None
                try:
                    (seconds, cpu_seconds, engine_seconds), output = backends[name].run(item, round_index == 0,
                                                                                         timeout)
                except BackendError as e:
                    fail(name, e)
                    continue
                if round_index == 0:
                    results[name]["first_s"][item], results[name]["outputs"][item] = seconds, output
                if not warm:
                    results[name]["samples"].setdefault(item, []).append(seconds)
                    results[name]["cpu_samples"].setdefault(item, []).append(cpu_seconds)
                    results[name]["engine_fraction"].setdefault(item, []).append(engine_seconds / seconds)
    for name, backend in list(backends.items()):
        try:
            results[name]["end"] = backend.stop()
        except BackendError as e:
            fail(name, e)
    return summarize(args, batch, items, results, errors)


def stats_ms(samples: list[float]) -> dict:
    ms = np.asarray(samples) * 1e3
    q1, median, q3 = np.percentile(ms, [25, 50, 75])
    return {"median_ms": float(median), "min_ms": float(ms.min()), "max_ms": float(ms.max()),
            "q1_ms": float(q1), "q3_ms": float(q3), "samples_ms": [round(float(x), 3) for x in ms]}


def max_abs_diff(a, b) -> float:
    """Largest absolute difference over a call's outputs (one array or a tuple of arrays)."""
    a, b = (x if isinstance(x, tuple) else (x,) for x in (a, b))
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))) for x, y in zip(a, b))


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def summarize(args: argparse.Namespace, batch: int, items: list[str], results: dict, errors: dict) -> dict:
    measured = [name for name in results if name not in errors]
    out = {"batch": batch, "steps": args.steps, "threads": args.threads, "device": args.device,
           "repeats": args.repeats, "warmup": args.warmup, "graphs": {}, "generation": {}}
    for item in items:
        entry = {}
        for name in BACKENDS:
            if name in measured:
                first_ms = results[name]["first_s"][item] * 1e3
                entry[name] = {**stats_ms(results[name]["samples"][item]), "first_call_ms": round(first_ms, 3),
                               "cpu_median_ms": float(np.median(results[name]["cpu_samples"][item]) * 1e3),
                               "max_abs_diff_vs_torch_eager": max_abs_diff(results[name]["outputs"][item],
                                                                           results["torch_eager"]["outputs"][item])}
                if name in ORT_BACKENDS and item not in GRAPHS:
                    inside = float(np.median(results[name]["engine_fraction"][item]))
                    entry[name]["python_overhead_pct"] = 100 * (1 - inside)
            else:
                entry[name] = {"error": errors.get(name, "not measured")}
        for ort_name, torch_name in [(o, t) for o in ORT_BACKENDS for t in ("torch_eager", "torch_compile")]:
            if ort_name in measured and torch_name in measured:
                key = f"{SPEEDUP_PREFIX[ort_name]}speedup_vs_{torch_name}"
                entry[key] = entry[torch_name]["median_ms"] / entry[ort_name]["median_ms"]
                entry[f"{key}_by_min"] = entry[torch_name]["min_ms"] / entry[ort_name]["min_ms"]
        out["graphs" if item in GRAPHS else "generation"][item] = entry
    for prefix in SPEEDUP_PREFIX.values():
        for key in ("speedup_vs_torch_eager", "speedup_vs_torch_eager_by_min", "speedup_vs_torch_compile",
                    "speedup_vs_torch_compile_by_min"):
            ratios = [entry.get(prefix + key) for entry in out["generation"].values()]
            out[prefix + key] = geomean(ratios) if None not in ratios else None
    out["memory"] = {name: ({"load_s": results[name]["load"]["load_s"],
                             "rss_after_load_mb": results[name]["load"]["rss_mb"], **results[name]["end"]}
                            if name in measured else {"error": errors.get(name, "not measured")}) for name in BACKENDS}
    return out


# ----------------------------------------------------------------------------- report

def machine_info() -> dict:
    cpuinfo = Path("/proc/cpuinfo")
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
              if line.startswith("model name")] if cpuinfo.exists() else []
    versions = {}
    for package in ("torch", "onnxruntime", "onnxruntime-gpu", "numpy", "onnx", "onnxscript", "magvit-onnx"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {"cpu_model": models[0] if models else platform.processor(), "cpu_cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1),
            "platform": platform.platform(), "python": platform.python_version(), "versions": versions,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "thread_env": {k: v for k, v in os.environ.items() if k.startswith(("OMP_", "GOMP_", "KMP_", "MKL_"))},
            "load_average_at_start": list(os.getloadavg())}


def format_stats(entry: dict) -> str:
    if "error" in entry:
        return "n/a"
    return f"{entry['median_ms']:.1f} [{entry['min_ms']:.1f}-{entry['max_ms']:.1f}]"


def format_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def print_table(preset: str, setting: dict) -> None:
    print(f"\n{preset}, batch {setting['batch']}: {setting['steps']} steps, {setting['threads']} threads, "
          f"{setting['device']}, median [min-max] ms over {setting['repeats']} rounds; x = torch / ort")
    ratios = [("eager/ort", "speedup_vs_torch_eager"), ("compile/ort", "speedup_vs_torch_compile"),
              ("eager/int8", "int8_speedup_vs_torch_eager")]
    header = (f"{'item':22s}" + "".join(f"{name:>28s}" for name in BACKENDS)
              + "".join(f"{title:>12s}" for title, _ in ratios))
    print(header + "\n" + "-" * len(header))
    pad = " " * 28 * len(BACKENDS)  # under the backend columns
    for entry_name, entry in [*setting["graphs"].items(), *setting["generation"].items()]:
        print(f"{entry_name:22s}" + "".join(f"{format_stats(entry[name]):>28s}" for name in BACKENDS)
              + "".join(f"{format_ratio(entry.get(key)):>12s}" for _, key in ratios))
    print(f"{'generation geomean':22s}{pad}" + "".join(f"{format_ratio(setting[key]):>12s}" for _, key in ratios))
    print(f"{'  same, from the mins':22s}{pad}"
          + "".join(f"{format_ratio(setting[key + '_by_min']):>12s}" for _, key in ratios))
    overheads = [entry["ort"]["python_overhead_pct"] for entry in setting["generation"].values()]
    print(f"ort python overhead (outside session runs): {min(overheads):.1f}-{max(overheads):.1f} % of a generation")
    print(f"{'peak RSS (MB)':22s}" + "".join(
        f"{'n/a' if 'error' in m else format(m['peak_rss_mb'], '.0f'):>28s}" for m in setting["memory"].values()))
    if setting["memory"]["torch_compile"].get("error"):
        print(f"torch_compile: {setting['memory']['torch_compile']['error']}")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    report = {"command": shlex.join(["python", *sys.argv]), "argv": sys.argv, "machine": machine_info(),
              "options": {"presets": args.presets, "batch_sizes": args.batch_sizes, "tasks": args.tasks,
                          "steps": args.steps, "repeats": args.repeats, "warmup": args.warmup,
                          "threads": args.threads, "compile": args.compile, "int8": args.int8, "device": args.device,
                          "quick": args.quick},
              "method": {"timing": "alternating rounds per item (ort, ort_int8, torch_eager, torch_compile), warm-up rounds "
                                   "untimed, time.perf_counter (wall) and time.process_time (cpu, all threads) "
                                   "around the call inside the backend's process",
                         "speedup": "torch median / ort median (_by_min: torch min / ort min); setting-level "
                                    "value = geometric mean over the tasks' whole generations",
                         "memory": "one fresh process per backend and setting; peak_rss_mb = VmHWM of "
                                   "/proc/self/status at the end (ru_maxrss would include the parent's peak)"},
              "presets": {}}
    for preset in args.presets:
        folder, export_s = ensure_artifacts(args.cache_dir, preset)
        folders = {"ort": folder}
        if args.int8:
            folders["ort_int8"] = ensure_artifacts(args.cache_dir, preset, int8=True)[0]
        manifest = load_manifest(folder, verify=False)
        entry = report["presets"][preset] = {
            "artifacts": str(folder), "export_s": export_s,
            "graph_bytes": {name: f["bytes"] for name, f in manifest["files"].items()},
            "video_shape": manifest["video"]["shape"], "latent_shape": manifest["latent_shape"], "settings": {}}
        for batch in args.batch_sizes:
            progress(f"{preset}, batch {batch}: starting {args.warmup} warm-up + {args.repeats} timed rounds")
            setting = entry["settings"][f"batch_{batch}"] = measure_setting(args, folders, batch)
            print_table(preset, setting)
            report["machine"]["load_average_at_end"] = list(os.getloadavg())
            if args.json is not None:
                args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.json is not None:
        progress(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
