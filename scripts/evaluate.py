"""Evaluate a model on the held-out synthetic test split, or on any folder of videos
(numpy + onnxruntime, no torch):

    python scripts/evaluate.py --artifacts magvit_onnx/default_model/artifacts --json eval.json
    python scripts/evaluate.py --data DIR --json eval_real.json      # your own videos

Decoding: the model's per-task defaults where its manifest has them (`decoding_by_task`), or
with --decoding official the official ones; the report's `decoding` says which.

With --data, the clips are 16-frame windows of every video under DIR (at the model's size:
short side scaled, centre crop; windows --window-gap frames apart, at most --count in all),
and two more reference lines are reported: the PSNR of plain block averaging over each
token's pixel block (T/t x H/h x W/w, e.g. 4x4x4) and over its spatial block frame by
frame (a lower bound any tokenizer should beat), and for in/outpainting the mean-colour
fill (the unknown region filled with the mean colour of the known pixels). Class-conditional
tasks need labelled synthetic clips and are skipped there.

Measures, on test clips the model never saw:
  tokenizer     PSNR and SSIM (official definitions) of encode -> decode, uint8 in and out
  regions       for task inpainting (IPM, any region; models serving it): per kind of random
                region (box, moving box, blob; each also inverted, i.e. outpainting) the mean
                squared error on the generated pixels beside the mean-colour fill's
  conditional   for FP, FI, OPC, OPV, OPH, OPD, IPC, IPD, CFP: mean squared error on the
                UNKNOWN region (pixels outside the condition) against the true clip, beside
                the trivial baseline, which is the condition video itself (FP/CFP: the last
                condition frame repeated; FI: the linear blend; outpainting/inpainting: the
                condition fill); the model should beat each baseline
  classes       CG and CFP: accuracy of the analytic classifier (`synthetic.classify`) on
                the generated clips against the requested class
  Fréchet       CG: Fréchet distance between generated and real test clips on
                `synthetic.clip_features` (lower is better, 0 = same Gaussian)
  runtime       seconds per generated video, per task
  FVD           with --fvd: Fréchet Video Distance (Kinetics-400 I3D, magvit_onnx.fvd; needs
                the [fvd] extra) against the real clips of the tokenizer's reconstructions, of
                every task's output and of its trivial baselines (the condition video as the
                guess, i.e. FP/CFP last frame repeated, FI linear blend, in/outpainting condition
                fill; in/outpainting also the mean-colour fill; and, once for all, every clip's
                first frame repeated), each with the number of clips beside it ("fvd_clips").
                FVD is biased at small N: compare numbers only at the same count; the noise
                floor "fvd_real_vs_real" is FVD between the two halves of the real clips.
Decoding: the model's defaults (official: 12 steps, no guidance) unless --steps or
--guidance-scale say otherwise; --tasks limits the run to some tasks (ids or abbreviations).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from magvit_onnx import limits, synthetic
from magvit_onnx.generator import Generator
from magvit_onnx.metrics import as_float, emit_report, frechet_distance, psnr, ssim, unknown_mse
from magvit_onnx.runtime import regions, tasks
from magvit_onnx.runtime.artifacts import ArtifactError
from magvit_onnx.runtime.providers import ProviderError


def unwritable_file(path: Path) -> str | None:
    """Why a report cannot be written at `path` (None when it can), checked without writing."""
    if path.is_dir():
        return "is a folder"
    if not path.parent.is_dir():
        return f"its folder {path.parent} does not exist"
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        return "cannot be written (permission denied or read-only)"
    return None


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


def per_clip(values: np.ndarray) -> list[float]:
    """Per-clip values for the report, so two models on the same clips and seeds can be
    compared clip by clip (scripts/compare_evals.py)."""
    return [float(v) for v in values]


def evaluate_regions(generator: Generator, clips: np.ndarray, seed: int, settings: dict, fvd=None,
                     keep_pixels: bool = False) -> dict:
    """Task inpainting (IPM) on each kind of random region training draws (runtime/regions.py),
    as drawn and inverted (outpainting): per kind, the mean squared error on the generated pixels
    beside the mean-colour fill's, and FVD with `fvd`. Clip i of kind k meets the region drawn
    from (seed, k), so every model is measured on the same regions."""
    latent = tuple(generator.manifest["latent_shape"])
    report = {}
    for number, (kind, inverted) in enumerate((k, i) for i in (False, True) for k in regions.KINDS):
        drawn = regions.random_regions(np.random.default_rng([seed, number]), len(clips), latent, (kind,), float(inverted))
        masks = regions.pixel_region(drawn, generator.video_shape)  # [N, T, H, W], True = generate
        out = generator.generate("inpainting", video=clips, mask=masks, seed=[seed + i for i in range(len(clips))],
                                 replace_condition_pixels=keep_pixels, **settings)
        known = ~masks[..., None]
        fill = mean_colour_fill(clips, known)
        model, baseline = unknown_mse(clips, out, known), unknown_mse(clips, fill, known)
        entry = {"unknown_mse": float(model.mean()), "unknown_mse_per_clip": per_clip(model),
                 "mean_fill_mse": float(baseline.mean()),
                 "beats_mean_fill": bool(model.mean() < baseline.mean()), "generated_fraction": float(masks.mean())}
        if fvd:
            entry |= fvd(out) | {f"mean_fill_{k}": v for k, v in fvd(fill).items()}
        report[kind + ("_inverted" if inverted else "")] = entry
    return report


def fvd_against(real: np.ndarray, i3d) -> tuple[Callable[[np.ndarray], dict], dict]:
    """`fvd(videos)` -> {"fvd": FVD of `videos` against `real`, "fvd_clips": how many clips}, the
    real clips' I3D features computed once (float videos in [0, 1] are rounded to uint8 first);
    and the noise floor: FVD between the two halves of `real`, with the clips per half."""
    real_features = i3d.logits(real)
    half = len(real) // 2
    floor = {"fvd": frechet_distance(real_features[:half], real_features[half:]), "fvd_clips": half}

    def fvd(videos: np.ndarray) -> dict:
        videos = videos if videos.dtype == np.uint8 else np.round(np.clip(videos, 0, 1) * 255).astype(np.uint8)
        return {"fvd": frechet_distance(i3d.logits(videos), real_features), "fvd_clips": len(videos)}

    return fvd, floor


def evaluate(generator: Generator, count: int, seed: int, batch: int, log, task_names: list[str],
             settings: dict[str, float | None], clips: np.ndarray | None = None, i3d=None,
             keep_pixels: bool = False) -> dict:
    """The report on `clips` (default: `count` synthetic test clips, with their labels), decoding with
    `settings` (steps, guidance_scale, sampling_temperature; None = the model's); FVD lines when
    `i3d` (a `magvit_onnx.fvd.I3D`) is given. `keep_pixels`: tasks with an input keep its known
    pixels exactly (`replace_condition_pixels`), as the baselines do, so FVD compares only what
    each generates; the squared error on the generated pixels is the same either way."""
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
    # which defaults decoded: the model's per-task ones (over the values above), or the official
    report["decoding"] = generator.decoding
    report["decoding_by_task"] = generator.manifest.get("decoding_by_task", {}) if generator.decoding == "model" else {}
    report["replace_condition_pixels"] = keep_pixels

    recon = in_batches(lambda s: generator.decode(generator.encode(clips[s])), count, batch)
    report["tokenizer"] = {"psnr": float(psnr(clips, recon).mean()), "ssim": float(ssim(clips, recon).mean())}
    fvd = None
    if i3d is not None:
        fvd, report["fvd_real_vs_real"] = fvd_against(clips, i3d)
        report["tokenizer"] |= {f"reconstruction_{k}": v for k, v in fvd(recon).items()}
        report["repeat_first_frame"] = fvd(np.repeat(clips[:, :1], clips.shape[1], axis=1))
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
        if spec is tasks.MASK_TASK:
            report["tasks"][name] = entry = evaluate_regions(generator, clips, seed, settings, fvd, keep_pixels)
            log(f"{name}: " + "; ".join(f"{kind} unknown_mse {e['unknown_mse']:.4g} (mean fill {e['mean_fill_mse']:.4g})"
                                        for kind, e in entry.items()))
            continue
        # One seed per clip (seed + its index): every clip gets its own random numbers, and the
        # results do not depend on --batch. (One shared seed would give each batch of CG
        # the same random numbers for the same classes: the same clips over again.)
        inputs = lambda s: ({"video": clips[s]} if spec.needs_video else {}) | (  # noqa: E731
            {"class_id": labels[s]} if spec.class_conditional else {}) | {"seed": list(range(seed + s.start, seed + s.stop))}
        keep = {"replace_condition_pixels": keep_pixels} if spec.needs_video else {}
        out = in_batches(lambda s: generator.generate(name, **inputs(s), **settings, **keep), count, batch)
        entry = {"seconds_per_video": (time.time() - started) / count}
        if spec.needs_video:
            cond = tasks.condition(name, as_float(clips), latent)
            model = unknown_mse(clips, out, cond["video_mask"])
            baseline = unknown_mse(clips, np.clip(cond["video"], 0, 1), cond["video_mask"])
            entry |= {"unknown_mse": float(model.mean()), "unknown_mse_per_clip": per_clip(model),
                      "baseline_mse": float(baseline.mean()),
                      "beats_baseline": bool(model.mean() < baseline.mean())}
            if fvd:
                entry |= fvd(out) | {f"baseline_{k}": v for k, v in fvd(np.clip(cond["video"], 0, 1)).items()}
            if name.startswith(("inpainting", "outpainting")):
                fill = unknown_mse(clips, mean_colour_fill(clips, cond["video_mask"]), cond["video_mask"])
                entry |= {"mean_fill_mse": float(fill.mean()), "beats_mean_fill": bool(model.mean() < fill.mean())}
                if fvd:
                    entry |= {f"mean_fill_{k}": v for k, v in fvd(mean_colour_fill(clips, cond["video_mask"])).items()}
        elif fvd:
            entry |= fvd(out)
        if spec.class_conditional:
            entry["class_accuracy"] = float((synthetic.classify(out) == labels).mean())
        if not spec.needs_video:
            entry["frechet_distance"] = frechet_distance(np.stack([synthetic.clip_features(c) for c in out]),
                                                         np.stack([synthetic.clip_features(c) for c in clips]))
        report["tasks"][name] = entry
        log(f"{name}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in entry.items()
                                    if not isinstance(v, list)))
    if labels is not None:
        real = np.stack([synthetic.clip_features(c) for c in clips])
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
    p.add_argument("--fvd", action="store_true",
                   help="also report FVD (Kinetics-400 I3D; needs the [fvd] extra; about 1 s per clip "
                        "and video on a CPU core, so off by default)")
    p.add_argument("--replace-condition-pixels", action="store_true",
                   help="tasks with an input keep its known pixels exactly, as the baselines do (FVD then compares "
                        "only the generated parts; official: off)")
    p.add_argument("--decoding", choices=("model", "official"), default="model",
                   help="the model's per-task decoding defaults (its manifest's decoding_by_task, where it has "
                        "them) or the official ones; a given --sampling-temperature wins either way")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.count < 4:
        p.error("--count must be >= 4")
    if args.seed < 0:
        p.error("--seed must be >= 0")
    if args.window_gap < 1:
        p.error("--window-gap must be >= 1")
    if args.batch < 1:
        p.error("--batch must be >= 1")
    if args.json is not None:  # refused now, not after the whole evaluation
        problem = unwritable_file(args.json)
        if problem:
            p.error(f"--json {args.json}: {problem}")
    try:
        generator = Generator(args.artifacts, args.providers, decoding=args.decoding)
    except ArtifactError as e:
        p.error(f"--artifacts: {e}")
    except ProviderError as e:
        raise SystemExit(f"--providers {args.providers}: {e.command_line()}") from None
    try:
        limits.check_decoding(latent_shape=generator.manifest["latent_shape"],
                              codebook_size=generator.manifest["vocab"]["codebook_size"], steps=args.steps,
                              guidance_scale=args.guidance_scale, sampling_temperature=args.sampling_temperature)
    except ValueError as e:
        p.error(f"--{str(e).split()[0].replace('_', '-')}: {e}")
    try:
        names = generator.tasks if args.tasks is None else [tasks.get_task(t).name for t in args.tasks.split(",")]
    except ValueError as e:
        p.error(str(e))
    unserved = [name for name in names if name not in generator.tasks]
    if unserved:
        p.error(f"--tasks: this model does not serve {', '.join(unserved)}; it serves {', '.join(generator.tasks)}")
    clips = None if args.data is None else video_windows(args.data, generator.video_shape, args.count, args.window_gap)
    i3d = None
    if args.fvd:
        from magvit_onnx.fvd import I3D
        from magvit_onnx.fvd.architecture import MIN_FRAMES
        from magvit_onnx.fvd.weights import WeightsError

        if generator.video_shape[0] < MIN_FRAMES:
            p.error(f"--fvd: I3D needs clips of at least {MIN_FRAMES} frames; this model's have {generator.video_shape[0]}")
        try:
            i3d = I3D(args.providers)
        except (WeightsError, ImportError) as e:
            raise SystemExit(f"--fvd: {e}")
    report = evaluate(generator, args.count, args.seed, args.batch,
                      lambda line: print(line, file=sys.stderr, flush=True), names,
                      {"steps": args.steps, "guidance_scale": args.guidance_scale,
                       "sampling_temperature": args.sampling_temperature}, clips, i3d, args.replace_condition_pixels)
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
