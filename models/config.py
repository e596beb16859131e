"""Model presets in one place, like the official `get_config('B')`.

`get_config(name)` returns a frozen `MagvitConfig` for:
    'B', 'L'  official UCF-101 16x128x128 tokenizer / discriminator / transformer sizes
              (`vqgan3d_ucf101_config`, `maskgvt_ucf101_config`), with our ten-task,
              class-conditional vocabulary (multi-task layout, 101 classes).
    'tiny'    ours: the official BAIR 16x64x64 tokenizer layout (channel multipliers
              (1, 2, 4), latent 4x16x16) at a quarter of the width, and a 4-layer,
              256-wide transformer; trainable on 2 CPU cores; the shipped default model.
Pure Python (no torch), so the runtime and manifests can read it too.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from magvit_onnx.runtime.tasks import TASKS
from magvit_onnx.runtime.vocab import Vocab


@dataclass(frozen=True)
class VQConfig:
    """3D-VQ tokenizer (docs/official-behaviour.md#tokenizer). Video shape is (T, H, W); RGB in [0, 1]."""

    video_shape: tuple[int, int, int] = (16, 128, 128)
    filters: int = 64
    channel_multipliers: tuple[int, ...] = (1, 2, 2, 4)
    num_res_blocks: int = 2
    # One flag per pooling level: pool time too (2,2,2) or space only (1,2,2).
    temporal_downsample: tuple[bool, ...] = (True, True, False)
    embedding_dim: int = 256
    codebook_size: int = 1024
    norm_groups: int = 32  # Flax GroupNorm default
    commitment_cost: float = 0.25
    embedding_loss_ratio: float = 1.0
    entropy_loss_ratio: float = 0.1
    entropy_temperature: float = 0.01

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(t, h, w) of the token grid: one pooling per level but the last."""
        t, h, w = self.video_shape
        for temporal in self.temporal_downsample[: len(self.channel_multipliers) - 1]:
            t, h, w = (t // 2 if temporal else t), h // 2, w // 2
        return t, h, w

    @property
    def num_tokens(self) -> int:
        t, h, w = self.latent_shape
        return t * h * w


@dataclass(frozen=True)
class DiscriminatorConfig:
    """3D StyleGAN discriminator (docs/official-behaviour.md#tokenizer-training);
    filters = the VQ's filters."""

    filters: int = 64
    channel_multipliers: tuple[int, ...] = (2, 4, 4, 4, 4)


@dataclass(frozen=True)
class TransformerConfig:
    """Bidirectional post-LN BERT (docs/official-behaviour.md#transformer)."""

    num_layers: int = 12
    hidden_size: int = 768
    num_heads: int = 12
    mlp_dim: int = 3072
    dropout: float = 0.1
    attention_dropout: float = 0.1


@dataclass(frozen=True)
class SamplingConfig:
    """Decoding defaults of the official UCF/BAIR/MT8 configs (docs/official-behaviour.md#decoding)."""

    num_iter: int = 12  # `mask_bins`
    schedule: str = "cosine"
    mask_temperature: float = 4.5  # `choice_temperature`
    sampling_temperature: float = 1.0
    guidance_scale: float = 0.0  # official default: guidance off
    top_k: int = 0  # 0 = off (official default)
    top_p: float = 0.0  # 0 = off (official default)


@dataclass(frozen=True)
class TrainingConfig:
    """COMMIT training settings (docs/official-behaviour.md#commit-training)."""

    condition_mode: str = "cond->input"
    weight_mode: str = "mask+refine+recons"
    mask_schedule: str = "cosine"
    label_smoothing: float = 1e-4
    # Ours, not official (the official code has no condition dropout): the probability
    # that a training example is shown its unconditional sequence, which is what
    # classifier-free guidance needs at sampling time. 0 reproduces the official training.
    cond_dropout: float = 0.0


@dataclass(frozen=True)
class MagvitConfig:
    name: str
    vq: VQConfig = field(default_factory=VQConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    num_classes: int = 101
    tasks: tuple[str, ...] = tuple(TASKS)

    @property
    def vocab(self) -> Vocab:
        # Ten tasks: always the multi-task layout (task token + class token prefix).
        return Vocab(codebook_size=self.vq.codebook_size, num_classes=self.num_classes, multi_task=True)

    @property
    def seq_len(self) -> int:
        return self.vocab.prefix_length + self.vq.num_tokens

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MagvitConfig":
        def build(klass, values):
            return klass(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

        return cls(
            name=d["name"],
            vq=build(VQConfig, d["vq"]),
            discriminator=build(DiscriminatorConfig, d["discriminator"]),
            transformer=build(TransformerConfig, d["transformer"]),
            sampling=build(SamplingConfig, d["sampling"]),
            training=build(TrainingConfig, d["training"]),
            num_classes=d["num_classes"],
            tasks=tuple(d["tasks"]),
        )


def _official(name: str, width: int, transformer: TransformerConfig) -> MagvitConfig:
    return MagvitConfig(
        name=name,
        vq=VQConfig(filters=width),
        discriminator=DiscriminatorConfig(filters=width),
        transformer=transformer,
        num_classes=101,
    )


PRESETS = {
    "B": lambda: _official("B", 64, TransformerConfig(12, 768, 12, 3072)),
    "L": lambda: _official("L", 128, TransformerConfig(24, 1024, 16, 4096)),
    "tiny": lambda: MagvitConfig(
        name="tiny",
        # BAIR's layout: two (2,2,2) poolings, 16x64x64 -> 4x16x16 tokens (a token covers
        # 4x4x4 pixels; UCF's 8x8 pooling leaves too few bits for small moving objects).
        vq=VQConfig(video_shape=(16, 64, 64), filters=16, channel_multipliers=(1, 2, 4),
                    temporal_downsample=(True, True), embedding_dim=64, norm_groups=8),
        # 16x64x64 pools to 1x4x4 after four (2,2,2) blocks, as BAIR's (2,4,4,4).
        discriminator=DiscriminatorConfig(filters=16, channel_multipliers=(2, 4, 4, 4)),
        transformer=TransformerConfig(num_layers=4, hidden_size=256, num_heads=4, mlp_dim=1024),
        training=TrainingConfig(cond_dropout=0.1),
        num_classes=10,
    ),
}


def get_config(name: str, **overrides) -> MagvitConfig:
    """A preset by name; keyword overrides replace top-level fields (e.g. num_classes=3)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: valid presets are {sorted(PRESETS)}")
    return dataclasses.replace(PRESETS[name](), **overrides)
