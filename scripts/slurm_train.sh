#!/usr/bin/env bash
# Multi-node training with torchrun under Slurm: one task per node, torchrun starts one process
# per GPU on each node, and the nodes meet at the first node's address (c10d rendezvous).
#
#   sbatch --nodes=4 scripts/slurm_train.sh scripts/train_transformer.py \
#       --tokenizer runs/tok-B/tokenizer.safetensors --data ucf101.csv --pool 0 \
#       --batch-size 32 --workers 8 --out runs/transformer-B
#
# The first argument is the training script's path (from the folder you submit in); the rest go
# to it unchanged. Global batch = --batch-size x GPUs per node x nodes x --grad-accum. OUT must be
# on storage every node sees: rank 0 writes checkpoints there, and a requeued or resubmitted
# job resumes from OUT/state.pt (with any number of nodes). See docs/training.md.
#
# Environment knobs: GPUS_PER_NODE (default 8), MASTER_PORT (default 29500).
#SBATCH --job-name=magvit-train
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:8
#SBATCH --cpus-per-task=64
#SBATCH --mem=0
#SBATCH --time=48:00:00
#SBATCH --requeue
#SBATCH --output=magvit-train-%j.out
set -euo pipefail

SCRIPT=${1:?usage: sbatch --nodes=N scripts/slurm_train.sh scripts/train_tokenizer.py|scripts/train_transformer.py ARGS...}
shift
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)

srun torchrun \
    --nnodes "$SLURM_JOB_NUM_NODES" \
    --nproc_per_node "${GPUS_PER_NODE:-8}" \
    --rdzv_id "$SLURM_JOB_ID" \
    --rdzv_backend c10d \
    --rdzv_endpoint "$HEAD:${MASTER_PORT:-29500}" \
    "$SCRIPT" "$@"
