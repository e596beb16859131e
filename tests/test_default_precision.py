"""Precision checks on the shipped default model (issue 19, item 14).

On random-init test models every probability is ~1/1024, so a limit on the probability
error could not fail; trained weights are confident, and the old int8 limit (probabilities
within 0.1 everywhere) failed on them (0.906 where int8 moved a token). The stated limits
(`export_all.LIMITS`) are token agreement plus the probability error where tokens agree.
"""
import onnx
import pytest

from magvit_onnx.export.export_all import LIMITS, parity_failures
from magvit_onnx.export.exporter import export_all
from magvit_onnx.export.gpu_coverage import input_types
from magvit_onnx.export.parity import check_parity
from magvit_onnx.models.checkpoint import load_checkpoint
from magvit_onnx.paths import DEFAULT_WEIGHTS
from magvit_onnx.runtime.artifacts import load_manifest


@pytest.fixture(scope="module")
def shipped():
    return load_checkpoint(DEFAULT_WEIGHTS)


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_reduced_precision_meets_its_stated_limits_on_the_shipped_model(shipped, tmp_path, precision):
    config, vq, transformer = shipped
    export_all(config, vq, transformer, tmp_path, **{precision: True})
    report = check_parity(tmp_path, config, vq, transformer, batch=1, tasks=("frame_prediction",), steps=2)
    assert parity_failures(report, precision) == []
    assert report["step_token_agreement"] < 1 or precision == "fp16"  # int8 does move tokens: the check can fail
    if precision == "fp16":
        # The transformer in fp16 (ORT's CPU kernels), the sampler a float32 graph of its own:
        # TensorRT's fp16 builder on a GPU never sees it (issue 30). Measured 0.9990 (4 of 4096 tokens moved).
        assert report["step_token_agreement"] >= 0.99
        for name, entry in load_manifest(tmp_path)["samplers"].items():
            assert "float16" not in input_types(onnx.load(str(tmp_path / entry["filename"]))).values(), name


def test_int8_is_judged_on_agreement_not_on_the_moved_tokens_probabilities():
    """The old check failed int8 on the probability error at moved tokens (0.906 on trained
    weights: one moved token moves its probability by up to 1). The stated limits judge how
    many tokens move, and the probability error only where tokens agree."""
    report = {"step_token_agreement": 0.99, "step_probs_max_abs_where_equal": 0.03, "decoder_max_abs": 0.0,
              "encoder_token_mismatches": 0, "step_probs_max_abs": 0.906}
    assert parity_failures(report, "int8") == []
    assert parity_failures({**report, "step_token_agreement": 0.9}, "int8") == ["step_token_agreement 0.9000 < 0.95"]
    limit = LIMITS["int8"]["step_probs_max_abs_where_equal"]
    assert parity_failures({**report, "step_probs_max_abs_where_equal": 0.2}, "int8") == [
        f"step_probs_max_abs_where_equal 0.2 > {limit}"]
