"""Which operators dominate each graph in ONNX Runtime (CPU), from ORT's own profiler:

    python scripts/profile_graphs.py --artifacts magvit_onnx/default_model/artifacts --json profile.json

Runs each graph `--runs` times on the inputs of one generation step (random video, a first
COMMIT step of class-conditional generation), with the session options the runtime uses,
and sums the kernel time per operator type. numpy + onnxruntime only.

The step is the transformer (`transformer_step`, -> logits) and a sampler graph (`sampler_*`,
fed the transformer's own logits); `step` in the JSON sums them for the default decoding
(the 'plain' sampler) and gives the sampler's share. `--baseline DIR` also profiles an older
folder whose step graph samples inside (before the split), in the same run, and reports the
kernel time of its sampling nodes (those downstream of seeds, temperature, top_k, top_p or
guidance_scale in ORT's optimised graph; needs the `onnx` package):

    python scripts/profile_graphs.py --artifacts NEW --baseline OLD --step-only --batch 16 --json p16.json

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
    """Inputs of the three graphs; the samplers' are added by `sampler_feeds`."""
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


def sampler_feeds(step_path: Path, step_feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The samplers' inputs: the transformer's logits on the step's inputs, and the step's scalars."""
    session = ort.InferenceSession(str(step_path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {i.name: step_feeds[i.name] for i in session.get_inputs()})
    return {"logits": logits, **{k: v for k, v in step_feeds.items() if k not in ("tokens", "prefix", "segment_ids")}}


SAMPLING_INPUTS = ("seeds", "temperature", "top_k", "top_p", "guidance_scale")


def sampling_nodes(path: Path, threads: int) -> set[str]:
    """Names of the nodes of a single step graph (before the split) that depend on a sampling
    input, in the graph ONNX Runtime runs after its optimisations (the profile's node names)."""
    import onnx

    optimized = Path(tempfile.mkdtemp()) / "optimized.onnx"
    options = session_options(threads)
    options.optimized_model_filepath = str(optimized)
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    graph = onnx.load(str(optimized)).graph
    tainted, names = set(SAMPLING_INPUTS), set()
    for node in graph.node:  # topologically sorted
        if tainted.intersection(node.input):
            tainted.update(node.output)
            names.add(node.name)
    return names


def step_summary(graphs: dict, baseline_sampler_ms: float | None) -> dict:
    """Kernel ms of one step with the default decoding (transformer + 'plain' sampler), the
    sampler's share, and the same for the baseline's single step graph."""
    body, sampler = graphs["transformer_step"]["kernel_ms_per_run"], graphs["sampler_plain"]["kernel_ms_per_run"]
    out = {"transformer_ms": body, "sampler_ms": sampler, "step_ms": body + sampler,
           "sampler_share_pct": 100 * sampler / (body + sampler)}
    if baseline_sampler_ms is not None:
        step = graphs["baseline_step"]["kernel_ms_per_run"]
        out["baseline"] = {"step_ms": step, "sampler_ms": baseline_sampler_ms,
                           "sampler_share_pct": 100 * baseline_sampler_ms / step}
    return out


def session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    return options


def profile(path: Path, feeds: dict, runs: int, threads: int) -> dict:
    """Per operator type: total ms over `runs` calls, share of all kernel time, node count;
    and per node (`node_ms`, not written to the JSON)."""
    options = session_options(threads)
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / path.stem)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = {i.name: feeds[i.name] for i in session.get_inputs()}  # the optimizer may drop unused inputs
    session.run(None, feeds)  # warm-up, then only the timed runs below count
    start_ns = session.get_profiling_start_time_ns()
    for _ in range(runs):
        session.run(None, feeds)
    events = json.loads(Path(session.end_profiling()).read_text())
    totals, nodes, node_ms = defaultdict(float), defaultdict(set), defaultdict(float)
    first_run_end_us = None
    for event in events:
        if event.get("cat") == "Session" and event["name"] == "model_run" and first_run_end_us is None:
            first_run_end_us = event["ts"] + event["dur"]  # skip the warm-up run's kernels
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            if first_run_end_us is not None and event["ts"] > first_run_end_us:
                op = event["args"]["op_name"]
                totals[op] += event["dur"] / 1000
                nodes[op].add(event["name"])
                node_ms[event["name"].removesuffix("_kernel_time")] += event["dur"] / 1000 / runs
    total = sum(totals.values())
    ops = {op: {"ms_per_run": ms / runs, "share_pct": 100 * ms / total, "nodes": len(nodes[op])}
           for op, ms in sorted(totals.items(), key=lambda kv: -kv[1])}
    return {"kernel_ms_per_run": total / runs, "ops": ops, "profile_start_ns": start_ns, "node_ms": dict(node_ms)}


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
    p.add_argument("--step-only", action="store_true", help="only the step's graphs (not the tokenizer's)")
    p.add_argument("--baseline", type=Path, default=None,
                   help="an artifacts folder from before the step was split (its step graph samples inside)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    manifest = load_manifest(args.artifacts)
    feeds = graph_feeds(manifest, args.batch)
    report = {"artifacts": str(args.artifacts), "precision": manifest["precision"], "batch": args.batch,
              "runs": args.runs, "command": " ".join(["python scripts/profile_graphs.py", *(argv or sys.argv[1:])]),
              "graphs": {}}
    paths = {name: args.artifacts / manifest["graphs"][name]["filename"] for name in GRAPHS
             if not args.step_only or name == "transformer_step"}
    for name, entry in manifest.get("samplers", {}).items():
        paths[f"sampler_{name}"] = args.artifacts / entry["filename"]
        feeds.setdefault("sampler", sampler_feeds(paths["transformer_step"], feeds["transformer_step"]))
        feeds[f"sampler_{name}"] = feeds["sampler"]
    if args.baseline:
        paths["baseline_step"] = args.baseline / load_manifest(args.baseline)["graphs"]["transformer_step"]["filename"]
        feeds["baseline_step"] = feeds["transformer_step"]
    if args.fused:
        paths["transformer_step_fused"], report["fusions"] = fuse_step_graph(paths["transformer_step"], manifest)
        feeds["transformer_step_fused"] = feeds["transformer_step"]
        print(f"transformer optimizer fusions: {report['fusions']}", file=sys.stderr)
    baseline_sampler_ms = None
    for name, path in paths.items():
        result = profile(path, feeds[name], args.runs, args.threads)
        result.pop("profile_start_ns")
        node_ms = result.pop("node_ms")
        if name == "baseline_step":
            baseline_sampler_ms = sum(node_ms.get(n, 0.0) for n in sampling_nodes(path, args.threads))
        report["graphs"][name] = result
        print(f"{name}: {result['kernel_ms_per_run']:.1f} ms of kernels per run", file=sys.stderr)
        for op, entry in list(result["ops"].items())[:args.top]:
            print(f"  {op:28s}{entry['ms_per_run']:9.2f} ms {entry['share_pct']:6.1f} %  ({entry['nodes']} nodes)",
                  file=sys.stderr)
    if "sampler_plain" in report["graphs"]:
        report["step"] = step_summary(report["graphs"], baseline_sampler_ms)
        print(f"step: {json.dumps(report['step'])}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
