"""Does a trained transformer use its class token? A probe without sampling (PyTorch):

    python scripts/class_likelihood.py --weights magvit_onnx/default_model/weights.safetensors --json probe.json

For each class-conditional task, held-out synthetic test clips are masked once (fixed
seed, one mask ratio) and scored with every candidate class in the prefix: the token loss
on the masked positions outside the condition (the 'mask' term of training). A model that
uses the class scores the true class lowest. Reports, per task, how often the true class
has the lowest loss (chance: 1 / classes), the mean loss with the true class and with the
others, and their gap. Generation can only follow a class the model has learned to read;
this measures that part alone, without the sampler's randomness.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from magvit_onnx import synthetic
from magvit_onnx.metrics import as_float, emit_report
from magvit_onnx.models.checkpoint import load_checkpoint, read_metadata
from magvit_onnx.models.commit_training import mask_tokens, tokenize_task
from magvit_onnx.models.token_loss import token_loss
from magvit_onnx.runtime import tasks


@torch.inference_mode()
def class_losses(vq, transformer, config, clips: np.ndarray, task: str, ratio: float, seed: int) -> np.ndarray:
    """Masked-token loss `[N, classes]` of each clip with each candidate class in the prefix."""
    inputs, cond_inputs, latent_mask = tokenize_task(vq, torch.from_numpy(as_float(clips)), task, config)
    losses = np.zeros((len(clips), config.num_classes))
    for label in range(config.num_classes):
        rng = np.random.default_rng(seed)  # the same mask for every candidate
        batch = mask_tokens(inputs, cond_inputs, latent_mask, task, config, rng,
                            labels=np.full(len(clips), label), ratio=ratio)
        logits = transformer(batch["masked_inputs"], batch["segment_ids"])
        weights = batch["weights"] * batch["mask"]
        losses[:, label] = token_loss(logits, batch["targets"], weights, 0.0, config.vq.codebook_size)[1].numpy()
    return losses


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, required=True, help="model.safetensors (tokenizer + transformer)")
    p.add_argument("--count", type=int, default=50, help="test clips")
    p.add_argument("--ratio", type=float, default=0.95, help="fraction of tokens masked (high: little else to go on)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if not 0 < args.ratio <= 1:
        p.error(f"--ratio must be in (0, 1], got {args.ratio}")
    config, vq, transformer = load_checkpoint(args.weights)
    names = [name for name in config.tasks if tasks.get_task(name).class_conditional]
    if not names or config.num_classes != synthetic.NUM_CLASSES:
        p.error(f"{args.weights}: the probe needs a class-conditional model of the synthetic set's "
                f"{synthetic.NUM_CLASSES} classes (this one: tasks {', '.join(config.tasks)}, {config.num_classes} classes)")
    clips, labels = synthetic.make_dataset("test", args.count)
    clips = synthetic.resize_clips(clips, config.vq.video_shape)

    report: dict = {"count": args.count, "ratio": args.ratio, "seed": args.seed,
                    "chance": 1 / config.num_classes, "tasks": {}}
    for name in names:
        losses = class_losses(vq, transformer, config, clips, name, args.ratio, args.seed)
        true = losses[np.arange(len(labels)), labels]
        others = (losses.sum(axis=1) - true) / (config.num_classes - 1)
        entry = {"accuracy": float((losses.argmin(axis=1) == labels).mean()),
                 "loss_true_class": float(true.mean()), "loss_other_classes": float(others.mean()),
                 "gap": float((others - true).mean())}
        report["tasks"][name] = entry
        print(f"{name}: " + ", ".join(f"{k} {v:.4g}" for k, v in entry.items()), file=sys.stderr, flush=True)
    report |= {"weights_metadata": {k: v for k, v in read_metadata(args.weights).items() if k != "magvit_config"},
               "command": " ".join(["python scripts/class_likelihood.py", *(argv or sys.argv[1:])])}
    emit_report(report, args.json)


if __name__ == "__main__":
    main()
