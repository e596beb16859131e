"""Static CUDA / TensorRT coverage of exported graphs: which nodes a GPU provider cannot run.

Sources (read, not run; no GPU was needed):
  CUDA   ONNX Runtime `docs/OperatorKernels.md`, "Operators implemented by
         CUDAExecutionProvider" (microsoft/onnxruntime main at commit 001d12d, the kernel
         table of the 1.2x-1.3x releases; onnxruntime-gpu 1.31.1 is the wheel we support).
         For each op, the row of the opset range that contains our opset 18.
  TRT    onnx-tensorrt `docs/operators.md` at release/10.1-GA (commit 96e7811), the ONNX
         parser of TensorRT 10.x, with its restrictions ("axes must be an initializer").
         TopK there: "`sorted` must be 1. `K` input must be less than 3840." -- K may be
         computed at run time (the 10.1 importer, `onnxOpImporters.cpp`, passes it to the
         layer as a tensor, `setInput(1, ...)`); "K as an initializer" was TensorRT 8.x's
         rule (8.4-GA: "This version of TensorRT only supports input K as an initializer").
  CUDA host inputs: ORT's CUDA TopK kernel registers K as a CPU input
         (`InputMemoryType(OrtMemTypeCPUInput, 1)`, `providers/cuda/math/topk.cc`): a K
         computed on the GPU is copied to the host and waited for at every run.

Placement rule ONNX Runtime applies (`fallback_cpu_capability.cc`): a node the CUDA provider
has a kernel for may still be placed on the CPU when it is small shape arithmetic fed by
CPU-side tensors (Shape -> Gather -> Concat chains that compute a Reshape target); that costs
no device copy of real data and is not a coverage gap. A node WITHOUT a CUDA kernel for its
input types runs on the CPU with its data copied across every run: that is a gap, and
`uncovered` lists it, as it lists a node the GPU runs only with a device-to-host copy and
sync each run (CUDA's TopK with a run-time K). Tables hold only the ops our graphs use or
must not use; an op absent from a table is uncovered.
"""
from __future__ import annotations

import onnx

F = {"float32", "float16", "float64", "bfloat16"}
INTS = {"int32", "int64", "uint32", "uint64"}
ALL = F | INTS | {"bool", "int8", "int16", "uint8", "uint16"}

# op -> dtypes accepted for its type-constrained data input (see CHECKED_INPUT), CUDA EP.
CUDA_KERNELS: dict[str, set[str]] = {
    "Add": ALL - {"bool"}, "Sub": ALL - {"bool"}, "Mul": ALL - {"bool"}, "Div": ALL - {"bool"},
    "Mod": F | INTS, "Neg": F | {"int8", "int16", "int32", "int64"},
    "Abs": ALL - {"bool"}, "Pow": F | {"int32", "int64"},
    "And": {"bool"}, "Or": {"bool"}, "Not": {"bool"}, "Xor": {"bool"},
    "Equal": F | INTS | {"bool"}, "Greater": F | INTS, "Less": F | INTS,
    "GreaterOrEqual": F | INTS, "LessOrEqual": F | INTS,
    "Min": F | INTS, "Max": F | INTS, "Clip": {"float64", "float32", "float16", "int64", "int8", "uint64", "uint8"},
    "Where": F | {"int32", "int64", "uint8"},
    "ArgMax": {"float64", "float32", "float16"}, "ArgMin": {"float64", "float32", "float16"},
    "TopK": {"float64", "float32", "float16", "int32", "int64"},
    "CumSum": {"float64", "float32", "float16", "int32", "int64", "uint32", "uint64"},
    "ReduceSum": F | {"int32", "int64"}, "ReduceMean": {"float64", "float32", "float16", "int32"},
    "ReduceMax": {"float64", "float32", "float16", "int32", "int64"},
    "Softmax": F, "Log": {"float64", "float32", "float16"}, "Exp": F, "Sqrt": F, "Erf": F, "Tanh": F,
    "Sigmoid": F, "Reciprocal": {"float64", "float32", "float16"},
    "MatMul": F, "Gemm": F, "Conv": {"float64", "float32", "float16"},
    "AveragePool": {"float64", "float32", "float16"}, "InstanceNormalization": {"float64", "float32", "float16"},
    "LayerNormalization": F, "DepthToSpace": {"float64", "float32", "float16"},
    "Cast": ALL, "Shape": ALL, "Reshape": ALL, "Transpose": ALL, "Squeeze": ALL, "Unsqueeze": ALL,
    "Concat": ALL, "Slice": ALL, "Split": ALL, "Expand": ALL, "Gather": ALL, "GatherElements": ALL,
    "Identity": ALL, "ConstantOfShape": {"int64"}, "Range": {"float64", "float32", "int16", "int32", "int64"},
    "Tile": F | {"int32", "int64"}, "Pad": {"bool", "float64", "float32", "float16"},
    "Resize": {"float64", "float32", "float16", "int32", "uint8"},
    "MatMulInteger": {"int8"},  # both inputs int8 only (T1, T2): ORT's dynamic quantisation feeds uint8
    # absent, so uncovered: BitwiseAnd/Or/Xor/Not, BitShift, DynamicQuantizeLinear
}

