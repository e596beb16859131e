"""What both training scripts share: progress lines, JSONL metrics, resumable state, the loop."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from magvit_onnx.models import distributed
from magvit_onnx.models.data import DataError
from magvit_onnx.models.distributed import Dist, any_rank


class Progress:
    """One line per report to stderr: step, metrics, steps/s and samples/s (since start), ETA."""

    def __init__(self, total: int, start: int = 0, samples_per_step: int = 0):
        self.total, self.start, self.samples_per_step, self.t0 = total, start, samples_per_step, time.time()

    def line(self, step: int, metrics: dict[str, float]) -> str:
        elapsed = time.time() - self.t0
        rate = (step - self.start) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - step) / rate if rate > 0 else float("inf")
        shown = " | ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        samples = f" | {rate * self.samples_per_step:.1f} samples/s" if self.samples_per_step else ""
        return f"step {step}/{self.total} | {shown} | {rate:.2f} steps/s{samples} | ETA {format_seconds(eta)}"

    def report(self, step: int, metrics: dict[str, float]) -> None:
        print(self.line(step, metrics), file=sys.stderr, flush=True)


def format_seconds(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class MetricsLog:
    """Append-only `metrics.jsonl` (one JSON object per line, flushed at once), mirrored to
    TensorBoard when `tensorboard` is on and the package is installed."""

    def __init__(self, path: Path, tensorboard: bool = False):
        self.path = Path(path)
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                print("warning: --tensorboard needs the tensorboard package; logging to JSONL only",
                      file=sys.stderr, flush=True)
            else:
                self.writer = SummaryWriter(str(self.path.parent / "tensorboard"))

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step":
                    self.writer.add_scalar(key, value, record["step"])


def add_run_arguments(p: argparse.ArgumentParser, *, what: str, every: int) -> None:
    """The options both training scripts share: time limit, device, precision, logging, seed.
    `what` names the compiled / autocast module in the help texts; `every` is the default eval and save period."""
    p.add_argument("--time-limit", type=float, default=None, help="stop (and save) after this many minutes")
    p.add_argument("--device", default="auto", help="'auto': this process's GPU if any, else the CPU")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help=f"bf16 autocast for {what} (fp32 weights); default: on with CUDA, off on CPUs")
    p.add_argument("--compile", action="store_true", help=f"torch.compile {what}")
    p.add_argument("--tensorboard", action="store_true", help="also log to OUT/tensorboard (needs tensorboard)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--eval-every", type=int, default=every)
    p.add_argument("--save-every", type=int, default=every)


def start_run(args: argparse.Namespace) -> tuple[Dist, bool]:
    """This process's rank and device (`distributed.setup`), the seed set, and whether to run in
    bf16 (`--bf16`; by default on with CUDA). Seeded before any weights exist, so every rank
    starts from the same initial weights."""
    dist = distributed.setup(args.device)
    torch.manual_seed(args.seed)
    bf16 = dist.device.type == "cuda" if args.bf16 is None else args.bf16
    return dist, bf16


def save_state(path: Path, state: dict) -> None:
    """Resumable training state via temp file + rename. Only tensors and plain Python values
    (numbers, strings, lists, dicts), so `load_state` can refuse anything else."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_state(path: Path, device: torch.device, parts: tuple[str, ...] = ()) -> dict | None:
    """The state written by `save_state`, or None when there is none. Loaded with
    `weights_only=True`: a planted file cannot run code, it is refused. So is a state without
    one of `parts` (the state dicts the script restores) or without a whole `step` >= 0."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # pickle's errors have no common base class
        state, problem = None, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    else:
        missing = [key for key in ("step", *parts) if not isinstance(state, dict) or key not in state]
        problem = f"it has no {', '.join(map(repr, missing))}" if missing else None
        if not problem and (not isinstance(state["step"], int) or isinstance(state["step"], bool) or state["step"] < 0):
            problem = f"its step {str(state['step'])[:40]!r} is not a whole number >= 0"
    if problem:
        raise SystemExit(f"{path}: not a training state this script wrote ({problem}); move it away to start afresh")
    return state


def restore(path: Path, state: dict, parts: dict) -> None:
    """Load each named part of `state` (model, optimiser) into its object; a state of another
    model or optimiser is one line, not a traceback."""
    for name, target in parts.items():
        try:
            target.load_state_dict(state[name])
        except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise SystemExit(f"{path}: its {name!r} does not fit this run's model ({type(error).__name__}: "
                             f"{str(error).strip().splitlines()[0][:200] if str(error).strip() else ''}); "
                             f"move it away to start afresh") from None


def run_script(main: Callable[[], None]) -> None:
    """A training script's entry point: data that cannot train (an empty folder, only unreadable
    files, a bad manifest or weight) ends with its one line and exit status 1, not a traceback."""
    try:
        main()
    except DataError as error:
        # Raised in a DataLoader worker, the message carries the worker's traceback: keep its last line.
        raise SystemExit(f"error: --data: {str(error).strip().splitlines()[-1].split('DataError: ')[-1]}") from None


def plain(value):
    """Arguments as plain values for a state file / metadata (paths become strings)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def train_loop(*, step: int, total: int, train_step: Callable[[int], dict], evaluate: Callable[[], dict],
               save: Callable[[int], None], out: Path, shown: tuple[str, ...], log_every: int, eval_every: int,
               save_every: int, time_limit: float | None, dist: Dist = Dist(), global_batch: int = 0,
               tensorboard: bool = False, baseline: bool = False) -> int:
    """The loop both scripts share: step, evaluate, log (JSONL + progress), save, stop in time.

    `train_step(step)` does one optimiser step on every rank and returns its metrics (already
    averaged over ranks); `evaluate()` returns validation metrics and `save(step)` writes the
    resumable state — both run on rank 0 only. Every record names `world_size` and
    `global_batch`. The time limit is agreed by all ranks, so they stop at the same step.
    `baseline` (a fresh run warm-started with --init) first logs the validation of the
    starting weights as step 0: the number a fine-tune has to beat.
    Returns the last step.
    """
    log = MetricsLog(out / "metrics.jsonl", tensorboard) if dist.main else None
    if baseline and dist.main:
        record = {"step": step, "world_size": dist.world, "global_batch": global_batch, **evaluate()}
        log.write(record)
        print("validation of the --init weights: " + ", ".join(
            f"{k} {v:.4g}" for k, v in record.items() if k.startswith("val") and isinstance(v, float)), flush=True)
    progress = Progress(total, step, global_batch)
    if step >= total and dist.main:
        print(f"nothing to train: the run is at step {step} of --steps {total}", file=sys.stderr, flush=True)
    started = time.time()
    while step < total:
        record = train_step(step)
        step += 1
        record = {"step": step, "world_size": dist.world, "global_batch": global_batch, **record}
        evaluated = step % eval_every == 0 or step == total
        out_of_time = any_rank(time_limit is not None and time.time() - started > 60 * time_limit,
                               dist.world, dist.device)
        if dist.main:
            if evaluated:
                record.update(evaluate())
            if step % log_every == 0 or evaluated:
                progress.report(step, {k: record[k] for k in shown if k in record})
            log.write(record)
            if step % save_every == 0 or step == total or out_of_time:
                save(step)
        if out_of_time:
            if dist.main:
                print(f"time limit reached at step {step}; resume with the same command", file=sys.stderr, flush=True)
            break
    return step
