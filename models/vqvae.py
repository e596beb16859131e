"""The 3D-VQ video tokenizer of MAGVIT (docs/official-behaviour.md#tokenizer), faithful to the official
`enc_dec_3dcnn.py` / `vqvae.py`:

    video [B, T, H, W, 3] in [0, 1]  -> Encoder -> latent [B, t, h, w, D]
    -> VectorQuantizer -> ids [B, t, h, w] -> codebook rows -> Decoder -> video (unbounded)

Public tensors are channels-last like the official code; modules work channels-first
inside, (B, C, T, H, W). With `dims=2` the same classes build the per-frame 2D
tokenizer that 2D->3D inflation starts from (frames folded into the batch, same module
names, so the state_dict keys match the 3D model's).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from magvit_onnx.models.config import VQConfig


def lecun_normal_(weight: torch.Tensor) -> torch.Tensor:
    """Flax's default kernel init: normal truncated at ±2σ, variance 1/fan_in after truncation."""
    fan_in = weight[0].numel()  # cin * prod(kernel) for (cout, cin, *kernel)
    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978  # std of N(0,1) truncated to [-2, 2]
    return nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


def make_conv(dims: int, cin: int, cout: int, kernel: int, bias: bool,
              init: Callable[[torch.Tensor], torch.Tensor] = lecun_normal_) -> nn.Module:
    """Stride-1 Conv2d/Conv3d with zero 'SAME' padding and zero bias init.

    The paper says the 3D-VQ pads by reflection, but the released configs leave
    `custom_conv_padding` unset, i.e. zero padding, which is what we follow.
    """
    conv = (nn.Conv3d if dims == 3 else nn.Conv2d)(cin, cout, kernel, padding=kernel // 2, bias=bias)
    init(conv.weight)
    if bias:
        nn.init.zeros_(conv.bias)
    return conv


def group_norm(groups: int, channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=1e-6)  # Flax GroupNorm default eps


def avg_pool_same(x: torch.Tensor, window: tuple[int, ...]) -> torch.Tensor:
    """Average pooling, stride = window, with TF 'SAME' padding (official
    `tensorflow_style_avg_pooling`): odd sizes are padded at the end and the padding is
    not counted, so a size-1 axis stays 1 with its value unchanged."""
    pool = F.avg_pool3d if x.dim() == 5 else F.avg_pool2d
    pads = []
    for size, k in zip(reversed(x.shape[2:]), reversed(window)):
        pads += [0, -size % k]  # F.pad lists the last axis first
    if not any(pads):
        return pool(x, window)
    count = pool(F.pad(x.new_ones(1, 1, *x.shape[2:]), pads), window)  # fraction of real cells
    return pool(F.pad(x, pads), window) / count


def resample_factors(temporal: bool, dims: int) -> tuple[int, ...]:
    """Pool/upsample factors of one level: (2|1, 2, 2) in 3D; the 2D model only resamples space."""
    return ((2 if temporal else 1), 2, 2) if dims == 3 else (2, 2)


class ResBlock(nn.Module):
    """GN-SiLU-conv3-GN-SiLU-conv3 (no biases) + shortcut (1x1 conv, no bias, only if cin != cout)."""

    def __init__(self, cin: int, cout: int, groups: int, dims: int = 3):
        super().__init__()
        self.norm1 = group_norm(groups, cin)
        self.conv1 = make_conv(dims, cin, cout, 3, bias=False)
        self.norm2 = group_norm(groups, cout)
        self.conv2 = make_conv(dims, cout, cout, 3, bias=False)
        self.shortcut = make_conv(dims, cin, cout, 1, bias=False) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.shortcut(x)


class Downsample(nn.Module):
    """Average pooling (the official configs use no strided convs)."""

    def __init__(self, window: tuple[int, ...]):
        super().__init__()
        self.window = window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return avg_pool_same(x, self.window)

    def extra_repr(self) -> str:
        return f"window={self.window}"


class Upsample(nn.Module):
    """Nearest-neighbour x2 (each cell repeated) along the axes with factor 2, then a 3^d conv with bias."""

    def __init__(self, channels: int, factors: tuple[int, ...], dims: int = 3):
        super().__init__()
        self.factors = factors
        self.conv = make_conv(dims, channels, channels, 3, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, *S) -> (B, C, s0, 1, s1, 1, ...) -> broadcast each 1 to its factor -> merge:
        # one copy for all axes (repeat_interleave per axis exports as one Expand each).
        b, c, *sizes = x.shape
        x = x.reshape(b, c, *[n for s in sizes for n in (s, 1)])
        x = x.expand(b, c, *[n for s, f in zip(sizes, self.factors) for n in (s, f)])
        return self.conv(x.reshape(b, c, *[s * f for s, f in zip(sizes, self.factors)]))


def res_blocks(cin: int, cout: int, n: int, groups: int, dims: int) -> list[nn.Module]:
    """n ResBlocks; only the first one changes the width."""
    return [ResBlock(cin if i == 0 else cout, cout, groups, dims) for i in range(n)]


class Encoder(nn.Module):
    """(B, 3, T, H, W) -> (B, D, t, h, w); with dims=2, (N, 3, H, W) -> (N, D, h, w).

    conv_in (no bias); per level: ResBlocks then avg-pool (all levels but the last);
    mid ResBlocks; GN, SiLU, 1x1 conv to the code dim (with bias).
    """

    def __init__(self, config: VQConfig, dims: int = 3):
        super().__init__()
        n, groups = config.num_res_blocks, config.norm_groups
        widths = [config.filters * m for m in config.channel_multipliers]
        self.conv_in = make_conv(dims, 3, config.filters, 3, bias=False)
        levels, cin = [], config.filters
        for i, width in enumerate(widths):
            blocks = res_blocks(cin, width, n, groups, dims)
            if i < len(widths) - 1:
                blocks.append(Downsample(resample_factors(config.temporal_downsample[i], dims)))
            levels.append(nn.Sequential(*blocks))
            cin = width
        self.levels = nn.ModuleList(levels)
        self.mid = nn.Sequential(*res_blocks(cin, cin, n, groups, dims))
        self.norm_out = group_norm(groups, cin)
        self.conv_out = make_conv(dims, cin, config.embedding_dim, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        for level in self.levels:
            x = level(x)
        x = self.mid(x)
        return self.conv_out(F.silu(self.norm_out(x)))


class Decoder(nn.Module):
    """(B, D, t, h, w) -> (B, 3, T, H, W), unbounded (no output activation).

    conv_in (bias); mid ResBlocks; levels from last to first: ResBlocks, then for every
    level i > 0 an upsample by the factors of encoder pooling i-1; GN, SiLU, conv3 -> 3.
    `levels[i]` is level i (as in the encoder); they run in reverse order.
    """

    def __init__(self, config: VQConfig, dims: int = 3):
        super().__init__()
        n, groups = config.num_res_blocks, config.norm_groups
        widths = [config.filters * m for m in config.channel_multipliers]
        cin = widths[-1]
        self.conv_in = make_conv(dims, config.embedding_dim, cin, 3, bias=True)
        self.mid = nn.Sequential(*res_blocks(cin, cin, n, groups, dims))
        levels = []
        for i in reversed(range(len(widths))):
            blocks = res_blocks(cin, widths[i], n, groups, dims)
            if i > 0:
                blocks.append(Upsample(widths[i], resample_factors(config.temporal_downsample[i - 1], dims), dims))
            levels.append(nn.Sequential(*blocks))
            cin = widths[i]
        self.levels = nn.ModuleList(levels[::-1])
        self.norm_out = group_norm(groups, cin)
        self.conv_out = make_conv(dims, cin, 3, 3, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mid(self.conv_in(x))
        for level in reversed(self.levels):
            x = level(x)
        return self.conv_out(F.silu(self.norm_out(x)))


def entropy_loss(affinity: torch.Tensor, temperature: float) -> torch.Tensor:
    """Official `losses.entropy_loss` (type 'softmax'): mean per-position entropy minus the
    entropy of the mean code distribution. Minimising it makes each position pick one code
    confidently while spreading usage over the codebook. affinity: [..., K]."""
    logits = affinity.reshape(-1, affinity.shape[-1]) / temperature
    probs = logits.softmax(-1)
    log_probs = (logits + 1e-5).log_softmax(-1)  # the official +1e-5 sits inside (a no-op shift)
    sample_entropy = -(probs * log_probs).sum(-1).mean()
    avg_probs = probs.mean(0)
    batch_entropy = -(avg_probs * (avg_probs + 1e-5).log()).sum()
    return sample_entropy - batch_entropy


class VectorQuantizer(nn.Module):
    """Nearest codeword by squared Euclidean distance; channels-last [..., D] in and out.

    No EMA codebook updates and no l2-normalisation (as in the official configs).
    """

    def __init__(self, config: VQConfig):
        super().__init__()
        self.config = config
        # variance_scaling(1, fan_in, uniform) on a (K, D) param: fan_in = K -> U(±sqrt(3/K)).
        bound = math.sqrt(3.0 / config.codebook_size)
        self.codebook = nn.Parameter(torch.empty(config.codebook_size, config.embedding_dim).uniform_(-bound, bound))

    def distances(self, z: torch.Tensor) -> torch.Tensor:
        """[..., D] -> [..., K]: ||z||^2 - 2 z.e + ||e||^2, the official expansion (fp32 matmul)."""
        e = self.codebook
        return z.pow(2).sum(-1, keepdim=True) - 2 * (z @ e.t()) + e.pow(2).sum(-1)

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """ids [...] -> codewords [..., D]."""
        return F.embedding(ids, self.codebook)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Training path: (straight-through q = z + sg(q - z), ids, losses)."""
        c = self.config
        distances = self.distances(z)
        ids = distances.argmin(-1)  # ties -> lowest index, like jnp.argmin
        q = self.lookup(ids)
        losses = {
            # official `e_latent_loss`: pulls the encoder output towards its codeword
            "commitment_loss": c.commitment_cost * F.mse_loss(z, q.detach()),
            # official `q_latent_loss`: pulls the codeword towards the encoder output
            "codebook_loss": c.embedding_loss_ratio * F.mse_loss(q, z.detach()),
            "entropy_loss": c.entropy_loss_ratio * entropy_loss(-distances, c.entropy_temperature),
        }
        losses["quantizer_loss"] = sum(losses.values())
        return z + (q - z).detach(), ids, losses


class VQVAE(nn.Module):
    """Encoder + quantizer + decoder with the official channels-last interface.

    dims=3: the 3D-VQ. dims=2: the per-frame image tokenizer (the official
    `enc_dec_2dcnn` vmapped over T), used as the source of 2D->3D inflation.
    """

    def __init__(self, config: VQConfig, dims: int = 3):
        super().__init__()
        self.config, self.dims = config, dims
        self.encoder = Encoder(config, dims)
        self.quantizer = VectorQuantizer(config)
        self.decoder = Decoder(config, dims)

    def _channels_first(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, H, W, C] -> (B, C, T, H, W), or (B*T, C, H, W) for the per-frame 2D model."""
        if self.dims == 3:
            return x.permute(0, 4, 1, 2, 3)
        return x.flatten(0, 1).permute(0, 3, 1, 2)

    def _channels_last(self, x: torch.Tensor, batch: int) -> torch.Tensor:
        """Inverse of `_channels_first`."""
        if self.dims == 3:
            return x.permute(0, 2, 3, 4, 1)
        return x.permute(0, 2, 3, 1).unflatten(0, (batch, -1))

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """video [B, T, H, W, 3] in [0, 1] (no rescaling) -> continuous latent [B, t, h, w, D]."""
        return self._channels_last(self.encoder(self._channels_first(video)), video.shape[0])

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """latent [B, t, h, w, D] -> video [B, T, H, W, 3], unclipped."""
        return self._channels_last(self.decoder(self._channels_first(latent)), latent.shape[0])

    def tokenize(self, video: torch.Tensor) -> torch.Tensor:
        """video [B, T, H, W, 3] -> ids [B, t, h, w] (int64)."""
        return self.quantizer.distances(self.encode(video)).argmin(-1)

    def detokenize(self, ids: torch.Tensor) -> torch.Tensor:
        """ids [B, t, h, w] -> video [B, T, H, W, 3], unclipped (clip to [0, 1] for outputs/metrics)."""
        return self.decode(self.quantizer.lookup(ids))

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """Training pass: (reconstruction [B, T, H, W, 3], quantizer losses, ids [B, t, h, w])."""
        z = self.encode(video)
        with torch.autocast(z.device.type, enabled=False):  # nearest-code search in fp32, also under bf16 autocast
            q, ids, losses = self.quantizer(z.float())
        return self.decode(q), losses, ids
