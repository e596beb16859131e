"""The official MAGVIT token / vocabulary layout (docs/official-behaviour.md#vocabulary), pure Python.

Ids fed to the transformer:
    0 .. codebook_size-1            visual tokens (VQ codebook ids)
    codebook_size + c               class label c
    codebook_size + num_classes     UNCOND (no class)
    negative ids                    special tokens (MASK = -1, task tokens, ...)

The official embedding (`jnp.take`) wraps negative ids, so special id -k lands on
embedding row V - k: the special tokens occupy the last `num_special` rows.
`row(id)` does that wrap explicitly (PyTorch's `nn.Embedding` rejects negatives).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class SpecialTokens(IntEnum):
    """`SpecialTokens` of the official task registry (ids are negative)."""

    MASK = -1
    SEP = -2
    TASK_FULL_GENERATION = -3
    TASK_FRAME_PREDICTION = -4
    TASK_FRAME_INTERPOLATION = -5
    TASK_OUTPAINTING = -6
    TASK_INPAINTING = -7  # defined but never used by the official registry (see tasks.py)
    PAD = -15


@dataclass(frozen=True)
class Vocab:
    """Vocabulary of one model: V = codebook + (num_classes + 1) + n_special."""

    codebook_size: int = 1024
    num_classes: int = 0
    multi_task: bool = True

    @property
    def num_special(self) -> int:
        # Single-task models have one special slot (MASK); multi-task models sixteen.
        return 16 if self.multi_task else 1

    @property
    def size(self) -> int:
        return self.codebook_size + self.num_classes + 1 + self.num_special

    @property
    def uncond_id(self) -> int:
        return self.codebook_size + self.num_classes

    @property
    def prefix_length(self) -> int:
        """Task token (multi-task only) + class token (always present)."""
        return 2 if self.multi_task else 1

    def class_id(self, label: int) -> int:
        if not 0 <= label < self.num_classes:
            raise ValueError(f"class {label} out of range: valid classes are 0..{self.num_classes - 1}")
        return self.codebook_size + label

    def row(self, token_id: int) -> int:
        """Embedding row of an id (negative ids wrap like `jnp.take`)."""
        return token_id % self.size

    def as_dict(self) -> dict:
        """Layout for manifests: every id a consumer needs, with its embedding row."""
        return {
            "codebook_size": self.codebook_size,
            "num_classes": self.num_classes,
            "multi_task": self.multi_task,
            "vocab_size": self.size,
            "prefix_length": self.prefix_length,
            "class_ids": [self.codebook_size, self.codebook_size + self.num_classes - 1]
            if self.num_classes else [],
            "uncond_id": self.uncond_id,
            "special_tokens": {t.name: int(t) for t in SpecialTokens},
            "special_rows": {t.name: self.row(int(t)) for t in SpecialTokens if -int(t) <= self.num_special},
        }
