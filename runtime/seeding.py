"""Random numbers for a batch in which every input has its own seed.

The COMMIT loop draws `[rows, positions]` arrays (sampling seeds, Gumbel noise). With
`SeedStreams(seeds, rows_per_seed)`, rows k*n .. k*n+n-1 of every draw come from
`default_rng(seeds[k])`, so each input gets exactly the numbers a call with only that
input and its seed would draw: batching never changes a result.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np


class RandomSource(Protocol):
    """What the runtime draws: the subset of `numpy.random.Generator` it uses."""

    def random(self, size, dtype=np.float64) -> np.ndarray: ...
    def integers(self, low, high=None, size=None, dtype=np.int64) -> np.ndarray: ...


class SeedStreams:
    def __init__(self, seeds: Sequence[int], rows_per_seed: int = 1):
        self.streams = [np.random.default_rng(int(s)) for s in seeds]
        self.rows = rows_per_seed

    def _draw(self, size, draw) -> np.ndarray:
        size = tuple(np.atleast_1d(size))
        if size[0] != self.rows * len(self.streams):
            raise ValueError(f"a draw of shape {size} does not split into {len(self.streams)} inputs "
                             f"of {self.rows} rows")
        return np.concatenate([draw(stream, (self.rows, *size[1:])) for stream in self.streams])

    def random(self, size, dtype=np.float64) -> np.ndarray:
        return self._draw(size, lambda g, shape: g.random(shape, dtype=dtype))

    def integers(self, low, high=None, size=None, dtype=np.int64) -> np.ndarray:
        return self._draw(size, lambda g, shape: g.integers(low, high, shape, dtype=dtype))


def random_source(seed: int | Sequence[int] | None, rows_per_seed: int = 1) -> RandomSource:
    """One generator for an int (or None: fresh entropy), one stream per input for a sequence."""
    if seed is None or isinstance(seed, (int, np.integer)):
        return np.random.default_rng(seed)
    return SeedStreams(seed, rows_per_seed)
