"""Choose a model's per-task decoding defaults on validation data (never the test split, never
real recordings):

    nice python scripts/choose_decoding.py --json magvit_onnx/default_model/decoding_choice.json
    python scripts/ship_default_model.py --weights ... --decoding-by-task decoding_choice.json

For every task, a small grid — sampling temperature x mask temperature x (no top-k/top-p, or
top-p 0.9), the official setting (1.0, 4.5, off) among them — decodes the same validation
clips with the same seeds (common random numbers: the settings differ, the draws do not), from
the 'val' split of --sources (default synthetic, dead leaves and photo moves). Scores, lower
is better, and the criterion that picks:

  squared error  (default) mean squared error on the generated (unknown) region against the
                 true clip, per source, relative to the official setting's on that source,
                 averaged over the sources: each source weighs the same (a source whose errors
                 are ten times larger, such as dead leaves, would otherwise decide alone); the
                 official setting scores 1. It rewards hedging: low temperatures and blurry,
                 mean-like guesses score well without looking like video, so the winner can be
                 duller than the official setting. Hence --fvd:
  FVD            with --fvd: Fréchet Video Distance (Kinetics-400 I3D, magvit_onnx.fvd) of the
                 generated clips against the true ones, pooled over the sources; picks instead.
                 About 2.5 s per clip on a CPU, and biased at small N: use as many clips as
                 you can afford.
  classes        class-conditional generation (CG) has no true clip to compare with: its score
                 is the error rate of the analytic classifier (`synthetic.classify`) on the
                 generated clips against the requested class (--cg-clips per setting).

A setting replaces the official one only where it is shown better, not by luck: its score at
least --min-gain (5 %) below the official's AND, for squared error and CG, the paired bootstrap
95 % interval of its ratio to the official's entirely below 1 (the settings meet the same clips
and random numbers, so clip pairs are compared; 4 clips per source were about ±10 % noise).
CG must also keep the clips as varied as the official setting does (clip-feature Fréchet
distance to real clips no higher): a cold setting can follow the class by drawing one clip
over and over. Among the settings that qualify, the lowest score wins; ties keep the earlier
grid entry. Writes JSON: {task: {settings}, ... (only tasks whose choice is not the official
setting), "scores": {task: [{settings, score, ci95, beats, per-clip values ...}]}, "criterion":
..., "command": ...}, rewritten after every task, so an interrupted sweep leaves the tasks it
finished. `--from-scores FILE` picks again from a sweep's stored scores without decoding
anything (another --min-gain). `--decoding-by-task` of export_all.py / ship_default_model.py
reads the task entries.
"""
from __future__ import annotations

import argparse
import itertools
import json
import re
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from magvit_onnx import synthetic
from magvit_onnx.generator import Generator
from magvit_onnx.metrics import frechet_distance, paired_ratio, unknown_mse
from magvit_onnx.models.data import parse_data
from magvit_onnx.runtime import regions, tasks
from magvit_onnx.runtime.decoding import TUNED

OFFICIAL = {"sampling_temperature": 1.0, "mask_temperature": 4.5}


def grid(sampling: list[float], mask: list[float], top_p: float) -> list[dict]:
    """The settings to try, official first; top-p off is left out of the entry (the manifest's
    `decoding.top_p` 0 = off applies), and top_p 0 tries none."""
    settings = [{"sampling_temperature": s, "mask_temperature": m, **({"top_p": top_p} if p else {})}
                for p, s, m in itertools.product((False, True) if top_p else (False,), sampling, mask)]
    return [OFFICIAL, *(s for s in settings if s != OFFICIAL)]  # the official setting is always tried, first


def fvd_of(wanted: bool):
    """FVD(real, fake) of two uint8 clip batches on the Kinetics-400 I3D, or None."""
    if not wanted:
        return None
    from magvit_onnx.fvd import I3D, frechet_distance
    i3d = I3D()
    return lambda real, fake: frechet_distance(i3d.logits(real), i3d.logits(fake))


