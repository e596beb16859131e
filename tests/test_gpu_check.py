"""scripts/gpu_check.sh and scripts/gpu_check.py on CPU (CI): the one-command GPU check cannot
rot between GPU sessions, and cannot report a pass it did not earn.

The two false reports it once gave: `--budget 60` skipped every parity check and still said
"passed": true; `--providers cpu,tensorrt` without TensorRT wrote no JSON at all (the CPU
results were lost with it)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from magvit_onnx.export.graphs import uniforms

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import gpu_check  # noqa: E402

GRAPHS = {"vq_encoder", "transformer_step", "vq_decoder"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The GPU session script's CPU smoke run, asked for TensorRT as well: this machine has none."""
    out = tmp_path_factory.mktemp("smoke")
    result = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--smoke", "--providers", "cpu,tensorrt"],
                            capture_output=True, text=True, env={**os.environ, "OUT": str(out), "PYTHON": sys.executable})
    return result, json.loads((out / "gpu_check.json").read_text()), out


def test_a_provider_that_cannot_start_is_recorded_and_the_rest_kept(smoke):
    result, report, out = smoke
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert report["finished"] and not report["passed"] and report["not_run_yet"] == []
    checks = report["checks"]
    for model in ("small fp32", "small fp16"):
        session = checks[f"{model} / tensorrt / session"]
        assert session["status"] == "failed" and "TensorrtExecutionProvider" in session["error"]
    assert report["failed"] == ["small fp32 / tensorrt / session", "small fp16 / tensorrt / session"]
    tensorrt = {name for name in checks if " / tensorrt / " in name and not name.endswith("session")}
    assert len(tensorrt) == 8 and {s["check"] for s in report["skipped"]} == tensorrt
    assert all("/ tensorrt / session', which failed (tensorrt did not start" in s["why"] for s in report["skipped"])
    others = {name: c["status"] for name, c in checks.items() if " / tensorrt / " not in name}
    assert len(others) == 15 and set(others.values()) == {"passed"}, others  # CPU results all there
    assert "exit 1" in (out / "gpu_check.log").read_text()


def test_the_cpu_checks_measure_what_they_name(smoke):
    report = smoke[1]
    checks = report["checks"]
    assert report["environment"]["device"] == "cpu" and report["environment"]["NVIDIA_TF32_OVERRIDE"] == "0"
    assert set(report["environment"]["libraries"]) == set(gpu_check.LIBRARIES)
    for model, precision in (("small fp32", "fp32"), ("small fp16", "fp16")):
        assert GRAPHS <= set(checks[f"{model} / graph checks"]["graphs"])
        parity = checks[f"{model} / cpu / parity"]
        assert parity["judged_as"] == precision and parity["failures"] == []
        noise = checks[f"{model} / cpu / noise"]
        assert noise["u_mismatches"] == 0 and noise["u_values"] == 4 * 32 * 1024 and noise["gumbel_nonfinite"] == 0
        sessions = checks[f"{model} / cpu / placement"]["sessions"]
        assert GRAPHS <= set(sessions)
        assert all(set(s["nodes_by_provider"]) == {"CPUExecutionProvider"} and s["memcpy"] == {}
                   for s in sessions.values())
    assert checks["small fp32 / cpu / parity"]["step_sampled_mismatches"] == 0
    speed = checks["small fp32 / cpu / speed batch 1"]
    assert speed["videos_per_min"] > 0 and set(speed["ms"]) == GRAPHS and speed["step_tflops"] > 0
    assert checks["small fp32 / torch eager fp32 / speed batch 1"]["videos_per_min"] > 0


def test_the_session_script_leaves_a_report_even_when_the_check_cannot_start(tmp_path):
    """A gpu_check.py that dies before its first section (here: no Python at all) still
    leaves a gpu_check.json that does not pass, and a non-zero exit."""
    result = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--smoke"], capture_output=True, text=True,
                            env={**os.environ, "OUT": str(tmp_path), "PYTHON": "false"})
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result.returncode == 1 and not report["passed"] and not report["finished"]
    assert "before writing a report" in report["error"]


