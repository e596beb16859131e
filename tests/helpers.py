"""Shared tiny configuration: the `tiny` preset shrunk further so every test stays fast."""
import dataclasses

from magvit_onnx.models.config import TransformerConfig, get_config


def small_config(**overrides):
    """`tiny` at 8x32x32 (latent 2x4x4, 32 tokens) with a 2-layer, 64-wide transformer."""
    config = get_config("tiny", **overrides)
    return dataclasses.replace(
        config,
        vq=dataclasses.replace(config.vq, video_shape=(8, 32, 32)),
        transformer=TransformerConfig(num_layers=2, hidden_size=64, num_heads=2, mlp_dim=128),
    )
