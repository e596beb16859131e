"""scripts/gpu_check.py in its CPU mode (CI): exports, graph checks, parity and the JSON
layout, so the one-command GPU check cannot rot between GPU sessions."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_on_cpu(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--providers", "cpu", "--small",
                             "--batches", "1", "--repeats", "1", "--out", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["passed"] and report["skipped"] == [] and report["environment"]["device"] == "cpu"
    assert set(report["exports"]) == {"tiny-small fp32", "tiny-small fp16"}
    for checks in report["graph_checks"].values():
        assert set(checks) == {"vq_encoder", "transformer_step", "vq_decoder"}
        assert all(v == {"cuda": [], "tensorrt": [], "fp16": []} for v in checks.values())
    fp32 = report["parity"]["tiny-small fp32 / cpu"]
    assert fp32["failures"] == [] and fp32["step_sampled_mismatches"] == 0
    assert report["parity"]["tiny-small fp16 / cpu"]["failures"] == []
    speed = report["speed"]["tiny-small fp32 / cpu"]["1"]
    assert speed["videos_per_min"] > 0 and set(speed["ms"]) == {"vq_encoder", "transformer_step", "vq_decoder"}
    assert speed["step_tflops"] > 0 and "1" in report["speed"]["tiny-small fp32 / torch eager fp32"]
