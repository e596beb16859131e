"""Train the multi-task COMMIT transformer on a trained tokenizer:

    python scripts/train_transformer.py --tokenizer runs/tokenizer/tokenizer.safetensors --out runs/transformer

Official recipe (docs/official-behaviour.md#commit-training):
every step trains one task of a fixed shuffled schedule
(each of the ten tasks equally often, or as `--task-weights` says), COMMIT masking with
a cosine mask ratio per step, label-smoothed token loss on every latent position
('mask+refine+recons'), AdamW(0.9, 0.96, wd 0.045 on kernels only), global-norm clip 1.0,
warmup + cosine. Ours: condition
dropout for classifier-free guidance (the preset's `cond_dropout`), and, for speed on
CPU, a pool of training clips tokenized once (inputs and every task's condition video)
into `OUT/tokens.npz` instead of tokenizing every step. Resumes from `OUT/state.pt`;
writes `OUT/model.safetensors` (tokenizer + transformer, ready for export/export_all.py)
and `OUT/metrics.jsonl`; progress to stderr. Uses CUDA when present.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from magvit_onnx.models.checkpoint import load_weights, read_config, save_weights
from magvit_onnx.models.commit_training import commit_loss, mask_tokens, optimizer_step, task_schedule
from magvit_onnx.models.data import clip_source
from magvit_onnx.models.token_loss import transformer_optimizer, warmup_cosine
from magvit_onnx.models.training import Progress, load_state, pick_device, save_state, train_loop
from magvit_onnx.models.transformer import Transformer
from magvit_onnx.models.vqvae import VQVAE
from magvit_onnx.runtime import tasks


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
    p.add_argument("--data", default="synthetic", help="'synthetic' or a folder of videos (class = sub-folder)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--pool", type=int, default=4096,
                   help="training clips tokenized once (synthetic data); a larger value on resume grows the pool")
    p.add_argument("--val-pool", type=int, default=64, help="validation clips tokenized once")
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--restart-at", type=int, default=0,
                   help="warm restart: the warmup + cosine schedule begins again at this step and ends at --steps "
                        "(to go on training a finished model at a fresh learning rate)")
    p.add_argument("--cond-dropout", type=float, default=None, help="default: the preset's")
    p.add_argument("--task-weights", type=parse_task_weights, default={},
                   help="per-task schedule weights, e.g. 'CG=3,CFP=1.5' (official per-task `weight`; default 1 each)")
    p.add_argument("--time-limit", type=float, default=None, help="stop (and save) after this many minutes")
    p.add_argument("--device", default="auto")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for the transformer (fp32 weights); ~2x faster on CPUs with AVX512-BF16")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--save-every", type=int, default=250)
    return p.parse_args(argv)


def tokenize_pool(vq: VQVAE, clips: np.ndarray, config, device, chunk: int = 16) -> dict[str, np.ndarray]:
    """Tokens of every clip (`inputs`) and of its condition video for each conditional task
    (one key per task): `[N, t, h, w]` int16. Each video is tokenized once, in fp32."""
    video_tasks = [name for name in config.tasks if tasks.get_task(name).needs_video]
    out: dict[str, list[np.ndarray]] = {key: [] for key in ["inputs", *video_tasks]}
    progress = Progress(len(clips))
    with torch.no_grad():
        for start in range(0, len(clips), chunk):
            video = clips[start:start + chunk].astype(np.float32) / 255.0
            batch = [video] + [tasks.condition(name, video, config.vq.latent_shape)["video"] for name in video_tasks]
            ids = vq.tokenize(torch.from_numpy(np.concatenate(batch)).to(device)).cpu().numpy().astype(np.int16)
            for key, part in zip(out, np.split(ids, len(batch))):
                out[key].append(part)
            done = min(start + chunk, len(clips))
            progress.report(done, {"tokenized": done})
    return {k: np.concatenate(v) for k, v in out.items()}


def token_pool(path: Path, vq, source, count: int, config, device, seed: int) -> dict[str, np.ndarray]:
    """Load `path`, or tokenize `count` clips of `source` into it. When `path` holds fewer
    than `count` clips, the missing ones are drawn (a generator seeded by `seed` and the
    count held), tokenized and appended: a resumed run can grow its pool."""
    pool = dict(np.load(path)) if path.is_file() else {}
    held = len(pool["labels"]) if pool else 0
    if pool and held >= count:
        return pool
    if held:
        print(f"growing {path} from {held} to {count} clips", flush=True)
    clips, labels = source.sample(count - held, np.random.default_rng([seed, held] if held else seed))
    new = tokenize_pool(vq, clips, config, device)
    new["labels"] = labels
    pool = {key: np.concatenate([pool[key], part]) for key, part in new.items()} if pool else new
    np.savez(path, **pool)
    return pool


def latent_masks(config) -> dict[str, np.ndarray]:
    """Each task's latent condition mask (it depends on the task and the shapes only)."""
    probe = np.zeros((1, *config.vq.video_shape, 3), np.float32)
    return {name: tasks.condition(name, probe, config.vq.latent_shape)["latent_mask"] for name in config.tasks}


