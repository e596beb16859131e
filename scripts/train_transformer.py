"""Train the multi-task COMMIT transformer on a trained tokenizer:

    python scripts/train_transformer.py --tokenizer runs/tokenizer/tokenizer.safetensors --out runs/transformer

Official recipe (docs/official-behaviour.md#commit-training): every step trains one task of
a fixed shuffled schedule (each of the ten tasks equally often, or as `--task-weights` says),
COMMIT masking with a cosine mask ratio per step, label-smoothed token loss on every latent
position ('mask+refine+recons'), AdamW(0.9, 0.96, wd 0.045 on kernels only), global-norm
clip 1.0, warmup + cosine. Ours: condition dropout for classifier-free guidance (the preset's
`cond_dropout`); class-conditional tasks train on the labelled part of the data only (with
no labelled data they are left out, with a notice), the other tasks on all of it;
`--fp-cond-frames 1,5` trains frame prediction from 1 frame (official) and from 5 frames
(2 latent frames), each step drawing one, so a model can continue longer videos.
`--task-weights IPM=W` adds the mask task (any region, runtime/regions.py) to the schedule
with weight W: each step of it trains one random-region kind (a box, a moving box, a blob,
or one of them inverted for outpainting), each clip with its own region (ours; off by default),
under the task's own token (TASK_INPAINTING): the trained model lists 'inpainting' among its
tasks, and an --init model that does not starts the token from its shared inpainting token.

Data (`--data`, see models/data.py): 'synthetic', procedural sources, a folder or manifest of
videos, or a weighted mix such as 'synthetic:1,dead_leaves:1,photos:2'. Two ways to feed it:
  --pool N   N clips tokenized once into OUT/tokens.npz (each clip and its condition video
             for each video task): fast on CPUs; a larger N on resume grows it; never more
             than the run draws (--steps x global batch); by default the clips each task
             draws over the run (--steps x global batch / tasks), at most 4096;
  --pool 0   streaming: every step decodes its clips (in --workers processes) and tokenizes
             them, for large datasets on GPUs.
Validation clips come from the data's validation split (held-out seeds or files).

Several devices: `torchrun --nproc_per_node N scripts/train_transformer.py ...` (multi-node:
docs/training.md). DistributedDataParallel; the global batch is --batch-size x processes x
--grad-accum, and every step's data and masks are drawn for the global batch, so a run does
not depend on how many processes share it. Rank 0 logs and saves. Resumes from
`OUT/state.pt` (also with another number of processes); writes `OUT/model.safetensors`
(tokenizer + transformer, ready for export/export_all.py) and `OUT/metrics.jsonl`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
import torch.distributed

from magvit_onnx.models import distributed
from magvit_onnx.models.checkpoint import load_tokenizer, load_weights, read_config, save_weights
from magvit_onnx.models.commit_training import (commit_loss, condition_variants, mask_tokens, optimizer_step,
                                                step_randomness, task_schedule, tokenize_task, variant_overrides)
from magvit_onnx.models.data import Mixture, Source, batches, chunks, parse_data, to_tensor
from magvit_onnx.models.token_loss import transformer_optimizer, warmup_cosine
from magvit_onnx.models.training import (Progress, add_run_arguments, load_state, plain, restore, run_script,
                                          save_state, start_run, train_loop)
from magvit_onnx.models.transformer import Transformer
from magvit_onnx.models.vqvae import VQVAE
from magvit_onnx.runtime import tasks


DEFAULT_POOL, DEFAULT_VAL_POOL = 4096, 64  # clips, at most (pool_sizes)


def parse_task_weights(text: str) -> dict[str, float]:
    """'CG=3,CFP=1.5' -> {'full_generation': 3.0, 'frame_prediction_c': 1.5} (ids or abbreviations)."""
    weights = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        try:
            weight = float(value)
            task = tasks.get_task(name).name
        except ValueError as error:
            raise argparse.ArgumentTypeError(
                f"{item!r}: {error if sep else 'expected TASK=WEIGHT'}; e.g. 'CG=3,CFP=1.5'") from None
        if not weight > 0:
            raise argparse.ArgumentTypeError(f"{item!r}: a weight must be > 0")
        weights[task] = weight
    return weights


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokenizer", type=Path, required=True, help="tokenizer.safetensors from train_tokenizer.py")
    p.add_argument("--data", default="synthetic", help="data spec (see the docstring)")
    p.add_argument("--stride", type=int, default=1, help="frame stride of windows read from video files")
    p.add_argument("--fps", type=float, default=None, help="resample video files to this frame rate instead")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--pool", type=int, default=None,
                   help=f"clips tokenized once (0 = stream and tokenize every step); default: the clips each task "
                        f"draws over the run (steps x global batch / tasks), at most {DEFAULT_POOL}; never more than "
                        f"steps x global batch; a larger value on resume grows it")
    p.add_argument("--val-pool", type=int, default=None,
                   help=f"validation clips tokenized once; default: as --pool's default, at most {DEFAULT_VAL_POOL}")
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--batch-size", type=int, default=16, help="per process and micro-batch")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per step")
    p.add_argument("--workers", type=int, default=0, help="data loader processes per training process (--pool 0), or making the token pools")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--restart-at", type=int, default=0,
                   help="warm restart: the warmup + cosine schedule begins again at this step and ends at --steps "
                        "(to go on training a finished model at a fresh learning rate)")
    p.add_argument("--init", type=Path, default=None,
                   help="model checkpoint (e.g. the shipped magvit_onnx/default_model/weights.safetensors) whose "
                        "transformer to start from; its tokenizer must be --tokenizer's (ignored on resume)")
    p.add_argument("--cond-dropout", type=float, default=None, help="default: the preset's")
    p.add_argument("--fp-cond-frames", default="1",
                   help="frame-prediction condition lengths to train, e.g. '1,5' (ours; official: 1 only)")
    p.add_argument("--task-weights", type=parse_task_weights, default={},
                   help="per-task schedule weights, e.g. 'CG=3,CFP=1.5' (official per-task `weight`; default 1 each); "
                        "IPM=W also trains the mask task (random regions, ours; default 0: off)")
    add_run_arguments(p, what="the transformer", every=250)
    args = p.parse_args(argv)
    for name in ("steps", "batch_size", "grad_accum"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.pool is not None and args.pool < 0 or args.val_pool is not None and args.val_pool < 1:
        p.error("--pool must be >= 0 (0 = stream) and --val-pool >= 1")
    if not 0 <= args.restart_at < args.steps:
        p.error(f"--restart-at {args.restart_at} must be in [0, --steps {args.steps})")
    return args


def parse_frames(text: str, frames: int) -> tuple[int, ...]:
    """'1,5' -> (1, 5): frame-prediction condition lengths, each in [1, frames)."""
    try:
        lengths = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise SystemExit(f"--fp-cond-frames {text!r}: give frame counts, e.g. '1,5'") from None
    if not lengths or not all(1 <= n < frames for n in lengths):
        raise SystemExit(f"--fp-cond-frames {text!r}: each length must be in [1, {frames - 1}]")
    return lengths


def labelled_part(source: Source) -> Source | None:
    """The source that class-conditional tasks train on: the labelled member of a mixture, the
    source itself when it has labels, else None."""
    if isinstance(source, Mixture):
        return next((s for s in source.sources if s.num_classes), None)
    return source if source.num_classes else None


class ScheduledSource(Source):
    """Streaming data that follows the task schedule: item i belongs to step i // global_batch,
    and comes from the labelled source when that step's task is class-conditional."""

    def __init__(self, source: Source, labelled: Source | None, schedule: list[str], global_batch: int):
        super().__init__(source.video_shape, source.split, source.seed)
        self.source, self.labelled, self.schedule, self.global_batch = source, labelled, schedule, global_batch

    def item(self, index: int):
        task = self.schedule[index // self.global_batch % len(self.schedule)]
        return (self.labelled if tasks.get_task(task).class_conditional else self.source).item(index)


def row_mask_key(key: str) -> str:
    """The pool key of a random-region variant's latent masks, one per row."""
    return f"{key}.latent_mask"


def pool_keys(variants) -> set[str]:
    """The pool keys the condition variants need: condition tokens of each video variant, and
    the per-row latent masks of each random-region variant."""
    video = {key for key, (name, _) in variants.items() if tasks.get_task(name).needs_video}
    return video | {row_mask_key(key) for key, (_, overrides) in variants.items() if "random_region" in overrides}


def tokenize_pool(vq: VQVAE, source: Source, first: int, count: int, config, variants, device, seed: int,
                  workers: int = 0, chunk: int = 16) -> dict[str, np.ndarray]:
    """Tokens of items [first, first + count) of `source` (`inputs`), their `labels`, and the
    tokens of each clip's condition video for each condition variant of a video task (one key
    per variant): `[N, t, h, w]` int16; for random-region variants also each clip's latent mask
    (`row_mask_key`, bool), its region drawn from (`seed`, item, kind). Clips are decoded and
    tokenized a chunk at a time (in fp32), so memory holds a few chunks of video, with a progress
    line per chunk; a condition video several variants share is tokenized once. Clips are rendered /
    decoded in `workers` processes: on a GPU and one process, making the clips, not tokenizing them,
    is what takes the time (about 20 ms a clip for the default mix)."""
    video_keys = [key for key, (name, _) in variants.items() if tasks.get_task(name).needs_video]
    out: dict[str, list[np.ndarray]] = {key: [] for key in ["inputs", *video_keys, "labels"]}
    progress = Progress(count)
    with torch.no_grad():
        for start, (clips, labels, _) in zip(range(0, count, chunk), chunks(source, first, count, chunk, workers)):
            out["labels"].append(labels.numpy())
            video = clips.numpy().astype(np.float32) / 255.0
            items = range(first + start, first + start + len(clips))
            batch, part_of = [video], {"inputs": 0}  # part_of: key -> its condition video's place in batch
            for key in video_keys:
                name, overrides = variants[key]
                cond = tasks.condition(name, video, config.vq.latent_shape,
                                       **variant_overrides(overrides, items, seed, config))
                # tasks that share a condition (frame prediction with and without a class) share its tokens
                same = [i for i, held in enumerate(batch) if np.array_equal(held, cond["video"])]
                part_of[key] = same[0] if same else len(batch)
                if not same:
                    batch.append(cond["video"])
                if "random_region" in overrides:
                    out.setdefault(row_mask_key(key), []).append(cond["latent_mask"])
            ids = vq.tokenize(torch.from_numpy(np.concatenate(batch)).to(device)).cpu().numpy().astype(np.int16)
            parts = np.split(ids, len(batch))
            for key, at in part_of.items():
                out[key].append(parts[at])
            done = min(start + chunk, count)
            progress.report(done, {"clips tokenized": done})
    return {k: np.concatenate(v) for k, v in out.items()}


def token_pool(path: Path, vq, source: Source, count: int, config, variants, device, seed: int,
               workers: int = 0) -> dict[str, np.ndarray]:
    """Load `path`, or tokenize items [0, count) of `source` into it (random regions drawn from
    `seed`). When `path` holds fewer than `count` clips, the missing items are tokenized and
    appended: a resumed run can grow its pool, and the pool does not depend on when it grew."""
    pool = load_pool(path, config) if path.is_file() else {}
    missing = pool_keys(variants) - set(pool)
    if pool and missing:
        raise SystemExit(f"{path} holds no condition tokens for {sorted(missing)} (made with other --fp-cond-frames "
                         f"or without --task-weights IPM?); move it away to tokenize the pool again")
    held = len(pool["labels"]) if pool else 0
    if pool and held >= count:
        return pool
    if held:
        print(f"growing {path} from {held} to {count} clips", flush=True)
    new = tokenize_pool(vq, source, held, count - held, config, variants, device, seed, workers)
    pool = {key: np.concatenate([pool[key], part]) for key, part in new.items()} if pool else new
    np.savez(path, **pool)
    return pool


def pool_sizes(args: argparse.Namespace, world: int, num_tasks: int) -> tuple[int, int]:
    """(training, validation) pool sizes in clips. Each step trains one task, so over the run a
    task draws about steps x global batch / tasks clips: a pool left at its default holds that
    many (at most DEFAULT_POOL, DEFAULT_VAL_POOL), so a short run does not first tokenize
    thousands of clips it cannot use. A given --pool is honoured up to steps x global batch,
    the most the run can draw; a given --val-pool as it is."""
    drawn = args.steps * args.batch_size * world * args.grad_accum
    per_task = -(-drawn // num_tasks)
    pool = min(DEFAULT_POOL, per_task) if args.pool is None else min(args.pool, drawn)
    val = min(DEFAULT_VAL_POOL, per_task) if args.val_pool is None else args.val_pool
    return pool, val


def latent_masks(config, variants) -> dict[str, np.ndarray]:
    """The latent mask of each condition variant with one (it depends on the task, overrides
    and shapes only); random-region variants have one per pool row instead (`row_mask_key`)."""
    probe = np.zeros((1, *config.vq.video_shape, 3), np.float32)
    return {key: tasks.condition(name, probe, config.vq.latent_shape, **overrides)["latent_mask"]
            for key, (name, overrides) in variants.items() if "random_region" not in overrides}


def pool_batch(pool, masks, key, task, index, config, device, **randomness):
    """COMMIT inputs for pool rows `index` on `task`, with the condition variant `key`."""
    inputs = pool["inputs"][index].astype(np.int64)
    cond = pool[key][index].astype(np.int64) if key in pool else np.zeros_like(inputs)
    mask = pool[row_mask_key(key)][index] if key not in masks else \
        np.broadcast_to(masks[key], (len(index), *masks[key].shape[1:]))
    labels = pool["labels"][index] if tasks.get_task(task).class_conditional else None
    return mask_tokens(inputs, cond, mask, task, config, np.random.default_rng(0), labels=labels, device=device,
                       **randomness)


def warm_start(transformer: Transformer, vq: VQVAE, path: Path, config) -> None:
    """Load the transformer of model checkpoint `path`; refuse one trained on other tokens or
    for another vocabulary (its token ids would mean something else here)."""
    other = read_config(path)
    mask_task = tasks.MASK_TASK.name
    official = [tuple(n for n in c.tasks if n != mask_task) for c in (other, config)]
    if (other.vq, other.transformer, other.num_classes, official[0]) != (config.vq, config.transformer,
                                                                         config.num_classes, official[1]):
        raise SystemExit(f"--init {path}: its model ({other.name}, {other.num_classes} classes, tasks "
                         f"{', '.join(other.tasks)}) is not the one this run trains ({config.name}, "
                         f"{config.num_classes} classes, tasks {', '.join(config.tasks)})")
    theirs = load_tokenizer(path)
    same_tokens = all(torch.equal(a.float(), b.float().cpu()) for a, b in
                      zip([*theirs.encoder.state_dict().values(), theirs.quantizer.codebook],
                          [*vq.encoder.state_dict().values(), vq.quantizer.codebook]))
    if not same_tokens:  # a decoder-only fine-tune keeps the tokens; anything else changes them
        raise SystemExit(f"--init {path}: its tokenizer's encoder or codebook is not --tokenizer's, so its "
                         f"transformer learned other token ids")
    load_weights(path, {"transformer": transformer})
    if mask_task in config.tasks and mask_task not in other.tasks:
        # The mask task's own token is new to this model: it starts as the token the model
        # served any region under (the official inpainting one; 0.3.x trained random regions there).
        rows = transformer.embeddings.word.weight
        with torch.no_grad():
            rows[config.vocab.row(int(tasks.MASK_TASK.token))] = rows[config.vocab.row(int(tasks.SHARED_TOKEN))]


def trained_tasks(config, task_weights: dict[str, float]) -> tuple[str, ...]:
    """The tasks the schedule trains, which the trained model lists: the model's official ones,
    and the mask task (IPM, random regions) when --task-weights gives it a weight. Refuses
    weights of tasks the run does not train."""
    mask_task = tasks.MASK_TASK.name
    official = tuple(name for name in config.tasks if name != mask_task)
    unknown = set(task_weights) - set(official) - {mask_task}
    if unknown:
        raise SystemExit(f"--task-weights names tasks this model does not train: {sorted(unknown)}; "
                         f"it trains {', '.join(official)} (and IPM, the mask task, when given a weight)")
    return (*official, mask_task) if mask_task in task_weights else official


def served_tasks(config, labelled: Source | None, is_main: bool) -> tuple[str, ...]:
    """The preset's tasks, less the class-conditional ones when the data has no labels."""
    if labelled is not None:
        return tuple(config.tasks)
    left_out = [name for name in config.tasks if tasks.get_task(name).class_conditional]
    if left_out and is_main:
        print(f"notice: the data has no class labels (no class sub-folders or 'label' column): "
              f"training without the class-conditional tasks {', '.join(left_out)}", flush=True)
    return tuple(name for name in config.tasks if name not in left_out)


def main(argv=None):
    args = parse_args(argv)
    dist, bf16 = start_run(args)
    device = dist.device
    config = read_config(args.tokenizer)
    fp_cond_frames = parse_frames(args.fp_cond_frames, config.vq.video_shape[0])
    source = parse_data(args.data, config.vq.video_shape, "train", args.seed, args.stride, args.fps)
    val_source = parse_data(args.data, config.vq.video_shape, "val", args.seed, args.stride, args.fps)
    labelled = labelled_part(source)
    config = dataclasses.replace(config, num_classes=labelled.num_classes if labelled else config.num_classes,
                                 tasks=served_tasks(config, labelled, dist.main))
    if args.cond_dropout is not None:
        config = dataclasses.replace(config, training=dataclasses.replace(config.training, cond_dropout=args.cond_dropout))
    trained = trained_tasks(config, args.task_weights)
    config = dataclasses.replace(config, tasks=trained)  # what the trained model lists
    if dist.main:
        args.out.mkdir(parents=True, exist_ok=True)
    state = load_state(args.out / "state.pt", device, ("transformer", "optimizer"))  # checked before any tokenizing
    resumes_at = state["step"] if state is not None else 0
    if args.restart_at > resumes_at:
        raise SystemExit(f"--restart-at {args.restart_at} is past the step training resumes at ({resumes_at}); "
                         f"a restart begins at or before it")

    vq = load_tokenizer(args.tokenizer, device).requires_grad_(False)
    variants = condition_variants(trained, config, fp_cond_frames)
    masks = latent_masks(config, variants)
    pool_clips, val_clips = pool_sizes(args, dist.world, len(trained))
    if dist.main:  # rank 0 tokenizes the pools; the others wait, then every rank reads them
        print(f"token pools: {pool_clips or 'none (streaming)'} training clips, {val_clips} validation clips, "
              f"each with its condition videos", flush=True)
        # validation regions from another seed than the training pool's
        token_pool(args.out / "val_tokens.npz", vq, _with_labelled(val_source), val_clips, config, variants, device,
                   args.seed + 1, args.workers)
        if pool_clips:
            token_pool(args.out / "tokens.npz", vq, source, pool_clips, config, variants, device, args.seed,
                       args.workers)
    if dist.world > 1:
        torch.distributed.barrier()
    val = load_pool(args.out / "val_tokens.npz", config)
    pool = load_pool(args.out / "tokens.npz", config) if pool_clips else None

    transformer = Transformer(config).to(device)
    optimizer = transformer_optimizer(transformer, lr=args.lr)
    weights = [args.task_weights.get(name, 1.0) for name in trained]
    schedule = task_schedule(list(trained), weights, rng=np.random.default_rng(args.seed))
    step = resumes_at
    if state is None and args.init is not None:
        warm_start(transformer, vq, args.init, config)
    if state is not None:
        restore(args.out / "state.pt", state, {"transformer": transformer, "optimizer": optimizer})
        if dist.main:
            print(f"resumed from {args.out / 'state.pt'} at step {step}", flush=True)
    # Dropout draws its own numbers on every rank (as the official per-device dropout RNG),
    # from a seed that also moves with the step, so a resumed run does not replay its masks.
    torch.manual_seed(int(np.random.default_rng([args.seed, dist.rank, step]).integers(2 ** 62)))
    model = transformer
    if dist.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(transformer, device_ids=[device] if device.type == "cuda" else None)
    if args.compile:
        model = torch.compile(model)
    per_rank, global_batch = args.batch_size, args.batch_size * dist.world * args.grad_accum
    stream = None
    if not pool_clips:
        stream = batches(ScheduledSource(source, labelled, schedule, global_batch), per_rank, rank=dist.rank,
                         world=dist.world, accumulation=args.grad_accum, start_step=step, workers=args.workers)
    eligible = {name: eligible_rows(pool["labels"], name) for name in trained} if pool else {}
    if any(len(rows) == 0 for rows in eligible.values()):
        raise SystemExit(f"the pool of {len(pool['labels'])} clips holds no labelled clip for the class-conditional "
                         f"tasks: give a larger --pool")

    def save(step: int) -> None:
        save_state(args.out / "state.pt", {"transformer": transformer.state_dict(), "optimizer": optimizer.state_dict(),
                                           "step": step, "args": plain(vars(args))})
        save_weights(args.out / "model.safetensors", config, {"vq": vq, "transformer": transformer},
                     metadata={"step": str(step), "data": args.data, "tokenizer": args.tokenizer.name,
                               "task_weights": ",".join(f"{n}={w:g}" for n, w in zip(trained, weights)),
                               "fp_cond_frames": ",".join(map(str, fp_cond_frames)),
                               "class_names": json.dumps(list(labelled.class_names) if labelled else [])})

    def evaluate() -> dict[str, float]:
        """Validation token loss per condition variant at the same fixed masking every time;
        `val_loss` averages the model's tasks' variants (comparable with and without the
        mask task), `val_inpainting` the mask task's region kinds."""
        transformer.eval()
        out, official, region_kinds = {}, [], []
        with torch.no_grad():
            for key, (name, _) in variants.items():
                rows = eligible_rows(val["labels"], name)
                randomness = step_randomness(args.seed + 1, 0, len(rows), config)
                batch = pool_batch(val, masks, key, name, rows, config, device, ratio=randomness["ratio"],
                                   mask_score=randomness["mask_score"], drop=randomness["drop"])
                out[f"val_{key}"] = commit_loss(transformer, batch, config)[1]["loss"]
                (region_kinds if name == tasks.MASK_TASK.name else official).append(out[f"val_{key}"])
        out["val_loss"] = float(np.mean(official))
        if region_kinds:
            out["val_inpainting"] = float(np.mean(region_kinds))
        return out

    def micro_batch(key: str, randomness: dict, step: int, micro: int) -> dict[str, torch.Tensor]:
        """This rank's rows of micro-batch `micro` of the step, as COMMIT inputs."""
        task, overrides = variants[key]
        first = (micro * dist.world + dist.rank) * per_rank
        rows = slice(first, first + per_rank)
        mine = {"ratio": randomness["ratio"], "mask_score": randomness["mask_score"][rows], "drop": randomness["drop"][rows]}
        if pool is not None:
            index = eligible[task][(randomness["picks"][rows] * len(eligible[task])).astype(np.int64)]
            return pool_batch(pool, masks, key, task, index, config, device, **mine)
        clips, labels, _ = next(stream)  # data items step x global batch + rows (models/data.IndexSampler)
        items = range(step * global_batch + first, step * global_batch + first + per_rank)
        inputs, cond, latent_mask = tokenize_task(vq, to_tensor(clips, device), task, config,
                                                  **variant_overrides(overrides, items, args.seed, config))
        return mask_tokens(inputs, cond, latent_mask, task, config, np.random.default_rng(0),
                           labels=labels.numpy(), device=device, **mine)

    def train_step(step: int) -> dict:
        task = schedule[step % len(schedule)]
        randomness = step_randomness(args.seed, step, global_batch, config)
        keys = [key for key, (name, _) in variants.items() if name == task]
        key = keys[int(randomness["variant"] * len(keys))]  # the step's condition variant
        micro = [micro_batch(key, randomness, step, m) for m in range(args.grad_accum)]
        lr = warmup_cosine(step - args.restart_at, args.lr, args.warmup, args.steps - args.restart_at)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            metrics = optimizer_step(model, optimizer, micro, config, lr)
        return {"task": key, "lr": lr, **distributed.mean_over_ranks(metrics, dist.world, device)}

    train_loop(step=step, total=args.steps, train_step=train_step, evaluate=evaluate, save=save, out=args.out,
               shown=("lr", "loss", "val_loss"), log_every=args.log_every, eval_every=args.eval_every,
               save_every=args.save_every, time_limit=args.time_limit, dist=dist, global_batch=global_batch,
               tensorboard=args.tensorboard, baseline=state is None and args.init is not None)
    distributed.cleanup()


def load_pool(path: Path, config) -> dict[str, np.ndarray]:
    """A token pool this script wrote, checked against the model: a pool of another tokenizer
    (or an edited one) would train on ids the model has no rows for, or on wrong labels."""
    try:
        with np.load(path) as held:
            pool = dict(held)
    except Exception as error:  # zip, format and pickle errors have no common base class
        raise SystemExit(f"{path}: not a token pool this script wrote ({type(error).__name__}); "
                         f"move it away to tokenize the pool again") from None
    labels = pool.get("labels")
    shape = config.vq.latent_shape
    problem = None
    if "inputs" not in pool or labels is None or labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        problem = "it has no 'inputs' tokens or no 'labels'"
    elif not ((-1 <= labels) & (labels < config.num_classes)).all():
        problem = f"labels outside [-1, {config.num_classes - 1}]"
    for key, ids in pool.items():
        if problem or key == "labels":
            continue
        if key.endswith(row_mask_key("")):  # a random-region variant's latent masks
            if ids.shape != (len(labels), *shape) or ids.dtype != np.bool_:
                problem = f"'{key}' is not {len(labels)} boolean token grids of {list(shape)}"
            continue
        if ids.shape != (len(labels), *shape) or not np.issubdtype(ids.dtype, np.integer):
            problem = f"'{key}' is not {len(labels)} integer token grids of {list(shape)}"
        elif ids.size and not 0 <= ids.min() <= ids.max() < config.vq.codebook_size:
            problem = f"'{key}' holds token ids outside the codebook [0, {config.vq.codebook_size})"
    if problem:
        raise SystemExit(f"{path}: {problem} (another tokenizer's pool?); move it away to tokenize the pool again")
    return pool


def eligible_rows(labels: np.ndarray, task: str) -> np.ndarray:
    """Pool rows a task may train or validate on: labelled ones for class-conditional tasks."""
    return np.flatnonzero(labels >= 0) if tasks.get_task(task).class_conditional else np.arange(len(labels))


def _with_labelled(val_source: Source) -> Source:
    """Validation data for every task: a mixture's validation items alternate between the
    whole mixture and its labelled member, so class-conditional tasks have clips too."""
    labelled = labelled_part(val_source)
    if not isinstance(val_source, Mixture) or labelled is None:
        return val_source
    return Mixture([val_source, labelled], [1.0, 1.0], val_source.seed)


if __name__ == "__main__":
    run_script(main)
