"""scripts/gpu_train.sh --smoke: the one-command GPU training path, run end to end on the CPU
(tiny step counts), so the command a lent GPU runs is known to work before it is lent."""
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors import safe_open

from magvit_onnx.models.checkpoint import load_checkpoint, read_config

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_train_smoke_trains_both_stages_and_reports(tmp_path):
    # as on the GPU image: no PyAV (an `av` that fails to import comes first on the path)
    (tmp_path / "noav" / "av").mkdir(parents=True)
    (tmp_path / "noav" / "av" / "__init__.py").write_text("raise ImportError('no PyAV here')")
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "PYTHONPATH": str(tmp_path / "noav")}
    done = subprocess.run(["bash", "scripts/gpu_train.sh", "--smoke"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["transformer"]["val_loss"] > 0 and summary["tokenizer"]["val_psnr"] > 0
    config, vq, transformer = load_checkpoint(out / "model.safetensors")
    assert config.name == "tiny" and (out / "model.safetensors").stat().st_size < 16 * 2 ** 20
    assert not (out / "runs").exists()  # only what fits the device tool's 8 returned files
    assert len(list(out.iterdir())) <= 8
    assert read_config(out / "tokenizer.safetensors").vq == config.vq  # stage 1's result, kept on its own
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        assert f.get_tensor("vq.decoder.conv_out.weight").dtype == torch.float16
