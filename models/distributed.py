"""Data parallelism for the training scripts: one process per device under `torchrun`.

`torchrun --nproc_per_node N script.py ...` sets RANK / LOCAL_RANK / WORLD_SIZE; `setup()`
then joins the process group (NCCL on GPUs, gloo on CPUs) and picks this process's device.
Run plainly (no torchrun), everything here is a no-op for a world of one.

Every rank computes gradients on its own slice of the global batch; gradients are averaged
across ranks before each optimiser step, so N processes x batch b take the same step as one
process x batch N*b (up to float summation order). Only rank 0 logs and writes files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        """Rank 0: the one process that logs and writes checkpoints."""
        return self.rank == 0


def setup(device: str = "auto") -> Dist:
    """Join the process group when launched by torchrun; returns this process's rank and device.

    device 'auto': this rank's GPU (LOCAL_RANK) when CUDA is present, else the CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    chosen = torch.device(device)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo", device_id=chosen if chosen.type == "cuda" else None)
    return Dist(rank, world, chosen)


def cleanup() -> None:
    """Tear the process group down once every rank is here: a rank that destroyed its gloo
    group while rank 0 was still saving aborted ("terminate called without an active
    exception") on a loaded machine."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def average_gradients(parameters: Iterable[torch.nn.Parameter], world: int) -> None:
    """Replace every gradient by its mean over the ranks (one all-reduce of one flat buffer).

    The tokenizer uses this instead of DistributedDataParallel: a GAN step runs the
    discriminator several times and differentiates twice (R1), which DDP's
    one-forward-one-backward reducer does not support.
    """
    if world == 1:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def mean_over_ranks(metrics: dict[str, float], world: int, device: torch.device) -> dict[str, float]:
    """The mean of each number over the ranks (so rank 0 logs the global batch's values)."""
    if world == 1 or not metrics:
        return metrics
    keys = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)))
    values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(values)
    return {**metrics, **{k: float(v) / world for k, v in zip(keys, values.tolist())}}


def any_rank(flag: bool, world: int, device: torch.device) -> bool:
    """True on every rank when it is true on at least one (e.g. one rank ran out of time)."""
    if world == 1:
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
