"""Evaluate a trained tokenizer alone (PyTorch), before any transformer exists:

    python scripts/evaluate_tokenizer.py --weights magvit_onnx/default_model/weights.safetensors --json tok.json

On held-out synthetic test clips: PSNR and SSIM of tokenize -> detokenize (official
definitions, uint8 in and out, as scripts/evaluate.py), the analytic classifier's
accuracy on the reconstructions (how well moving objects survive), and for every
conditional task the squared error on its unknown region of the reconstruction alone
beside the trivial baseline: the floor a transformer on this tokenizer cannot go below.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from magvit_onnx import synthetic
from magvit_onnx.metrics import as_float, emit_report, psnr, ssim, unknown_mse
from magvit_onnx.models.checkpoint import load_tokenizer, read_config, read_metadata
from magvit_onnx.models.vqvae import VQVAE
from magvit_onnx.runtime import tasks


@torch.inference_mode()
def reconstruct(vq: VQVAE, clips: np.ndarray, batch: int) -> np.ndarray:
    out = []
    for start in range(0, len(clips), batch):
        video = torch.from_numpy(as_float(clips[start:start + batch]))
        out.append(np.round(vq.detokenize(vq.tokenize(video)).clamp(0, 1).numpy() * 255).astype(np.uint8))
    return np.concatenate(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, required=True, help="tokenizer.safetensors (or a model checkpoint)")
    p.add_argument("--count", type=int, default=100, help="test clips")
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    config, vq = read_config(args.weights), load_tokenizer(args.weights)
    clips, labels = synthetic.make_dataset("test", args.count)
    recon = reconstruct(vq, clips, args.batch)
    metadata = {k: v for k, v in read_metadata(args.weights).items() if k != "magvit_config"}  # steps, source, ...
    report = {"weights": str(args.weights), "weights_metadata": metadata, "count": args.count,
              "psnr": float(psnr(clips, recon).mean()), "ssim": float(ssim(clips, recon).mean()),
              "classifier_accuracy_on_reconstructions": float((synthetic.classify(recon) == labels).mean()),
              "unknown_region_mse": {}}
    for name in config.tasks:
        if name in tasks.TASKS and tasks.get_task(name).needs_video:  # the ten (the mask task has no fixed region)
            cond = tasks.condition(name, as_float(clips), config.vq.latent_shape)
            report["unknown_region_mse"][name] = {
                "baseline": float(unknown_mse(clips, np.clip(cond["video"], 0, 1), cond["video_mask"]).mean()),
                "reconstruction_only": float(unknown_mse(clips, recon, cond["video_mask"]).mean())}
    report["command"] = " ".join(["python scripts/evaluate_tokenizer.py", *(argv or sys.argv[1:])])
    emit_report(report, args.json)


if __name__ == "__main__":
    main()
