"""The CUDA / TensorRT check in one command: every section saved as it ends, nothing passes unrun.

    bash scripts/gpu_check.sh                                             # on a lent GPU machine (<= 8 min)
    python scripts/gpu_check.py --providers cuda,tensorrt --out DIR       # the same, onnxruntime-gpu installed
    python scripts/gpu_check.py --providers cpu --small --out /tmp/check  # CI: the CPU parts

Sections, in this order; OUT/gpu_check.json is rewritten after each one:
1. environment: python, which onnxruntime (wheel, file, providers it lists), torch and the
   GPU, and which CUDA, cuDNN and TensorRT libraries load (ctypes, after ORT's preload).
2. per model (`--models`: the shipped default model and preset B, or `--small`, the tests'
   tiny model; each in fp32 and fp16, GPU target): export, then the graph checks of
   `export.gpu_coverage` (CUDA / TensorRT tables, fp16 rules) on every graph written.
3. per provider and model: session (a provider that cannot start is recorded with ORT's own
   error; its other checks are skipped and the rest goes on), placement from ORT's profile
   (nodes per provider, data-sized nodes on the CPU, Memcpy nodes), noise (the sampler's
   integer hash on the provider, bit for bit against numpy), parity against torch on the
   same device (TF32 off on both), judged by `export_all.parity_failures`.
4. speed per batch (`--batches`): ORT on each provider, torch eager fp32 and torch bf16
   autocast on the same GPU; videos/min end to end, ms per graph, the step's TFLOP/s.

"passed" is true only when every planned check ran and passed; "skipped" lists each check
that did not run and why (`--budget` spent, a provider that did not start, ...), "failed"
each that ran and failed. Exit 0 only when passed, 1 otherwise, 2 for bad options.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
import torch

from magvit_onnx.export.export_all import parity_failures
from magvit_onnx.export.exporter import export_all, export_graph, seeded_random_models
from magvit_onnx.export.gpu_coverage import fp16_problems, uncovered
from magvit_onnx.export.graphs import gumbel_noise, uniforms
from magvit_onnx.export.parity import check_parity, step_feeds
from magvit_onnx.export.reference import reference_pipeline
from magvit_onnx.models.checkpoint import load_checkpoint
from magvit_onnx.models.config import MagvitConfig, get_config
from magvit_onnx.paths import DEFAULT_WEIGHTS
from magvit_onnx.runtime import providers as eps
from magvit_onnx.runtime.pipeline import Pipeline

PROVIDERS = ("cpu", "cuda", "tensorrt")
MODELS = ("default", "B", "small")
# Dense peak FLOP/s (NVIDIA data sheets, SXM parts): fp32, TF32 and fp16/bf16 tensor cores.
PEAKS = {"H100": {"fp32": 67e12, "tf32": 494.7e12, "fp16": 989.4e12},
         "H200": {"fp32": 67e12, "tf32": 494.7e12, "fp16": 989.4e12}}
# Shared libraries a GPU session needs, by the sonames of CUDA 13 / 12 builds.
LIBRARIES = {"cuda_runtime": ("libcudart.so.13", "libcudart.so.12"), "cublas": ("libcublas.so.13", "libcublas.so.12"),
             "cublasLt": ("libcublasLt.so.13", "libcublasLt.so.12"), "cudnn": ("libcudnn.so.9",),
             "tensorrt": ("libnvinfer.so.10",), "tensorrt_plugins": ("libnvinfer_plugin.so.10",),
             "tensorrt_onnx_parser": ("libnvonnxparser.so.10",)}
# A node placed on the CPU in a GPU session is fine when it is shape arithmetic (ORT puts
# Shape -> Gather -> Concat chains there on purpose); one whose output is larger is data
# the GPU should have computed, copied across every run.
SMALL_BYTES = 4096
NOISE_SEEDS = (0, 1, 65535, 65536, 2 ** 31 - 2, 2 ** 31 - 1)  # edge cases of the hash's 16-bit split


# --- the numpy reference of the sampler's noise (export/graphs.py: uniforms) -------------
MOD31, MIX, CLASS_OFFSET = 2 ** 31, 0x45D9F3B, 0x2545F491


def _mix31(x: np.ndarray) -> np.ndarray:
    h = x >> 16
    return ((x + h) * (2 * h + MIX)) % MOD31


def _hash31(x: np.ndarray) -> np.ndarray:
    return _mix31(_mix31((x * MIX) % MOD31))


def numpy_uniforms(seeds: np.ndarray, num_classes: int) -> np.ndarray:
    """u [B, N, K] float32 of the step's Gumbel noise, written independently of torch."""
    classes = _hash31(np.arange(num_classes, dtype=np.int64) + CLASS_OFFSET)
    bits = _mix31(_mix31(_hash31(seeds.astype(np.int64))[..., None] + classes))
    return ((bits >> 8) * 2 + 1).astype(np.float32) * np.float32(2 ** -24)


