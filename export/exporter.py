"""Export the PyTorch reference into an artifacts folder (three ONNX graphs + manifest).

Uses the dynamo exporter (`torch.onnx.export(..., dynamo=True)`) with named dynamic
dims, one file per graph (`external_data=False`), then `onnx.checker` with full_check.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import logging
import warnings
from pathlib import Path

import onnx
import torch

import magvit_onnx
from magvit_onnx.export.graphs import (ONNX_TRANSLATIONS, SAMPLER_INPUTS, SAMPLERS, BodyGraph, DecoderGraph,
                                        EncoderGraph, SamplerGraph)
from magvit_onnx.export.model_card import class_entries, model_card
from magvit_onnx.models.config import MagvitConfig
from magvit_onnx.models.transformer import Transformer
from magvit_onnx.models.vqvae import VQVAE
from magvit_onnx.runtime import decoding as decoding_rules, tasks
from magvit_onnx.runtime.artifacts import FORMAT_VERSION, GRAPHS, sha256
from magvit_onnx.runtime.providers import DEFAULT_BATCH_PROFILE

EXAMPLE_BATCH = 2


def example_inputs(config: MagvitConfig) -> dict[str, tuple[torch.Tensor, ...]]:
    """Example arguments of each graph, in forward() order (values do not matter).
    'transformer_step' is the whole step (StepGraph, the reference; the graph of artifacts
    made before the split), 'transformer_body' its first three inputs."""
    b, (t, h, w), n, p = EXAMPLE_BATCH, config.vq.latent_shape, config.vq.num_tokens, config.vocab.prefix_length
    k = config.vq.codebook_size
    body = (torch.full((2 * b, n), -1, dtype=torch.int64),                 # tokens (with guidance rows)
            torch.full((2 * b, p), config.vocab.uncond_id, dtype=torch.int64),  # prefix
            torch.zeros(2 * b, n, dtype=torch.int64))                      # segment_ids
    scalars = (torch.tensor(1.0), torch.tensor(0, dtype=torch.int64), torch.tensor(0.0), torch.tensor(0.0))
    seeds = torch.randint(0, 2 ** 31 - 1, (b, n))
    return {
        "vq_encoder": (torch.rand(b, *config.vq.video_shape, 3),),
        "vq_decoder": (torch.zeros(b, t, h, w, dtype=torch.int64),),
        "transformer_body": body,
        "transformer_step": (*body, seeds, *scalars),
        "sampler_plain": (torch.randn(b, n, k), seeds, scalars[0]),  # no guidance: rows = batch
        "sampler_full": (torch.randn(2 * b, n, k), seeds, *scalars),  # guidance rows stacked below
    }


IO_NAMES = {
    "vq_encoder": (["video"], ["tokens"]),
    "vq_decoder": (["tokens"], ["video"]),
    "transformer_body": (["tokens", "prefix", "segment_ids"], ["logits"]),
    "sampler_plain": (SAMPLER_INPUTS["plain"], ["sampled", "probs"]),
    "sampler_full": (SAMPLER_INPUTS["full"], ["sampled", "probs"]),
    "transformer_step": (["tokens", "prefix", "segment_ids", "seeds", "temperature", "top_k", "top_p",
                          "guidance_scale"], ["sampled", "probs"]),
}


def dynamic_shapes(name: str):
    batch = torch.export.Dim("batch", min=1, max=4096)
    rows = torch.export.Dim("rows", min=1, max=8192)
    return {"transformer_step": ({0: rows}, {0: rows}, {0: rows}, {0: batch}, None, None, None, None),
            "transformer_body": ({0: rows}, {0: rows}, {0: rows}),
            "sampler_plain": ({0: batch}, {0: batch}, None),
            "sampler_full": ({0: rows}, {0: batch}, None, None, None, None)}.get(name, ({0: batch},))


def export_graph(module: torch.nn.Module, args: tuple, path: Path, input_names: list[str],
                 output_names: list[str], dynamic_shapes, opset: int) -> None:
    """Dynamo export of one module to a single self-contained, fully checked ONNX file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter chatter (deprecations, torchvision missing)
        torch.onnx.export(module.eval(), args, str(path), dynamo=True, opset_version=opset,
                          input_names=input_names, output_names=output_names,
                          dynamic_shapes=dynamic_shapes, external_data=False, verbose=False,
                          custom_translation_table=ONNX_TRANSLATIONS)
    model = onnx.load(str(path))
    strip_source_metadata(model)
    onnx.save(model, str(path))
    onnx.checker.check_model(model, full_check=True)


