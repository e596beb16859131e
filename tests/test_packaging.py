"""One distribution, one import root, and no torch behind `import magvit_onnx`."""
import subprocess
import sys
import zipfile
from pathlib import Path

from helpers import run_without_torch

ROOT = Path(__file__).resolve().parents[1]

def test_runtime_side_never_imports_torch():
    """Everything an app or a batch job imports works with torch unavailable."""
    result = run_without_torch(
        "import magvit_onnx, magvit_onnx.runtime\n"
        "from magvit_onnx.runtime import vocab, tasks, schedule, masking, commit, seeding, step, pipeline\n"
        "from magvit_onnx import generator, cli, batch, video, synthetic, demo, metrics\n"
        "assert 'torch' not in sys.modules\n"
        "print('ok')\n")
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def test_wheel_has_one_import_root(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                            "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True, text=True)
    # the data folders are packages of their own: setuptools printed ~100 lines of
    # "Package would be ignored" when they were package data of magvit_onnx
    assert "would be ignored" not in built.stdout + built.stderr
    wheel = next(tmp_path.glob("magvit_onnx-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"magvit_onnx"}
    for sub in ("models/vqvae.py", "runtime/masking.py", "runtime/commit.py", "export/__init__.py",
                "default_model/weights.safetensors", "default_model/artifacts/manifest.json",
                "default_model/artifacts/transformer_step.onnx", "demo_clips/cat.mp4"):
        assert f"magvit_onnx/{sub}" in names