class NoiseGraph(torch.nn.Module):
    """The sampler's noise alone: seeds [B, N] -> (u, Gumbel noise) [B, N, K]."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes

    def forward(self, seeds: torch.Tensor):
        return uniforms(seeds, self.num_classes), gumbel_noise(seeds, self.num_classes)


# --- the report: planned checks, saved after every one -----------------------------------
@dataclass
class Check:
    name: str
    run: Callable[[], tuple[dict, list[str]]]  # -> (details, failures); failures empty = passed
    needs: tuple[str, ...] = ()  # checks that must have passed first


class Report:
    """OUT/gpu_check.json, rewritten whole (and atomically) after every section."""

    def __init__(self, path: Path, requested: dict):
        self.path, self.start = path, time.perf_counter()
        self.data = {"requested": requested, "environment": {}, "checks": {}, "passed": False, "finished": False}

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def save(self) -> None:
        checks = self.data["checks"]
        self.data["skipped"] = [{"check": n, "why": c["why"]} for n, c in checks.items() if c["status"] == "skipped"]
        self.data["failed"] = [n for n, c in checks.items() if c["status"] in ("failed", "error")]
        self.data["not_run_yet"] = [n for n, c in checks.items() if c["status"] == "pending"]
        self.data["passed"] = bool(checks) and all(c["status"] == "passed" for c in checks.values())
        self.data["seconds"] = round(self.elapsed(), 1)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        tmp.replace(self.path)  # a run killed mid-write leaves the previous whole file

    def run(self, checks: list[Check], budget: float) -> None:
        """Run `checks` in order: each needs its `needs` passed and budget left, or is skipped
        with the reason; an exception is recorded as the check's error and the rest goes on."""
        entries = self.data["checks"]
        for check in checks:
            entries[check.name] = {"status": "pending"}
        self.save()
        for check in checks:
            entry = entries[check.name]
            blocker = next((n for n in check.needs if entries[n]["status"] != "passed"), None)
            if blocker:
                entry.update(status="skipped", why=f"needs '{blocker}', which {entries[blocker]['status']}"
                             + _reason(entries[blocker]))
            elif self.elapsed() > budget:
                entry.update(status="skipped", why=f"--budget {budget:g} s spent ({self.elapsed():.0f} s elapsed)")
            else:
                start = time.perf_counter()
                try:
                    details, failures = check.run()
                    entry.update(details, status="failed" if failures else "passed", failures=failures)
                except Exception as error:  # recorded; the checks that do not need this one go on
                    entry.update(status="error", error=f"{type(error).__name__}: {error}"[:4000],
                                 traceback=traceback.format_exc(limit=6)[-3000:])
                entry["seconds"] = round(time.perf_counter() - start, 2)
            print(f"[{self.elapsed():7.1f} s] {entry['status']:>7}  {check.name}", flush=True)
            self.save()


def _reason(entry: dict) -> str:
    text = entry.get("why") or "; ".join(entry.get("failures", [])) or entry.get("error")
    return f" ({text.splitlines()[0][:300]})" if text else ""


