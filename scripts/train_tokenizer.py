"""Train the 3D-VQ tokenizer: `python scripts/train_tokenizer.py --preset tiny --out runs/tokenizer`.

Official recipe (docs/official-behaviour.md#tokenizer-training):
L2 reconstruction + 0.1 non-saturating GAN + quantizer losses
(commitment 0.25, codebook 1, entropy 0.1), R1 10 on real videos, AdamW(β1 0, β2 0.99),
EMA 0.999 of the generator (the EMA weights are what gets saved and used), warmup + cosine.
Adapted to 2 CPU cores (each is an option; `--official` restores the official values):
  --gan-start N   the GAN terms start after N steps (official: from step 1)
  --r1-every K    lazy R1, applied every K-th step with cost x K (official: every step)
  --lr            default 4e-4 for the short CPU schedule (official 1e-4)
  --bf16          bf16 autocast (official: fp32)
  --hard-pixel-weight W   adds W x the L2 of each video's worst pixels (official: no such term)
Fine-tuning: `--init model.safetensors --decoder-only` starts from a trained tokenizer (or the
`vq` of a model checkpoint, e.g. the shipped default model) and trains only the decoder: the
encoder and codebook are frozen, so every clip keeps its tokens and a transformer trained on
them stays valid while reconstructions improve.
No perceptual loss: its ResNet-50 weights cannot be downloaded here (the official default
path is None too). Resumes from `OUT/state.pt`; writes `OUT/tokenizer.safetensors` (EMA
weights), `OUT/metrics.jsonl`; progress to stderr. Uses CUDA when present.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from magvit_onnx.metrics import psnr
from magvit_onnx.models.checkpoint import load_weights, save_weights
from magvit_onnx.models.config import PRESETS, get_config
from magvit_onnx.models.data import clip_source, to_tensor
from magvit_onnx.models.discriminator import StyleGANDiscriminator
from magvit_onnx.models.inflation import inflate_2d_to_3d
from magvit_onnx.models.losses import EMA, TokenizerLoss, tokenizer_train_step, vq_optimizers
from magvit_onnx.models.token_loss import warmup_cosine
from magvit_onnx.models.training import load_state, pick_device, save_state, train_loop
from magvit_onnx.models.vqvae import VQVAE


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--data", default="synthetic", help="'synthetic' or a folder of videos")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=20000, help="total steps (the cosine schedule's length)")
    p.add_argument("--batch-size", type=int, default=4)
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
    start.add_argument("--init-2d", type=Path, default=None, help="2D tokenizer weights (safetensors) to inflate from")
    start.add_argument("--init", type=Path, default=None,
                       help="3D tokenizer or model checkpoint (safetensors) whose 'vq' weights to start from")
    p.add_argument("--decoder-only", action="store_true",
                   help="train the decoder only (encoder and codebook frozen: tokens do not change); needs --init")
    p.add_argument("--time-limit", type=float, default=None, help="stop (and save) after this many minutes")
    p.add_argument("--device", default="auto")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (fp32 weights, fp32 quantizer); ~1.5x faster on CPUs with AVX512-BF16")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--save-every", type=int, default=200)
    args = p.parse_args(argv)
    if args.decoder_only and args.init is None:
        p.error("--decoder-only fine-tunes a trained tokenizer: give its weights with --init")
    if args.official:
        args.lr, args.gan_start, args.r1_every = 1e-4, 0, 1
    return args


def evaluate(vq: VQVAE, clips: torch.Tensor) -> float:
    """Mean PSNR (dB) of tokenize -> detokenize on fixed validation clips."""
    with torch.no_grad():
        recon = vq.detokenize(vq.tokenize(clips)).clamp(0, 1)
    return float(np.mean(psnr(clips.cpu().numpy(), recon.cpu().numpy())))


def main(argv=None):
    args = parse_args(argv)
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    config = get_config(args.preset)
    args.out.mkdir(parents=True, exist_ok=True)
    source = clip_source(args.data, config.vq.video_shape)
    val_source = clip_source(args.data, config.vq.video_shape, split="val") if args.data == "synthetic" else source
    val_clips = to_tensor(val_source.sample(8, np.random.default_rng(12345))[0], device)

    vq = VQVAE(config.vq).to(device)
    if args.init_2d is not None:
        from safetensors.torch import load_file
        inflate_2d_to_3d({k.removeprefix("vq."): v for k, v in load_file(str(args.init_2d)).items()}, vq)
    if args.init is not None:
        load_weights(args.init, {"vq": vq})
    if args.decoder_only:  # frozen parts build no autograd graph and get no optimiser state
        vq.encoder.requires_grad_(False)
        vq.quantizer.requires_grad_(False)
    discriminator = StyleGANDiscriminator(config.discriminator, config.vq.video_shape).to(device)
    loss_fn = TokenizerLoss(discriminator, hard_pixel_weight=args.hard_pixel_weight,
                            hard_pixel_fraction=args.hard_pixel_fraction).to(device)
    g_opt, d_opt = vq_optimizers(vq, discriminator, lr=args.lr)
    ema = EMA(vq, args.ema_decay)
    rng = np.random.default_rng(args.seed)
    step = 0
    state = load_state(args.out / "state.pt", device)
    if state is not None:
        vq.load_state_dict(state["vq"]); discriminator.load_state_dict(state["discriminator"])
        ema.model.load_state_dict(state["ema"]); loss_fn.lecam.load_state_dict(state["lecam"])
        g_opt.load_state_dict(state["g_opt"]); d_opt.load_state_dict(state["d_opt"])
        rng.bit_generator.state = state["rng"]; torch.set_rng_state(state["torch_rng"])
        step = state["step"]
        print(f"resumed from {args.out / 'state.pt'} at step {step}", flush=True)

    def save(step: int) -> None:
        save_state(args.out / "state.pt", {
            "vq": vq.state_dict(), "discriminator": discriminator.state_dict(), "ema": ema.model.state_dict(),
            "lecam": loss_fn.lecam.state_dict(), "g_opt": g_opt.state_dict(), "d_opt": d_opt.state_dict(),
            "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "step": step, "args": vars(args)})
        save_weights(args.out / "tokenizer.safetensors", config, {"vq": ema.model},
                     metadata={"step": str(step), "data": args.data})

    def train_step(step: int) -> dict:
        lr = warmup_cosine(step, args.lr, args.warmup, args.steps)
        for opt in (g_opt, d_opt):
            for group in opt.param_groups:
                group["lr"] = lr
        clips = to_tensor(source.sample(args.batch_size, rng)[0], device)
        vq.train()
        r1_scale = float(args.r1_every) if step % args.r1_every == 0 else 0.0
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            logs = tokenizer_train_step(vq, loss_fn, g_opt, d_opt, clips, ema,
                                        adversarial=step >= args.gan_start, r1_scale=r1_scale)
        return {"lr": lr, **logs}

    train_loop(step=step, total=args.steps, train_step=train_step,
               evaluate=lambda: {"val_psnr": evaluate(ema.model, val_clips),
                                 "val_psnr_raw": evaluate(vq.eval(), val_clips)},  # the EMA lags early on
               save=save, out=args.out,
               shown=("g_loss", "reconstruction_loss", "hard_pixel_loss", "d_loss", "val_psnr", "val_psnr_raw"), log_every=args.log_every,
               eval_every=args.eval_every, save_every=args.save_every, time_limit=args.time_limit)

if __name__ == "__main__":
    main()
