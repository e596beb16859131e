"""Export MAGVIT into an artifacts folder: `python export/export_all.py --preset tiny --out DIR`.

Also `python -m magvit_onnx.export`. Writes vq_encoder.onnx, transformer_step.onnx (the
step's transformer), the step's float32 sampler graphs (sampler_*.onnx), vq_decoder.onnx and
manifest.json; `--check` then measures parity against the PyTorch
reference and fails (exit 1) if it is off.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from magvit_onnx.folders import make_out
from magvit_onnx.models.config import PRESETS  # plain dataclasses: --help stays torch-free

# Stated limits of `--check` for reduced precision, against torch fp32 on the same inputs.
# Trained weights give confident logits, so one moved token changes its probability by up
# to ~1: probabilities are compared only where the tokens agree.
LIMITS = {
    # int8 on the shipped model: 0.121 where tokens agree (its most confident positions move most)
    "int8": {"step_token_agreement": 0.95, "step_probs_max_abs_where_equal": 0.15, "decoder_max_abs": 1e-4},
    "fp16": {"step_token_agreement": 0.95, "step_probs_max_abs_where_equal": 2e-2, "decoder_max_abs": 3e-2},
    # fp32 on a GPU (TF32 off) against torch on the CPU: reductions run in another order, so a
    # token whose top two perturbed logits are within ~1e-6 may flip.
    "fp32-gpu": {"step_token_agreement": 0.999, "step_probs_max_abs_where_equal": 1e-4, "decoder_max_abs": 1e-3},
}


def parity_failures(report: dict, precision: str) -> list[str]:
    """What in a `check_parity` report breaks the stated limits of `precision`
    ('fp32', 'fp16' or 'int8'); empty when it passes."""
    failures = []
    if precision == "fp32":
        exact = {"encoder_token_mismatches": report["encoder_token_mismatches"],
                 "step_sampled_mismatches": report["step_sampled_mismatches"],
                 "generation_token_mismatches": sum(report["generation_token_mismatches"].values()),
                 "long_generation_token_mismatches": sum(report.get("long_generation_token_mismatches", {}).values())}
        failures += [f"{key} {value} (must be 0)" for key, value in exact.items() if value]
        return failures + ([f"decoder_max_abs {report['decoder_max_abs']:.2g} > 1e-4"]
                           if report["decoder_max_abs"] > 1e-4 else [])
    limits = LIMITS[precision]
    if report["step_token_agreement"] < limits["step_token_agreement"]:
        failures.append(f"step_token_agreement {report['step_token_agreement']:.4f} < {limits['step_token_agreement']}")
    for key in ("step_probs_max_abs_where_equal", "decoder_max_abs"):
        if report[key] > limits[key]:
            failures.append(f"{key} {report[key]:.3g} > {limits[key]}")
    if precision in ("int8", "fp32-gpu") and report["encoder_token_mismatches"]:
        failures.append(f"encoder_token_mismatches {report['encoder_token_mismatches']} (fp32 tokenizer: must be 0)")
    return failures


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None,
              help="Model preset. Default: the weights' own, else tiny.")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="safetensors checkpoint (default: the shipped default model; if none, a seeded random init).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Artifacts folder to write.")
@click.option("--opset", type=click.IntRange(min=18), default=18, show_default=True, help="ONNX opset (>= 18).")
@click.option("--fp16", is_flag=True, help="fp16 weights and math, float32 inputs/outputs.")
@click.option("--int8", is_flag=True, help="int8 transformer step (ORT dynamic quantisation) for CPUs; fp32 tokenizer.")
@click.option("--target", type=click.Choice(["cpu", "gpu"]), default=None,
              help="Only the filtered step sampler of CPUs or of GPUs (gpu: a constant TopK width). "
                   "Default: both (a few kB), so one folder serves either; --int8: cpu.")
@click.option("--check", is_flag=True, help="Measure parity with the PyTorch reference after export.")
@click.option("--random-init", is_flag=True,
              help="Export a seeded random init even where a default model ships (tests, benchmarks).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random init.")
@click.option("--decoding-by-task", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="JSON of this model's per-task decoding defaults for the manifest (scripts/choose_decoding.py "
                   "writes one; its 'scores', 'criterion' and 'command' are left out).")
def main(preset, weights, out, opset, fp16, int8, target, check, random_init, seed, decoding_by_task):
    """Export the three ONNX graphs and the manifest of a MAGVIT model."""
    from magvit_onnx.export.exporter import export_all, seeded_random_models
    from magvit_onnx.export.parity import check_parity
    from magvit_onnx.models.checkpoint import load_checkpoint, read_config, read_metadata
    from magvit_onnx.models.config import get_config
    from magvit_onnx.paths import DEFAULT_WEIGHTS
    from magvit_onnx.runtime.artifacts import sha256

    if random_init and weights is not None:
        raise click.BadParameter("give --weights or --random-init, not both", param_hint="--random-init")
    if (weights is None and not random_init and DEFAULT_WEIGHTS.is_file()
            and preset in (None, read_config(DEFAULT_WEIGHTS).name)):
        weights = DEFAULT_WEIGHTS
    if weights is not None:
        if not weights.is_file():
            raise click.BadParameter(f"{weights} does not exist", param_hint="--weights")
        try:
            config, vq, transformer = load_checkpoint(weights)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--weights") from None
        if preset not in (None, config.name):
            raise click.BadParameter(f"{weights} holds preset {config.name!r}, not {preset!r}", param_hint="--preset")
        source = {"path": weights.name, "sha256": sha256(weights), "random_init": False}
        metadata = read_metadata(weights)
    else:
        config = get_config(preset or "tiny")
        reason = "--random-init" if random_init else f"no weights given and no shipped default model for preset {config.name!r}"
        click.secho(f"WARNING: {reason}: exporting a RANDOM init (seed {seed}). It generates noise; use it "
                    "for tests and benchmarks only.", fg="yellow", err=True)
        vq, transformer = seeded_random_models(config, seed)
        source = {"path": None, "sha256": None, "random_init": True, "seed": seed}
        metadata = {}
    if fp16 and int8:
        raise click.BadParameter("choose --fp16 (GPU) or --int8 (CPU), not both", param_hint="--int8")
    if int8 and target == "gpu":
        raise click.BadParameter("int8 artifacts run on CPUs only", param_hint="--target")
    chosen = read_decoding_by_task(decoding_by_task, config) if decoding_by_task else None
    make_out(out)  # before any work: one line and exit 2 when it cannot be written
    variant = ", fp16" if fp16 else ", int8 step" if int8 else ""
    click.echo(f"exporting preset {config.name!r} to {out} (opset {opset}{variant}) ...", err=True)
    manifest = export_all(config, vq, transformer, out, opset=opset, fp16=fp16, int8=int8, weights=source,
                          target=target, metadata=metadata, decoding_by_task=chosen)
    for name, entry in manifest["files"].items():
        click.echo(f"  {name:24s} {entry['bytes'] / 1e6:8.1f} MB  sha256 {entry['sha256'][:16]}…", err=True)
    if check:
        report = check_parity(out, config, vq, transformer)
        click.echo(json.dumps(report, indent=2))
        failures = parity_failures(report, "fp16" if fp16 else "int8" if int8 else "fp32")
        if failures:
            click.secho("parity check FAILED: " + "; ".join(failures), fg="red", err=True)
            sys.exit(1)
        click.echo("parity check passed", err=True)


def read_decoding_by_task(path: Path, config) -> dict:
    """The task entries of a scripts/choose_decoding.py JSON (or of a plain {task: settings}),
    checked against the model of `config`."""
    from magvit_onnx.export.exporter import check_decoding_by_task

    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise click.BadParameter(f"{path}: not a JSON file ({e})", param_hint="--decoding-by-task") from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path}: must be an object of task -> settings", param_hint="--decoding-by-task")
    chosen = {k: v for k, v in data.items() if k not in ("scores", "criterion", "command")}
    try:
        check_decoding_by_task(config, chosen)
    except ValueError as e:
        raise click.BadParameter(f"{path}: {e}", param_hint="--decoding-by-task") from None
    return chosen


if __name__ == "__main__":
    main()
