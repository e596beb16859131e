"""`python -m magvit_onnx.models.summary`: official counts for B and L
(docs/official-behaviour.md#tokenizer, #transformer)."""
import json
import subprocess
import sys

import pytest

from magvit_onnx.models.summary import OFFICIAL


@pytest.mark.parametrize("preset", ["B", "L"])
def test_summary_matches_official_counts(preset):
    out = subprocess.run([sys.executable, "-m", "magvit_onnx.models.summary", "--preset", preset],
                         capture_output=True, text=True, check=True).stdout
    counts = json.loads(out)["parameters"]
    official = OFFICIAL[preset]
    for name in ("vq_encoder", "vq_decoder", "quantizer", "discriminator"):
        assert counts[name] == official[name], name
    # Our vocabulary (ten tasks, 101 classes: V 1142, length 1026) vs UCF CG (V 1127, length 1025).
    assert abs(counts["transformer"] / official["transformer"] - 1) < 0.005


def test_summary_rejects_unknown_preset():
    result = subprocess.run([sys.executable, "-m", "magvit_onnx.models.summary", "--preset", "XL"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "invalid choice" in result.stderr
