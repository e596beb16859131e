"""scripts/bench.py: the quick run measures both backends side by side and writes a sound JSON.

The quick run's logic runs in-process on the tests' small model (`helpers.small_config`
stands in for the `tiny` preset; its backend processes read the config from the
manifest), so a busy machine slows it down but cannot make it time out. Never asserts a
time (the box is noisy); only structure, positivity and finiteness.
"""
import contextlib
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import small_config

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
BENCH = SCRIPTS / "bench.py"


def run_bench(*args, timeout=600):
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=timeout)


def positive(value):
    return isinstance(value, float) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """`bench.main(['--quick', ...])` in this process, on the small model: (report, stdout, stderr)."""
    tmp = tmp_path_factory.mktemp("bench")
    argv = ["--quick", "--json", str(tmp / "bench.json"), "--cache-dir", str(tmp / "cache")]
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(SCRIPTS))  # the spawned backend processes import `bench` too
        import bench

        patch.setattr(bench, "get_config", lambda preset: small_config())
        patch.setattr(sys, "argv", [str(BENCH), *argv])
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            assert bench.main(argv) == 0
    return json.loads((tmp / "bench.json").read_text()), stdout.getvalue(), stderr.getvalue()


def test_quick_json_structure(quick):
    report, _, _ = quick
    assert "--quick" in report["command"] and report["argv"][-1].endswith("cache")
    machine = report["machine"]
    assert machine["cpu_cores"] >= 1 and machine["date"] and machine["cpu_model"]
    assert {"torch", "onnxruntime", "numpy"} <= set(machine["versions"])
    assert report["options"]["quick"] and report["options"]["steps"] == 2
    settings = report["presets"]["tiny"]["settings"]
    assert list(settings) == ["batch_1"]
    setting = settings["batch_1"]
    assert positive(setting["speedup_vs_torch_eager"]) and positive(setting["speedup_vs_torch_eager_by_min"])
    assert set(setting["graphs"]) == {"vq_encoder", "transformer_step", "vq_decoder"}
    assert set(setting["generation"]) == {"frame_prediction", "full_generation"}
    for entry in [*setting["graphs"].values(), *setting["generation"].values()]:
        for backend in ("ort", "torch_eager"):  # both measured, on the same inputs
            stats = entry[backend]
            assert all(positive(stats[k]) for k in ("median_ms", "min_ms", "max_ms", "first_call_ms"))
            assert stats["min_ms"] <= stats["median_ms"] <= stats["max_ms"]
            assert len(stats["samples_ms"]) == report["options"]["repeats"]
        assert positive(entry["speedup_vs_torch_eager"]) and positive(entry["speedup_vs_torch_eager_by_min"])
        assert entry["ort"]["max_abs_diff_vs_torch_eager"] < 1e-3  # same weights, same inputs, same tokens
        assert "error" in entry["torch_compile"]  # --quick skips it, and says so
        assert positive(entry["ort_int8"]["median_ms"]) and positive(entry["int8_speedup_vs_torch_eager"])
    for entry in setting["generation"].values():
        for backend in ("ort", "ort_int8"):
            assert 0 <= entry[backend]["python_overhead_pct"] < 100
    for backend in ("ort", "torch_eager"):
        memory = setting["memory"][backend]
        assert positive(memory["peak_rss_mb"]) and memory["peak_rss_mb"] >= memory["rss_after_load_mb"]


def test_quick_prints_table_and_progress(quick):
    _, stdout, stderr = quick
    assert "eager/ort" in stdout and "eager/int8" in stdout and "generation geomean" in stdout
    assert "python overhead" in stdout
    assert "[bench" in stderr and "timed round" in stderr


@pytest.mark.parametrize("args, message", [
    (["--batch-sizes", "0"], "--batch-sizes must be >= 1"),
    (["--batch-sizes", "one"], "expected comma-separated integers"),
    (["--presets", "XL"], "unknown preset 'XL'"),
    (["--tasks", "dancing"], "--tasks"),
    (["--steps", "0"], "--steps must be >= 1"),
    (["--json", "/nonexistent/dir/out.json"], "does not exist"),
])
def test_bad_options_exit_nonzero_with_message(args, message):
    result = run_bench(*args)  # fails at parsing, in seconds; the limit only guards a hang
    assert result.returncode != 0 and message in result.stderr
