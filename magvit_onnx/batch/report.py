"""The report: its file names, reading it back (the report view, whether a job is done),
and `ReportWriter`, which appends its lines durably."""
from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from magvit_onnx.batch.errors import RunError
from magvit_onnx.batch.jobs import Job


def report_name(index: int, count: int) -> str:
    return "report.jsonl" if count == 1 else f"report.shard-{index:05d}-of-{count:05d}.jsonl"


def read_report(path: Path) -> Iterator[dict]:
    """The complete, valid lines of one report file (a torn last line is skipped)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    for raw in data.split(b"\n"):
        try:
            row = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(row, dict) and "status" in row:
            yield row


def report_files(out: str | os.PathLike) -> list[Path]:
    out = Path(out)
    return sorted(p for p in out.glob("report*.jsonl")
                  if p.name == "report.jsonl" or p.name.startswith("report.shard-"))


def report_view(out: str | os.PathLike) -> dict[str, dict]:
    """The latest line per job id over all report files in `out` (lines with an id only)."""
    view: dict[str, dict] = {}
    for path in report_files(out):
        for row in read_report(path):
            job_id = row.get("id")
            if not isinstance(job_id, str):
                continue
            if job_id not in view or row.get("finished", 0) >= view[job_id].get("finished", 0):
                view[job_id] = row
    return view


def input_stat(path: Path | None) -> list[int] | None:
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def is_done(job: Job, row: dict | None, out: Path, config: str) -> bool:
    """True when the report line says this job (same config, same input file) is done and
    every output it lists still has its sha256."""
    from magvit_onnx.runtime.artifacts import sha256

    if not row or row.get("status") != "ok" or row.get("config") != config or not row.get("outputs"):
        return False
    stat = input_stat(job.input)
    if job.input is not None and stat is not None and row.get("input_stat") != stat:
        return False  # the input file changed (a missing input does not undo finished work)
    for output in row["outputs"]:
        try:
            if sha256(out / output["path"]) != output["sha256"]:
                return False
        except (OSError, KeyError, TypeError):
            return False
    return True


class ReportWriter:
    """Appends report lines: one write per line, flushed and fsynced; locked against a second
    process on the same shard. A torn last line (a kill during a write) is cut off first."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._file = open(path, "a+b")
        try:
            import fcntl

            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise RunError(f"{path} is being written by another run of this shard; run each shard once at a time")
        except (ImportError, OSError):
            pass  # no flock on this platform or file system
        self._repair()

    def _repair(self) -> None:
        size = self._file.seek(0, os.SEEK_END)
        if size == 0:
            return
        position = size
        while position > 0:
            step = min(65536, position)
            self._file.seek(position - step)
            block = self._file.read(step)
            if position == size and block.endswith(b"\n"):
                return
            newline = block.rfind(b"\n")
            if newline >= 0:
                self._file.truncate(position - step + newline + 1)
                break
            position -= step
        else:
            self._file.truncate(0)
        self._file.flush()
        os.fsync(self._file.fileno())

    def append(self, row: dict) -> None:
        data = (json.dumps(row, ensure_ascii=False) + "\n").encode()
        with self._lock:
            self._file.seek(0, os.SEEK_END)
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()
