"""Why a tokenizer fails on elementary content: one measurement per candidate cause.

    python scripts/diagnose_tokenizer.py --weights magvit_onnx/default_model/weights.safetensors \
        --json docs/logs/tokenizer_diagnosis.json

On flat clips of the test card's colours (magvit_onnx/patterns.py):
  group_norm      the first ResBlock's GroupNorm output at the clip's centre, normalised (before
                  its affine): a flat clip's activations are constant over space, so GroupNorm
                  keeps only the pattern of each group's channels, not their level. Reported: the
                  largest difference between white and mid grey (0 = GroupNorm cannot tell them
                  apart; the colour then reaches later layers only through the residual path).
  quantizer       PSNR through the continuous latent (no codebook) beside PSNR through the codes:
                  if both are low, the quantizer is not the cause.
  codes           distinct codes per flat clip, and the codes two colours share: if colours share
                  few codes, the codes carry the colour and the decoder is what loses it.
  decoder_oracle  PSNR of the decoder from a free latent optimised for the clip (`--oracle-steps`
                  Adam steps from the encoder's latent), and from that latent's nearest codes:
                  whether the decoder can render the clip at all.
On `--noise-clips` clips of the training mix (`--data`, its 'val' split):
  batch           the gradient noise scale B_simple = tr(Sigma) / |G|^2 of the L2 reconstruction
                  loss (McCandlish et al. 2018, "An Empirical Model of Large-Batch Training",
                  appendix A), from the Gram matrix of per-clip gradients. A batch
                  B needs (1 + B_simple / B) times the fewest possible steps and (1 + B / B_simple)
                  times the fewest possible clips: whether batch 4 wasted clips, or only steps.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from magvit_onnx import patterns
from magvit_onnx.metrics import emit_report, psnr
from magvit_onnx.models.checkpoint import load_tokenizer
from magvit_onnx.models.data import parse_data, to_tensor
from magvit_onnx.models.losses import reconstruction_loss

FLAT = ("white", "grey50", "black", "red", "green", "blue", "cyan", "magenta", "yellow")
ORACLE = ("flat white", "flat magenta", "colour bars 8 px")


def first_group_norm(vq, clip: torch.Tensor) -> np.ndarray:
    """Normalised output (before the affine) of the encoder's first GroupNorm at the centre."""
    seen = {}
    norm = vq.encoder.levels[0][0].norm1
    handle = norm.register_forward_hook(lambda m, i, o: seen.setdefault("out", o.detach()))
    vq.encode(clip)
    handle.remove()
    t, h, w = (n // 2 for n in clip.shape[1:4])
    return ((seen["out"][0, :, t, h, w] - norm.bias) / norm.weight).detach().numpy()


def oracle(vq, clip: torch.Tensor, steps: int) -> tuple[float, float]:
    """PSNR of decode(free latent) after `steps` Adam steps, and of that latent's nearest codes."""
    z = vq.encode(clip).detach().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.1)
    for _ in range(steps):
        loss = (vq.decode(z) - clip).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        free = vq.decode(z).clamp(0, 1).numpy()
        coded = vq.detokenize(vq.quantizer.distances(z).argmin(-1)).clamp(0, 1).numpy()
    return float(psnr(clip.numpy(), free)[0]), float(psnr(clip.numpy(), coded)[0])


