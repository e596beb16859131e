"""Progress on stderr: a bar on a terminal, else a plain line every few seconds."""
from __future__ import annotations

import sys
import threading
import time


class Progress:
    """A one-line bar (videos, videos/s, ETA) on a terminal; else a plain line every `interval` s."""

    def __init__(self, total_videos: int, stream=None, tty: bool | None = None, interval: float = 10.0):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.total, self.done, self.failed = total_videos, 0, 0
        self.interval = interval
        self.started = self.last = time.monotonic()
        self._lock = threading.Lock()
        self._drawn = False

    def _status(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        left = self.total - self.done
        eta = f"{_clock(left / rate)}" if rate > 0 else "?"
        failed = f", {self.failed} failed" if self.failed else ""
        return f"{self.done}/{self.total} videos, {rate:.2f} videos/s, ETA {eta}{failed}"

    def advance(self, videos: int, failed: bool = False) -> None:
        with self._lock:
            self.done += videos
            self.failed += failed
            now = time.monotonic()
            if self.tty:
                if now - self.last >= 0.1 or self.done >= self.total:
                    self._draw()
                    self.last = now
            elif now - self.last >= self.interval:
                print(f"progress: {self._status()}", file=self.stream, flush=True)
                self.last = now

    def _draw(self) -> None:
        width = 24
        filled = width if not self.total else int(width * self.done / self.total)
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r\x1b[2K[{bar}] {self._status()}")
        self.stream.flush()
        self._drawn = True

    def message(self, line: str) -> None:
        with self._lock:
            if self.tty and self._drawn:
                self.stream.write("\r\x1b[2K")
            print(line, file=self.stream, flush=True)
            if self.tty and self._drawn:
                self._draw()

    def close(self) -> None:
        with self._lock:
            if self.tty and self._drawn:
                self.stream.write("\n")
                self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
