"""Sharding: the stable shard of a job id, and the shard of this process from --shard
or the Slurm / Kubernetes environment."""
from __future__ import annotations

import hashlib
import re


def shard_of(key: str, count: int) -> int:
    """Stable shard of a job id: first 8 bytes of sha256(key), big-endian, mod count."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % count


def line_key(line: int) -> str:
    """Shard key of a line without a readable id."""
    return f"\0line:{line}"


def parse_shard(text: str) -> tuple[int, int]:
    """'INDEX/COUNT' -> (index, count) with 0 <= index < count; raises ValueError."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise ValueError(f"--shard must be INDEX/COUNT with 0 <= INDEX < COUNT (e.g. 0/4), got {text!r}")
    index, count = int(match[1]), int(match[2])
    if count < 1 or index >= count:
        raise ValueError(f"--shard must be INDEX/COUNT with 0 <= INDEX < COUNT (e.g. 0/4), got {text!r}")
    return index, count


def shard_from_env(env: dict[str, str], num_shards: int | None = None) -> tuple[int, int]:
    """The shard of this process from Slurm array or Kubernetes Indexed Job variables
    (0/1 when neither is set); raises ValueError when they are incomplete."""
    if env.get("SLURM_ARRAY_TASK_ID", "").strip():
        task_id, count = env["SLURM_ARRAY_TASK_ID"], env.get("SLURM_ARRAY_TASK_COUNT", "")
        low = env.get("SLURM_ARRAY_TASK_MIN", "0") or "0"
        if not (task_id.strip().isdigit() and count.strip().isdigit() and low.strip().isdigit()):
            raise ValueError(f"SLURM_ARRAY_TASK_ID={task_id!r} needs integer SLURM_ARRAY_TASK_COUNT (got {count!r}) "
                             f"and SLURM_ARRAY_TASK_MIN (got {low!r}); or pass --shard INDEX/COUNT")
        index, count = int(task_id) - int(low), int(count)
        if not 0 <= index < count:
            raise ValueError(f"Slurm array task {task_id} (min {low}) is not in 0 .. {count - 1}: use a contiguous "
                             "--array=0-N (no step), or pass --shard INDEX/COUNT")
        return index, count
    if env.get("JOB_COMPLETION_INDEX", "").strip():
        index = env["JOB_COMPLETION_INDEX"].strip()
        if num_shards is None:
            raise ValueError(f"JOB_COMPLETION_INDEX={index} is set but the number of shards is not: pass "
                             "--num-shards N or set MAGVIT_NUM_SHARDS (= the Job's completions), "
                             "or --shard INDEX/COUNT")
        if not index.isdigit() or int(index) >= num_shards:
            raise ValueError(f"JOB_COMPLETION_INDEX={index!r} must be an integer in 0 .. {num_shards - 1} "
                             f"(--num-shards / MAGVIT_NUM_SHARDS = {num_shards})")
        return int(index), num_shards
    if num_shards not in (None, 1):
        raise ValueError(f"--num-shards / MAGVIT_NUM_SHARDS = {num_shards} needs JOB_COMPLETION_INDEX (a Kubernetes "
                         "Indexed Job) to say which shard this is; elsewhere pass --shard INDEX/COUNT")
    return 0, 1
