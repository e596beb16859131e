"""The report: its file names, reading it back (the report view, whether a job is done),
and `ReportWriter`, which appends its lines durably."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

from magvit_onnx.batch.errors import RunError
from magvit_onnx.batch.jobs import Job


def report_name(index: int, count: int) -> str:
    return "report.jsonl" if count == 1 else f"report.shard-{index:05d}-of-{count:05d}.jsonl"


def claim_path(out: Path, job_id: str) -> Path:
    """A job's claim in --out: the output names it is about to write, made (fsynced) before
    the first of them (`outputs.write_outputs`) and removed once its report line lists them,
    so an output that exists without a report line (a run killed in between) is still
    known as the run's own."""
    return out / f".{job_id}.outputs"


def open_plain(path: Path, flags: int = os.O_RDONLY) -> int:
    """A descriptor of `path` opened without following a symbolic link (its last part), and
    only if it is a regular file: a report or an output that is a link or a device (a planted
    /dev/zero) is never read, written or truncated. A file it creates gets 0666 less the umask
    (0644 as a rule), as `open()` gives. Raises OSError."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def plain_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a regular file that is not a symbolic link; raises OSError otherwise."""
    digest = hashlib.sha256()
    with open(open_plain(path), "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_report(path: Path) -> Iterator[dict]:
    """The complete, valid lines of one report file (a torn last line is skipped; a report
    that is a link or not a regular file is not read)."""
    try:
        with open(open_plain(path), "rb") as f:
            data = f.read()
    except OSError:
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


def latest_lines(out: str | os.PathLike) -> dict[str, list[dict]]:
    """Per job id, its latest line in each report file of `out` (file order decides within a
    file: one process appends to it at a time; lines with an id only)."""
    lines: dict[str, list[dict]] = {}
    for path in report_files(out):
        latest: dict[str, dict] = {}
        for row in read_report(path):
            if isinstance(row.get("id"), str):
                latest[row["id"]] = row
        for job_id, row in latest.items():
            lines.setdefault(job_id, []).append(row)
    return lines


def listed_outputs(out: str | os.PathLike) -> set[str]:
    """Every output name any line of any report file in `out` lists: the files runs wrote."""
    return {o["path"] for path in report_files(out) for row in read_report(path)
            if isinstance(row.get("outputs"), list)
            for o in row["outputs"] if isinstance(o, dict) and isinstance(o.get("path"), str)}


def _finished(row: dict) -> float:
    value = row.get("finished")
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else float("-inf")


def report_view(out: str | os.PathLike) -> dict[str, dict]:
    """The latest line per job id over all report files in `out` (lines with an id only):
    within a file the last one, across files the one with the latest `finished` time."""
    return {job_id: max(rows, key=_finished) for job_id, rows in latest_lines(out).items()}


def input_stat(path: Path | None) -> list[int] | None:
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def is_done(job: Job, row: dict | None, out: Path, config: str, names: list[str]) -> bool:
    """True when the report line says this job (same config, same input file) is done, it lists
    exactly the job's output `names` (a report is not trusted with other paths), and each of
    them is still a regular file with its sha256."""
    if not row or row.get("status") != "ok" or row.get("config") != config:
        return False
    outputs = row.get("outputs")
    if not isinstance(outputs, list) or [o.get("path") if isinstance(o, dict) else None for o in outputs] != names:
        return False
    stat = input_stat(job.input)
    if job.input is not None and stat is not None and row.get("input_stat") != stat:
        return False  # the input file changed (a missing input does not undo finished work)
    for name, output in zip(names, outputs):
        try:
            if plain_sha256(out / name) != output.get("sha256"):
                return False
        except OSError:
            return False
    return True


class ReportWriter:
    """Appends report lines: one write per line, flushed and fsynced; locked against a second
    process on the same shard. A torn last line (a kill during a write) is cut off first.
    The report is opened without following a link and must be a regular file; a line that
    cannot be appended completely (disk full) is cut off again and raises RunError."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        try:
            fd = open_plain(path, os.O_RDWR | os.O_CREAT)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.EINVAL, errno.ENXIO):  # a link, a device, a FIFO, a socket
                raise RunError(f"{path} is a symbolic link or not a regular file; the report must be a plain file "
                               "(remove it, or choose another --out)", exit_code=2) from None
            raise
        self._file = open(fd, "r+b", buffering=0)
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
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
        os.fsync(self._file.fileno())

    def append(self, row: dict) -> None:
        # backslashreplace: a lone surrogate in a string becomes its JSON escape (\\udc80), so
        # the line is valid UTF-8 and reads back as the same string instead of failing here
        data = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace")
        with self._lock:
            fd = self._file.fileno()
            end = os.lseek(fd, 0, os.SEEK_END)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError as e:
                try:  # leave no torn line behind
                    os.ftruncate(fd, end)
                except OSError:
                    pass
                raise RunError(f"{self.path}: cannot append to the report ({e.strerror or e}); "
                               "finished outputs are kept, rerun to continue") from None
        if row.get("status") == "ok":  # the report lists the job's outputs now
            claim_path(self.path.parent, row["id"]).unlink(missing_ok=True)

    def close(self) -> None:
        try:
            self._file.close()
        except OSError:
            pass