def validation_clips(sources: list[str], video_shape, count: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(source, clips uint8 [count, T, H, W, 3], labels) of each source's 'val' split."""
    return [(name, *parse_data(name, tuple(video_shape), split="val").take(count)) for name in sources]


def mask_task(generator: Generator, videos: np.ndarray, steps: int, settings: dict) -> tuple[np.ndarray, np.ndarray]:
    """The mask task (IPM) on `videos`: clip i meets a random region of any kind training draws,
    half of them inverted (outpainting), from seed i (the same for every setting). Returns the
    known pixels [N, T, H, W, 1] and the outputs."""
    drawn = regions.random_regions(np.random.default_rng(0), len(videos), tuple(generator.manifest["latent_shape"]),
                                   regions.KINDS, 0.5)
    masks = regions.pixel_region(drawn, generator.video_shape)  # True = generate
    out = generator.generate(tasks.MASK_TASK.name, video=videos, mask=masks, seed=list(range(len(videos))), steps=steps,
                             **settings)
    return ~masks[..., None], out


def score_task(generator: Generator, task: str, settings: dict, clips, args, fvd) -> dict:
    """One setting's scores on one task: squared error on the unknown region per source, its
    mean and each clip's (and FVD where asked); for CG, whether each clip shows its class and
    the clip-feature Fréchet distance of the clips to the source's own clips."""
    if task == "full_generation":
        classes = np.arange(args.cg_clips) % synthetic.NUM_CLASSES
        out = generator.generate(task, class_id=classes, seed=list(range(len(classes))), steps=args.steps,
                                 **settings)
        errors = (synthetic.classify(out) != classes).astype(int)
        features = np.stack([synthetic.clip_features(clip) for clip in out])
        return {"error_rate": float(errors.mean()), "errors_per_clip": errors.tolist(),
                "frechet_distance": frechet_distance(features, args.cg_reference)}
    entry, means, fakes, reals = {}, [], [], []
    for name, videos, labels in clips:
        if task == "frame_prediction_c" and labels[0] < 0:
            continue  # needs a class: the labelled source only
        if task == tasks.MASK_TASK.name:
            known, out = mask_task(generator, videos, args.steps, settings)
        else:
            known = tasks.condition(task, videos.astype(np.float32) / 255, generator.manifest["latent_shape"])["video_mask"]
            out = generator.generate(task, videos, class_id=labels if task == "frame_prediction_c" else None,
                                     seed=list(range(len(videos))), steps=args.steps, **settings)
        per_clip = unknown_mse(videos, out, known)
        means.append(float(per_clip.mean()))
        entry[f"mse_{name}"] = means[-1]
        entry[f"mse_per_clip_{name}"] = per_clip.tolist()
        fakes.append(out)
        reals.append(videos)
    entry["mse"] = float(np.mean(means))
    if fvd is not None:
        entry["fvd"] = float(fvd(np.concatenate(reals), np.concatenate(fakes)))
    return entry


def judge(rows: list[dict], min_gain: float) -> tuple[int, list[dict]]:
    """Each row's score against rows[0] (the official setting), and the index of the chosen row:
    the lowest score among the rows that beat the official one, else 0 (ties: the grid's order).

    - FVD: the FVD itself; beats the official where `min_gain` below it.
    - squared error: the ratio to the official per source, averaged, with a paired bootstrap
      95 % interval over the clips (`metrics.paired_ratio`); beats the official where the
      ratio is `min_gain` below 1 AND the whole interval lies below 1 (shown, not luck).
    - CG: the error rate, with the interval of its ratio to the official's; beats it where the
      ratio is `min_gain` below 1, the interval lies below 1, and the clips are no less varied
      (clip-feature Fréchet distance to real clips no higher: a cold setting can follow the
      class by drawing the same clip each time)."""
    first, verdicts = rows[0], []
    sources = [key for key in first if key.startswith("mse_per_clip_")]
    for row in rows:
        if "fvd" in row:
            verdicts.append({"score": row["fvd"], "beats": row["fvd"] < first["fvd"] * (1 - min_gain)})
            continue
        if "errors_per_clip" in row:
            change = paired_ratio([first["errors_per_clip"]], [row["errors_per_clip"]])
            varied = row["frechet_distance"] <= first["frechet_distance"]
            verdicts.append({"score": row["error_rate"], **change, "beats": bool(
                change["ratio"] <= 1 - min_gain and change["ci95"][1] < 1 and varied)})
            continue
        if not sources:
            raise SystemExit("the sweep has no per-clip scores (made before they were stored): decode it again")
        change = paired_ratio([first[key] for key in sources], [row[key] for key in sources])
        verdicts.append({"score": change["ratio"], **change,
                         "beats": bool(change["ratio"] <= 1 - min_gain and change["ci95"][1] < 1)})
    better = [i for i, verdict in enumerate(verdicts) if verdict["beats"]]
    return (min(better, key=lambda i: verdicts[i]["score"]) if better else 0), verdicts


def record(report: dict, task: str, rows: list[dict], min_gain: float) -> tuple[int, list[dict]]:
    """Judge one task's rows into `report`: their scores under "scores", and the chosen setting
    as the task's entry only where it is not the official one (the manifest then lists only
    what differs). Returns judge's (index, verdicts)."""
    best, verdicts = judge(rows, min_gain)
    report["scores"][task] = [row | verdict for row, verdict in zip(rows, verdicts)]
    report.pop(task, None)
    if best:
        report[task] = {k: v for k, v in rows[best].items() if k in TUNED}
    return best, verdicts


def criterion(data: str, fvd: bool, min_gain: float, cg: bool) -> str:
    """The report's description of how it picked, ending with the data it scored on."""
    score = "FVD" if fvd else ("squared error on the generated region relative to the official setting, mean over "
                               "sources, its paired bootstrap 95 % interval below 1")
    cg = "classifier error rate, its interval below the official's, clips no less varied (CG); " if cg else ""
    return f"{cg}{score}; a setting replaces the official where at least {min_gain:.0%} below it; {data}"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", type=Path, default=None, help="artifacts folder (default: the shipped model)")
    p.add_argument("--json", type=Path, required=True, help="where to write the choice")
    p.add_argument("--sources", default="synthetic,dead_leaves,photos",
                   help="comma-separated validation sources (parse_data names; 'val' split)")
    p.add_argument("--clips", type=int, default=8, help="validation clips per source")
    p.add_argument("--cg-clips", type=int, default=20, help="class-conditional clips per setting (CG)")
    p.add_argument("--steps", type=int, default=12, help="decoding steps")
    p.add_argument("--sampling-temperatures", default="1.0,0.7,0.5")
    p.add_argument("--mask-temperatures", default="4.5,2.0")
    p.add_argument("--top-p", type=float, default=0.9, help="the top-p tried beside no top-k/top-p (0: not tried)")
    p.add_argument("--tasks", default="", help="comma-separated tasks (default: all the model's)")
    p.add_argument("--fvd", action="store_true", help="pick by FVD (needs the [fvd] extra; slow on CPU)")
    p.add_argument("--min-gain", type=float, default=0.05,
                   help="how far below the official score a setting must be to replace it (0.05: 5 %%)")
    p.add_argument("--from-scores", type=Path, default=None,
                   help="pick again from this earlier sweep's JSON instead of decoding")
    args = p.parse_args(argv)
    if not 0 <= args.min_gain < 1:
        p.error(f"--min-gain must be in [0, 1), got {args.min_gain}")
    command = shlex.join(["python", "scripts/choose_decoding.py", *(argv or sys.argv[1:])])
    if args.from_scores is not None:
        report = json.loads(args.from_scores.read_text())
        report["command"] = f"{command} (scores: {report['command']})"
        for task, rows in report["scores"].items():
            record(report, task, rows, args.min_gain)
        data = re.search(r"\d+ 'val' clips per source of .*", report["criterion"]).group(0)
        rows = [row for rows in report["scores"].values() for row in rows]
        report["criterion"] = criterion(data, any("fvd" in row for row in rows), args.min_gain,
                                        "full_generation" in report["scores"])
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        return
    generator = Generator(args.artifacts, decoding="official")  # what a setting leaves unset: the official value
    names = [tasks.get_task(t).name for t in args.tasks.split(",") if t] or generator.tasks
    settings = grid([float(v) for v in args.sampling_temperatures.split(",")],
                    [float(v) for v in args.mask_temperatures.split(",")], args.top_p)
    fvd = fvd_of(args.fvd)
    clips = validation_clips(args.sources.split(","), generator.video_shape, args.clips)
    if "full_generation" in names:  # CG's variety is measured against real clips of the labelled source
        reference, _ = parse_data("synthetic", tuple(generator.video_shape), split="val").take(max(args.cg_clips, 100))
        args.cg_reference = np.stack([synthetic.clip_features(clip) for clip in reference])
    report = {"criterion": criterion(f"{args.clips} 'val' clips per source of {args.sources}, {args.steps} steps",
                                     args.fvd, args.min_gain, "full_generation" in names),
              "command": command, "scores": {}}
    for task in names:
        started, rows = time.time(), []
        for setting in settings:
            rows.append({**setting, **score_task(generator, task, setting, clips, args, fvd)})
        best, verdicts = record(report, task, rows, args.min_gain)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"{task}: {settings[best]} score {verdicts[best]['score']:.5g} (official {verdicts[0]['score']:.5g}), "
              f"{time.time() - started:.0f} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
