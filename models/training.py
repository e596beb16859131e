"""What both training scripts share: device choice, progress lines, JSONL metrics, resumable state."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable

import torch


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when present, else CPU; or an explicit torch device string."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Progress:
    """One line per report to stderr: step, metrics, steps/s (since start) and ETA."""

    def __init__(self, total: int, start: int = 0):
        self.total, self.start, self.t0 = total, start, time.time()

    def line(self, step: int, metrics: dict[str, float]) -> str:
        elapsed = time.time() - self.t0
        rate = (step - self.start) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - step) / rate if rate > 0 else float("inf")
        shown = " | ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        return f"step {step}/{self.total} | {shown} | {rate:.2f} steps/s | ETA {format_seconds(eta)}"

    def report(self, step: int, metrics: dict[str, float]) -> None:
        print(self.line(step, metrics), file=sys.stderr, flush=True)


def format_seconds(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class JsonlLog:
    """Append-only metrics file, one JSON object per line, flushed at once."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def save_state(path: Path, state: dict) -> None:
    """Resumable training state (model/optimiser state dicts, step, RNG) via temp file + rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_state(path: Path, device: torch.device) -> dict | None:
    path = Path(path)
    return torch.load(path, map_location=device, weights_only=False) if path.is_file() else None


def train_loop(*, step: int, total: int, train_step: Callable[[int], dict], evaluate: Callable[[], dict],
               save: Callable[[int], None], out: Path, shown: tuple[str, ...], log_every: int, eval_every: int,
               save_every: int, time_limit: float | None) -> int:
    """The loop both scripts share: step, evaluate, log (JSONL + progress), save, stop in time.

    `train_step(step)` does one optimiser step and returns its metrics; `evaluate()` returns
    validation metrics; `save(step)` writes the resumable state. Returns the last step.
    """
    log, progress = JsonlLog(out / "metrics.jsonl"), Progress(total, step)
    started = time.time()
    while step < total:
        record = train_step(step)
        step += 1
        record = {"step": step, **record}
        evaluated = step % eval_every == 0 or step == total
        if evaluated:
            record.update(evaluate())
        if step % log_every == 0 or evaluated:
            progress.report(step, {k: record[k] for k in shown if k in record})
        log.write(record)
        out_of_time = time_limit is not None and time.time() - started > 60 * time_limit
        if step % save_every == 0 or step == total or out_of_time:
            save(step)
        if out_of_time:
            print(f"time limit reached at step {step}; resume with the same command", file=sys.stderr, flush=True)
            break
    return step