def gradient_noise_scale(vq, clips: torch.Tensor) -> dict[str, float]:
    """B_simple of the L2 reconstruction loss from per-clip gradients g_i (clips [N, T, H, W, 3]).

    For i != j, E[g_i . g_j] = |G|^2 and E[g_i . g_i] = |G|^2 + tr(Sigma): the mean off-diagonal
    entry of the clips' gradient Gram matrix estimates |G|^2 without bias, the mean diagonal
    entry minus it tr(Sigma). The jackknife over clips gives |G|^2 a standard error, and
    B_simple an interval: tr(Sigma) over |G|^2 +- 2 standard errors (no upper bound while
    |G|^2 - 2 standard errors <= 0: null).
    """
    params = [*vq.encoder.parameters(), *vq.decoder.parameters()]  # the codebook gets no L2 gradient
    for p in params:
        p.requires_grad_(True)
    grads = []
    for clip in clips:
        reconstruction, _, _ = vq(clip[None])
        grads.append(torch.cat([g.flatten() for g in torch.autograd.grad(
            reconstruction_loss(clip[None], reconstruction), params)]).double())
    for p in params:
        p.requires_grad_(False)
    grads = torch.stack(grads)
    gram = grads @ grads.T  # (N, N)
    n = len(clips)
    diagonal, off = gram.diagonal(), gram.sum() - gram.diagonal().sum()
    signal = float(off) / (n * (n - 1))
    noise = float(diagonal.mean()) - signal
    # Leave clip k out: drop its row and column from the off-diagonal sum.
    loo = (off - 2 * (gram.sum(1) - diagonal)) / ((n - 1) * (n - 2))
    stderr = float(((n - 1) / n * (loo - loo.mean()).pow(2).sum()).sqrt())
    def ratio(g: float) -> float | None:
        return noise / g if g > 0 else None
    return {"clips": n, "gradient_norm_squared": signal, "gradient_norm_squared_stderr": stderr,
            "trace_covariance": noise, "b_simple": ratio(signal),
            "b_simple_interval": [ratio(signal + 2 * stderr), ratio(signal - 2 * stderr)]}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, required=True, help="tokenizer or model safetensors")
    p.add_argument("--oracle-steps", type=int, default=60, help="Adam steps of the decoder oracle (0: skip it)")
    p.add_argument("--data", default="photos:2,dead_leaves:2,synthetic:1,graphics:1",
                   help="training mix for the batch measurement (default: the shipped decoder's)")
    p.add_argument("--noise-clips", type=int, default=32, help="clips for the gradient noise scale (0: skip it)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    vq = load_tokenizer(args.weights).requires_grad_(False)
    shape = vq.config.video_shape
    card = patterns.card(shape[0], shape[1:])
    clips = {name: torch.from_numpy(card[f"flat {name}"][None].astype(np.float32) / 255) for name in FLAT}
    report: dict = {"weights": str(args.weights)}

    gn = {name: first_group_norm(vq, clip) for name, clip in clips.items()}
    report["group_norm"] = {"white_vs_grey50_max_difference": float(np.abs(gn["white"] - gn["grey50"]).max()),
                            "black_max_abs": float(np.abs(gn["black"]).max()),
                            "white_normalised": [round(float(v), 3) for v in gn["white"]]}
    with torch.no_grad():
        rows, codes = {}, {}
        for name, clip in clips.items():
            z = vq.encode(clip)
            ids = vq.quantizer.distances(z).argmin(-1)
            codes[name] = set(ids.flatten().tolist())
            rows[name] = {"psnr_continuous_latent": float(psnr(clip.numpy(), vq.decode(z).clamp(0, 1).numpy())[0]),
                          "psnr_codes": float(psnr(clip.numpy(), vq.detokenize(ids).clamp(0, 1).numpy())[0]),
                          "distinct_codes": len(codes[name])}
    report["quantizer"] = rows
    shared = [len(codes[a] & codes[b]) / min(len(codes[a]), len(codes[b]))
              for i, a in enumerate(FLAT) for b in FLAT[i + 1:]]
    report["codes"] = {"mean_share_of_codes_two_colours_share": float(np.mean(shared)),
                       "largest_share": float(np.max(shared))}
    if args.oracle_steps:
        report["decoder_oracle"] = {}
        for name in ORACLE:
            clip = torch.from_numpy(card[name][None].astype(np.float32) / 255)
            free, coded = oracle(vq, clip, args.oracle_steps)
            report["decoder_oracle"][name] = {"psnr_free_latent": free, "psnr_its_nearest_codes": coded}
            print(f"oracle {name}: {free:.1f} dB free, {coded:.1f} dB coded", file=sys.stderr, flush=True)
    if args.noise_clips:
        clips = to_tensor(parse_data(args.data, shape, "val").take(args.noise_clips)[0])
        report["batch"] = gradient_noise_scale(vq, clips)
        print(f"gradient noise scale B_simple = {report['batch']['b_simple']}, 95 % interval "
              f"{report['batch']['b_simple_interval']} ({args.data})", file=sys.stderr, flush=True)
    report["command"] = " ".join(["python scripts/diagnose_tokenizer.py", *(argv if argv is not None else sys.argv[1:])])
    emit_report(report, args.json)


if __name__ == "__main__":
    main()