_TRT_FP = {"float32", "float16", "bfloat16"}
_TRT_NUM = _TRT_FP | {"int32", "int64"}
_TRT_ALL = _TRT_NUM | {"bool"}
# op -> dtypes of TensorRT 10's ONNX parser.
TRT_OPS: dict[str, set[str]] = {
    "Add": _TRT_NUM, "Sub": _TRT_NUM, "Mul": _TRT_NUM, "Div": _TRT_NUM, "Mod": _TRT_NUM, "Neg": _TRT_NUM,
    "Abs": _TRT_NUM, "Pow": _TRT_FP, "And": {"bool"}, "Or": {"bool"}, "Not": {"bool"},
    "Equal": _TRT_NUM, "Greater": _TRT_NUM, "Less": _TRT_NUM, "GreaterOrEqual": _TRT_NUM, "LessOrEqual": _TRT_NUM,
    "Min": _TRT_NUM, "Max": _TRT_NUM, "Clip": _TRT_FP, "Where": _TRT_ALL,
    "ArgMax": _TRT_NUM, "ArgMin": _TRT_NUM, "TopK": _TRT_NUM, "CumSum": _TRT_FP,
    "ReduceSum": _TRT_NUM, "ReduceMean": _TRT_NUM, "ReduceMax": _TRT_NUM,
    "Softmax": _TRT_FP, "Log": _TRT_FP, "Exp": _TRT_FP, "Sqrt": _TRT_FP, "Erf": _TRT_FP, "Tanh": _TRT_FP,
    "Sigmoid": _TRT_FP, "Reciprocal": _TRT_FP, "MatMul": _TRT_FP, "Gemm": _TRT_FP, "Conv": _TRT_FP,
    "AveragePool": _TRT_FP, "InstanceNormalization": _TRT_FP, "LayerNormalization": _TRT_FP,
    "DepthToSpace": _TRT_NUM, "Cast": _TRT_ALL | {"uint8"}, "Shape": _TRT_ALL, "Reshape": _TRT_ALL,
    "Transpose": _TRT_ALL, "Squeeze": _TRT_ALL, "Unsqueeze": _TRT_ALL, "Concat": _TRT_ALL, "Slice": _TRT_ALL,
    "Split": _TRT_ALL, "Expand": _TRT_ALL, "Gather": _TRT_ALL, "GatherElements": _TRT_ALL,
    "Identity": _TRT_ALL, "ConstantOfShape": {"int64"}, "Range": _TRT_NUM, "Tile": _TRT_ALL, "Pad": _TRT_NUM,
    "Resize": _TRT_FP,
    # not parsed: Bitwise*, BitShift, DynamicQuantizeLinear, MatMulInteger
}
# TensorRT restrictions: these inputs must be initializers (or Constant outputs).
TRT_CONSTANT_INPUTS = {"CumSum": 1, "ReduceSum": 1, "ReduceMean": 1, "ReduceMax": 1, "Slice": 3, "Squeeze": 1,
                       "Unsqueeze": 1, "Pad": 3}
TRT_TOPK_MAX = 3840  # K must be below it, whether K is a constant or computed at run time
# CUDA kernels that read an input from host memory: computed on the GPU, it is copied
# back and waited for at every run (a sync per step). Only the ones our graphs use.
CUDA_HOST_INPUTS = {"TopK": 1}

# The inputs that carry the type constraint a kernel is chosen by (default: input 0);
# every one of them must be a type the table lists (MatMulInteger's T1 and T2 both).
CONSTRAINED_INPUTS = {"Where": (1, 2), "MatMulInteger": (0, 1)}
TABLES = {"cuda": CUDA_KERNELS, "tensorrt": TRT_OPS}
INTEGERS = INTS | {"int8", "int16", "uint8", "uint16"}


def input_types(model: onnx.ModelProto) -> dict[str, str]:
    """numpy dtype name of every tensor of `model` (after ONNX shape inference)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.value_info, *g.input, *g.output]}
    types |= {t.name: t.data_type for t in g.initializer}
    for node in g.node:
        if node.op_type == "Constant":
            types[node.output[0]] = node.attribute[0].t.data_type
    return {k: onnx.helper.tensor_dtype_to_np_dtype(v).name for k, v in types.items() if v}


def uncovered(model: onnx.ModelProto, provider: str) -> list[str]:
    """One line per node `provider` ('cuda' or 'tensorrt') cannot run, or runs only with a
    device-to-host copy and sync every run, naming op, dtype and node."""
    table, types = TABLES[provider], input_types(model)
    constants = {t.name for t in model.graph.initializer}
    constants |= {n.output[0] for n in model.graph.node if n.op_type == "Constant"}
    gaps = []
    for node in model.graph.node:
        if node.op_type == "Constant":
            continue
        where = f"{node.op_type} ({node.name})"
        if node.domain not in ("", "ai.onnx"):
            gaps.append(f"{where}: domain {node.domain!r} is not in the {provider} table")
            continue
        for index in CONSTRAINED_INPUTS.get(node.op_type, (0,)):
            dtype = types.get(node.input[index], "?") if len(node.input) > index else "none"
            if dtype not in table.get(node.op_type, set()):
                gaps.append(f"{where}: no {provider} kernel for {dtype}" + (f" (input {index})" if index else ""))
        if node.op_type == "Cast":
            to = onnx.helper.tensor_dtype_to_np_dtype(_cast_to(node)).name
            if to not in table["Cast"]:
                gaps.append(f"{where}: no {provider} cast to {to}")
        if provider == "cuda":
            gaps += _cuda_host_inputs(node, where, constants)
        if provider == "tensorrt":
            gaps += _trt_restrictions(node, where, constants, model)
    return gaps


def _cast_to(node: onnx.NodeProto) -> int:
    """A Cast node's target type (its 'to' attribute; opset 19+ may add 'saturate')."""
    return next(a.i for a in node.attribute if a.name == "to")