def batch_for(pool, masks, task, index, config, rng, device):
    inputs = pool["inputs"][index].astype(np.int64)
    cond = pool[task][index].astype(np.int64) if task in pool else np.zeros_like(inputs)
    mask = np.broadcast_to(masks[task], (len(index), *masks[task].shape[1:]))
    labels = pool["labels"][index] if tasks.get_task(task).class_conditional else None
    return mask_tokens(inputs, cond, mask, task, config, rng, labels=labels, device=device)


def main(argv=None):
    args = parse_args(argv)
    if not 0 <= args.restart_at < args.steps:
        raise SystemExit(f"--restart-at {args.restart_at} must be in [0, --steps {args.steps})")
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    config = read_config(args.tokenizer)
    source = clip_source(args.data, config.vq.video_shape)
    config = dataclasses.replace(config, num_classes=source.num_classes)
    if args.cond_dropout is not None:
        config = dataclasses.replace(config, training=dataclasses.replace(config.training, cond_dropout=args.cond_dropout))
    unknown = set(args.task_weights) - set(config.tasks)
    if unknown:
        raise SystemExit(f"--task-weights names tasks this model does not train: {sorted(unknown)}; "
                         f"it trains {', '.join(config.tasks)}")
    args.out.mkdir(parents=True, exist_ok=True)
    state = load_state(args.out / "state.pt", device)  # checked before any tokenizing
    resumes_at = state["step"] if state is not None else 0
    if args.restart_at > resumes_at:
        raise SystemExit(f"--restart-at {args.restart_at} is past the step training resumes at ({resumes_at}); "
                         f"a restart begins at or before it")

    vq = VQVAE(config.vq)
    load_weights(args.tokenizer, {"vq": vq})
    vq = vq.to(device).eval()
    pool = token_pool(args.out / "tokens.npz", vq, source, args.pool, config, device, args.seed)
    val_source = clip_source(args.data, config.vq.video_shape, split="val") if args.data == "synthetic" else source
    val = token_pool(args.out / "val_tokens.npz", vq, val_source, args.val_pool, config, device, args.seed + 1)
    masks = latent_masks(config)

    transformer = Transformer(config).to(device)
    optimizer = transformer_optimizer(transformer, lr=args.lr)
    rng = np.random.default_rng(args.seed)
    weights = [args.task_weights.get(name, 1.0) for name in config.tasks]
    schedule = task_schedule(list(config.tasks), weights, rng=np.random.default_rng(args.seed))
    step = resumes_at
    if state is not None:
        transformer.load_state_dict(state["transformer"]); optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]; torch.set_rng_state(state["torch_rng"])
        print(f"resumed from {args.out / 'state.pt'} at step {step}", flush=True)

    def save(step: int) -> None:
        save_state(args.out / "state.pt", {"transformer": transformer.state_dict(), "optimizer": optimizer.state_dict(),
                                           "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                                           "step": step, "args": {k: str(v) for k, v in vars(args).items()}})
        save_weights(args.out / "model.safetensors", config, {"vq": vq, "transformer": transformer},
                     metadata={"step": str(step), "data": args.data, "tokenizer": args.tokenizer.name,
                               "task_weights": ",".join(f"{n}={w:g}" for n, w in zip(config.tasks, weights))})

    def evaluate() -> dict[str, float]:
        """Validation token loss per task at the same fixed masking every time."""
        transformer.eval()
        out = {}
        with torch.no_grad():
            for name in config.tasks:
                batch = batch_for(val, masks, name, np.arange(len(val["inputs"])), config,
                                  np.random.default_rng(0), device)
                out[f"val_{name}"] = commit_loss(transformer, batch, config)[1]["loss"]
        out["val_loss"] = float(np.mean(list(out.values())))
        return out

    def train_step(step: int) -> dict:
        task = schedule[step % len(schedule)]
        batch = batch_for(pool, masks, task, rng.integers(0, len(pool["inputs"]), args.batch_size), config, rng, device)
        lr = warmup_cosine(step - args.restart_at, args.lr, args.warmup, args.steps - args.restart_at)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            return {"task": task, "lr": lr, **optimizer_step(transformer, optimizer, batch, config, lr)}

    train_loop(step=step, total=args.steps, train_step=train_step, evaluate=evaluate, save=save, out=args.out,
               shown=("loss", "val_loss"), log_every=args.log_every, eval_every=args.eval_every,
               save_every=args.save_every, time_limit=args.time_limit)

if __name__ == "__main__":
    main()
