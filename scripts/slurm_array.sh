#!/usr/bin/env bash
# `magvit-onnx run` as a Slurm job array: one array task = one shard of the JOBS file.
#
#   sbatch --array=0-15%8 scripts/slurm_array.sh jobs.jsonl results/ artifacts/tiny
#
# The array size is the shard count: `magvit-onnx run` reads SLURM_ARRAY_TASK_ID,
# SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT and runs shard (ID - MIN)/COUNT, i.e. the
# jobs whose id hashes to it (sha256, stable). Use a contiguous range (0-N, no ":step");
# "%8" only limits how many run at once. Every task appends to its own
# results/report.shard-IIIII-of-NNNNN.jsonl; outputs go flat into results/ (shared storage).
#
# Resubmitting the same command (same array size) redoes only what is missing: jobs that
# failed, were changed, or were cut off by a kill, a pre-emption or the time limit.
# Exit codes per task: 0 all jobs ok, 1 some jobs failed (see the report), 2 usage error.
#
# Environment knobs: MAGVIT_PROVIDERS (default cuda; cpu for CPU nodes),
# MAGVIT_BATCH_SIZE (default 8), MAGVIT_WORKERS (default 1).
#SBATCH --job-name=magvit-run
#SBATCH --array=0-15
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --gres=gpu:1
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --output=magvit-run-%A_%a.out
set -euo pipefail

JOBS=${1:?usage: sbatch --array=0-N scripts/slurm_array.sh JOBS OUT [ARTIFACTS]}
OUT=${2:?usage: sbatch --array=0-N scripts/slurm_array.sh JOBS OUT [ARTIFACTS]}
ARTIFACTS=${3:-}

args=("$JOBS" --out "$OUT" --providers "${MAGVIT_PROVIDERS:-cuda}"
      --batch-size "${MAGVIT_BATCH_SIZE:-8}" --workers "${MAGVIT_WORKERS:-1}")
if [[ -n "$ARTIFACTS" ]]; then
    args+=(--artifacts "$ARTIFACTS")
fi

echo "shard $((SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-0}))/${SLURM_ARRAY_TASK_COUNT:-?} on $(hostname)" >&2
exec magvit-onnx run "${args[@]}"
