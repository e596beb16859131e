"""The static GPU coverage check (`export.gpu_coverage`) catches each bad node it claims to:
every case plants the node in a small ONNX graph and sees the check fail, next to the good
variant that passes (so a rule that flags everything would fail here too)."""
import numpy as np
import onnx
import pytest

from magvit_onnx.export.gpu_coverage import fp16_problems, sampler_nodes, uncovered


def planted(nodes, inputs, outputs, initializers=()) -> onnx.ModelProto:
    """A small opset-18 model: `inputs` / `outputs` map names to (ONNX element type, shape)."""
    values = [[onnx.helper.make_tensor_value_info(n, t, s) for n, (t, s) in io.items()] for io in (inputs, outputs)]
    graph = onnx.helper.make_graph(nodes, "planted", *values, initializer=list(initializers))
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])


INT8, UINT8, INT32, INT64 = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8, onnx.TensorProto.INT32,
                             onnx.TensorProto.INT64)
FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16


@pytest.mark.parametrize("b_type", [UINT8, INT8])
def test_coverage_check_reads_matmulinteger_second_input(b_type):
    """CUDA's MatMulInteger is int8 x int8: a uint8 weight (input 1) is a gap, not only input 0."""
    node = onnx.helper.make_node("MatMulInteger", ["a", "b"], ["y"], name="mm")
    model = planted([node], {"a": (INT8, [2, 4]), "b": (b_type, [4, 3])}, {"y": (INT32, [2, 3])})
    expected = ["MatMulInteger (mm): no cuda kernel for uint8 (input 1)"] if b_type == UINT8 else []
    assert uncovered(model, "cuda") == expected
    assert uncovered(model, "tensorrt") == ["MatMulInteger (mm): no tensorrt kernel for int8",
                                            f"MatMulInteger (mm): no tensorrt kernel for "
                                            f"{'uint8' if b_type == UINT8 else 'int8'} (input 1)"]


def test_fp16_check_catches_an_int32_cast_outside_the_sampler():
    """Position or token ids cast to fp16 in the transformer body: no sampling input upstream."""
    cast = onnx.helper.make_node("Cast", ["ids"], ["h"], name="ids_to_half", to=FLOAT16)
    model = planted([cast], {"ids": (INT32, [2, 8])}, {"h": (FLOAT16, [2, 8])})
    assert sampler_nodes(model.graph) == []
    assert fp16_problems(model) == ["ids_to_half: Cast(int32 -> float16)"]
    to_float = onnx.helper.make_node("Cast", ["ids"], ["f"], name="ids_to_float", to=FLOAT)
    assert fp16_problems(planted([to_float], {"ids": (INT32, [2, 8])}, {"f": (FLOAT, [2, 8])})) == []


def topk_model(k_at_run_time: bool, classes: int = 64, k: int = 8, sort: int = 1) -> onnx.ModelProto:
    """TopK over [2, classes] with K a constant, or K = top_k + 0 computed in the graph."""
    nodes, inputs = [], {"x": (FLOAT, [2, classes])}
    if k_at_run_time:
        inputs["top_k"] = (INT64, [1])
        nodes.append(onnx.helper.make_node("Add", ["top_k", "zero"], ["k"], name="width"))
        constants = [onnx.numpy_helper.from_array(np.zeros(1, np.int64), "zero")]
    else:
        constants = [onnx.numpy_helper.from_array(np.array([k], np.int64), "k")]
    nodes.append(onnx.helper.make_node("TopK", ["x", "k"], ["values", "indices"], name="topk", sorted=sort))
    return planted(nodes, inputs, {"values": (FLOAT, None), "indices": (INT64, None)}, constants)


def test_coverage_check_catches_a_run_time_topk_width_on_cuda():
    """CUDA reads TopK's K on the host: computed in the graph, it is a copy and a sync per step."""
    gaps = uncovered(topk_model(k_at_run_time=True), "cuda")
    assert len(gaps) == 1 and gaps[0].startswith("TopK (topk): input 1 (k) is computed at run time")
    assert uncovered(topk_model(k_at_run_time=False), "cuda") == []


def test_tensorrt_topk_rule_is_tensorrt_10s():
    """TensorRT 10.1 takes a run-time K (8.x wanted an initializer); K < 3840 and sorted=1 stay."""
    assert uncovered(topk_model(k_at_run_time=True), "tensorrt") == []
    assert uncovered(topk_model(k_at_run_time=False, classes=4096, k=4000), "tensorrt") == [
        "TopK (topk): TensorRT's TopK takes K < 3840, got 4000"]
    assert uncovered(topk_model(k_at_run_time=True, classes=4096), "tensorrt") == [
        "TopK (topk): TensorRT's TopK takes K < 3840, a run-time K may reach 4096"]
    assert uncovered(topk_model(k_at_run_time=False, sort=0), "tensorrt") == [
        "TopK (topk): TensorRT's TopK needs sorted=1"]
