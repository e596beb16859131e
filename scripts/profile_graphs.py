"""Which operators dominate each graph in ONNX Runtime (CPU), from ORT's own profiler:

    python scripts/profile_graphs.py --artifacts magvit_onnx/default_model/artifacts --json profile.json

Runs each graph `--runs` times on the inputs of one generation step (random video, a first
COMMIT step of class-conditional generation), with the session options the runtime uses,
and sums the kernel time per operator type. numpy + onnxruntime only.

`--fused` also profiles the step graph after ONNX Runtime's transformer optimizer
(`optimize_model(model_type="bert")`: fused Attention, SkipLayerNormalization, FastGelu;
needs the `onnx` package) and reports which fusions matched, to decide whether shipping a
fused step graph pays on this CPU.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnxruntime as ort

from magvit_onnx.paths import DEFAULT_ARTIFACTS
from magvit_onnx.runtime import tasks
from magvit_onnx.runtime.artifacts import GRAPHS, load_manifest
from magvit_onnx.runtime.masking import MASK_TOKEN
from magvit_onnx.runtime.vocab import Vocab


def graph_feeds(manifest: dict, batch: int) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    t, h, w = manifest["latent_shape"]
    v = manifest["vocab"]
    vocab = Vocab(v["codebook_size"], v["num_classes"], v["multi_task"])
    n = t * h * w
    return {
        "vq_encoder": {"video": rng.random((batch, *manifest["video"]["shape"], 3), dtype=np.float32)},
        "transformer_step": {
            "tokens": np.full((batch, n), MASK_TOKEN, np.int64),
            "prefix": tasks.prefix("full_generation", vocab, batch, np.zeros(batch, np.int64)).astype(np.int64),
            "segment_ids": np.zeros((batch, n), np.int64), "seeds": rng.integers(0, 2 ** 31 - 1, (batch, n)),
            "temperature": np.array(1.0, np.float32), "top_k": np.array(0, np.int64),
            "top_p": np.array(0.0, np.float32), "guidance_scale": np.array(0.0, np.float32)},
        "vq_decoder": {"tokens": rng.integers(0, v["codebook_size"], (batch, t, h, w))},
    }


def profile(path: Path, feeds: dict, runs: int, threads: int) -> dict:
    """Per operator type: total ms over `runs` calls, share of all kernel time, node count."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / path.stem)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = {i.name: feeds[i.name] for i in session.get_inputs()}  # the optimizer may drop unused inputs
    session.run(None, feeds)  # warm-up, then only the timed runs below count
    start_ns = session.get_profiling_start_time_ns()
    for _ in range(runs):
        session.run(None, feeds)
    events = json.loads(Path(session.end_profiling()).read_text())
    totals, nodes = defaultdict(float), defaultdict(set)
    first_run_end_us = None
    for event in events:
        if event.get("cat") == "Session" and event["name"] == "model_run" and first_run_end_us is None:
            first_run_end_us = event["ts"] + event["dur"]  # skip the warm-up run's kernels
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            if first_run_end_us is not None and event["ts"] > first_run_end_us:
                op = event["args"]["op_name"]
                totals[op] += event["dur"] / 1000
                nodes[op].add(event["name"])
    total = sum(totals.values())
    ops = {op: {"ms_per_run": ms / runs, "share_pct": 100 * ms / total, "nodes": len(nodes[op])}
           for op, ms in sorted(totals.items(), key=lambda kv: -kv[1])}
    return {"kernel_ms_per_run": total / runs, "ops": ops, "profile_start_ns": start_ns}


def fuse_step_graph(path: Path, manifest: dict) -> tuple[Path, dict[str, int]]:
    """The step graph through ORT's transformer optimizer; returns its path and fusion counts."""
    from onnxruntime.transformers.optimizer import optimize_model

    transformer = manifest["config"]["transformer"]
    model = optimize_model(str(path), model_type="bert", num_heads=transformer["num_heads"],
                           hidden_size=transformer["hidden_size"], use_gpu=False)
    fused = Path(tempfile.mkdtemp()) / "transformer_step_fused.onnx"
    model.save_model_to_file(str(fused))
    return fused, {op: n for op, n in model.get_fused_operator_statistics().items() if n}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0: ORT's default)")
    p.add_argument("--top", type=int, default=8, help="operator types printed per graph")
    p.add_argument("--fused", action="store_true", help="also the step graph after ORT's transformer optimizer")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    manifest = load_manifest(args.artifacts)
    feeds = graph_feeds(manifest, args.batch)
    report = {"artifacts": str(args.artifacts), "precision": manifest["precision"], "batch": args.batch,
              "runs": args.runs, "command": " ".join(["python scripts/profile_graphs.py", *(argv or sys.argv[1:])]),
              "graphs": {}}
    paths = {name: args.artifacts / manifest["graphs"][name]["filename"] for name in GRAPHS}
    if args.fused:
        paths["transformer_step_fused"], report["fusions"] = fuse_step_graph(paths["transformer_step"], manifest)
        feeds["transformer_step_fused"] = feeds["transformer_step"]
        print(f"transformer optimizer fusions: {report['fusions']}", file=sys.stderr)
    for name, path in paths.items():
        result = profile(path, feeds[name], args.runs, args.threads)
        result.pop("profile_start_ns")
        report["graphs"][name] = result
        print(f"{name}: {result['kernel_ms_per_run']:.1f} ms of kernels per run", file=sys.stderr)
        for op, entry in list(result["ops"].items())[:args.top]:
            print(f"  {op:28s}{entry['ms_per_run']:9.2f} ms {entry['share_pct']:6.1f} %  ({entry['nodes']} nodes)",
                  file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
