"""Multi-task COMMIT training of the transformer, on top of the numpy core
(docs/official-behaviour.md#commit-training).

One step: pick the step's task from a fixed schedule, build its condition video,
tokenize video and condition in one VQ call, mask with COMMIT, prepend the task/class
prefix, and take the label-smoothed token loss over every latent position:

    refine  masked, inside the condition region  -> input is the condition token
    mask    masked, outside                      -> input is MASK
    recons  not masked                           -> input is the true token
(equal weights, 'mask+refine+recons'; 'mask+refine' drops recons).

Departure (ours): `TrainingConfig.cond_dropout` shows an example its unconditional
sequence (TASK_FULL_GENERATION, UNCOND, MASK instead of condition tokens) with that
probability, so classifier-free guidance has an unconditional model to contrast with.
The official code trains no unconditional branch; cond_dropout = 0 reproduces it.

Ours: the mask task (IPM, 'inpainting': any region, runtime/regions.py) trains on random
regions, one condition variant per region kind (`REGION_KINDS`): a clip's region is drawn
from (seed, clip index, kind) alone (`training_masks`) and its condition is built by
`tasks.condition('inpainting', ..., mask=...)`, the function the runtime calls for a user's
mask, under the token the runtime gives the task (`tasks.task_token`): its own,
TASK_INPAINTING, when the model's config lists it (scripts/train_transformer.py adds it),
else the official inpainting token of IPC and IPD.
"""
from __future__ import annotations

import contextlib
from typing import Sequence

import numpy as np
import torch
from torch import nn

from magvit_onnx.models.config import MagvitConfig
from magvit_onnx.models.token_loss import token_loss
from magvit_onnx.runtime import regions, tasks
from magvit_onnx.runtime.masking import MASK_TOKEN, random_mask, with_prefix
from magvit_onnx.runtime.schedule import mask_ratio


def task_schedule(task_names: Sequence[str], weights: Sequence[float] | None = None,
                  rng: np.random.Generator | None = None) -> list[str]:
    """Official `get_task_idx_sequence`: step s trains task `schedule[s % len(schedule)]`.

    Weights (default 1) are scaled by 100 / min(1, min weight) and rounded, each task is
    repeated that many times, and the list is shuffled once: with equal weights every
    task occurs exactly 100 times in each window of 100 * len(tasks) steps.
    """
    w = np.ones(len(task_names)) if weights is None else np.asarray(weights, np.float64)
    counts = np.round(w * 100 / min(1.0, w.min())).astype(np.int64)
    order = np.repeat(np.arange(len(task_names)), counts)
    rng = np.random.default_rng() if rng is None else rng
    return [task_names[i] for i in rng.permutation(order)]


def sample_mask_ratio(num_tokens: int, method: str, rng: np.random.Generator) -> np.float32:
    """One ratio per step, shared by the whole batch: schedule(r), r ~ U[0, 1)."""
    return mask_ratio(rng.random(dtype=np.float32), num_tokens, method)


# The random regions the mask task trains on: each kind of runtime/regions.py, as the region
# to generate (inpainting) and inverted, as the region to keep (outpainting).
REGION_KINDS = (*regions.KINDS, *(f"{kind}_inverted" for kind in regions.KINDS))
_REGION_SALT = 0x1E61


def training_masks(kind: str, items: Sequence[int], seed: int, config: MagvitConfig) -> np.ndarray:
    """Pixel masks `[B, T, H, W]` (True = generate) of random regions of `kind` (one of
    `REGION_KINDS`) for data items `items`. Item i's region is drawn from a generator seeded
    by (seed, i, kind) alone, so a pool and a stream give a clip the same region, whatever
    the batch, the number of processes or when the pool grew. Regions are drawn on the token
    grid (`regions.random_regions`: never empty, never every token) and given at pixel
    resolution, as a user's mask is given."""
    if kind not in REGION_KINDS:
        raise ValueError(f"unknown region kind {kind!r}: valid kinds are {', '.join(REGION_KINDS)}")
    base, inverted = kind.removesuffix("_inverted"), kind.endswith("_inverted")
    latent = [regions.random_regions(np.random.default_rng([seed, int(i), REGION_KINDS.index(kind), _REGION_SALT]),
                                     1, config.vq.latent_shape, kinds=(base,), invert=float(inverted))[0]
              for i in items]
    return regions.pixel_region(np.stack(latent), config.vq.video_shape)


def variant_overrides(overrides: dict, items: Sequence[int], seed: int, config: MagvitConfig) -> dict:
    """The condition overrides of a variant for data items `items`: a random-region variant's
    {'random_region': kind} becomes those items' masks {'mask': [B, T, H, W]}; others as given."""
    if "random_region" not in overrides:
        return overrides
    return {"mask": training_masks(overrides["random_region"], items, seed, config)}


