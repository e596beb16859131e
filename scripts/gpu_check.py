"""The CUDA / TensorRT check in one command: export, graph checks, parity, speed -> one JSON.

    python scripts/gpu_check.py --providers cuda,tensorrt --out $OUT      # on a GPU machine
    python scripts/gpu_check.py --providers cpu --small --out /tmp/check  # CI: the CPU parts

1. Exports: preset B (random init) in fp32 and fp16 and the shipped default model, all
   for the GPU target (`--small`: the tiny test model, fp32 and fp16).
2. Graph checks: every node against the CUDA / TensorRT tables (`export.gpu_coverage`),
   and the fp16 graphs for Cast(int64 -> float16) or fp16 in the sampler.
3. Parity per provider against torch on the same device (TF32 off on both), judged by
   `export_all.parity_failures`: fp32 'fp32-gpu' (token agreement >= 0.999, probabilities
   where tokens agree <= 1e-4, decoder <= 1e-3; exact on the CPU provider), fp16 'fp16'
   (agreement >= 0.95, probabilities <= 2e-2, decoder <= 3e-2).
4. Speed per batch (`--batches`): videos/min of frame prediction end to end and ms per
   graph call, for ORT on each provider, torch eager fp32 and torch bf16 autocast on the
   same device, and the step's achieved FLOP/s against the GPU's peak.

Writes OUT/gpu_check.json; stops measuring (and says so) past `--budget` seconds.
Exit 0 when every graph check and parity judgement passed, 1 otherwise.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from magvit_onnx.export.export_all import parity_failures
from magvit_onnx.export.exporter import export_all, seeded_random_models
from magvit_onnx.export.gpu_coverage import fp16_problems, uncovered
from magvit_onnx.export.parity import check_parity, step_feeds
from magvit_onnx.export.reference import reference_pipeline
from magvit_onnx.models.checkpoint import load_checkpoint
from magvit_onnx.models.config import MagvitConfig, get_config
from magvit_onnx.paths import DEFAULT_WEIGHTS
from magvit_onnx.runtime.artifacts import GRAPHS
from magvit_onnx.runtime.pipeline import Pipeline

# Dense peak FLOP/s (NVIDIA data sheets, SXM parts): fp32, TF32 and fp16/bf16 tensor cores.
PEAKS = {"H100": {"fp32": 67e12, "tf32": 494.7e12, "fp16": 989.4e12},
         "H200": {"fp32": 67e12, "tf32": 494.7e12, "fp16": 989.4e12}}


def models(small: bool) -> dict:
    """name -> (config, vq, transformer, export options)."""
    if small:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from helpers import small_config  # the tests' tiny model: 8x32x32 video, 32 tokens, 2 layers

        config = small_config()
        vq, transformer = seeded_random_models(config)
        return {"tiny-small fp32": (config, vq, transformer, {"target": "gpu"}),
                "tiny-small fp16": (config, vq, transformer, {"fp16": True})}
    config = get_config("B")
    vq, transformer = seeded_random_models(config)
    shipped = load_checkpoint(DEFAULT_WEIGHTS)
    return {"B fp32": (config, vq, transformer, {"target": "gpu"}), "B fp16": (config, vq, transformer, {"fp16": True}),
            "default fp32": (*shipped, {"target": "gpu"})}


def step_flops(config: MagvitConfig, rows: int) -> float:
    """Multiply-adds x 2 of one step: the transformer layers, attention and the output head."""
    t, n, d = config.transformer, config.vq.num_tokens + config.vocab.prefix_length, config.transformer.hidden_size
    per_token = t.num_layers * (4 * d * d + 2 * d * t.mlp_dim + 2 * n * d) + d * d + d * config.vocab.size
    return 2.0 * rows * n * per_token


def timed(fn, repeats: int) -> float:
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
          autocast: str | None = None) -> dict:
    """Videos/min of frame prediction end to end and ms per graph call at `batch`."""
    rng = np.random.default_rng(0)
    video = rng.random((batch, *config.vq.video_shape, 3), dtype=np.float32)
    tokens = pipeline.encode(video)
    feeds = step_feeds(config, batch, rng)
    context = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if autocast else contextlib.nullcontext
    with context():
        generation = timed(lambda: pipeline.generate("frame_prediction", video=video, seed=0, steps=steps), repeats)
        per_graph = {"vq_encoder": timed(lambda: pipeline.engine.encode(video), repeats),
                     "transformer_step": timed(lambda: pipeline.engine.run_step(feeds), repeats),
                     "vq_decoder": timed(lambda: pipeline.engine.decode(tokens), repeats)}
    return {"videos_per_min": 60 * batch / generation, "generation_s": generation,
            "ms": {name: 1e3 * s for name, s in per_graph.items()},
            "step_tflops": step_flops(config, batch) / per_graph["transformer_step"] / 1e12}


def environment(device: str) -> dict:
    env = {"python": sys.version.split()[0], "onnxruntime": ort.__version__, "torch": torch.__version__,
           "onnx": onnx.__version__, "available_providers": ort.get_available_providers(), "device": device}
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        env["onnxruntime-gpu"] = importlib.metadata.version("onnxruntime-gpu")
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name(0)
        env["peak_flops"] = next((v for k, v in PEAKS.items() if k in env["gpu"]), None)
    return env


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--providers", default="cuda,tensorrt", help="comma-separated: cpu, cuda, tensorrt")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "runs/gpu_check")))
    p.add_argument("--small", action="store_true", help="the tiny test model only, small batches (CI on CPU)")
    p.add_argument("--batches", default=None, help="comma-separated batch sizes (default 1,8,32,64; --small: 1,2)")
    p.add_argument("--steps", type=int, default=None, help="COMMIT steps per generation (default 12; --small: 2)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--budget", type=float, default=420.0, help="seconds after which measuring stops")
    args = p.parse_args(argv)
    start = time.perf_counter()
    providers = [x.strip() for x in args.providers.split(",") if x.strip()]
    batches = [int(b) for b in (args.batches or ("1,2" if args.small else "1,8,32,64")).split(",")]
    steps = args.steps or (2 if args.small else 12)
    device = "cuda" if torch.cuda.is_available() and providers != ["cpu"] else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # parity in true fp32
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"environment": environment(device), "providers": providers, "batches": batches, "steps": steps,
              "exports": {}, "graph_checks": {}, "parity": {}, "speed": {}, "skipped": []}
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for name, (config, vq, transformer, options) in models(args.small).items():
            folder = Path(tmp) / name.replace(" ", "_")
            t0 = time.perf_counter()
            manifest = export_all(config, vq, transformer, folder, **options)
            report["exports"][name] = {"seconds": time.perf_counter() - t0, "precision": manifest["precision"],
                                       "target": manifest["target"], "preset": manifest["preset"]}
            checks = {}
            for graph in GRAPHS:
                model = onnx.load(str(folder / f"{graph}.onnx"))
                checks[graph] = {"cuda": uncovered(model, "cuda"), "tensorrt": uncovered(model, "tensorrt"),
                                 "fp16": fp16_problems(model)}
                ok &= not any(checks[graph].values())
            report["graph_checks"][name] = checks
            precision = "fp16" if options.get("fp16") else "fp32"
            for provider in providers:
                key = f"{name} / {provider}"
                if time.perf_counter() - start > args.budget:
                    report["skipped"].append(key)
                    continue
                engine = {} if provider == "cpu" else {"use_tf32": False}
                parity = check_parity(folder, config, vq, transformer, batch=2, steps=steps, providers=provider,
                                      tasks=("frame_prediction", "full_generation"), device=device, **engine)
                judged = precision if provider == "cpu" or precision == "fp16" else "fp32-gpu"
                parity["failures"] = parity_failures(parity, judged)
                ok &= not parity["failures"]
                report["parity"][key] = parity
                pipeline = Pipeline.from_artifacts(folder, providers=provider, **engine,
                                                   batch_profile={"opt": min(8, max(batches)), "max": max(batches)})
                report["speed"][key] = measure(pipeline, config, batches, steps, args, start, report["skipped"], key)
            if precision == "fp32":
                for label, autocast in (("torch eager fp32", None), ("torch bf16 autocast", "bf16")):
                    if autocast and device != "cuda":
                        continue
                    reference = reference_pipeline(config, vq, transformer, device)
                    report["speed"][f"{name} / {label}"] = measure(reference, config, batches, steps, args, start,
                                                                   report["skipped"], f"{name} / {label}", autocast)
    report["passed"] = bool(ok)
    report["seconds"] = time.perf_counter() - start
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"passed": report["passed"], "seconds": round(report["seconds"], 1),
                      "skipped": report["skipped"], "out": str(args.out / "gpu_check.json")}))
    return 0 if ok else 1


def measure(pipeline, config, batches, steps, args, start, skipped, key, autocast=None) -> dict:
    out = {}
    for batch in batches:
        if time.perf_counter() - start > args.budget:
            skipped.append(f"{key} / batch {batch}")
            continue
        out[str(batch)] = speed(pipeline, config, batch, steps, args.repeats, autocast)
    return out


if __name__ == "__main__":
    sys.exit(main())
