"""Evaluate a model on the held-out synthetic test split (numpy + onnxruntime, no torch):

    python scripts/evaluate.py --artifacts magvit_onnx/default_model/artifacts --json eval.json

Measures, on test clips the model never saw:
  tokenizer     PSNR and SSIM (official definitions) of encode -> decode, uint8 in and out
  conditional   for FP, FI, OPC, OPV, OPH, OPD, IPC, IPD, CFP: mean squared error on the
                UNKNOWN region (pixels outside the condition) against the true clip, beside
                the trivial baseline, which is the condition video itself (FP/CFP: the last
                condition frame repeated; FI: the linear blend; outpainting/inpainting: the
                condition fill); the model should beat each baseline
  classes       CG and CFP: accuracy of the analytic classifier (`synthetic.classify`) on
                the generated clips against the requested class
  Fréchet       CG: Fréchet distance between generated and real test clips on
                `clip_features` (defined below; lower is better, 0 = same Gaussian)
  runtime       seconds per generated video, per task
Decoding: the model's defaults (official: 12 steps, no guidance) unless --steps or
--guidance-scale say otherwise; --tasks limits the run to some tasks (ids or abbreviations).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from magvit_onnx import synthetic
from magvit_onnx.generator import Generator
from magvit_onnx.metrics import as_float, emit_report, frechet_distance, psnr, ssim, unknown_mse
from magvit_onnx.runtime import tasks


def clip_features(video: np.ndarray) -> np.ndarray:
    """11 numbers describing a clip [T, H, W, 3]: the classifier's object velocity (x, y,
    px/frame), mask skewness (shape) and fraction of frames with an object found; the mean
    and standard deviation of each RGB channel; and the mean absolute frame difference
    (how much moves)."""
    f = synthetic.classify_features(video)
    x = as_float(video[None])[0]
    return np.array([*f["velocity"], f["skew"], f["found"] / len(x), *x.mean(axis=(0, 1, 2)),
                     *x.std(axis=(0, 1, 2)), np.abs(np.diff(x, axis=0)).mean()], np.float64)


def in_batches(fn, count: int, batch: int):
    return np.concatenate([fn(slice(i, min(i + batch, count))) for i in range(0, count, batch)])


def evaluate(generator: Generator, count: int, seed: int, batch: int, log, task_names: list[str],
             steps: int | None = None, guidance_scale: float | None = None) -> dict:
    clips, labels = synthetic.make_dataset("test", count)
    clips = synthetic.resize_clips(clips, generator.video_shape)
    latent = generator.manifest["latent_shape"]
    decoding = generator.manifest["decoding"]
    settings = {"steps": steps, "guidance_scale": guidance_scale}
    report: dict = {"count": count, "seed": seed, "steps": steps or decoding["num_iter"],
                    "guidance_scale": decoding["guidance_scale"] if guidance_scale is None else guidance_scale}

    recon = in_batches(lambda s: generator.decode(generator.encode(clips[s])), count, batch)
    report["tokenizer"] = {"psnr": float(psnr(clips, recon).mean()), "ssim": float(ssim(clips, recon).mean())}
    log(f"tokenizer: PSNR {report['tokenizer']['psnr']:.2f} dB, SSIM {report['tokenizer']['ssim']:.4f}")

    report["tasks"] = {}
    for name in task_names:
        spec = tasks.get_task(name)
        started = time.time()
        # One seed per clip (seed + its index): every clip gets its own random numbers, and the
        # results do not depend on --batch. (One shared seed would give each batch of CG
        # the same random numbers for the same classes: the same clips over again.)
        inputs = lambda s: ({"video": clips[s]} if spec.needs_video else {}) | (  # noqa: E731
            {"class_id": labels[s]} if spec.class_conditional else {}) | {"seed": list(range(seed + s.start, seed + s.stop))}
        out = in_batches(lambda s: generator.generate(name, **inputs(s), **settings), count, batch)
        entry = {"seconds_per_video": (time.time() - started) / count}
        if spec.needs_video:
            cond = tasks.condition(name, as_float(clips), latent)
            model = unknown_mse(clips, out, cond["video_mask"])
            baseline = unknown_mse(clips, np.clip(cond["video"], 0, 1), cond["video_mask"])
            entry |= {"unknown_mse": float(model.mean()), "baseline_mse": float(baseline.mean()),
                      "beats_baseline": bool(model.mean() < baseline.mean())}
        if spec.class_conditional:
            entry["class_accuracy"] = float((synthetic.classify(out) == labels).mean())
        if not spec.needs_video:
            entry["frechet_distance"] = frechet_distance(np.stack([clip_features(c) for c in out]),
                                                         np.stack([clip_features(c) for c in clips]))
        report["tasks"][name] = entry
        log(f"{name}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in entry.items()))
    real = np.stack([clip_features(c) for c in clips])
    half = count // 2
    report["frechet_distance_real_vs_real"] = frechet_distance(real[:half], real[half:])  # the noise floor
    return report


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", default=None, help="artifacts folder (default: the shipped default model)")
    p.add_argument("--providers", default="cpu")
    p.add_argument("--count", type=int, default=100, help="test clips per task")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="decoding steps (default: the model's)")
    p.add_argument("--guidance-scale", type=float, default=None,
                   help="classifier-free guidance scale (default: the model's; official 0 = none)")
    p.add_argument("--tasks", default=None, help="comma-separated task ids or abbreviations (default: all)")
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.count < 4:
        p.error("--count must be >= 4")
    if args.seed < 0:
        p.error("--seed must be >= 0")
    generator = Generator(args.artifacts, args.providers)
    try:
        names = generator.tasks if args.tasks is None else [tasks.get_task(t).name for t in args.tasks.split(",")]
    except ValueError as e:
        p.error(str(e))
    unserved = [name for name in names if name not in generator.tasks]
    if unserved:
        p.error(f"--tasks: this model does not serve {', '.join(unserved)}; it serves {', '.join(generator.tasks)}")
    report = evaluate(generator, args.count, args.seed, args.batch,
                      lambda line: print(line, file=sys.stderr, flush=True), names, args.steps, args.guidance_scale)
    # The folder as a path relative to here when it is inside (the report stays true in any
    # checkout), and what identifies the model wherever it lies: the weights' sha256.
    folder = generator.artifacts.resolve()
    shown = folder.relative_to(Path.cwd()) if folder.is_relative_to(Path.cwd()) else folder
    report |= {"artifacts": str(shown), "weights_sha256": generator.manifest["weights"].get("sha256"),
               "providers": generator.providers,
               "command": " ".join(["python scripts/evaluate.py", *(argv or sys.argv[1:])])}
    emit_report(report, args.json)


if __name__ == "__main__":
    main()
