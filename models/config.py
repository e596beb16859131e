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
import math
from dataclasses import dataclass, field

from magvit_onnx.runtime.tasks import MASK_TASK, TASKS
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
        """The config `to_dict` wrote (a checkpoint's metadata, a manifest's entry). Read from
        files that may be edited, so every key, type and size is checked before anything is
        built: a problem is one ConfigError naming the field and what is valid."""
        parts = {"vq": VQConfig, "discriminator": DiscriminatorConfig, "transformer": TransformerConfig,
                 "sampling": SamplingConfig, "training": TrainingConfig}
        _check_keys("config", d, {f.name for f in dataclasses.fields(cls)})
        config = cls(name=_typed("config.name", d["name"], ""),
                     num_classes=_typed("config.num_classes", d["num_classes"], 0),
                     tasks=_typed("config.tasks", d["tasks"], ("",)),
                     **{name: _build(name, klass, d[name]) for name, klass in parts.items()})
        check_config(config)
        return config


class ConfigError(ValueError):
    """A config that does not describe a model this package builds."""


def _check_keys(where: str, d, names: set[str]) -> None:
    if not isinstance(d, dict):
        raise ConfigError(f"{where} must be an object with the keys {sorted(names)}, got {type(d).__name__}")
    unknown, missing = sorted(set(d) - names), sorted(names - set(d))
    if unknown or missing:
        raise ConfigError(f"{where}: " + "; ".join(
            text for text in (unknown and f"unknown keys {unknown}", missing and f"missing keys {missing}") if text)
            + f" (valid keys: {sorted(names)})")


def _build(where: str, klass, values: dict):
    """`klass` from `values`, each field of the type of the class's default value."""
    template = klass()
    _check_keys(f"config.{where}", values, {f.name for f in dataclasses.fields(klass)})
    return klass(**{name: _typed(f"config.{where}.{name}", value, getattr(template, name))
                    for name, value in values.items()})


def _typed(where: str, value, like):
    """`value` as the type of `like` (bool, int, finite float, str, or a non-empty tuple of them)."""
    if isinstance(like, tuple):
        if isinstance(value, (list, tuple)) and value:
            return tuple(_typed(f"{where}[{i}]", v, like[0]) for i, v in enumerate(value))
        kind = f"a non-empty list of {type(like[0]).__name__}"
    elif isinstance(like, bool):
        if isinstance(value, bool):
            return value
        kind = "true or false"
    elif isinstance(like, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        kind = "an integer"
    elif isinstance(like, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        kind = "a finite number"
    else:
        if isinstance(value, str):
            return value
        kind = "a string"
    raise ConfigError(f"{where} must be {kind}, got {str(value)[:40]!r}")


# Bounds of a config read from a file: generous (the official L preset is well inside each), but
# a crafted checkpoint or manifest cannot ask for a model that takes more memory than a machine has.
RANGES = {"vq.filters": (1, 512), "vq.num_res_blocks": (1, 8), "vq.embedding_dim": (1, 2048),
          "vq.codebook_size": (2, 32768),  # token pools store ids as int16
          "vq.channel_multipliers": (1, 16), "discriminator.filters": (1, 512),
          "discriminator.channel_multipliers": (1, 16), "transformer.num_layers": (1, 64),
          "transformer.hidden_size": (1, 8192), "transformer.num_heads": (1, 256), "transformer.mlp_dim": (1, 32768),
          "sampling.num_iter": (1, 1024), "sampling.top_k": (0, 32768), "num_classes": (0, 100000)}
MAX_FRAMES, MAX_SIDE, MAX_LEVELS = 256, 1024, 8


def check_config(config: "MagvitConfig") -> None:
    """Ranges and consistency of a config (ConfigError naming the first problem)."""
    def field(name: str):
        value = config
        for part in name.split("."):
            value = getattr(value, part)
        return value

    for name, (low, high) in RANGES.items():
        for value in (field(name) if isinstance(field(name), tuple) else (field(name),)):
            if not low <= value <= high:
                raise ConfigError(f"config.{name} must be in [{low}, {high}], got {value}")
    vq, transformer = config.vq, config.transformer
    frames, height, width = (vq.video_shape + (0, 0, 0))[:3]
    if len(vq.video_shape) != 3 or not (1 <= frames <= MAX_FRAMES and 1 <= min(height, width) <= max(height, width)
                                        <= MAX_SIDE):
        raise ConfigError(f"config.vq.video_shape must be [frames, height, width] with frames in [1, {MAX_FRAMES}] "
                          f"and sides in [1, {MAX_SIDE}], got {list(vq.video_shape)}")
    levels = len(vq.channel_multipliers)
    if levels > MAX_LEVELS or len(config.discriminator.channel_multipliers) > MAX_LEVELS:
        raise ConfigError(f"config channel_multipliers may have at most {MAX_LEVELS} levels")
    if len(vq.temporal_downsample) < levels - 1:
        raise ConfigError(f"config.vq.temporal_downsample needs a flag for each of the {levels - 1} poolings")
    pooled = [2 ** sum(vq.temporal_downsample[:levels - 1]), 2 ** (levels - 1), 2 ** (levels - 1)]
    if any(size % factor for size, factor in zip(vq.video_shape, pooled)):
        raise ConfigError(f"config.vq.video_shape {list(vq.video_shape)} must be divisible by the pooling {pooled}")
    if any(vq.filters * m % vq.norm_groups for m in vq.channel_multipliers) or vq.norm_groups < 1:
        raise ConfigError(f"config.vq.norm_groups {vq.norm_groups} must divide every level's channel count "
                          f"(filters {vq.filters} x {list(vq.channel_multipliers)})")
    if transformer.hidden_size % transformer.num_heads:
        raise ConfigError(f"config.transformer.hidden_size {transformer.hidden_size} must be divisible by "
                          f"num_heads {transformer.num_heads}")
    if not (0 <= transformer.dropout < 1 and 0 <= transformer.attention_dropout < 1
            and 0 <= config.training.cond_dropout <= 1 and 0 <= config.training.label_smoothing < 1):
        raise ConfigError("config dropout, attention_dropout and label_smoothing must be in [0, 1), "
                          "cond_dropout in [0, 1]")
    valid = [*TASKS, MASK_TASK.name]  # the mask task: a model trained on random regions lists it
    unknown = [name for name in config.tasks if name not in valid]
    if unknown or len(set(config.tasks)) != len(config.tasks):
        raise ConfigError(f"config.tasks must name distinct tasks of {valid}, got {list(config.tasks)}")


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
