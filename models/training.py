"""What both training scripts share: device choice, progress lines, JSONL metrics, resumable state."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

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
