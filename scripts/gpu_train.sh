#!/usr/bin/env bash
# Train the default model on ONE GPU in ONE command of at most 8 minutes, from the shipped model:
#
#   OUT=/tmp/gpu bash scripts/gpu_train.sh            # on a lent H100/H200 (the device tool sets $OUT)
#   OUT=/tmp/smoke bash scripts/gpu_train.sh --smoke   # the same path on the CPU in about a minute (a test runs it)
#
# 1. the 3D tokenizer, warm-started from the shipped weights (--init), on the mix of the shipped
#    recipe plus elementary graphics (docs/model-card.md), global batch 32, for at most TOK_MIN minutes;
# 2. the transformer on the new tokens, all ten tasks and random regions (IPM), for at most TF_MIN
#    minutes after its token pool (a new tokenizer changes the token ids, so it starts afresh);
# 3. the last validation numbers of both (tokenizer PSNR, transformer loss), printed and in summary.json.
# $OUT receives tokenizer.safetensors (fp16, as soon as stage 1 ends: kept if stage 2 does not
# finish), model.safetensors (fp16, < 16 MiB), summary.json, the two training logs and metrics.tar
# (both metrics.jsonl): 6 files (a device call returns at most 8). The test card and the
# evaluations run afterwards on any machine (they read the demo's MP4 clips, so need PyAV):
#   python scripts/tokenizer_card.py --weights OUT/model.safetensors --json card.json
# then ship with scripts/ship_default_model.py if the numbers are better.
#
# Time (a device call's limit is 600 s): stage 1 stops at TOK_MIN minutes; stage 2 first makes its
# token pool (4,096 clips rendered in 14 processes, about 20 ms each, their 17 condition videos made
# here at about 15 ms a clip, then tokenized on the GPU) and
# stops TF_MIN minutes later; the rest is start-up and saving. Step counts are
# estimates for an H100; a stage cut short by its time limit saves its weights, its cosine schedule
# not finished.
#
# The GPU image has torch, numpy, safetensors and scikit-image but not PyAV and no package index:
# the package goes on PYTHONPATH as links (scripts/package_path.sh); training never imports PyAV.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
OUT=${OUT:?set OUT to the folder for the results}
mkdir -p "$OUT"
python=${PYTHON:-python3}
source scripts/package_path.sh
export PYTHONPATH=$package_links${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
if [ "${1:-}" = "--smoke" ]; then
  tok=(--steps 2 --batch-size 2 --grad-accum 1 --warmup 1 --eval-every 2 --save-every 2 --log-every 1)
  tf=(--steps 2 --batch-size 2 --pool 8 --val-pool 4 --workers 1 --warmup 1 --eval-every 2 --save-every 2 --log-every 1)
  device=(--device cpu --no-bf16); TOK_MIN=30; TF_MIN=30
else
  tok=(--steps 1500 --batch-size 32 --grad-accum 1 --warmup 100 --workers 12 --eval-every 250 --save-every 250 --log-every 50)
  tf=(--steps 2000 --batch-size 64 --pool 4096 --val-pool 128 --workers 14 --warmup 200 --eval-every 500 --save-every 500 --log-every 100)
  device=(--device auto --bf16); TOK_MIN=2.8; TF_MIN=2.6
fi
runs="$OUT/runs"

"$python" scripts/train_tokenizer.py --init magvit_onnx/default_model/weights.safetensors \
  --data "photos:2,dead_leaves:2,synthetic:1,graphics:1" --lr 1e-4 --ema-decay 0.995 --reseed-every 200 --gan-start 100000 \
  "${tok[@]}" "${device[@]}" --time-limit "$TOK_MIN" --out "$runs/tokenizer" 2> >(tee "$OUT/tokenizer.log" >&2)
"$python" -c "import sys; from magvit_onnx.models.checkpoint import half_copy; half_copy(*sys.argv[1:])" \
  "$runs/tokenizer/tokenizer.safetensors" "$OUT/tokenizer.safetensors"

"$python" scripts/train_transformer.py --tokenizer "$runs/tokenizer/tokenizer.safetensors" \
  --data "synthetic:1,dead_leaves:1,photos:1" --fp-cond-frames 1,5 --task-weights CG=3,CFP=1.5,IPM=2 \
  "${tf[@]}" "${device[@]}" --time-limit "$TF_MIN" --out "$runs/transformer" 2> >(tee "$OUT/transformer.log" >&2)
"$python" -c "import sys; from magvit_onnx.models.checkpoint import half_copy; half_copy(*sys.argv[1:])" \
  "$runs/transformer/model.safetensors" "$OUT/model.safetensors"

"$python" - "$OUT" "$runs" <<'EOF'
import json, sys
from pathlib import Path
out, runs = Path(sys.argv[1]), Path(sys.argv[2])
def last(path, key):
    rows = [json.loads(line) for line in open(path) if key in line]
    return {"step": rows[-1]["step"], key: rows[-1][key]} if rows else None
summary = {"tokenizer": last(runs / "tokenizer/metrics.jsonl", "val_psnr"),
           "transformer": last(runs / "transformer/metrics.jsonl", "val_loss")}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
EOF
tar -cf "$OUT/metrics.tar" -C "$runs" tokenizer/metrics.jsonl transformer/metrics.jsonl
rm -rf "$runs"  # state.pt files are large; $OUT returns at most 8 files