def _cuda_host_inputs(node: onnx.NodeProto, where: str, constants: set[str]) -> list[str]:
    index = CUDA_HOST_INPUTS.get(node.op_type)
    if index is None or len(node.input) <= index or not node.input[index] or node.input[index] in constants:
        return []
    return [f"{where}: input {index} ({node.input[index]}) is computed at run time, and CUDA's {node.op_type} "
            "reads it from host memory: a device-to-host copy and a sync every run (make it a constant)"]


def _trt_restrictions(node: onnx.NodeProto, where: str, constants: set[str], model: onnx.ModelProto) -> list[str]:
    if node.op_type == "TopK":
        return _trt_topk(node, where, model)
    index = TRT_CONSTANT_INPUTS.get(node.op_type)
    if index is None or len(node.input) <= index or not node.input[index]:
        return []
    if node.input[index] not in constants:
        return [f"{where}: TensorRT needs input {index} ({node.input[index]}) to be an initializer"]
    return []


def _trt_topk(node: onnx.NodeProto, where: str, model: onnx.ModelProto) -> list[str]:
    """TensorRT 10's TopK: `sorted` = 1 and K < 3840; K may be a run-time tensor, which is
    then bounded only by the size of the sorted axis."""
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    gaps = [] if attributes.get("sorted", 1) == 1 else [f"{where}: TensorRT's TopK needs sorted=1"]
    k = _constant_value(model, node.input[1])
    if k is not None:
        largest = int(k.max())
    else:
        largest = _static_dim(model, node.input[0], attributes.get("axis", -1))
    if largest is not None and largest >= TRT_TOPK_MAX:
        given = "got" if k is not None else "a run-time K may reach"
        gaps.append(f"{where}: TensorRT's TopK takes K < {TRT_TOPK_MAX}, {given} {largest}")
    return gaps


def _static_dim(model: onnx.ModelProto, name: str, axis: int) -> int | None:
    """The size of `axis` of tensor `name` where shape inference knows it, else None."""
    g = onnx.shape_inference.infer_shapes(model).graph
    for value in [*g.value_info, *g.input, *g.output]:
        if value.name == name and value.type.tensor_type.HasField("shape"):
            dims = value.type.tensor_type.shape.dim
            if not -len(dims) <= axis < len(dims):
                return None
            return dims[axis].dim_value or None  # 0: a symbolic or unknown size
    return None


def _constant_value(model: onnx.ModelProto, name: str):
    for t in model.graph.initializer:
        if t.name == name:
            return onnx.numpy_helper.to_array(t)
    for n in model.graph.node:
        if n.op_type == "Constant" and n.output[0] == name:
            return onnx.numpy_helper.to_array(n.attribute[0].t)
    return None


# Step inputs that only the sampling stage reads; the transformer body never depends on them.
SAMPLER_INPUTS = ("seeds", "temperature", "top_k", "top_p", "guidance_scale")


def sampler_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The nodes that depend, directly or through other nodes, on a sampling input: the
    step graph's sampling stage (guidance, filtering, noise, argmax, probabilities)."""
    tainted = {i.name for i in graph.input if i.name in SAMPLER_INPUTS}
    nodes = []
    for node in graph.node:  # ONNX graphs are topologically sorted
        if tainted.intersection(node.input):
            tainted.update(node.output)
            nodes.append(node)
    return nodes


def fp16_problems(model: onnx.ModelProto) -> list[str]:
    """What would break an fp16 graph on a GPU (CPU cast insertion hides both): a cast of
    integers to float16 anywhere, sampler or not (Cast(int32 -> float16), Cast(int64 ->
    float16), ...: values over 65504 become inf, integers over 2048 are rounded), or a
    float16 tensor in the sampling stage (noise, filtering and argmax need float32)."""
    types, problems = input_types(model), []
    for node in model.graph.node:
        source = types.get(node.input[0]) if node.op_type == "Cast" else None
        if source in INTEGERS and _cast_to(node) == onnx.TensorProto.FLOAT16:
            problems.append(f"{node.name}: Cast({source} -> float16)")
    for node in sampler_nodes(model.graph):
        if "float16" in [types.get(t) for t in [*node.input, *node.output]]:
            problems.append(f"{node.op_type} ({node.name}): float16 in the sampling stage")
    return problems
