#!/usr/bin/env python
"""Soak test: many generations through `magvit-onnx run` in one process; is memory stable?

    python scripts/soak.py --count 1000 --json soak.json                 # exports a tiny model first (torch)
    python scripts/soak.py --artifacts artifacts/tiny --count 1000        # torch-free
    python scripts/soak.py --mode generator --threads 8 --count 1000      # Generator.generate in 8 threads

What runs (default `--mode batch`): one JOBS file of `--count` jobs cycling over the model's
tasks (inputs: a 12-frame MP4 clip, classes in turn; the mask task a central box) and the output formats mp4, gif,
png and npy, through `magvit_onnx.batch.run` in this process (read_video, batched
generation with per-job seeds, PyAV encoding, atomic writes, report lines), `--steps`
decoding steps each. `--mode generator` calls `Generator.generate` directly, from
`--threads` threads sharing one Generator.

Measured: the process's resident set size (VmRSS from /proc/self/status) after every
finished generation. The first `--warmup` generations (ONNX Runtime arenas, PyAV codec
state, numpy caches) are excluded: growth = (RSS at the end - RSS after warm-up) / RSS after
warm-up. Also reported: the peak, a least-squares slope over the post-warm-up samples
(bytes per generation) and the time. Passes (exit 0) when growth < --limit (5 %).

Without --artifacts the model is `tiny` shrunk to 8x32x32 clips with a 2-layer, 64-wide
transformer and seeded random weights (as the test suite's), exported to a temporary
folder; that needs torch (the [export] extra).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def job_task(generator, i: int) -> tuple[str, dict]:
    """Generation i's task (the model's tasks in turn) and what it needs, as `generate`
    keywords: 'video', 'class_id' (classes in turn), 'mask' (values filled in by the caller)."""
    from magvit_onnx.runtime import tasks

    spec = tasks.get_task(generator.tasks[i % len(generator.tasks)])
    needs = {"video": None} if spec.needs_video else {}
    if spec is tasks.MASK_TASK:
        needs["mask"] = None
    if spec.class_conditional:
        needs["class_id"] = i % len(generator.classes)
    return spec.name, needs


def central_box(generator) -> list[int]:
    """[top, left, height, width]: the middle half of the model's frame (the mask task's region)."""
    height, width = generator.video_shape[1:]
    return [height // 4, width // 4, height // 2, width // 2]


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def export_tiny(folder: Path) -> None:
    from magvit_onnx.export.exporter import export_all, seeded_random_models
    from magvit_onnx.models.config import TransformerConfig, get_config

    config = get_config("tiny")
    config = dataclasses.replace(
        config, vq=dataclasses.replace(config.vq, video_shape=(8, 32, 32)),
        transformer=TransformerConfig(num_layers=2, hidden_size=64, num_heads=2, mlp_dim=128))
    export_all(config, *seeded_random_models(config, seed=0), folder)


class Samples:
    """RSS after every finished generation (thread-safe)."""

    def __init__(self):
        self.values: list[int] = []
        self.lock = threading.Lock()

    def take(self, count: int = 1) -> None:
        value = rss_bytes()
        with self.lock:
            self.values.extend([value] * count)


def soak_batch(artifacts: Path, work: Path, count: int, steps: int, batch_size: int, threads: int,
               samples: Samples) -> dict:
    from magvit_onnx import batch
    from magvit_onnx.generator import Generator
    from magvit_onnx.video import write_mp4

    generator = Generator(artifacts)
    frames, height, width = generator.video_shape
    clip = work / "clip.mp4"
    write_mp4(clip, np.random.default_rng(0).integers(0, 256, (frames + 4, height + 8, width + 16, 3), np.uint8))
    formats = ("mp4", "gif", "png", "npy")
    lines = []
    for i in range(count):
        task, needs = job_task(generator, i)
        job = {"id": f"soak-{i:06d}", "task": task, "steps": steps, "seed": i, "format": formats[i % 4]}
        if "video" in needs:
            job["input"] = str(clip)
        if "class_id" in needs:
            job["class"] = needs["class_id"]
        if "mask" in needs:
            job["mask"] = central_box(generator)
        lines.append(json.dumps(job))
    jobs = work / "jobs.jsonl"
    jobs.write_text("\n".join(lines) + "\n")

    class Sampling(batch.Progress):
        def advance(self, videos: int, failed: bool = False) -> None:
            super().advance(videos, failed)
            samples.take(videos)

    progress = Sampling(count, stream=sys.stderr, tty=False, interval=15)
    summary = batch.run(jobs, work / "out", artifacts=artifacts, batch_size=batch_size, workers=threads,
                        progress=progress, generator_factory=lambda: generator, log=lambda line: None)
    return summary.as_dict()


def soak_generator(artifacts: Path, count: int, steps: int, threads: int, samples: Samples) -> dict:
    from magvit_onnx.generator import Generator

    generator = Generator(artifacts)
    frames, height, width = generator.video_shape
    clip = np.random.default_rng(0).integers(0, 256, (frames, height, width, 3), np.uint8)
    counter = iter(range(count))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work():
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            task, needs = job_task(generator, i)
            if "video" in needs:
                needs["video"] = clip
            if "mask" in needs:
                top, left, height, width = central_box(generator)
                needs["mask"] = np.zeros(generator.video_shape[1:], bool)
                needs["mask"][top:top + height, left:left + width] = True
            try:
                generator.generate(task, seed=i, steps=steps, **needs)
            except BaseException as e:  # noqa: BLE001 - reported in the JSON
                errors.append(e)
                return
            samples.take()

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors:
        raise errors[0]
    return {"ok": count}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", type=Path, default=None, help="artifacts folder (default: export a tiny one)")
    parser.add_argument("--count", type=int, default=1000, help="generations (default 1000)")
    parser.add_argument("--warmup", type=int, default=None, help="generations excluded (default: count // 10)")
    parser.add_argument("--steps", type=int, default=2, help="decoding steps per generation (default 2)")
    parser.add_argument("--mode", choices=("batch", "generator"), default="batch")
    parser.add_argument("--batch-size", type=int, default=4, help="--mode batch: jobs per call (default 4)")
    parser.add_argument("--threads", type=int, default=1, help="worker threads sharing one Generator (default 1)")
    parser.add_argument("--limit", type=float, default=5.0, help="allowed RSS growth after warm-up, %% (default 5)")
    parser.add_argument("--json", type=Path, default=None, help="write the result here (also printed)")
    args = parser.parse_args(argv)
    warmup = args.count // 10 if args.warmup is None else args.warmup
    if not 0 <= warmup < args.count:
        parser.error("--warmup must be in 0 .. count - 1")

    samples = Samples()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="magvit-soak-") as tmp:
        work = Path(tmp)
        artifacts = args.artifacts
        if artifacts is None:
            artifacts = work / "artifacts"
            print("exporting a tiny model (torch) ...", file=sys.stderr, flush=True)
            export_tiny(artifacts)
        rss_start = rss_bytes()
        began = time.monotonic()
        if args.mode == "batch":
            run = soak_batch(artifacts, work, args.count, args.steps, args.batch_size, args.threads, samples)
        else:
            run = soak_generator(artifacts, args.count, args.steps, args.threads, samples)
        seconds = time.monotonic() - began
    values = np.array(samples.values, np.float64)
    if len(values) < args.count:
        print(f"only {len(values)} of {args.count} generations finished", file=sys.stderr)
    after_warmup = values[warmup - 1] if warmup else rss_start
    tail = values[warmup:]
    slope = float(np.polyfit(np.arange(len(tail)), tail, 1)[0]) if len(tail) > 1 else 0.0
    growth = 100.0 * (values[-1] - after_warmup) / after_warmup
    result = {
        "mode": args.mode, "count": args.count, "finished": int(len(values)), "warmup": warmup,
        "steps": args.steps, "batch_size": args.batch_size if args.mode == "batch" else None,
        "threads": args.threads, "artifacts": str(args.artifacts) if args.artifacts else "tiny 8x32x32 (exported)",
        "rss_mib": {"start": round(rss_start / 2 ** 20, 1), "after_warmup": round(after_warmup / 2 ** 20, 1),
                    "end": round(values[-1] / 2 ** 20, 1), "peak": round(values.max() / 2 ** 20, 1)},
        "growth_percent": round(growth, 3), "slope_bytes_per_generation": round(slope, 1),
        "limit_percent": args.limit, "passed": bool(growth < args.limit and len(values) == args.count),
        "seconds": round(seconds, 1), "generations_per_second": round(len(values) / seconds, 2),
        "total_seconds": round(time.monotonic() - started, 1), "run": run,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        tmp = args.json.with_name(f".{args.json.name}.tmp")
        tmp.write_text(text + "\n")
        os.replace(tmp, args.json)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
