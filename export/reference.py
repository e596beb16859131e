"""The PyTorch reference behind the same `Pipeline` as ONNX Runtime (for parity and benchmarks).

`TorchEngine` runs EncoderGraph / StepGraph / DecoderGraph in torch (eval mode, no grad)
with numpy in and out, so `reference_pipeline(...)` generates through exactly the
generation code the runtime uses; only the engine differs.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from magvit_onnx.export.graphs import DecoderGraph, EncoderGraph, StepGraph
from magvit_onnx.models.config import MagvitConfig
from magvit_onnx.models.transformer import Transformer
from magvit_onnx.models.vqvae import VQVAE
from magvit_onnx.runtime import tasks
from magvit_onnx.runtime.pipeline import Pipeline


class TorchEngine:
    def __init__(self, vq: VQVAE, transformer: Transformer, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.encoder = EncoderGraph(vq).eval().to(self.device)
        self.step = StepGraph(transformer).eval().to(self.device)
        self.decoder = DecoderGraph(vq).eval().to(self.device)

    @torch.inference_mode()
    def encode(self, video: np.ndarray) -> np.ndarray:
        return self.encoder(torch.from_numpy(np.ascontiguousarray(video, np.float32)).to(self.device)).cpu().numpy()

    @torch.inference_mode()
    def run_step(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        args = [torch.from_numpy(np.asarray(feeds[name])).to(self.device) for name in
                ("tokens", "prefix", "segment_ids", "seeds", "temperature", "top_k", "top_p", "guidance_scale")]
        sampled, probs = self.step(*args)
        return sampled.cpu().numpy(), probs.cpu().numpy()

    @torch.inference_mode()
    def decode(self, tokens: np.ndarray) -> np.ndarray:
        return self.decoder(torch.from_numpy(np.ascontiguousarray(tokens, np.int64)).to(self.device)).cpu().numpy()


def reference_pipeline(config: MagvitConfig, vq: VQVAE, transformer: Transformer,
                       device: str | torch.device = "cpu") -> Pipeline:
    return Pipeline(TorchEngine(vq, transformer, device), vocab=config.vocab,
                    latent_shape=config.vq.latent_shape, decoding=dataclasses.asdict(config.sampling),
                    video_shape=config.vq.video_shape,
                    manifest={"tasks": {name: tasks.get_task(name).as_dict() for name in config.tasks}})
