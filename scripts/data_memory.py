"""Peak memory of streaming a folder of videos, for a few folder sizes, side by side:

    python scripts/data_memory.py --files 10,1000 --batches 40 --json scripts/data_memory.json

For each count, a child process writes that many small videos (16x64x80, 24 frames) into a
temporary folder, streams `--batches` batches of 8 windows through `models.data.batches`
(tiny preset size, random windows, crops, flips) and reports its peak RSS. Streaming keeps
no clips in memory, so the peak should not grow with the number of files.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from magvit_onnx.metrics import emit_report

CHILD = """
import resource, sys, numpy as np
from pathlib import Path
from magvit_onnx.models.data import FileSource, batches
from magvit_onnx.video import write_mp4
folder, count, steps = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
ramp = np.linspace(0, 255, 80, dtype=np.uint8)
frames = np.stack([np.roll(np.tile(ramp[None, :, None], (64, 1, 3)), 3 * t, axis=1) for t in range(24)])
for i in range(count):
    write_mp4(folder / f"clip{i:05d}.mp4", np.roll(frames, i, axis=2))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
stream = batches(FileSource(folder, (16, 64, 64)), 8)
for _ in range(steps):
    next(stream)
print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", default="10,1000", help="comma-separated folder sizes")
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    results = []
    for count in (int(c) for c in args.files.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            out = subprocess.run([sys.executable, "-c", CHILD, folder, str(count), str(args.batches)],
                                 capture_output=True, text=True, check=True).stdout.split()
        before, peak = (int(v) / 1024 for v in out[-2:])  # ru_maxrss is in KiB on Linux
        results.append({"files": count, "batches": args.batches, "batch": 8,
                        "peak_rss_mib_before_streaming": round(before, 1), "peak_rss_mib": round(peak, 1)})
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    report = {"results": results, "command": " ".join(["python scripts/data_memory.py", *(argv or sys.argv[1:])])}
    emit_report(report, args.json)


if __name__ == "__main__":
    main()