# --- environment ---------------------------------------------------------------------------
def environment(device: str) -> dict:
    env = {"python": sys.version.split()[0], "onnxruntime": ort.__version__, "onnxruntime_file": ort.__file__,
           "available_providers": ort.get_available_providers(), "torch": torch.__version__,
           "torch_cuda": torch.version.cuda, "onnx": onnx.__version__, "device": device,
           "NVIDIA_TF32_OVERRIDE": os.environ.get("NVIDIA_TF32_OVERRIDE")}
    for dist in ("onnxruntime-gpu", "onnxruntime"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            env[f"dist {dist}"] = importlib.metadata.version(dist)
    env["libraries"] = libraries()
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name(0)
        env["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
        env["torch_cudnn"] = torch.backends.cudnn.version()
        env["peak_flops"] = next((v for k, v in PEAKS.items() if k in env["gpu"]), None)
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
        env["nvidia-smi"] = subprocess.run(query, capture_output=True, text=True, timeout=30).stdout.strip()
    return env


def libraries() -> dict:
    """Which CUDA / cuDNN / TensorRT libraries load in this process, and from where; after
    ORT's own `preload_dlls` (which loads the nvidia-* wheels' CUDA and cuDNN) where it has one."""
    out: dict = {}
    if "CUDAExecutionProvider" in ort.get_available_providers() and hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls()
            out["ort_preload_dlls"] = "ran"
        except Exception as error:  # recorded: the sessions will say what it means
            out["ort_preload_dlls"] = f"{type(error).__name__}: {error}"
    for key, names in LIBRARIES.items():
        errors = []
        for name in names:
            try:
                ctypes.CDLL(name)
            except OSError as error:
                errors.append(str(error))
                continue
            out[key] = {"loaded": name, "path": _mapped_path(name)}
            break
        else:
            out[key] = {"absent": errors}
    return out


def _mapped_path(soname: str) -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/maps").read_text().splitlines():
            if f"/{soname}" in line or f"/{soname.split('.so')[0]}.so" in line:
                return line.split()[-1]
    return None


# --- placement from ORT's profile ----------------------------------------------------------
@contextlib.contextmanager
def profiled_sessions(prefix: Path):
    """Sessions created inside this block write ORT's profile (node, provider, output size).
    The runtime builds its own SessionOptions, so the class it calls is wrapped here for the
    block rather than given a profiling option it would carry only for this script."""
    real = ort.SessionOptions

    def options() -> ort.SessionOptions:
        made = real()
        made.enable_profiling, made.profile_file_prefix = True, str(prefix)
        return made

    ort.SessionOptions = options
    try:
        yield
    finally:
        ort.SessionOptions = real


def sessions_of(engine) -> dict[str, ort.InferenceSession]:
    """Every ORT session an engine holds (its graphs, and the sampler graphs where it has them)."""
    found = {}
    for attribute, value in vars(engine).items():
        for name, session in (value.items() if isinstance(value, dict) else [(attribute, value)]):
            if isinstance(session, ort.InferenceSession):
                found[name if attribute == "sessions" else f"{attribute}.{name}"] = session
    return found


def placement(profile: Path) -> dict:
    """Per provider the node count, the CPU's ops and largest output, and the Memcpy nodes
    of one session's profile (`enable_profiling`)."""
    nodes = {}
    for event in json.loads(profile.read_text()):
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            args = event.get("args", {})
            nodes[event["name"][:-len("_kernel_time")]] = (args.get("op_name", "?"), args.get("provider", "?"),
                                                           int(args.get("output_size", 0)))
    on_cpu = [(op, size) for op, provider, size in nodes.values() if provider == "CPUExecutionProvider"]
    return {"nodes_by_provider": dict(Counter(provider for _, provider, _ in nodes.values())),
            "cpu_ops": dict(Counter(op for op, _ in on_cpu)),
            "cpu_largest_output_bytes": max((size for _, size in on_cpu), default=0),
            "cpu_data_sized_nodes": sorted({op for op, size in on_cpu if size > SMALL_BYTES}),
            "memcpy": dict(Counter(op for op, _, _ in nodes.values() if op.startswith("Memcpy")))}


def placement_failures(session: str, found: dict) -> list[str]:
    """In a GPU session: data-sized nodes on the CPU, and device-to-host copies inside the graph."""
    failures = []
    if found["cpu_data_sized_nodes"]:
        failures.append(f"{session}: nodes with outputs over {SMALL_BYTES} bytes on the CPU: "
                        f"{', '.join(found['cpu_data_sized_nodes'])}")
    if found["memcpy"].get("MemcpyToHost"):
        failures.append(f"{session}: {found['memcpy']['MemcpyToHost']} MemcpyToHost node(s): a device-to-host "
                        "copy and sync inside the graph every run")
    return failures


# --- the checks ------------------------------------------------------------------------------
def load_models(names: list[str]) -> dict:
    """model name -> (config, vq, transformer, export options); fp32 and fp16 of each, GPU target."""
    out = {}
    for family in names:
        if family == "small":
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from helpers import small_config  # the tests' tiny model: 8x32x32 video, 32 tokens, 2 layers

            config = small_config()
            models = (config, *seeded_random_models(config))
        elif family == "default":
            models = load_checkpoint(DEFAULT_WEIGHTS)
        else:
            config = get_config(family)
            models = (config, *seeded_random_models(config))
        out[f"{family} fp32"] = (*models, {"target": "gpu"})
        out[f"{family} fp16"] = (*models, {"fp16": True, "target": "gpu"})
    return out


class GpuCheck:
    """The checks of one run; they share exports, profiles and pipelines through this object."""

    def __init__(self, args: argparse.Namespace, device: str, workdir: Path):
        self.args, self.device, self.workdir = args, device, workdir
        self.models = load_models(args.models)
        self.folders: dict[str, Path] = {}
        self.profiles: dict[tuple[str, str], dict[str, Path]] = {}
        self.pipelines: dict[tuple[str, str], Pipeline] = {}
        self.batch_profile = {"opt": min(8, max(args.batches)), "max": max(args.batches)}

    def plan(self) -> list[Check]:
        """The checks in the order they run: model by model (`--models` order, the shipped one
        first), each exported, checked on every provider (fp32, then fp16), then timed."""
        checks = []
        for family in self.args.models:
            names = [f"{family} fp32", f"{family} fp16"]
            for name in names:
                checks += [Check(f"{name} / export", partial(self.export, name)),
                           Check(f"{name} / graph checks", partial(self.graph_checks, name), (f"{name} / export",))]
            for provider in self.args.providers:
                for name in names:
                    key = f"{name} / {provider}"
                    checks.append(Check(f"{key} / session", partial(self.session, name, provider),
                                        (f"{name} / export",)))
                    checks += [Check(f"{key} / {what}", partial(run, name, provider), (f"{key} / session",))
                               for what, run in (("placement", self.placement), ("noise", self.noise),
                                                 ("parity", self.parity))]
            for batch in self.args.batches:
                for name in names:
                    checks += [Check(f"{name} / {p} / speed batch {batch}", partial(self.ort_speed, name, p, batch),
                                     (f"{name} / {p} / session",)) for p in self.args.providers]
                    if name.endswith("fp32"):  # torch runs the fp32 model, in fp32 and under bf16 autocast
                        checks.append(Check(f"{name} / torch eager fp32 / speed batch {batch}",
                                            partial(self.torch_speed, name, batch, None)))
                        if self.device == "cuda":
                            checks.append(Check(f"{name} / torch bf16 autocast / speed batch {batch}",
                                                partial(self.torch_speed, name, batch, torch.bfloat16)))
        return checks

    def engine_options(self, provider: str) -> dict:
        """TF32 off on GPUs (fp32 parity with the CPU's 1e-4; the runtime also turns it off
        for TensorRT), TensorRT's batch range covering every measured batch."""
        return {} if provider == "cpu" else {"use_tf32": False, "batch_profile": self.batch_profile}

    def export(self, name: str) -> tuple[dict, list[str]]:
        config, vq, transformer, options = self.models[name]
        folder = self.workdir / name.replace(" ", "_")
        manifest = export_all(config, vq, transformer, folder, **options)
        self.folders[name] = folder
        return {"precision": manifest["precision"], "target": manifest["target"], "preset": manifest["preset"],
                "graphs": sorted(p.name for p in folder.glob("*.onnx"))}, []

    def graph_checks(self, name: str) -> tuple[dict, list[str]]:
        found, failures = {}, []
        for path in sorted(self.folders[name].glob("*.onnx")):  # every graph the GPU target ships
            model = onnx.load(str(path))
            found[path.stem] = {"cuda": uncovered(model, "cuda"), "tensorrt": uncovered(model, "tensorrt"),
                                "fp16": fp16_problems(model)}
            failures += [f"{path.stem} {rule}: {line}" for rule, lines in found[path.stem].items() for line in lines]
        return {"graphs": found}, failures

    def session(self, name: str, provider: str) -> tuple[dict, list[str]]:
        """Sessions on `provider` (ORT's error if it cannot start); one run of every graph,
        the step with and without guidance and filters, profiled for `placement`."""
        config = self.models[name][0]
        start = time.perf_counter()
        try:
            with profiled_sessions(self.workdir / f"profile_{name}_{provider}".replace(" ", "_")):
                pipeline = Pipeline.from_artifacts(self.folders[name], providers=provider,
                                                   **self.engine_options(provider))
        except eps.ProviderError as error:
            return {"error": str(error)}, [f"{provider} did not start: {error}"]
        created = time.perf_counter() - start
        rng = np.random.default_rng(0)
        video = rng.random((2, *config.vq.video_shape, 3), dtype=np.float32)
        pipeline.engine.decode(pipeline.engine.encode(video))
        for settings in ({}, {"guidance_scale": 1.5, "top_k": 5}):
            pipeline.engine.run_step(step_feeds(config, 2, rng, **settings))
        self.profiles[(name, provider)] = {key: Path(s.end_profiling())
                                           for key, s in sessions_of(pipeline.engine).items()}
        return {"session_providers": pipeline.engine.providers, "create_s": round(created, 2)}, []

    def placement(self, name: str, provider: str) -> tuple[dict, list[str]]:
        found = {session: placement(path) for session, path in self.profiles[(name, provider)].items()}
        failures = [] if provider == "cpu" else [line for session, f in found.items()
                                                  for line in placement_failures(session, f)]
        return {"sessions": found}, failures

    def noise(self, name: str, provider: str) -> tuple[dict, list[str]]:
        """The noise stage exported alone, run on `provider`: u bit for bit equal to numpy's,
        the Gumbel noise finite and within float32 rounding of numpy's."""
        config = self.models[name][0]
        classes, positions = config.vq.codebook_size, config.vq.num_tokens
        seeds = np.random.default_rng(5).integers(0, 2 ** 31, (4, positions), dtype=np.int64)
        seeds.reshape(-1)[:len(NOISE_SEEDS)] = NOISE_SEEDS
        path = self.workdir / f"noise_{classes}x{positions}.onnx"
        if not path.exists():
            export_graph(NoiseGraph(classes), (torch.from_numpy(seeds),), path, ["seeds"], ["u", "gumbel"], None, 18)
        providers = eps.with_trt_cache(eps.resolve(provider, use_tf32=False if provider != "cpu" else None),
                                       f"gpu_check_{path.stem}")
        session = eps.create_session(path, ort.SessionOptions(), providers)
        u, gumbel = session.run(None, {"seeds": seeds})
        expected = numpy_uniforms(seeds, classes)
        gumbel_error = float(np.abs(gumbel - (-np.log(-np.log(expected)))).max())
        found = {"session_providers": session.get_providers(), "u_mismatches": int((u != expected).sum()),
                 "u_values": int(u.size), "gumbel_nonfinite": int((~np.isfinite(gumbel)).sum()),
                 "gumbel_max_abs_vs_numpy": gumbel_error}
        failures = [f"{k} {found[k]} (must be 0)" for k in ("u_mismatches", "gumbel_nonfinite") if found[k]]
        if gumbel_error > 1e-4:
            failures.append(f"gumbel_max_abs_vs_numpy {gumbel_error:.3g} > 1e-4")
        return found, failures

    def parity(self, name: str, provider: str) -> tuple[dict, list[str]]:
        config, vq, transformer, options = self.models[name]
        report = check_parity(self.folders[name], config, vq, transformer, batch=2, steps=self.args.steps,
                              providers=provider, tasks=("frame_prediction", "full_generation"),
                              device=self.device, **self.engine_options(provider))
        on_cpu = provider == "cpu" and self.device == "cpu"  # exact only where neither side runs on a GPU
        precision = "fp16" if options.get("fp16") else ("fp32" if on_cpu else "fp32-gpu")
        return {"judged_as": precision, **report}, parity_failures(report, precision)

    def ort_speed(self, name: str, provider: str, batch: int) -> tuple[dict, list[str]]:
        key = (name, provider)
        if key not in self.pipelines:
            self.release_pipelines(keep=name)
            self.pipelines[key] = Pipeline.from_artifacts(self.folders[name], providers=provider,
                                                          **self.engine_options(provider))
        return speed(self.pipelines[key], self.models[name][0], batch, self.args.steps, self.args.repeats), []

    def torch_speed(self, name: str, batch: int, autocast: torch.dtype | None) -> tuple[dict, list[str]]:
        key = (name, "torch")
        if key not in self.pipelines:
            self.release_pipelines(keep=name)
            self.pipelines[key] = reference_pipeline(*self.models[name][:3], self.device)
        return speed(self.pipelines[key], self.models[name][0], batch, self.args.steps, self.args.repeats,
                     autocast), []

    def release_pipelines(self, keep: str) -> None:
        """Drop the pipelines of other model families than `keep`'s (GPU memory for the next)."""
        family = keep.split()[0]
        for key in [k for k in self.pipelines if k[0].split()[0] != family]:
            del self.pipelines[key]
        if self.device == "cuda":
            torch.cuda.empty_cache()


# --- speed -------------------------------------------------------------------------------------
def step_flops(config: MagvitConfig, rows: int) -> float:
    """Multiply-adds x 2 of one step: the transformer layers, attention and the output head."""
    t, n, d = config.transformer, config.vq.num_tokens + config.vocab.prefix_length, config.transformer.hidden_size
    per_token = t.num_layers * (4 * d * d + 2 * d * t.mlp_dim + 2 * n * d) + d * d + d * config.vocab.size
    return 2.0 * rows * n * per_token


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of `fn()` after one warm-up call (GPU work synchronised)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def speed(pipeline: Pipeline, config: MagvitConfig, batch: int, steps: int, repeats: int,
          autocast: torch.dtype | None = None) -> dict:
    """Videos/min of frame prediction end to end and ms per graph call at `batch`."""
    rng = np.random.default_rng(0)
    video = rng.random((batch, *config.vq.video_shape, 3), dtype=np.float32)
    tokens = pipeline.encode(video)
    feeds = step_feeds(config, batch, rng)
    context = partial(torch.autocast, "cuda", dtype=autocast) if autocast else contextlib.nullcontext
    with context():
        generation = timed(lambda: pipeline.generate("frame_prediction", video=video, seed=0, steps=steps), repeats)
        per_graph = {"vq_encoder": timed(lambda: pipeline.engine.encode(video), repeats),
                     "transformer_step": timed(lambda: pipeline.engine.run_step(feeds), repeats),
                     "vq_decoder": timed(lambda: pipeline.engine.decode(tokens), repeats)}
    return {"videos_per_min": 60 * batch / generation, "generation_s": generation,
            "ms": {name: 1e3 * s for name, s in per_graph.items()},
            "step_tflops": step_flops(config, batch) / per_graph["transformer_step"] / 1e12}


# --- command line ------------------------------------------------------------------------------
def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--providers", default="cuda,tensorrt", help="comma-separated: cpu, cuda, tensorrt")
    p.add_argument("--models", default="default,B", help="comma-separated: default (shipped), B (preset, random "
                   "init), small (the tests' tiny model); each in fp32 and fp16")
    p.add_argument("--small", action="store_true", help="--models small, batches 1,2, 2 steps (CI on CPU)")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "runs/gpu_check")))
    p.add_argument("--batches", default=None, help="comma-separated batch sizes (default 1,16,64; --small: 1,2)")
    p.add_argument("--steps", type=int, default=None, help="COMMIT steps per generation (default 12; --small: 2)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median)")
    p.add_argument("--budget", type=float, default=420.0, help="seconds after which no further check starts")
    args = p.parse_args(argv)
    args.providers = [x.strip() for x in args.providers.split(",") if x.strip()]
    args.models = ["small"] if args.small else [x.strip() for x in args.models.split(",") if x.strip()]
    for option, values, valid in (("--providers", args.providers, PROVIDERS), ("--models", args.models, MODELS)):
        if not values or set(values) - set(valid):
            p.error(f"{option} takes a comma-separated list of {', '.join(valid)}, got {','.join(values)!r}")
    try:
        args.batches = [int(b) for b in (args.batches or ("1,2" if args.small else "1,16,64")).split(",")]
    except ValueError:
        p.error(f"--batches takes comma-separated whole numbers, got {args.batches!r}")
    if min(args.batches) < 1 or args.repeats < 1 or (args.steps is not None and args.steps < 1):
        p.error("--batches, --repeats and --steps must be at least 1")
    args.steps = args.steps or (2 if args.small else 12)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    device = "cuda" if torch.cuda.is_available() and args.providers != ["cpu"] else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # parity in true fp32
    args.out.mkdir(parents=True, exist_ok=True)
    requested = {"providers": args.providers, "models": args.models, "batches": args.batches, "steps": args.steps,
                 "repeats": args.repeats, "budget_s": args.budget, "argv": sys.argv[1:] if argv is None else argv}
    report = Report(args.out / "gpu_check.json", requested)
    report.data["environment"] = environment(device)
    report.save()
    with tempfile.TemporaryDirectory() as workdir:
        check = GpuCheck(args, device, Path(workdir))
        report.run(check.plan(), args.budget)
    report.data["finished"] = True
    report.save()
    print(json.dumps({"passed": report.data["passed"], "seconds": report.data["seconds"],
                      "failed": report.data["failed"], "skipped": len(report.data["skipped"]),
                      "out": str(report.path)}))
    return 0 if report.data["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
