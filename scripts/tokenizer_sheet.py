"""Picture of tokenizers side by side: clips and their reconstructions by each tokenizer.

    python scripts/tokenizer_sheet.py \
        --weights magvit_onnx/default_model/weights.safetensors runs/tok3d-1500/tokenizer.safetensors \
        --labels shipped,new --out docs/images/tokenizer_reconstructions.png

For each source of `--data` (default: the test splits of the synthetic set, moving dead
leaves and camera moves over photographs; any spec of `train_tokenizer.py --data`, e.g. a
folder of your own videos) `--per-source` clips, each as a row of input | one
reconstruction per tokenizer (4 frames each), its PSNR in the row's label.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from evaluate_tokenizer import reconstruct
from magvit_onnx.metrics import psnr
from magvit_onnx.models.checkpoint import load_tokenizer
from magvit_onnx.models.data import parse_data
from magvit_onnx.video import contact_sheet, write_png


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, nargs="+", required=True, help="tokenizer or model safetensors, one column each")
    p.add_argument("--labels", default=None, help="comma-separated column names (default: the files' folder names)")
    p.add_argument("--data", default="synthetic,dead_leaves,photos", help="comma-separated sources (test split)")
    p.add_argument("--per-source", type=int, default=2, help="clips per source")
    p.add_argument("--seed", type=int, default=0, help="seed of the sources' test clips")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = p.parse_args(argv)
    labels = args.labels.split(",") if args.labels else [w.parent.name for w in args.weights]
    if len(labels) != len(args.weights):
        p.error(f"--labels names {len(labels)} columns for {len(args.weights)} --weights")
    tokenizers = [load_tokenizer(w) for w in args.weights]
    shape = tokenizers[0].config.video_shape
    rows = []
    for spec in filter(None, (s.strip() for s in args.data.split(","))):
        clips, _ = parse_data(spec, shape, "test", args.seed).take(args.per_source)
        outputs = [reconstruct(vq, clips, batch=args.per_source) for vq in tokenizers]
        scores = [psnr(clips, out) for out in outputs]  # [per tokenizer][clip]
        name = Path(spec).name if "/" in spec else spec
        for k, clip in enumerate(clips):
            scores_k = " ".join(f"{s[k]:.1f}" for s in scores)
            rows.append((f"{name} {k}: {scores_k} DB", [clip] + [out[k] for out in outputs]))
    write_png(args.out, contact_sheet(rows, headers=["input"] + labels))
    print(args.out)


if __name__ == "__main__":
    main()
