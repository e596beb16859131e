"""Token agreement between two exports of the same model (e.g. fp32 and `--int8`):

    python scripts/compare_artifacts.py --reference DIR_FP32 --candidate DIR_INT8 --json agreement.json

On held-out synthetic test clips, with the same seeds on both sides:
  first_step   share of positions where the first COMMIT step samples the same token from
               identical inputs (what quantisation changes directly)
  generation   share of equal tokens after a whole generation (one early difference
               changes what later steps see, so this is lower and measures divergence, not
               quality; compare quality with scripts/evaluate.py on both folders)
numpy + onnxruntime only.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from magvit_onnx import synthetic
from magvit_onnx.metrics import emit_report
from magvit_onnx.runtime import tasks
from magvit_onnx.runtime.masking import MASK_TOKEN
from magvit_onnx.runtime.pipeline import Pipeline


def first_step_agreement(reference: Pipeline, candidate: Pipeline, count: int, seed: int) -> float:
    """The first step of class-conditional generation (all positions masked) on both sides."""
    n = int(np.prod(reference.latent_shape))
    rng = np.random.default_rng(seed)
    classes = np.arange(count) % reference.vocab.num_classes
    feeds = {"tokens": np.full((count, n), MASK_TOKEN, np.int64),
             "prefix": tasks.prefix("full_generation", reference.vocab, count, classes).astype(np.int64),
             "segment_ids": np.zeros((count, n), np.int64), "seeds": rng.integers(0, 2 ** 31 - 1, (count, n)),
             "temperature": np.array(1.0, np.float32), "top_k": np.array(0, np.int64),
             "top_p": np.array(0.0, np.float32), "guidance_scale": np.array(0.0, np.float32)}
    a = reference.engine.run_step(feeds)[0]
    b = candidate.engine.run_step(feeds)[0]
    return float((a == b).mean())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", type=Path, required=True)
    p.add_argument("--candidate", type=Path, required=True)
    p.add_argument("--count", type=int, default=10, help="test clips (and CG samples) per task")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    reference, candidate = Pipeline.from_artifacts(args.reference), Pipeline.from_artifacts(args.candidate)
    if reference.manifest["weights"] != candidate.manifest["weights"]:
        p.error("the two folders were exported from different weights")
    clips, labels = synthetic.make_dataset("test", args.count)
    clips = synthetic.resize_clips(clips, tuple(reference.manifest["video"]["shape"])).astype(np.float32) / 255
    report = {"reference": {"artifacts": str(args.reference), "precision": reference.manifest["precision"]},
              "candidate": {"artifacts": str(args.candidate), "precision": candidate.manifest["precision"]},
              "count": args.count, "first_step": first_step_agreement(reference, candidate, args.count, args.seed),
              "generation": {}}
    for name in [n for n in reference.manifest["tasks"] if n in tasks.TASKS]:  # the ten (IPM needs a mask)
        spec = tasks.get_task(name)
        video = clips if spec.needs_video else None
        class_ids = labels % reference.vocab.num_classes if spec.class_conditional else None
        a = reference.generate_tokens(name, video, class_ids, seed=args.seed)
        b = candidate.generate_tokens(name, video, class_ids, seed=args.seed)
        report["generation"][name] = float((a == b).mean())
        print(f"{name}: {report['generation'][name]:.4f} of tokens equal", file=sys.stderr)
    report["generation_mean"] = float(np.mean(list(report["generation"].values())))
    emit_report(report, args.json)


if __name__ == "__main__":
    main()
