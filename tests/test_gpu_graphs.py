"""The graphs made GPU-clean before any GPU sees them (issue 18), checked on CPU.

- the noise hash uses only integer Add/Mul/Div/Mod (CUDA and TensorRT run them on int64)
  and its numbers are uniform and independent (chi-square tests, not just "tokens equal");
- every node of the GPU exports has a CUDA kernel and a TensorRT parser for its types
  (`export.gpu_coverage`, tables from ORT's OperatorKernels.md and onnx-tensorrt's
  operators.md);
- fp16 graphs cast the transformer body only: the sampler stays float32, and no fp16
  intermediate overflows even where ORT's CPU cast insertion would have hidden it.
"""
import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from helpers import small_config
from magvit_onnx.export.exporter import export_all, seeded_random_models
from magvit_onnx.export.gpu_coverage import fp16_problems, input_types, sampler_nodes, uncovered
from magvit_onnx.export.graphs import uniforms
from magvit_onnx.export.parity import step_feeds
from magvit_onnx.export.reference import reference_pipeline
from magvit_onnx.runtime.artifacts import load_manifest
from magvit_onnx.runtime.pipeline import Pipeline


def chi_square_limit(dof: int, z: float = 4.75) -> float:
    """Upper chi-square quantile (Wilson-Hilferty); z = 4.75 is p ~ 1e-6: a good hash fails
    this once in a million seeds, a biased one always."""
    c = 2 / (9 * dof)
    return dof * (1 - c + z * math.sqrt(c)) ** 3


def chi_square_uniform(values: np.ndarray, bins: int) -> float:
    counts = np.bincount(np.minimum((values * bins).astype(np.int64), bins - 1).reshape(-1), minlength=bins)
    expected = values.size / bins
    return float(((counts - expected) ** 2 / expected).sum())


def chi_square_pairs(a: np.ndarray, b: np.ndarray, bins: int = 16) -> float:
    """Joint histogram of (a, b) against the uniform square: independence of uniforms."""
    return chi_square_uniform((np.floor(a * bins) * bins + np.floor(b * bins)) / bins ** 2, bins * bins)


def draw(seeds: np.ndarray, classes: int = 1024) -> np.ndarray:
    return uniforms(torch.from_numpy(seeds.astype(np.int64)), classes).numpy().astype(np.float64)


@pytest.fixture(scope="module")
def random_seeds():
    return np.random.default_rng(0).integers(0, 2 ** 31 - 1, (1, 512))


def test_noise_is_uniform_in_the_open_interval(random_seeds):
    u = draw(random_seeds)  # 524 288 numbers
    assert u.min() > 0 and u.max() < 1
    assert chi_square_uniform(u, 256) < chi_square_limit(255)
    assert chi_square_uniform(u[..., :8], 64) < chi_square_limit(63)  # per class, not only overall
    assert chi_square_uniform((u * 2 ** 15) % 1, 256) < chi_square_limit(255)  # low bits too (u has 23)


def test_noise_is_independent_across_classes_positions_and_seeds(random_seeds):
    u = draw(random_seeds)[0]  # (512 positions, 1024 classes)
    limit = chi_square_limit(255)
    for lag in (1, 2, 7, 512):  # neighbouring classes
        assert chi_square_pairs(u[:, :-lag], u[:, lag:]) < limit, lag
    assert chi_square_pairs(u[:-1], u[1:]) < limit  # neighbouring positions
    # Adversarial seeds: consecutive integers, and seeds one shift-distance apart. The
    # runtime draws seeds at random, but the hash must not rely on that.
    base = np.arange(1000, 1512)[None]
    for offset in (1, 1 << 16, 1 << 30):
        assert chi_square_pairs(draw(base)[0], draw(base + offset)[0]) < limit, offset
    consecutive = draw(base)[0]
    assert chi_square_uniform(consecutive, 256) < chi_square_limit(255)
    assert abs(np.corrcoef(consecutive[:-1].reshape(-1), consecutive[1:].reshape(-1))[0, 1]) < 5 / math.sqrt(u.size)


@pytest.fixture(scope="module")
def model():
    config = small_config()
    return config, *seeded_random_models(config, seed=0)


@pytest.fixture(scope="module")
def gpu_exports(model, tmp_path_factory):
    config, vq, transformer = model
    out = {}
    for name, options in {"fp32": {"target": "gpu"}, "fp16": {"fp16": True, "target": "gpu"}}.items():
        out[name] = tmp_path_factory.mktemp(name)
        export_all(config, vq, transformer, out[name], **options)
    return out


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_gpu_exports_have_no_node_the_gpu_cannot_run(gpu_exports, precision, provider):
    """Fails on any op/dtype without a CUDA kernel or TensorRT parser (the old xor-shift hash:
    11 BitwiseXor/BitwiseAnd nodes on CUDA; TensorRT also refused the int64 Clip), and on a
    run-time TopK width, a device-to-host sync per step on CUDA (the CPU sampler has one)."""
    for file in load_manifest(gpu_exports[precision])["files"]:  # the samplers too
        assert uncovered(onnx.load(str(gpu_exports[precision] / file)), provider) == [], file


