"""Turn a trained checkpoint into the shipped default model:

    python scripts/ship_default_model.py --weights runs/transformer/model.safetensors

Writes `magvit_onnx/default_model/weights.safetensors` (the weights stored in fp16, half
the size; the package must stay under 50 MB) and exports the fp32 ONNX graphs + manifest
from exactly those fp16-rounded weights into `magvit_onnx/default_model/artifacts`, then
checks ONNX Runtime against the PyTorch reference (`export_all.py --check`; exits 1 when
parity fails). The artifacts serve the CPU and the GPU alike: the step's transformer is one
graph for both, and the step's sampler ships in each target's variant (a few kB each), so
`Generator(providers="cuda")` runs the GPU's (a constant TopK width) without an export.

`--tokenizer runs/tokenizer_ft/tokenizer.safetensors` takes the decoder from a decoder-only
fine-tune (`train_tokenizer.py --init ... --decoder-only`); its encoder and codebook must equal
the checkpoint's, or the tokens the transformer was trained on would change.

`--decoding-by-task magvit_onnx/default_model/decoding_choice.json` writes the per-task decoding
defaults chosen on validation data (scripts/choose_decoding.py) into the manifest.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import click
import torch

from magvit_onnx.export.export_all import main as export_main, read_decoding_by_task
from magvit_onnx.models.checkpoint import load_checkpoint, load_weights, read_config, read_metadata, save_weights
from magvit_onnx.models.vqvae import VQVAE
from magvit_onnx.paths import DEFAULT_MODEL


def replace_decoder(vq: VQVAE, tokenizer: Path) -> None:
    """Load the decoder of `tokenizer` into `vq`, after checking that both tokenize alike."""
    theirs = read_config(tokenizer)
    if theirs.vq != vq.config:
        fields = [f.name for f in dataclasses.fields(vq.config) if getattr(theirs.vq, f.name) != getattr(vq.config, f.name)]
        raise SystemExit(f"{tokenizer}: its tokenizer (preset {theirs.name!r}) differs from the checkpoint's in "
                         f"{', '.join(fields)}; only a decoder-only fine-tune of this checkpoint can be combined")
    tuned = VQVAE(vq.config)
    load_weights(tokenizer, {"vq": tuned})
    for part in ("encoder", "quantizer"):
        ours, theirs = getattr(vq, part).state_dict(), getattr(tuned, part).state_dict()
        changed = [k for k in ours if not torch.equal(ours[k], theirs[k])]
        if changed:
            raise SystemExit(f"{tokenizer}: its {part} differs from the checkpoint's ({len(changed)} tensors, "
                             f"e.g. {changed[0]}), so its tokens would differ; only a decoder-only fine-tune "
                             f"(train_tokenizer.py --init CHECKPOINT --decoder-only) can be combined")
    vq.decoder.load_state_dict(tuned.decoder.state_dict())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, required=True, help="model.safetensors from train_transformer.py")
    p.add_argument("--out", type=Path, default=DEFAULT_MODEL,
                   help="model folder to write: weights.safetensors + artifacts/ (default: the package's)")
    p.add_argument("--tokenizer", type=Path, default=None,
                   help="decoder-only fine-tune whose decoder replaces the checkpoint's")
    p.add_argument("--decoding-by-task", type=Path, default=None, metavar="FILE",
                   help="this model's per-task decoding defaults for the manifest (scripts/choose_decoding.py)")
    p.add_argument("--note", action="append", default=[], metavar="KEY=VALUE",
                   help="extra metadata stored in the weights (training steps, time, ...)")
    args = p.parse_args(argv)
    config, vq, transformer = load_checkpoint(args.weights)
    if args.decoding_by_task:  # refused before anything is written
        try:
            read_decoding_by_task(args.decoding_by_task, config)
        except click.BadParameter as e:
            raise SystemExit(f"--decoding-by-task {e.format_message()}") from None
    metadata = {**read_metadata(args.weights), **dict(note.split("=", 1) for note in args.note),
                "source": args.weights.name, "stored_dtype": "float16"}
    if args.tokenizer is not None:
        replace_decoder(vq, args.tokenizer)
        metadata["decoder_finetune_step"] = read_metadata(args.tokenizer).get("step", "?")
    metadata.pop("magvit_config")  # save_weights writes the config itself
    weights = args.out / "weights.safetensors"
    args.out.mkdir(parents=True, exist_ok=True)
    save_weights(weights, config, {"vq": vq, "transformer": transformer}, metadata, dtype=torch.float16)
    print(f"wrote {weights} ({weights.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
    chosen = ["--decoding-by-task", str(args.decoding_by_task)] if args.decoding_by_task else []
    export_main.main(args=["--weights", str(weights), "--out", str(args.out / "artifacts"), "--check", *chosen],
                     prog_name="export_all.py", standalone_mode=False)


if __name__ == "__main__":
    main()
