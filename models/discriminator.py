"""The 3D StyleGAN discriminator of the MAGVIT tokenizer GAN
(docs/official-behaviour.md#tokenizer-training), faithful to the
official `stylegan_discriminator_3d.py`: no normalisation, leaky ReLU 0.2, residual blocks
that halve every axis, a flatten in (T, H, W, C) order, then two Dense layers.

With `dims=2` it is the per-frame image discriminator (`stylegan_discriminator_2d.py`,
vmapped over T) with the same module names, so 2D->3D inflation maps it key by key.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from magvit_onnx.models.config import DiscriminatorConfig
from magvit_onnx.models.vqvae import avg_pool_same, make_conv


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


def xavier_conv(dims: int, cin: int, cout: int, kernel: int, bias: bool = True) -> nn.Module:
    return make_conv(dims, cin, cout, kernel, bias, init=nn.init.xavier_uniform_)


class DiscriminatorBlock(nn.Module):
    """main = conv3(cin->cin), lrelu, pool, conv3(cin->cout), lrelu; skip = pool, 1x1 conv (no bias);
    out = (main + skip) / sqrt(2). Pools by 2 on every axis with TF 'SAME' semantics, so an
    axis already at size 1 stays 1 (UCF's 5th block pools space only)."""

    def __init__(self, cin: int, cout: int, dims: int = 3):
        super().__init__()
        self.window = (2,) * dims
        self.conv1 = xavier_conv(dims, cin, cin, 3)
        self.conv2 = xavier_conv(dims, cin, cout, 3)
        self.skip = xavier_conv(dims, cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = avg_pool_same(lrelu(self.conv1(x)), self.window)
        h = lrelu(self.conv2(h))
        return (h + self.skip(avg_pool_same(x, self.window))) / math.sqrt(2)


class StyleGANDiscriminator(nn.Module):
    """video [B, T, H, W, 3] -> logits [B] (dims=3), or per-frame logits [B, T] (dims=2).

    `video_shape` (T, H, W) fixes the flatten size of the first Dense layer.
    """

    def __init__(self, config: DiscriminatorConfig, video_shape: tuple[int, int, int], dims: int = 3):
        super().__init__()
        self.dims = dims
        widths = [config.filters * m for m in config.channel_multipliers]
        self.conv_in = xavier_conv(dims, 3, config.filters, 3)
        self.blocks = nn.Sequential(*[DiscriminatorBlock(cin, cout, dims)
                                      for cin, cout in zip([config.filters] + widths[:-1], widths)])
        self.conv_out = xavier_conv(dims, widths[-1], widths[-1], 3)
        t, h, w = video_shape
        for _ in widths:
            t, h, w = -(-t // 2), -(-h // 2), -(-w // 2)  # 'SAME' pooling: ceil(size / 2)
        positions = (t if dims == 3 else 1) * h * w
        self.dense = nn.Linear(positions * widths[-1], widths[-1])
        self.logit = nn.Linear(widths[-1], 1)
        for linear in (self.dense, self.logit):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        batch = video.shape[0]
        if self.dims == 3:
            x = video.permute(0, 4, 1, 2, 3)  # (B, 3, T, H, W)
        else:
            x = video.flatten(0, 1).permute(0, 3, 1, 2)  # (B*T, 3, H, W)
        x = self.blocks(lrelu(self.conv_in(x)))
        x = lrelu(self.conv_out(x))
        # Channels-last before flattening, so the Dense weight is laid out like the official one.
        x = x.movedim(1, -1).flatten(1)
        logits = self.logit(lrelu(self.dense(x))).squeeze(-1)
        return logits if self.dims == 3 else logits.unflatten(0, (batch, -1))
