"""Train the VQ tokenizer: `python scripts/train_tokenizer.py --preset tiny --out runs/tokenizer`.

The official recipe (docs/official-behaviour.md#tokenizer-training): pretrain a 2D (per-frame)
tokenizer on images (`--dims 2`), inflate it centrally into the 3D tokenizer (`--init-2d`),
then train on clips. Losses: L2 reconstruction + 0.1 non-saturating GAN + quantizer losses
(commitment 0.25, codebook 1, entropy 0.1), R1 10 on real videos, AdamW(β1 0, β2 0.99), EMA
0.999 of the generator (the EMA weights are what gets saved and used), warmup + cosine.
Adapted to small budgets (each is an option; `--official` restores the official values):
  --gan-start N   the GAN terms start after N steps (official: from step 1)
  --r1-every K    lazy R1, applied every K-th step with cost x K (official: every step)
  --lr            default 4e-4 for short schedules (official 1e-4)
  --bf16          bf16 autocast (default on CUDA; official: fp32)
  --hard-pixel-weight W   adds W x the L2 of each video's worst pixels (official: no such term)
  --reseed-every N        re-seeds dead codes every N steps (models/codebook.py; official: never)
Fine-tuning: `--init model.safetensors --decoder-only` starts from a trained tokenizer (or the
`vq` of a model checkpoint) and trains only the decoder: encoder and codebook stay frozen, so
every clip keeps its tokens and a transformer trained on them stays valid.

Data (`--data`, see models/data.py): 'synthetic', 'dead_leaves', 'photos', a folder or
manifest of videos, 'images=DIR', or a weighted mix such as 'synthetic:1,dead_leaves:2,photos:2'.
With `--dims 2` every sample is a still (one frame). Decoding runs in `--workers` processes.

Several devices: `torchrun --nproc_per_node N scripts/train_tokenizer.py ...` (and multi-node
torchrun / Slurm, docs/training.md). The global batch is --batch-size x processes x
--grad-accum; gradients are averaged over processes before each step; rank 0 logs and saves.
Resumes from `OUT/state.pt` (also with another number of processes); writes
`OUT/tokenizer.safetensors` (EMA weights) and `OUT/metrics.jsonl`; progress to stderr.
"""
from __future__ import annotations

import argparse
import functools
from pathlib import Path

import numpy as np
import torch

from magvit_onnx.metrics import psnr
from magvit_onnx.models import distributed
from magvit_onnx.models.checkpoint import load_weights, save_weights
from magvit_onnx.models.codebook import CodeUsage
from magvit_onnx.models.config import PRESETS, get_config
from magvit_onnx.models.data import batches, parse_data, to_tensor
from magvit_onnx.models.discriminator import StyleGANDiscriminator
from magvit_onnx.models.inflation import inflate_2d_to_3d
from magvit_onnx.models.losses import EMA, TokenizerLoss, tokenizer_train_step, vq_optimizers
from magvit_onnx.models.token_loss import warmup_cosine
from magvit_onnx.models.training import (add_run_arguments, load_state, plain, restore, run_script, save_state,
                                          start_run, train_loop)
from magvit_onnx.models.vqvae import VQVAE

