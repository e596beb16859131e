"""The `magvit-onnx` command: demo, info, export (and run, the batch jobs; fvd, the metric)."""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import warnings

import click

from magvit_onnx.folders import make_out
from magvit_onnx.options import ARTIFACTS, PROVIDERS
from magvit_onnx.runtime.artifacts import ArtifactError


def fail(error: Exception) -> None:
    """Known errors end the command with one clear line and exit code 1."""
    command_line = getattr(error, "command_line", None)  # ProviderError's advice names --providers
    raise click.ClickException(command_line() if command_line else str(error)) from error


def provider_error() -> type[Exception]:
    """`ProviderError`, imported when a command runs graphs: without onnxruntime (an extra) that
    command ends with one line naming the extra, while `--help` and `export` still work."""
    try:
        from magvit_onnx.runtime.providers import ProviderError
    except ImportError as e:
        raise click.ClickException(str(e)) from None
    return ProviderError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="magvit-onnx")
@click.pass_context
def main(ctx):
    """MAGVIT over ONNX Runtime: ten video generation tasks from one model."""
    # ONNX Runtime's telemetry writes ~/.cache/Microsoft/DeveloperTools/.onnxruntime/ (a device
    # id, an event database) when it initializes; its Privacy.md: "Set ORT_DISABLE_TELEMETRY=1
    # before ONNX Runtime initializes" prevents that for the process (and Ray workers it
    # starts). The commands promise to write nothing outside --out; an explicit value is kept.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    # A warning is one line, like an error: Python's own format adds a file, a line number and
    # the source line, which mean nothing to someone running a command.
    ctx.with_resource(warnings.catch_warnings())
    warnings.showwarning = lambda message, category, *_: click.echo(f"Warning: {message}", err=True)


@main.command()
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Folder for videos and the contact sheet.")
@ARTIFACTS
@PROVIDERS
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Decoding steps (default: the model's, 12).")
@click.option("--replace-condition-pixels", is_flag=True,
              help="Keep the input's pixels in each condition region exactly (official option; off by default, "
                   "as in the official configs).")
def demo(out, artifacts, providers, seed, steps, replace_condition_pixels):
    """Run every task on test clips and photographs: videos, contact sheet, demo.json.

    Every task of the model on synthetic test clips, then FP, IPC and OPC on camera moves
    over photographs, then two masks of any-region inpainting, then outputs beyond one clip.
    Written into --out:

    \b
    <task>.mp4/.gif                  input | condition | output, one per task
    photo_<clip>_<task>.mp4/.gif     the same on a photograph clip (cat, astronaut)
    remove_object.mp4/.gif           inpainting a mask: a box following a moving shape
    extend_right.mp4/.gif            inpainting a mask: a photograph clip extended right
    long_frame_prediction.mp4/.gif   4x the model's frames from one image
    stop_motion.mp4/.gif             frame interpolation between 3 key images
    panorama.mp4/.gif                outpainting to 3x the model's width
    contact_sheet.png                one row per task: input, condition, output
    demo.json                        providers; each output's seconds and files
    """
    known = (ArtifactError, provider_error(), ValueError)
    from magvit_onnx.demo import run_demo

    make_out(out)
    try:
        run_demo(out, artifacts, providers, seed=seed, steps=steps, replace_condition_pixels=replace_condition_pixels)
    except known as e:
        fail(e)
    except OSError as e:
        fail(ValueError(f"--out {out}: cannot write ({e.strerror or e})"))


@main.command()
@ARTIFACTS
@PROVIDERS
def info(artifacts, providers):
    """Print the model, its tasks, and the execution providers (available and used) as JSON."""
    known = (ArtifactError, provider_error())
    import onnxruntime

    from magvit_onnx.generator import Generator

    try:
        generator = Generator(artifacts, providers)
    except known as e:
        fail(e)
    report = {**generator.info(), "available_providers": onnxruntime.get_available_providers(),
              "onnxruntime": onnxruntime.__version__, "model_card": generator.manifest.get("model_card")}
    click.echo(json.dumps(report, indent=2))


def has_torch() -> bool:
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a blocked or half-removed torch
        return False


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.pass_context
def export(ctx):
    """Export ONNX artifacts (forwards to export/export_all.py; needs the [export] extra)."""
    asks_help = bool({"-h", "--help"} & set(ctx.args))  # the options are shown without torch
    if not has_torch() and not asks_help:
        raise click.ClickException("exporting needs torch: pip install 'magvit-onnx[export]' "
                                   "(install torch==2.13.0 first where a plain torch would pull CUDA)")
    from magvit_onnx.export.export_all import main as export_main

    export_main.main(args=ctx.args, prog_name="magvit-onnx export")


from magvit_onnx.batch import command as run_command  # noqa: E402  (the batch jobs: magvit_onnx/batch/)
from magvit_onnx.fvd.command import fvd as fvd_command  # noqa: E402  (FVD: magvit_onnx/fvd/)

main.add_command(run_command)
main.add_command(fvd_command)


if __name__ == "__main__":
    sys.exit(main())
