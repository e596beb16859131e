"""scripts/gpu_train.sh --smoke: the one-command GPU training path, run end to end on the CPU
(tiny step counts), so the command a lent GPU runs is known to work before it is lent."""
import json
import os
import subprocess
import sys
from pathlib import Path

from magvit_onnx.models.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_train_smoke_trains_both_stages_and_reports(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    done = subprocess.run(["bash", "scripts/gpu_train.sh", "--smoke"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["transformer"]["val_loss"] > 0 and summary["synthetic_test_psnr"] > 0
    assert "flat white" in summary["card_psnr_db"] and "colour bars 8 px" in summary["card_psnr_db"]
    config, vq, transformer = load_checkpoint(tmp_path / "model.safetensors")
    assert config.name == "tiny" and (tmp_path / "model.safetensors").stat().st_size < 16 * 2 ** 20
    assert not (tmp_path / "runs").exists()  # only what fits the device tool's 8 returned files
    assert len(list(tmp_path.iterdir())) <= 8