def strip_source_metadata(model: onnx.ModelProto) -> None:
    """Drop what the exporter records per node (stack traces with this checkout's file paths
    and line numbers, FX node text, module scopes): the same weights then give the same
    bytes wherever and from whatever checkout they are exported."""
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""


def graph_io(path: Path) -> dict:
    """Input/output names, dtypes and (symbolic) shapes of a saved graph, for the manifest."""
    model = onnx.load(str(path), load_external_data=False)

    def describe(values):
        out = []
        for v in values:
            t = v.type.tensor_type
            dims = [d.dim_param or d.dim_value for d in t.shape.dim]
            out.append({"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
                        "shape": dims})
        return out

    return {"inputs": describe(model.graph.input), "outputs": describe(model.graph.output),
            "opset": max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))}


def versions() -> dict[str, str]:
    """The versions that made the artifacts. magvit-onnx's own is the source's `__version__`:
    an editable install's metadata keeps the version it was installed at (0.2.0 after the
    bump to 0.3.0), so the shipped manifest once named the wrong one."""
    out = {}
    for package in ("torch", "onnx", "onnxscript", "onnxruntime"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {**out, "magvit-onnx": magvit_onnx.__version__}


TARGETS = ("cpu", "gpu")
# The filtered sampler each target runs (graphs.SAMPLERS); every folder also has 'plain'.
TARGET_SAMPLERS = {"cpu": "full", "gpu": "full_gpu"}


def sampler_names(target: str) -> list[str]:
    """The sampler graphs of a target ('cpu', 'gpu' or both, 'cpu+gpu')."""
    return ["plain", *(TARGET_SAMPLERS[t] for t in target.split("+"))]


def precision_name(fp16: bool, int8: bool) -> str:
    if int8:
        return "fp32, transformer_step int8 (dynamic quantisation of its MatMuls)"
    return "fp16 (float32 I/O)" if fp16 else "fp32"


def build_manifest(config: MagvitConfig, out: Path, opset: int, fp16: bool, weights: dict, int8: bool = False,
                   target: str = "cpu", metadata: dict[str, str] | None = None,
                   decoding_by_task: dict | None = None) -> dict:
    """The manifest; `metadata` (the checkpoint's) gives the class names and the model card;
    `decoding_by_task` this model's per-task decoding defaults (runtime/decoding.py), if any."""
    vocab = config.vocab
    metadata = metadata or {}
    return {
        "format_version": FORMAT_VERSION,
        "model_type": "magvit",
        "preset": config.name,
        "config": config.to_dict(),
        "video": {"shape": list(config.vq.video_shape), "channels": 3, "pixel_range": [0.0, 1.0],
                  "layout": "B,T,H,W,C (RGB, float32)"},
        "latent_shape": list(config.vq.latent_shape),
        "vocab": vocab.as_dict(),
        "tasks": {name: tasks.get_task(name).as_dict() for name in config.tasks},
        "classes": class_entries(config, metadata),
        "model_card": model_card(config, weights, metadata),
        "decoding": dataclasses.asdict(config.sampling),
        **({"decoding_by_task": decoding_by_task} if decoding_by_task else {}),
        "graphs": {name: {"filename": f"{name}.onnx", **graph_io(out / f"{name}.onnx")} for name in GRAPHS},
        # The step is transformer_step.onnx (logits) then one of these (runtime.pipeline.OrtEngine).
        "samplers": {name: {"filename": f"sampler_{name}.onnx", **graph_io(out / f"sampler_{name}.onnx")}
                     for name in sampler_names(target)},
        "precision": precision_name(fp16, int8),
        "target": target,
        "batch_profile": dict(DEFAULT_BATCH_PROFILE),  # TensorRT's optimisation profile (runtime.providers)
        "opset": opset,
        "weights": weights,
        "versions": versions(),
        "files": {file: {"sha256": sha256(out / file), "bytes": (out / file).stat().st_size} for file in
                  [f"{name}.onnx" for name in GRAPHS] + [f"sampler_{name}.onnx" for name in sampler_names(target)]},
    }


def check_decoding_by_task(config: MagvitConfig, decoding_by_task: dict) -> None:
    """Raises ValueError naming what is wrong with `decoding_by_task` for a model of `config`
    (the check `load_manifest` makes, runtime/decoding.py)."""
    problem = decoding_rules.by_task_problem(decoding_by_task, {
        "tasks": config.tasks, "decoding": dataclasses.asdict(config.sampling),
        "latent_shape": list(config.vq.latent_shape), "vocab": config.vocab.as_dict()})
    if problem:
        raise ValueError(f"{problem[0]} must be {problem[1]}")


def export_all(config: MagvitConfig, vq: VQVAE, transformer: Transformer, out: str | Path, *,
               opset: int = 18, fp16: bool = False, int8: bool = False, weights: dict | None = None,
               target: str | None = None, metadata: dict[str, str] | None = None,
               decoding_by_task: dict | None = None) -> dict:
    """Write the graphs and `manifest.json` into `out`; returns the manifest.

    The graphs: vq_encoder, transformer_step (the step's transformer, -> logits), vq_decoder,
    and the step's float32 samplers (graphs.SAMPLERS, a few kB each): 'plain' and the
    filtered one of each target. `fp16`: the tokenizer graphs and the step's transformer
    in fp16 (for GPUs); the samplers stay float32 (separate graphs). `int8`: the step's
    MatMuls dynamically quantised to int8 (for CPUs); the tokenizer graphs stay fp32.
    `target` ('cpu', 'gpu'; default both, int8: 'cpu'): which filtered sampler ships,
    'full' (sorts only what the filters need) or 'full_gpu' (sorts every class, a constant
    TopK width, see `filter_logits`). Tokens are the same."""
    target = target or ("cpu" if int8 else "cpu+gpu")
    if opset < 18:
        raise ValueError(f"opset must be >= 18, got {opset}")
    if target not in (*TARGETS, "cpu+gpu"):
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    if fp16 and int8:
        raise ValueError("choose fp16 (GPU) or int8 (CPU), not both")
    check_decoding_by_task(config, decoding_by_task or {})  # before any graph is written
    if int8 and "gpu" in target:
        raise ValueError("int8 artifacts are for CPUs (CUDA and TensorRT have no kernels for ORT's dynamic "
                         "quantisation); export the GPU target in fp32 or fp16")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    examples = example_inputs(config)
    # file stem -> (module, the IO_NAMES / dynamic_shapes / example_inputs key)
    graphs = {"vq_encoder": (EncoderGraph(vq), "vq_encoder"),
              "transformer_step": (BodyGraph(transformer, fp16=fp16), "transformer_body"),
              "vq_decoder": (DecoderGraph(vq), "vq_decoder")}
    for name in sampler_names(target):
        key = "sampler_plain" if name == "plain" else "sampler_full"
        graphs[f"sampler_{name}"] = (SamplerGraph(**SAMPLERS[name]), key)
    for name, (module, key) in graphs.items():
        export_graph(module, examples[key], out / f"{name}.onnx", *IO_NAMES[key], dynamic_shapes(key), opset)
        if fp16 and name in ("vq_encoder", "vq_decoder"):  # the step's transformer is fp16 from torch (BodyGraph)
            to_fp16(out / f"{name}.onnx")
    if int8:
        to_int8(out / "transformer_step.onnx")
    manifest = build_manifest(config, out, opset, fp16, weights or {}, int8, target, metadata, decoding_by_task)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def to_fp16(path: Path) -> None:
    """fp16 weights and math with float32 inputs/outputs, for the tokenizer graphs (the step's
    transformer is cast in torch instead, `BodyGraph(fp16=True)`; its samplers stay float32)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(path))
    del model.graph.value_info[:]  # the exporter's fp32 shape annotations would contradict fp16
    model = convert_float_to_float16(model, keep_io_types=True,
                                     op_block_list=["Softmax", "Log", "ArgMax", "CumSum", "TopK", "ReduceSum",
                                                    "Less", "LessOrEqual", "Where", "GatherElements", "Div"])
    topological_sort(model.graph)  # the converter appends its boundary casts at the end
    onnx.save(model, str(path))
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def to_int8(path: Path) -> None:
    """ORT dynamic quantisation of the MatMuls (weights int8 per channel, activations uint8
    per call): the step graph is GEMM-bound on CPU. Sampling stays fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = path.with_name(path.stem + ".int8.tmp.onnx")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process targets static quantisation
    try:
        quantize_dynamic(str(path), str(tmp), op_types_to_quantize=["MatMul"], per_channel=True,
                         weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    tmp.replace(path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def topological_sort(graph: onnx.GraphProto) -> None:
    """Reorder `graph.node` so every node comes after the producers of its inputs."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise ValueError(f"graph has a cycle or dangling inputs at {rest[0].name}")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def seeded_random_models(config: MagvitConfig, seed: int = 0) -> tuple[VQVAE, Transformer]:
    """A reproducible random init (for tests and benchmarks: it generates noise)."""
    torch.manual_seed(seed)
    return VQVAE(config.vq).eval(), Transformer(config).eval()