@torch.no_grad()
def condition_variants(task_names: Sequence[str], config: MagvitConfig,
                       fp_cond_frames: Sequence[int] = (1,)) -> dict[str, tuple[str, dict]]:
    """The conditions training draws from, by key: (task, condition overrides).

    Every task has its default (official) condition, keyed by its name — except that with
    several `fp_cond_frames` the frame-prediction tasks get one variant per length,
    'frame_prediction@5' for 5 frames, with as many latent frames as those frames reach
    (5 frames of a 4x temporal pooling: 2). Ours: the official configs train one length
    (1 frame); continuing a video from more frames (long videos) needs the longer ones.
    The mask task ('inpainting') has one variant per random-region kind, 'inpainting@box',
    ..., 'inpainting@blob_inverted', whose overrides {'random_region': kind} are resolved per
    clip by `variant_overrides`.
    """
    frames_per_latent = config.vq.video_shape[0] // config.vq.latent_shape[0]
    most = config.vq.latent_shape[0] - 1  # at least one latent frame is left to predict
    variants: dict[str, tuple[str, dict]] = {}
    for name in task_names:
        if tasks.get_task(name).kind == "frame_prediction" and tuple(fp_cond_frames) != (1,):
            for n in fp_cond_frames:
                latent = min(most, -(-n // frames_per_latent))
                variants[f"{name}@{n}"] = (name, {"cond_frames": n, "cond_latent_frames": latent})
        elif tasks.get_task(name) is tasks.MASK_TASK:
            for kind in REGION_KINDS:
                variants[f"{name}@{kind}"] = (name, {"random_region": kind})
        else:
            variants[name] = (name, {})
    return variants


def tokenize_task(vq: nn.Module, video: torch.Tensor, task: str, config: MagvitConfig, **overrides
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tokens of `video[B, T, H, W, 3]`, of its condition video for `task` (with condition
    `overrides`, e.g. cond_frames), and the latent mask.

    One tokenizer call on [inputs; condition video], as the official `tokenize_with_cond`.
    Class-conditional generation has no condition: its condition tokens are zeros, never used.
    """
    spec = tasks.get_task(task)
    batch = video.shape[0]
    cond = tasks.condition(spec.name, video.cpu().numpy(), config.vq.latent_shape, **overrides)
    if spec.needs_video:
        ids = vq.tokenize(torch.cat([video, torch.from_numpy(cond["video"]).to(video)])).cpu().numpy()
        return ids[:batch], ids[batch:], cond["latent_mask"]
    inputs = vq.tokenize(video).cpu().numpy()
    return inputs, np.zeros_like(inputs), cond["latent_mask"]


def mask_tokens(inputs: np.ndarray, cond_inputs: np.ndarray, latent_mask: np.ndarray, task: str,
                config: MagvitConfig, rng: np.random.Generator, labels: np.ndarray | None = None,
                ratio: float | None = None, device: torch.device | str = "cpu",
                mask_score: np.ndarray | None = None, drop: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """Transformer inputs of one COMMIT step from tokens `[B, t, h, w]` (see `commit_batch`).

    The step's randomness — mask ratio, per-position mask scores `[B, t, h, w]`, condition
    dropout `[B]` (bool) — is drawn from `rng` unless given (data-parallel training draws it
    for the whole global batch and hands each process its rows; see `step_randomness`)."""
    spec = tasks.get_task(task)
    train = config.training
    batch = inputs.shape[0]
    if ratio is None:
        ratio = sample_mask_ratio(config.vq.num_tokens, train.mask_schedule, rng)
    masked = random_mask(inputs, ratio, mask_score=mask_score, cond_inputs=cond_inputs, cond_mask=latent_mask,
                         condition_mode=train.condition_mode, weight_mode=train.weight_mode, rng=rng)
    vocab = config.vocab
    class_ids = labels if spec.class_conditional else None
    listed = {name: tasks.get_task(name).as_dict() for name in config.tasks}  # as the exporter's manifest
    seq = with_prefix(masked, tasks.prefix(spec.name, vocab, batch, class_ids, token=tasks.task_token(spec.name, listed)),
                      tasks.uncond_prefix(vocab, batch))

    latent = np.s_[:, vocab.prefix_length:]
    is_masked = np.zeros(seq["targets"].shape, bool)
    # Uncond inputs hold MASK at exactly the masked positions (true tokens are never MASK).
    is_masked[latent] = (masked["uncond_masked_inputs"] == MASK_TOKEN).reshape(batch, -1)
    in_region = seq["segment_ids"] == 1
    terms = {"refine": is_masked & in_region, "mask": is_masked & ~in_region,
             "recons": (~is_masked) & (seq["weights"] > 0)}

    if train.cond_dropout > 0:  # ours: classifier-free-guidance training, see module docstring
        if drop is None:
            drop = rng.random(batch) < train.cond_dropout
        seq["masked_inputs"][drop] = seq["uncond_masked_inputs"][drop]
        seq["segment_ids"][drop] = 0

    out = {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in seq.items()}
    out.update({k: torch.from_numpy(v).to(device) for k, v in terms.items()})
    return out


def step_randomness(seed: int, step: int, global_batch: int, config: MagvitConfig) -> dict[str, np.ndarray]:
    """The random numbers of one training step for the whole global batch, the same on every
    process: the mask ratio (one per step, as the official code), mask scores [G, t, h, w] and
    condition dropout [G]. Process r takes rows [r*b, (r+1)*b) of its micro-batch, so N
    processes x batch b mask exactly as one process x batch N*b.

    (The official code draws one pattern per device and repeats it on every device; drawing
    per global batch gives every example its own pattern and makes runs independent of the
    number of processes.)"""
    rng = np.random.default_rng([seed, step, 0x7A5C])
    return {"ratio": sample_mask_ratio(config.vq.num_tokens, config.training.mask_schedule, rng),
            "mask_score": rng.random((global_batch, *config.vq.latent_shape), dtype=np.float32),
            "drop": rng.random(global_batch) < config.training.cond_dropout,
            "picks": rng.random(global_batch), "variant": rng.random()}


def commit_batch(vq: nn.Module, video: torch.Tensor, task: str, config: MagvitConfig,
                 rng: np.random.Generator, labels: np.ndarray | None = None,
                 ratio: float | None = None) -> dict[str, torch.Tensor]:
    """Transformer inputs for one step of `task` on `video[B, T, H, W, 3]` in [0, 1].

    Returns `[B, P + N]` tensors on the video's device: 'masked_inputs',
    'uncond_masked_inputs', 'segment_ids', 'targets', 'weights', and boolean term masks
    'refine', 'mask', 'recons' for logging.
    """
    inputs, cond_inputs, latent_mask = tokenize_task(vq, video, task, config)
    return mask_tokens(inputs, cond_inputs, latent_mask, task, config, rng, labels, ratio, video.device)


def commit_loss(transformer: nn.Module, batch: dict[str, torch.Tensor],
                config: MagvitConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Token loss of one COMMIT batch, plus the per-term losses for logging."""
    logits = transformer(batch["masked_inputs"], batch["segment_ids"])
    smoothing, k = config.training.label_smoothing, config.vq.codebook_size
    loss, _ = token_loss(logits, batch["targets"], batch["weights"], smoothing, k)
    metrics = {"loss": loss.item()}
    with torch.no_grad():
        for term in ("refine", "mask", "recons"):
            weights = batch["weights"] * batch[term]
            if weights.sum() > 0:
                metrics[f"loss_{term}"] = float(token_loss(logits, batch["targets"], weights, smoothing, k)[0])
    return loss, metrics


def optimizer_step(transformer: nn.Module, optimizer: torch.optim.Optimizer,
                   batch: dict[str, torch.Tensor] | Sequence[dict[str, torch.Tensor]], config: MagvitConfig,
                   lr: float | None = None, clip_norm: float = 1.0) -> dict[str, float]:
    """Loss, backward, global-norm clip (official 1.0), AdamW step on one COMMIT batch, or on
    a list of micro-batches whose gradients are averaged (gradient accumulation). A
    DistributedDataParallel transformer averages gradients over processes on the last
    micro-batch's backward (the others run under `no_sync`), before the clip, as the
    official code clips after the cross-device mean."""
    micro_batches = [batch] if isinstance(batch, dict) else list(batch)
    transformer.train()
    if lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    metrics: dict[str, float] = {}
    for i, micro in enumerate(micro_batches):
        last = i == len(micro_batches) - 1
        with contextlib.nullcontext() if last or not hasattr(transformer, "no_sync") else transformer.no_sync():
            loss, micro_metrics = commit_loss(transformer, micro, config)
            (loss / len(micro_batches)).backward()
        for key, value in micro_metrics.items():
            metrics[key] = metrics.get(key, 0.0) + value / len(micro_batches)
    metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(transformer.parameters(), clip_norm))
    optimizer.step()
    return metrics


def commit_train_step(transformer: nn.Module, vq: nn.Module, optimizer: torch.optim.Optimizer,
                      video: torch.Tensor, task: str, config: MagvitConfig, rng: np.random.Generator,
                      labels: np.ndarray | None = None, lr: float | None = None,
                      clip_norm: float = 1.0) -> dict[str, float]:
    """One optimiser step from raw video: COMMIT batch, loss, backward, clip, AdamW."""
    batch = commit_batch(vq, video, task, config, rng, labels=labels)
    return optimizer_step(transformer, optimizer, batch, config, lr, clip_norm)