def test_coverage_check_catches_bitwise_ops():
    node = onnx.helper.make_node("BitwiseXor", ["a", "b"], ["c"], name="xor")
    int64 = onnx.TensorProto.INT64
    graph = onnx.helper.make_graph([node], "g", [onnx.helper.make_tensor_value_info(n, int64, [2]) for n in "ab"],
                                   [onnx.helper.make_tensor_value_info("c", int64, [2])])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])
    assert uncovered(model, "cuda") == ["BitwiseXor (xor): no cuda kernel for int64"]


def test_cpu_and_gpu_exports_sample_the_same_tokens(model, gpu_exports, tmp_path):
    """The GPU target only fixes the TopK width (it sorts every class); tokens are equal."""
    config, vq, transformer = model
    export_all(config, vq, transformer, tmp_path, target="cpu")
    cpu, gpu = Pipeline.from_artifacts(tmp_path), Pipeline.from_artifacts(gpu_exports["fp32"])
    assert gpu.manifest["target"] == "gpu" and cpu.manifest["target"] == "cpu"
    for settings in ({}, {"top_k": 3}, {"top_p": 0.6, "guidance_scale": 1.5}):
        feeds = step_feeds(config, 2, np.random.default_rng(5), **settings)
        (s1, p1), (s2, p2) = cpu.engine.run_step(feeds), gpu.engine.run_step(feeds)
        np.testing.assert_array_equal(s1, s2)
        np.testing.assert_allclose(p1, p2, atol=1e-6)


def test_fp16_step_casts_the_body_only(gpu_exports):
    """No Cast(int64 -> float16) anywhere, and no float16 tensor in the sampling stage
    (the sampler graphs: everything downstream of logits, seeds and the scalars). The old
    whole-graph cast turned the hash's int64 -> float into Cast(int64 -> float16)."""
    for file in load_manifest(gpu_exports["fp16"])["files"]:
        assert fp16_problems(onnx.load(str(gpu_exports["fp16"] / file))) == [], file
    sampler = onnx.load(str(gpu_exports["fp16"] / "sampler_full_gpu.onnx"))
    assert len(sampler_nodes(sampler.graph)) > 30
    assert {"ArgMax", "TopK", "Log", "Mod"} <= {n.op_type for n in sampler_nodes(sampler.graph)}
    assert "float16" not in input_types(sampler).values()
    model = onnx.load(str(gpu_exports["fp16"] / "transformer_step.onnx"))
    types = input_types(model)
    assert {types[n.output[0]] for n in model.graph.node if n.op_type == "MatMul"} == {"float16"}  # the body is


def test_fp16_check_catches_the_old_whole_graph_cast():
    cast = onnx.helper.make_node("Cast", ["seeds"], ["u"], name="bits_to_half", to=onnx.TensorProto.FLOAT16)
    graph = onnx.helper.make_graph(
        [cast], "g", [onnx.helper.make_tensor_value_info("seeds", onnx.TensorProto.INT64, [2])],
        [onnx.helper.make_tensor_value_info("u", onnx.TensorProto.FLOAT16, [2])])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])
    assert fp16_problems(model) == ["bits_to_half: Cast(int64 -> float16)",
                                    "Cast (bits_to_half): float16 in the sampling stage"]


def expose_float16(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with every float16 intermediate also a graph output. ORT's CPU provider has
    few fp16 kernels; its cast insertion runs fp16 nodes in fp32 and then fuses cast chains
    (int64 -> fp16 -> fp32 becomes int64 -> fp32), hiding an fp16 overflow that CUDA, with
    real fp16 kernels, would compute. Exposed as outputs, the fp16 values must exist."""
    types = input_types(model)
    existing = {o.name for o in model.graph.output}
    for node in model.graph.node:
        for name in node.output:
            if types.get(name) == "float16" and name not in existing:
                model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT16, None))
    return model


def test_fp16_step_intermediates_stay_finite_with_cpu_cast_insertion_out_of_the_way(model, gpu_exports):
    """Would have caught the fp16 noise bug on CPU: its Cast(int64 -> float16) gave inf for
    most hash values, which only a GPU computed as written."""
    config = model[0]
    exposed = expose_float16(onnx.load(str(gpu_exports["fp16"] / "transformer_step.onnx")))
    assert len(exposed.graph.output) > 20
    session = ort.InferenceSession(exposed.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = step_feeds(config, 2, np.random.default_rng(3), guidance_scale=1.5, top_k=5)
    outputs = session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})
    for meta, value in zip(session.get_outputs(), outputs):
        assert np.isfinite(value).all(), meta.name
    sampler = ort.InferenceSession(str(gpu_exports["fp16"] / "sampler_full_gpu.onnx"),
                                   providers=["CPUExecutionProvider"])
    sampled, probs = sampler.run(None, {"logits": outputs[0],
                                        **{i.name: feeds[i.name] for i in sampler.get_inputs()[1:]}})
    _, ref_probs = reference_pipeline(config, *model[1:]).engine.run_step(feeds)
    assert np.abs(probs - ref_probs).max() < 2e-2 and ((sampled >= 0) & (sampled < 1024)).all()

