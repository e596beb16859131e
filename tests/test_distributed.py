"""Both training scripts under torchrun (gloo, 2 CPU processes): data parallelism takes the same
step as one process on the global batch, resumes with another number of processes, and streams
a folder of videos (one of them corrupt) the test writes."""
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from magvit_onnx.models.checkpoint import save_weights
from magvit_onnx.models.config import TransformerConfig, get_config
from magvit_onnx.models.vqvae import VQVAE
from magvit_onnx.video import write_mp4

ROOT = Path(__file__).resolve().parents[1]
QUIET = {**os.environ, "OMP_NUM_THREADS": "1"}


def launch(processes: int, script: str, *args) -> str:
    """Run a training script in `processes` processes (torchrun) or plainly (1)."""
    runner = [sys.executable]
    if processes > 1:
        runner += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    result = subprocess.run([*runner, str(ROOT / "scripts" / script), *map(str, args)],
                            capture_output=True, text=True, env=QUIET, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stderr + result.stdout


def state(folder: Path, key: str) -> dict[str, torch.Tensor]:
    return torch.load(folder / "state.pt", weights_only=True)[key]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=atol, rtol=0), (name, (a[name] - b[name]).abs().max())


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """Six small 64x64 clips in two class folders, and a corrupt file."""
    root = tmp_path_factory.mktemp("videos")
    ramp = np.linspace(0, 255, 80, dtype=np.uint8)
    for i in range(6):
        frames = np.stack([np.roll(np.tile(ramp[None, :, None], (64, 1, 3)), 2 * t + 9 * i, axis=1)
                           for t in range(20)])
        path = root / ("left" if i % 2 else "right") / f"clip{i}.mp4"
        path.parent.mkdir(exist_ok=True)
        write_mp4(path, frames)
    (root / "right" / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(300))
    return root


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Path:
    """A random `tiny` tokenizer whose config has no dropout (so runs are comparable)."""
    config = get_config("tiny")
    config = dataclasses.replace(config, transformer=TransformerConfig(2, 64, 2, 128, dropout=0.0, attention_dropout=0.0))
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tokenizer") / "tokenizer.safetensors"
    save_weights(path, config, {"vq": VQVAE(config.vq)})
    return path


def test_tokenizer_two_processes_take_the_step_of_one_with_accumulation(tmp_path, videos):
    """2 processes x batch 2 = 1 process x 2 micro-batches of 2 (the quantizer's batch entropy is
    taken per device, as the official code does, so the match is with micro-batches of 2)."""
    common = ["--data", videos, "--steps", 1, "--warmup", 0, "--gan-start", 0, "--r1-every", 1, "--log-every", 1,
              "--eval-every", 1000]
    out = launch(2, "train_tokenizer.py", *common, "--out", tmp_path / "two", "--batch-size", 2)
    launch(1, "train_tokenizer.py", *common, "--out", tmp_path / "one", "--batch-size", 2, "--grad-accum", 2)
    for key in ("vq", "discriminator"):  # the GAN step, with R1, on both models
        assert_same_weights(state(tmp_path / "two", key), state(tmp_path / "one", key), atol=1e-6)
    assert "warning: skipping" in out and "corrupt.mp4" in out  # the corrupt file is passed over
    record = json.loads((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["world_size"] == 2 and record["global_batch"] == 4 and record["skipped_files"] >= 0


def test_transformer_two_processes_equal_one_and_resume_with_another_world_size(tmp_path, tokenizer):
    """1 process x batch 4 for two steps = 2 processes x batch 2 for one step, then resumed in
    one process for the second (DistributedDataParallel; data and masks drawn per global batch)."""
    common = ["--tokenizer", tokenizer, "--pool", 8, "--val-pool", 4, "--warmup", 0, "--lr", 1e-3,
              "--log-every", 1, "--eval-every", 1000, "--save-every", 1, "--steps", 2]
    launch(1, "train_transformer.py", *common, "--out", tmp_path / "one", "--batch-size", 4)
    launch(2, "train_transformer.py", *common, "--out", tmp_path / "split", "--batch-size", 2, "--time-limit", 0)
    assert torch.load(tmp_path / "split" / "state.pt", weights_only=True)["step"] == 1  # stopped by the time limit
    out = launch(1, "train_transformer.py", *common, "--out", tmp_path / "split", "--batch-size", 4)
    assert "resumed from" in out and "at step 1" in out
    assert_same_weights(state(tmp_path / "split", "transformer"), state(tmp_path / "one", "transformer"), atol=1e-5)
    worlds = [json.loads(line)["world_size"] for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert worlds == [2, 1]


def test_transformer_streams_videos_in_workers_under_torchrun(tmp_path, tokenizer, videos):
    """--pool 0: every step decodes its clips in DataLoader workers and tokenizes them; two
    processes still equal one process on the global batch."""
    common = ["--tokenizer", tokenizer, "--data", videos, "--pool", 0, "--val-pool", 2, "--warmup", 0,
              "--steps", 1, "--log-every", 1, "--eval-every", 1000]
    launch(2, "train_transformer.py", *common, "--out", tmp_path / "two", "--batch-size", 2, "--workers", 1)
    launch(1, "train_transformer.py", *common, "--out", tmp_path / "one", "--batch-size", 4)
    assert_same_weights(state(tmp_path / "two", "transformer"), state(tmp_path / "one", "transformer"), atol=1e-5)