VAL_CLIPS = 8


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--dims", type=int, default=3, choices=(2, 3),
                   help="3: the video tokenizer; 2: the per-frame image tokenizer that --init-2d inflates")
    p.add_argument("--data", default="synthetic", help="data spec (see the docstring)")
    p.add_argument("--stride", type=int, default=1, help="frame stride of windows read from video files")
    p.add_argument("--fps", type=float, default=None, help="resample video files to this frame rate instead")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=20000, help="total steps (the cosine schedule's length)")
    p.add_argument("--batch-size", type=int, default=4, help="per process and micro-batch")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per step")
    p.add_argument("--workers", type=int, default=0, help="data loader processes per training process")
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--gan-start", type=int, default=2000)
    p.add_argument("--r1-every", type=int, default=4)
    p.add_argument("--official", action="store_true", help="official lr 1e-4, GAN from step 1, R1 every step")
    p.add_argument("--hard-pixel-weight", type=float, default=0.0,
                   help="weight of the worst-pixels L2 term (ours; 0 = official objective)")
    p.add_argument("--hard-pixel-fraction", type=float, default=0.05, help="share of each video's pixels it covers")
    p.add_argument("--ema-decay", type=float, default=0.999, help="EMA of the generator (official 0.999; a "
                   "short run wants a shorter horizon)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--init-2d", type=Path, default=None,
                       help="2D tokenizer (train_tokenizer.py --dims 2) to inflate from: tokenizer and discriminator")
    start.add_argument("--init", type=Path, default=None,
                       help="3D tokenizer or model checkpoint (safetensors) whose 'vq' weights to start from")
    p.add_argument("--decoder-only", action="store_true",
                   help="train the decoder only (encoder and codebook frozen: tokens do not change); needs --init")
    p.add_argument("--reseed-every", type=int, default=0,
                   help="every N steps give dead codes the values of recent encoder outputs (ours; 0 = official: never)")
    add_run_arguments(p, what="the tokenizer and discriminator", every=200)
    args = p.parse_args(argv)
    if args.decoder_only and args.init is None:
        p.error("--decoder-only fine-tunes a trained tokenizer: give its weights with --init")
    if args.dims == 2 and (args.init_2d or args.init or args.decoder_only):
        p.error("--dims 2 trains the image tokenizer from scratch: --init-2d / --init / --decoder-only are for --dims 3")
    for name in ("steps", "batch_size", "grad_accum", "r1_every"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.official:
        args.lr, args.gan_start, args.r1_every = 1e-4, 0, 1
    return args


def evaluate(vq: VQVAE, clips: torch.Tensor) -> float:
    """Mean PSNR (dB) of tokenize -> detokenize on fixed validation clips."""
    with torch.no_grad():
        recon = vq.detokenize(vq.tokenize(clips)).clamp(0, 1)
    return float(np.mean(psnr(clips.cpu().numpy(), recon.cpu().numpy())))


def code_usage(vq: VQVAE, clips: torch.Tensor) -> float:
    """Share of the codebook used by the validation clips' tokens (a dying codebook shows here)."""
    with torch.no_grad():
        ids = vq.tokenize(clips)
    return ids.unique().numel() / vq.config.codebook_size


def main(argv=None):
    args = parse_args(argv)
    dist, bf16 = start_run(args)
    device = dist.device
    config = get_config(args.preset)
    frames, height, width = config.vq.video_shape
    shape = (1, height, width) if args.dims == 2 else config.vq.video_shape
    if dist.main:
        args.out.mkdir(parents=True, exist_ok=True)
    source = parse_data(args.data, shape, "train", args.seed, args.stride, args.fps)
    val_clips = to_tensor(parse_data(args.data, shape, "val", args.seed, args.stride, args.fps).take(VAL_CLIPS)[0], device)

    vq = VQVAE(config.vq, dims=args.dims).to(device)
    discriminator = StyleGANDiscriminator(config.discriminator, shape, dims=args.dims).to(device)
    if args.init_2d is not None:
        from safetensors.torch import load_file

        weights = load_file(str(args.init_2d))
        inflate_2d_to_3d({k.removeprefix("vq."): v for k, v in weights.items() if k.startswith("vq.")}, vq)
        if any(k.startswith("discriminator.") for k in weights):
            inflate_2d_to_3d({k.removeprefix("discriminator."): v for k, v in weights.items()
                              if k.startswith("discriminator.")}, discriminator)
    if args.init is not None:
        load_weights(args.init, {"vq": vq})
    if args.decoder_only:  # frozen parts build no autograd graph and get no optimiser state
        vq.encoder.requires_grad_(False)
        vq.quantizer.requires_grad_(False)
    loss_fn = TokenizerLoss(discriminator, hard_pixel_weight=args.hard_pixel_weight,
                            hard_pixel_fraction=args.hard_pixel_fraction).to(device)
    g_opt, d_opt = vq_optimizers(vq, discriminator, lr=args.lr)
    ema = EMA(vq, args.ema_decay)
    usage = CodeUsage(config.vq.codebook_size)
    step = 0
    parts = {"vq": vq, "discriminator": discriminator, "ema": ema.model, "lecam": loss_fn.lecam, "g_opt": g_opt,
             "d_opt": d_opt}
    state = load_state(args.out / "state.pt", device, tuple(parts))
    if state is not None:
        restore(args.out / "state.pt", state, parts)
        step = state["step"]
        usage.usage = state.get("code_usage", usage.usage)
        if dist.main:
            print(f"resumed from {args.out / 'state.pt'} at step {step}", flush=True)
    model = torch.compile(vq) if args.compile else vq
    if args.compile:
        loss_fn.discriminator = torch.compile(discriminator)
    data = batches(source, args.batch_size, rank=dist.rank, world=dist.world, accumulation=args.grad_accum,
                   start_step=step, workers=args.workers)
    sync = functools.partial(distributed.average_gradients, world=dist.world)

    def save(step: int) -> None:
        save_state(args.out / "state.pt", {
            "vq": vq.state_dict(), "discriminator": discriminator.state_dict(), "ema": ema.model.state_dict(),
            "lecam": loss_fn.lecam.state_dict(), "g_opt": g_opt.state_dict(), "d_opt": d_opt.state_dict(),
            "code_usage": usage.usage, "step": step, "args": plain(vars(args))})
        save_weights(args.out / "tokenizer.safetensors", config, {"vq": ema.model, "discriminator": discriminator},
                     metadata={"step": str(step), "data": args.data, "dims": str(args.dims)})

    def train_step(step: int) -> dict:
        lr = warmup_cosine(step, args.lr, args.warmup, args.steps)
        for opt in (g_opt, d_opt):
            for group in opt.param_groups:
                group["lr"] = lr
        micro = [next(data) for _ in range(args.grad_accum)]
        vq.train()
        r1_scale = float(args.r1_every) if step % args.r1_every == 0 else 0.0
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            videos = [to_tensor(m.clip, device) for m in micro]
            logs = tokenizer_train_step(model, loss_fn, g_opt, d_opt, videos, ema, adversarial=step >= args.gan_start,
                                        r1_scale=r1_scale, sync=sync, observe=usage.observe)
        logs = distributed.mean_over_ranks(logs, dist.world, device)
        if args.reseed_every and (step + 1) % args.reseed_every == 0 and not args.decoder_only:
            logs["reseeded_codes"] = usage.reseed(vq, ema.model, videos[0], dist.world)
        return {"lr": lr, **logs, "skipped_files": sum(m.skipped for m in micro)}

    train_loop(step=step, total=args.steps, train_step=train_step,
               evaluate=lambda: {"val_psnr": evaluate(ema.model, val_clips),
                                 "val_psnr_raw": evaluate(vq.eval(), val_clips),  # the EMA lags early on
                                 "code_usage": code_usage(ema.model, val_clips)},
               save=save, out=args.out, dist=dist, global_batch=args.batch_size * dist.world * args.grad_accum,
               shown=("lr", "g_loss", "reconstruction_loss", "hard_pixel_loss", "d_loss", "val_psnr", "val_psnr_raw",
                      "code_usage", "reseeded_codes"),
               log_every=args.log_every, eval_every=args.eval_every, save_every=args.save_every,
               time_limit=args.time_limit, tensorboard=args.tensorboard,
               baseline=state is None and (args.init or args.init_2d) is not None)
    distributed.cleanup()


if __name__ == "__main__":
    run_script(main)
