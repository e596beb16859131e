"""Did a model get worse? Compare two models' `scripts/evaluate.py` reports clip by clip:

    python scripts/compare_evals.py --base old_s0.json old_s1.json --new new_s0.json new_s1.json --json cmp.json

Each pair of reports (the i-th --base with the i-th --new) must come from the same clips, count
and seed: the two models then meet the same clips and the same random numbers, so a clip's
squared error under one model is paired with its own under the other. Per task (and per
random-region kind of task `inpainting`), over every pair's clips:

  ratio     mean squared error on the generated region, new / base
  ci95      a paired bootstrap interval of that ratio (clips resampled with replacement,
            the same clips for both models; --resamples, seeded)
  verdict   "worse" where the whole interval lies above 1, "better" where below, else
            "no difference shown" (the clips cannot tell the two apart)

One sample per clip is noisy (about ±10 % on 20 clips): more seeds narrow the interval.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

from magvit_onnx.metrics import emit_report, paired_ratio

KEY = "unknown_mse_per_clip"


def per_clip(report: dict) -> dict[str, np.ndarray]:
    """Per-clip squared error of each task (and 'inpainting:<kind>') in one report."""
    out = {}
    for name, entry in report["tasks"].items():
        if KEY in entry:
            out[name] = np.asarray(entry[KEY])
        for kind, sub in entry.items():
            if isinstance(sub, dict) and KEY in sub:
                out[f"{name}:{kind}"] = np.asarray(sub[KEY])
    return out


def paired(base: list[dict], new: list[dict]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per task, the clips of every pair of reports: (base values, new values), aligned."""
    tasks: dict[str, tuple[list, list]] = {}
    for b, n in zip(base, new):
        same = {k: b.get(k) for k in ("count", "seed", "data")} == {k: n.get(k) for k in ("count", "seed", "data")}
        if not same:
            raise SystemExit(f"paired reports must share clips, count and seed: base has count {b.get('count')} "
                             f"seed {b.get('seed')}, new count {n.get('count')} seed {n.get('seed')}")
        ours, theirs = per_clip(b), per_clip(n)
        for name in ours.keys() & theirs.keys():
            tasks.setdefault(name, ([], []))
            tasks[name][0].append(ours[name])
            tasks[name][1].append(theirs[name])
    return {name: (np.concatenate(b), np.concatenate(n)) for name, (b, n) in sorted(tasks.items())}


def compare(base: np.ndarray, new: np.ndarray, resamples: int, seed: int) -> dict:
    """The ratio of mean squared errors new / base, its paired bootstrap 95 % interval and verdict."""
    change = paired_ratio([base], [new], resamples, seed)
    low, high = change["ci95"]
    verdict = "worse" if low > 1 else "better" if high < 1 else "no difference shown"
    return {"clips": len(base), "base_mse": float(base.mean()), "new_mse": float(new.mean()), **change,
            "verdict": verdict}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", type=Path, nargs="+", required=True, help="the reference model's reports")
    p.add_argument("--new", type=Path, nargs="+", required=True, help="the other model's, in the same order")
    p.add_argument("--resamples", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if len(args.base) != len(args.new):
        p.error(f"--base has {len(args.base)} reports and --new {len(args.new)}: give them in pairs")
    load = lambda path: json.loads(path.read_text())  # noqa: E731
    report = {"tasks": {name: compare(b, n, args.resamples, args.seed)
                        for name, (b, n) in paired([load(f) for f in args.base], [load(f) for f in args.new]).items()}}
    report["command"] = shlex.join(["python", "scripts/compare_evals.py", *(argv or sys.argv[1:])])
    for name, entry in report["tasks"].items():
        print(f"{name}: new/base {entry['ratio']:.3f} [{entry['ci95'][0]:.3f}, {entry['ci95'][1]:.3f}] "
              f"over {entry['clips']} clips: {entry['verdict']}", file=sys.stderr)
    emit_report(report, args.json)


if __name__ == "__main__":
    main()
