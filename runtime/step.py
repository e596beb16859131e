"""The transformer step as `commit.decode`'s `model_fn`, for any step runner.

`make_model_fn` turns a runner of the step graph's inputs (an ONNX Runtime session, or
the PyTorch reference in tests and benchmarks) into `model_fn(masked, segment_ids,
uncond)`. It draws this step's sampling noise, `seeds[B, N]`, from the caller's
generator, and stacks the unconditional rows below the conditional ones when
classifier-free guidance is on (see `export/graphs.py`).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from magvit_onnx.runtime.commit import ModelFn
from magvit_onnx.runtime.seeding import RandomSource

StepRunner = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]


def make_model_fn(run_step: StepRunner, prefix: np.ndarray, uncond_prefix: np.ndarray,
                  rng: RandomSource, *, temperature: float = 1.0, top_k: int = 0,
                  top_p: float = 0.0, guidance_scale: float = 0.0) -> ModelFn:
    guided = guidance_scale != 0
    scalars = {"temperature": np.array(temperature, np.float32), "top_k": np.array(top_k, np.int64),
               "top_p": np.array(top_p, np.float32), "guidance_scale": np.array(guidance_scale, np.float32)}
    prefix_rows = np.concatenate([prefix, uncond_prefix]) if guided else prefix

    def model_fn(masked, segment_ids, uncond):
        seeds = rng.integers(0, 2 ** 31 - 1, masked.shape, dtype=np.int64)
        tokens = np.concatenate([masked, uncond]) if guided else masked
        segments = np.concatenate([segment_ids, np.zeros_like(segment_ids)]) if guided else segment_ids
        feeds = {"tokens": tokens.astype(np.int64), "prefix": prefix_rows.astype(np.int64),
                 "segment_ids": segments.astype(np.int64), "seeds": seeds, **scalars}
        return run_step(feeds)

    return model_fn
