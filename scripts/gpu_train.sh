#!/usr/bin/env bash
# Train the default model on ONE GPU in ONE command of at most 8 minutes, from the shipped model:
#
#   OUT=/tmp/gpu bash scripts/gpu_train.sh            # on a lent H100/H200 (the device tool sets $OUT)
#   OUT=/tmp/smoke bash scripts/gpu_train.sh --smoke   # the same path on the CPU in about a minute (a test runs it)
#
# 1. the 3D tokenizer, warm-started from the shipped weights (--init), on the mix of the shipped
#    recipe plus elementary graphics (docs/model-card.md), global batch 32, for at most TOK_MIN minutes;
# 2. the transformer on the new tokens, all ten tasks and random regions (IPM), for at most TF_MIN minutes (a new tokenizer
#    changes the token ids, so the transformer starts afresh);
# 3. the validation numbers: the tokenizer's test card (scripts/tokenizer_card.py), its PSNR on the
#    synthetic test split, the transformer's validation loss — printed and written to $OUT.
# $OUT receives model.safetensors (fp16, < 16 MiB), card.json, tokenizer_eval.json, summary.json and
# the two training logs. Ship with scripts/ship_default_model.py on any machine if the numbers are better.
#
# The GPU image has torch, numpy, safetensors and scikit-image but not PyAV and no network: the package is
# installed without dependencies, and training never imports PyAV. Step counts for the GPU are estimates
# (no GPU was lent when this was written); each stage also stops at its time limit, saving its weights.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to the folder for the results}
mkdir -p "$OUT"
python=${PYTHON:-python3}
if [ "${1:-}" = "--smoke" ]; then
  tok=(--steps 2 --batch-size 2 --grad-accum 1 --warmup 1 --eval-every 2 --save-every 2 --log-every 1)
  tf=(--steps 2 --batch-size 2 --pool 8 --val-pool 4 --warmup 1 --eval-every 2 --save-every 2 --log-every 1)
  device=(--device cpu --no-bf16); TOK_MIN=30; TF_MIN=30; card=(--count 1)
else
  "$python" -m pip install -q --no-deps --no-build-isolation --no-index -e . >/dev/null
  tok=(--steps 2000 --batch-size 32 --grad-accum 1 --warmup 100 --workers 12 --eval-every 250 --save-every 250 --log-every 50)
  tf=(--steps 3000 --batch-size 64 --pool 32768 --val-pool 256 --warmup 200 --eval-every 500 --save-every 500 --log-every 100)
  device=(--device auto --bf16); TOK_MIN=3.2; TF_MIN=3.2; card=(--count 8)
fi
runs="$OUT/runs"
export PYTHONUNBUFFERED=1

"$python" scripts/train_tokenizer.py --init magvit_onnx/default_model/weights.safetensors \
  --data "photos:2,dead_leaves:2,synthetic:1,graphics:1" --lr 1e-4 --ema-decay 0.995 --reseed-every 200 --gan-start 100000 \
  "${tok[@]}" "${device[@]}" --time-limit "$TOK_MIN" --out "$runs/tokenizer" 2> >(tee "$OUT/tokenizer.log" >&2)

"$python" scripts/train_transformer.py --tokenizer "$runs/tokenizer/tokenizer.safetensors" \
  --data "synthetic:1,dead_leaves:1,photos:1" --fp-cond-frames 1,5 --task-weights CG=3,CFP=1.5,IPM=2 \
  "${tf[@]}" "${device[@]}" --time-limit "$TF_MIN" --out "$runs/transformer" 2> >(tee "$OUT/transformer.log" >&2)

"$python" - "$runs/transformer/model.safetensors" "$OUT/model.safetensors" <<'EOF'
import sys
from magvit_onnx.models.checkpoint import load_checkpoint, read_metadata, save_weights
import torch
config, vq, transformer = load_checkpoint(sys.argv[1])
save_weights(sys.argv[2], config, {"vq": vq, "transformer": transformer},
             metadata={k: v for k, v in read_metadata(sys.argv[1]).items() if k != "magvit_config"}, dtype=torch.float16)
EOF
"$python" scripts/tokenizer_card.py --weights "$OUT/model.safetensors" "${card[@]}" --json "$OUT/card.json"
"$python" scripts/evaluate_tokenizer.py --weights "$OUT/model.safetensors" --count "${card[1]}" --json "$OUT/tokenizer_eval.json"
"$python" - "$OUT" "$runs" <<'EOF'
import json, sys
from pathlib import Path
out, runs = Path(sys.argv[1]), Path(sys.argv[2])
def last(path, key):
    rows = [json.loads(line) for line in open(path) if key in line]
    return {"step": rows[-1]["step"], key: rows[-1][key]} if rows else None
summary = {"tokenizer": last(runs / "tokenizer/metrics.jsonl", "val_psnr"),
           "transformer": last(runs / "transformer/metrics.jsonl", "val_loss"),
           "card_psnr_db": json.load(open(out / "card.json"))["psnr_db"],
           "synthetic_test_psnr": json.load(open(out / "tokenizer_eval.json"))["psnr"]}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
EOF
cp "$runs/tokenizer/metrics.jsonl" "$OUT/tokenizer_metrics.jsonl"
cp "$runs/transformer/metrics.jsonl" "$OUT/transformer_metrics.jsonl"
rm -rf "$runs"  # state.pt files are large; $OUT returns at most 8 files
