"""The docs' plots, drawn from committed JSON: `python scripts/plot_docs.py` (the [plots] extra).

    python scripts/plot_docs.py                                          # benchmark plots
    python scripts/plot_docs.py --metrics runs/transformer/metrics.jsonl # + training curves

Benchmarks: for every preset in every `--bench` file (default: scripts/bench_cpu*.json,
written by scripts/bench.py), `bench_{preset}.png`: median time per backend (ORT fp32,
ORT int8 step, torch eager, torch.compile), whole generations on the left, each graph
on the right.

Training: for every `--metrics` file (a training run's OUT/metrics.jsonl),
`training_{run folder}.png`: each of `--keys` that the file holds against the step;
values logged every step are smoothed by a running mean (raw values in light colour).

PNGs go to `--out` (default docs/images), without a timestamp or version in their
metadata, so the same JSON gives the same file.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = {"ort": "ORT fp32", "ort_int8": "ORT int8 step", "torch_eager": "torch eager",
            "torch_compile": "torch.compile"}
TRAINING_KEYS = ("loss", "val_loss", "reconstruction_loss", "val_psnr")


def bench_series(bench: dict) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """{preset: {"generation" | "graphs": {item: {backend: median ms}}}} of a bench JSON,
    batch size 1 (the tables' setting), backends in BACKENDS order, missing ones left out."""
    series = {}
    for preset, result in bench["presets"].items():
        setting = result["settings"]["batch_1"]
        series[preset] = {
            part: {item: {b: times[b]["median_ms"] for b in BACKENDS if b in times}
                   for item, times in setting[part].items()}
            for part in ("generation", "graphs")
        }
    return series


def training_series(lines: list[str], keys: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{key: (steps, values)} for each of `keys` present in the JSONL `lines` (order kept)."""
    records = [json.loads(line) for line in lines if line.strip()]
    series = {}
    for key in keys:
        points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
        if points:
            steps, values = zip(*points)
            series[key] = (np.asarray(steps), np.asarray(values, float))
    return series


def running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of each value and up to `window - 1` before it (same length as `values`)."""
    sums = np.cumsum(np.insert(values, 0, 0.0))
    starts = np.maximum(np.arange(1, len(values) + 1) - window, 0)
    return (sums[1:] - sums[starts]) / (np.arange(1, len(values) + 1) - starts)


def plot_bench(preset: str, parts: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    seconds = max(ms for items in parts.values() for times in items.values() for ms in times.values()) > 5000
    unit, scale = ("s", 1e-3) if seconds else ("ms", 1.0)
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), width_ratios=[len(parts["generation"]) + 1, 4])
    for ax, (part, title) in zip(axes, (("generation", "whole generation (12 steps)"), ("graphs", "one call per graph"))):
        items = list(parts[part])
        width = 0.8 / len(BACKENDS)
        for k, (backend, label) in enumerate(BACKENDS.items()):
            heights = [parts[part][item].get(backend, math.nan) * scale for item in items]
            ax.bar(np.arange(len(items)) + (k - (len(BACKENDS) - 1) / 2) * width, heights, width, label=label)
        ax.set_xticks(range(len(items)), [item.replace("_", " ") for item in items], fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(f"median {unit}, batch 1")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle(f"{preset} on CPU (lower is better)", fontsize=11)
    save(figure, path)


def plot_training(name: str, series: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(series), figsize=(4.2 * len(series), 3.4), squeeze=False)
    for ax, (key, (steps, values)) in zip(axes[0], series.items()):
        window = max(1, len(values) // 100)
        if window > 1:
            ax.plot(steps, values, color="tab:blue", alpha=0.2, linewidth=0.5)
        ax.plot(steps, running_mean(values, window), color="tab:blue", marker="." if len(values) <= 50 else None)
        ax.set_title(key if window == 1 else f"{key} (running mean of {window})", fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    figure.suptitle(f"training: {name}", fontsize=11)
    save(figure, path)


def save(figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(figure)
    print(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, nargs="*", default=sorted((ROOT / "scripts").glob("bench_cpu*.json")))
    parser.add_argument("--metrics", type=Path, nargs="*", default=[])
    parser.add_argument("--keys", default=",".join(TRAINING_KEYS),
                        help="Comma-separated metrics to plot, those present in the file (default: %(default)s).")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(argv)
    try:
        import matplotlib
    except ImportError:
        parser.exit(2, 'error: matplotlib is missing; install the plots extra: pip install -e ".[plots]"\n')
    matplotlib.use("Agg")
    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.bench:
        for preset, parts in bench_series(json.loads(path.read_text())).items():
            plot_bench(preset, parts, args.out / f"bench_{preset}.png")
    keys = tuple(k for k in args.keys.split(",") if k)
    for path in args.metrics:
        series = training_series(path.read_text().splitlines(), keys)
        if not series:
            parser.exit(2, f"error: {path}: none of the keys {', '.join(keys)} found; choose others with --keys\n")
        plot_training(path.parent.name, series, args.out / f"training_{path.parent.name}.png")


if __name__ == "__main__":
    main()
