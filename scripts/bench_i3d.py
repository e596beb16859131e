"""Seconds per clip of the FVD network (Kinetics-400 I3D, 16 x 224 x 224) on the CPU: the
numpy-built ONNX graph on ONNX Runtime (what `magvit_onnx.fvd` runs) against the PyTorch
reference (`magvit_onnx.models.i3d`, eager), same inputs, same thread count; writes JSON.

    nice python scripts/bench_i3d.py --clips 2 --repeats 2 --json scripts/bench_i3d.json
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from magvit_onnx.metrics import emit_report


def seconds_per_clip(run, videos: np.ndarray, repeats: int) -> float:
    run(videos[:1])  # warm-up (session/allocator), untimed
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(videos)
        times.append((time.perf_counter() - started) / len(videos))
    return statistics.median(times)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=2, help="clips per timed call")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    import onnxruntime as ort
    import torch

    from magvit_onnx.fvd import I3D
    from magvit_onnx.fvd.graph import cached_graph
    from magvit_onnx.models.i3d import I3D as TorchI3D

    videos = np.random.default_rng(0).uniform(-1, 1, (args.clips, args.frames, 224, 224, 3)).astype(np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = args.threads
    onnx = I3D()
    onnx.session = ort.InferenceSession(str(cached_graph()), options, providers=["CPUExecutionProvider"])
    torch.set_num_threads(args.threads)
    net = TorchI3D.from_checkpoint()

    def run_torch(v):
        with torch.no_grad():
            return net(torch.from_numpy(v)).numpy()

    result = {
        "ort_s_per_clip": seconds_per_clip(lambda v: onnx.logits(v, preprocess=False), videos, args.repeats),
        "torch_s_per_clip": seconds_per_clip(run_torch, videos, args.repeats),
        "clips": args.clips, "frames": args.frames, "size": 224, "repeats": args.repeats, "threads": args.threads,
        "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "onnxruntime": ort.__version__, "torch": torch.__version__,
        "command": "python scripts/bench_i3d.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    emit_report(result, args.json)


if __name__ == "__main__":
    main()
