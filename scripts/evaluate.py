"""Evaluate a model on the held-out synthetic test split, or on any folder of videos
(numpy + onnxruntime, no torch):

    python scripts/evaluate.py --artifacts magvit_onnx/default_model/artifacts --json eval.json
    python scripts/evaluate.py --data DIR --json eval_real.json      # your own videos

With --data, the clips are 16-frame windows of every video under DIR (at the model's size:
short side scaled, centre crop; windows --window-gap frames apart, at most --count in all),
and two more reference lines are reported: the PSNR of plain block averaging over each
token's pixel block (T/t x H/h x W/w, e.g. 4x4x4) and over its spatial block frame by
frame (a lower bound any tokenizer should beat), and for in/outpainting the mean-colour
fill (the unknown region filled with the mean colour of the known pixels). Class-conditional
tasks need labelled synthetic clips and are skipped there.

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


def video_windows(folder: Path, shape: tuple[int, int, int], count: int, gap: int) -> np.ndarray:
    """Up to `count` windows [N, T, H, W, 3] of the videos under `folder` (sorted, recursively):
    from each video the windows starting at frames 0, gap, 2*gap, ... until it ends."""
    from magvit_onnx.video import VIDEO_SUFFIXES, VideoError, read_video

    frames, height, width = shape
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not files:
        raise SystemExit(f"--data {folder}: no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) there")
    windows = []
    for path in files:
        start = 0
        while len(windows) < count:
            try:
                windows.append(read_video(path, num_frames=frames, size=(height, width), start=start))
            except VideoError as e:
                if start == 0:  # not past the end: this file gives no window at all
                    print(f"--data: skipped {path}: {e}", file=sys.stderr)
                break
            start += gap
    if len(windows) < 4:
        raise SystemExit(f"--data {folder}: only {len(windows)} windows of {frames} frames; need at least 4")
    return np.stack(windows)


def block_average(clips: np.ndarray, block: tuple[int, int, int]) -> np.ndarray:
    """Every (bt, bh, bw) block of clips [N, T, H, W, 3] replaced by its mean colour."""
    n, t, h, w, c = clips.shape
    bt, bh, bw = block
    x = as_float(clips).reshape(n, t // bt, bt, h // bh, bh, w // bw, bw, c)
    return np.broadcast_to(x.mean(axis=(2, 4, 6), keepdims=True), x.shape).reshape(n, t, h, w, c)


def mean_colour_fill(clips: np.ndarray, video_mask: np.ndarray) -> np.ndarray:
    """The unknown pixels of each clip filled with the mean colour of its known pixels."""
    x = as_float(clips)
    known = np.broadcast_to(video_mask, x.shape[:4] + (1,))
    mean = (x * known).sum(axis=(1, 2, 3), keepdims=True) / known.sum(axis=(1, 2, 3), keepdims=True)
    return np.where(known, x, mean)


def evaluate(generator: Generator, count: int, seed: int, batch: int, log, task_names: list[str],
             settings: dict[str, float | None], clips: np.ndarray | None = None) -> dict:
    """The report on `clips` (default: `count` synthetic test clips, with their labels), decoding with
    `settings` (steps, guidance_scale, sampling_temperature; None = the model's)."""
    labels = None
    if clips is None:
        clips, labels = synthetic.make_dataset("test", count)
        clips = synthetic.resize_clips(clips, generator.video_shape)
    count = len(clips)
    task_names = [n for n in task_names if labels is not None or not tasks.get_task(n).class_conditional]
    latent = generator.manifest["latent_shape"]
    decoding = generator.manifest["decoding"]
    defaults = {"steps": decoding["num_iter"], "guidance_scale": decoding["guidance_scale"],
                "sampling_temperature": decoding["sampling_temperature"]}
    report: dict = {"count": count, "seed": seed} | {k: settings.get(k) if settings.get(k) is not None else v
                                                     for k, v in defaults.items()}

    recon = in_batches(lambda s: generator.decode(generator.encode(clips[s])), count, batch)
    report["tokenizer"] = {"psnr": float(psnr(clips, recon).mean()), "ssim": float(ssim(clips, recon).mean())}
    if labels is None:  # reference lines for real video: what plain averaging over a token's pixels keeps
        block = tuple(v // l for v, l in zip(generator.video_shape, latent))
        report["tokenizer"] |= {
            "block_average_psnr": float(psnr(clips, block_average(clips, block)).mean()),
            "frame_block_average_psnr": float(psnr(clips, block_average(clips, (1, *block[1:]))).mean()),
            "block": list(block)}
    log("tokenizer: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                  for k, v in report["tokenizer"].items()))

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
            if name.startswith(("inpainting", "outpainting")):
                fill = unknown_mse(clips, mean_colour_fill(clips, cond["video_mask"]), cond["video_mask"])
                entry |= {"mean_fill_mse": float(fill.mean()), "beats_mean_fill": bool(model.mean() < fill.mean())}
        if spec.class_conditional:
            entry["class_accuracy"] = float((synthetic.classify(out) == labels).mean())
        if not spec.needs_video:
            entry["frechet_distance"] = frechet_distance(np.stack([clip_features(c) for c in out]),
                                                         np.stack([clip_features(c) for c in clips]))
        report["tasks"][name] = entry
        log(f"{name}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in entry.items()))
    if labels is not None:
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
    p.add_argument("--sampling-temperature", type=float, default=None,
                   help="temperature of token sampling (default: the model's, the official 1.0)")
    p.add_argument("--tasks", default=None, help="comma-separated task ids or abbreviations (default: all)")
    p.add_argument("--data", type=Path, default=None,
                   help="a folder of videos to evaluate on instead of the synthetic test split")
    p.add_argument("--window-gap", type=int, default=16, help="with --data: frames between window starts")
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.count < 4:
        p.error("--count must be >= 4")
    if args.seed < 0:
        p.error("--seed must be >= 0")
    if args.window_gap < 1:
        p.error("--window-gap must be >= 1")
    generator = Generator(args.artifacts, args.providers)
    try:
        names = generator.tasks if args.tasks is None else [tasks.get_task(t).name for t in args.tasks.split(",")]
    except ValueError as e:
        p.error(str(e))
    unserved = [name for name in names if name not in generator.tasks]
    if unserved:
        p.error(f"--tasks: this model does not serve {', '.join(unserved)}; it serves {', '.join(generator.tasks)}")
    clips = None if args.data is None else video_windows(args.data, generator.video_shape, args.count, args.window_gap)
    report = evaluate(generator, args.count, args.seed, args.batch,
                      lambda line: print(line, file=sys.stderr, flush=True), names,
                      {"steps": args.steps, "guidance_scale": args.guidance_scale,
                       "sampling_temperature": args.sampling_temperature}, clips)
    if args.data is not None:
        report["data"] = str(args.data)
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
