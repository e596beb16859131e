"""Shared tiny configuration: the `tiny` preset shrunk further so every test stays fast."""
import dataclasses
import subprocess
import sys

from magvit_onnx.models.config import TransformerConfig, get_config


def small_config(**overrides):
    """`tiny` at 8x32x32 (latent 2x4x4, 32 tokens) with a 2-layer, 64-wide transformer."""
    config = get_config("tiny", **overrides)
    return dataclasses.replace(
        config,
        # UCF's 8x pooling keeps the test model's token grid small (and fast)
        vq=dataclasses.replace(config.vq, video_shape=(8, 32, 32), channel_multipliers=(1, 2, 2, 4),
                               temporal_downsample=(True, True, False)),
        transformer=TransformerConfig(num_layers=2, hidden_size=64, num_heads=2, mlp_dim=128),
    )


BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r} or name.startswith({module!r} + "."):
            raise ImportError({module!r} + " is blocked")
sys.meta_path.insert(0, Block())
"""


def run_without(module: str, code: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter where any import of `module` fails."""
    return subprocess.run([sys.executable, "-c", BLOCK.format(module=module) + code],
                          capture_output=True, text=True, cwd="/")


def run_without_torch(code: str) -> subprocess.CompletedProcess:
    return run_without("torch", code)