def test_a_spent_budget_is_no_pass(tmp_path):
    """Every planned check that did not run is listed with its reason; none of it passes."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--small", "--providers", "cpu",
                             "--budget", "0", "--out", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 1, result.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["finished"] and not report["passed"] and report["failed"] == []
    skipped = {s["check"]: s["why"] for s in report["skipped"]}
    assert set(skipped) == set(report["checks"]) and "small fp32 / cpu / parity" in skipped
    assert skipped["small fp32 / export"].startswith("--budget 0 s spent")
    assert skipped["small fp32 / cpu / session"].startswith("needs 'small fp32 / export', which skipped (--budget")


def run_report(tmp_path, checks):
    report = gpu_check.Report(tmp_path / "gpu_check.json", {})
    report.run(checks, budget=1e9)
    return json.loads(report.path.read_text())


def test_report_passes_only_when_every_check_ran_and_passed(tmp_path):
    ok = lambda: ({"value": 1}, [])  # noqa: E731
    assert run_report(tmp_path, [gpu_check.Check("a", ok), gpu_check.Check("b", ok, ("a",))])["passed"]

    def broken():
        raise RuntimeError("no device")

    seen = {}

    def peek():  # the file as a run killed here would leave it
        seen.update(json.loads((tmp_path / "gpu_check.json").read_text()))
        return {}, []

    report = run_report(tmp_path, [gpu_check.Check("a", broken), gpu_check.Check("b", ok, ("a",)),
                                   gpu_check.Check("c", peek), gpu_check.Check("d", lambda: ({}, ["too slow"]))])
    assert not report["passed"] and report["failed"] == ["a", "d"]
    assert report["checks"]["a"]["error"] == "RuntimeError: no device"
    assert report["skipped"] == [{"check": "b", "why": "needs 'a', which error (RuntimeError: no device)"}]
    assert report["checks"]["c"]["status"] == "passed" and report["checks"]["d"]["failures"] == ["too slow"]
    assert not seen["passed"] and seen["not_run_yet"] == ["c", "d"]


def test_numpy_noise_is_the_graphs_noise_bit_for_bit():
    """The noise check's reference: written without torch, equal to export/graphs.py's."""
    seeds = np.random.default_rng(1).integers(0, 2 ** 31, (3, 40))
    seeds.reshape(-1)[:len(gpu_check.NOISE_SEEDS)] = gpu_check.NOISE_SEEDS
    expected = uniforms(torch.from_numpy(seeds), 1024).numpy()
    np.testing.assert_array_equal(gpu_check.numpy_uniforms(seeds, 1024), expected)


def test_placement_reads_the_profile_and_judges_gpu_sessions(tmp_path):
    add = onnx.helper.make_node("Add", ["x", "x"], ["y"], name="double")
    value = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4])
    graph = onnx.helper.make_graph([add], "g", [value], [onnx.helper.make_tensor_value_info("y", 1, [4])])
    path = tmp_path / "add.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]), str(path))
    with gpu_check.profiled_sessions(tmp_path / "profile"):
        session = ort.InferenceSession(str(path), ort.SessionOptions(), providers=["CPUExecutionProvider"])
    assert not ort.SessionOptions().enable_profiling  # the wrapper is gone after the block
    session.run(None, {"x": np.ones(4, np.float32)})
    found = gpu_check.placement(Path(session.end_profiling()))
    assert found["nodes_by_provider"] == {"CPUExecutionProvider": 1} and found["cpu_ops"] == {"Add": 1}

    def node(op, provider, size):
        return {"cat": "Node", "name": f"{op}_{provider}_kernel_time",
                "args": {"op_name": op, "provider": provider, "output_size": str(size)}}

    gpu_profile = tmp_path / "cuda.json"
    gpu_profile.write_text(json.dumps([node("MatMul", "CUDAExecutionProvider", 1 << 20),
                                       node("Shape", "CPUExecutionProvider", 24),  # shape arithmetic: fine
                                       node("MemcpyFromHost", "CUDAExecutionProvider", 64)]))
    clean = gpu_check.placement(gpu_profile)
    assert clean["memcpy"] == {"MemcpyFromHost": 1} and gpu_check.placement_failures("step", clean) == []
    gpu_profile.write_text(json.dumps([node("TopK", "CPUExecutionProvider", 1 << 16),
                                       node("MemcpyToHost", "CUDAExecutionProvider", 8)]))
    bad = gpu_check.placement_failures("step", gpu_check.placement(gpu_profile))
    assert len(bad) == 2 and "TopK" in bad[0] and "MemcpyToHost" in bad[1]


@pytest.mark.parametrize("argv, message", [(["--providers", "cuda,gpu"], "--providers takes"),
                                           (["--models", "huge"], "--models takes"),
                                           (["--batches", "1,x"], "--batches takes")])
def test_bad_options_are_one_line_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        gpu_check.parse(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err.splitlines()[-1]
