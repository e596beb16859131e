"""Parameter counts of a preset, as JSON: `python -m magvit_onnx.models.summary --preset B`.

Modules are built on the meta device (no memory, no init cost), so even 'L' is instant.
For the official presets the output also carries the official counts
(docs/official-behaviour.md#tokenizer and #transformer) for comparison; the transformer
differs only by our ten-task, 101-class vocabulary.
"""
from __future__ import annotations

import argparse
import json

import torch

from magvit_onnx.models.config import PRESETS, get_config
from magvit_onnx.models.discriminator import StyleGANDiscriminator
from magvit_onnx.models.transformer import Transformer
from magvit_onnx.models.vqvae import VQVAE

# Official UCF-101 counts (docs/official-behaviour.md#tokenizer; transformer = UCF CG, V 1127, L 1025).
OFFICIAL = {
    "B": {"vq_encoder": 17_149_888, "vq_decoder": 23_167_811, "quantizer": 262_144,
          "transformer": 87_301_991, "discriminator": 15_339_457},
    "L": {"vq_encoder": 68_443_776, "vq_decoder": 89_106_051, "quantizer": 262_144,
          "transformer": 305_567_847, "discriminator": 61_341_569},
}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameter_counts(preset: str) -> dict[str, int]:
    config = get_config(preset)
    with torch.device("meta"):
        vq = VQVAE(config.vq)
        return {
            "vq_encoder": count(vq.encoder),
            "vq_decoder": count(vq.decoder),
            "quantizer": count(vq.quantizer),
            "transformer": count(Transformer(config)),
            "discriminator": count(StyleGANDiscriminator(config.discriminator, config.vq.video_shape)),
        }


def summary(preset: str) -> dict:
    config = get_config(preset)
    out = {"preset": preset, "video_shape": list(config.vq.video_shape),
           "latent_shape": list(config.vq.latent_shape), "vocab_size": config.vocab.size,
           "seq_len": config.seq_len, "parameters": parameter_counts(preset)}
    if preset in OFFICIAL:
        out["official"] = OFFICIAL[preset]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", required=True, choices=sorted(PRESETS))
    args = parser.parse_args(argv)
    print(json.dumps(summary(args.preset), indent=2))


if __name__ == "__main__":
    main()
