"""`magvit-onnx run`: the click command over `run` (and `ray_batch.run_ray` with --ray)."""
from __future__ import annotations

import json
import os

from magvit_onnx.batch.errors import RunError
from magvit_onnx.batch.runner import run
from magvit_onnx.batch.shards import parse_shard, shard_from_env


def _command():
    import click

    from magvit_onnx.options import ARTIFACTS, DECODING, PROVIDERS

    @click.command("run", context_settings={"help_option_names": ["-h", "--help"]})
    @click.argument("jobs", type=click.Path(exists=True, dir_okay=False, readable=True))
    @click.option("--out", type=click.Path(file_okay=False), required=True,
                  help="Folder for the outputs and the report (created if missing).")
    @ARTIFACTS
    @PROVIDERS
    @DECODING
    @click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True,
                  help="Jobs with the same task and settings generated in one call (results equal batch size 1).")
    @click.option("--shard", default=None, metavar="INDEX/COUNT",
                  help="Run only this shard's jobs (stable hash of the id). Default: from SLURM_ARRAY_TASK_ID/"
                       "SLURM_ARRAY_TASK_COUNT, or JOB_COMPLETION_INDEX with --num-shards, else 0/1.")
    @click.option("--num-shards", type=click.IntRange(min=1), default=None, envvar="MAGVIT_NUM_SHARDS",
                  help="Shard count for Kubernetes Indexed Jobs (JOB_COMPLETION_INDEX) [env: MAGVIT_NUM_SHARDS].")
    @click.option("--fail-fast", is_flag=True, help="Stop at the first failed job (exit 1).")
    @click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
                  help="Batches run at a time, in threads sharing one model (with --ray: Ray actors).")
    @click.option("--ray", "use_ray", is_flag=True,
                  help="Run the jobs on Ray Data (needs the [ray] extra; RAY_ADDRESS selects a cluster).")
    @click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=0.0, show_default=True,
                  help="With --ray: GPUs per Ray actor.")
    def run_command(jobs, out, artifacts, providers, batch_size, shard, num_shards, fail_fast, workers, use_ray,
                    gpus_per_worker, decoding):
        """Run the generation jobs of JOBS (JSON Lines) into --out, resumably.

        Each line: {"id", "task", "input"?, "class"?|"class_id"?, "seed"?, "steps"?,
        "sampling_temperature"?, "mask_temperature"?, "guidance_scale"?, "top_k"?, "top_p"?,
        "schedule"?, "num_videos"?, "format"? (mp4|gif|png|npy), "side_by_side"?, "stride"?|"fps"?,
        "start"?, "replace_condition_pixels"?, "num_frames"?, "width"?, "height"?, "keys"? (key
        images for stop motion), "output_fps"? (default: the input's rate), "mask"? (task
        inpainting: an image, folder or video, white = generate, or a box [top, left, height,
        width], optionally {"box", "velocity"})}; docs/batch-jobs.md has each. Outputs have no
        audio. A rerun skips finished jobs.
        Exit 0: all jobs ok; 1: some failed; 2: usage error.
        """
        ctx = click.get_current_context()
        try:
            where = parse_shard(shard) if shard is not None else shard_from_env(dict(os.environ), num_shards)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--shard") from None
        try:
            if use_ray:
                from magvit_onnx.ray_batch import run_ray

                summary = run_ray(jobs, out, artifacts=artifacts, providers=providers, batch_size=batch_size,
                                  shard=where, fail_fast=fail_fast, workers=workers, gpus_per_worker=gpus_per_worker,
                                  decoding=decoding)
            else:
                summary = run(jobs, out, artifacts=artifacts, providers=providers, batch_size=batch_size,
                              shard=where, fail_fast=fail_fast, workers=workers, decoding=decoding)
        except RunError as e:
            if e.exit_code == 2:
                raise click.UsageError(str(e), ctx) from None
            raise click.ClickException(str(e)) from None
        click.echo(json.dumps(summary.as_dict()))
        ctx.exit(1 if summary.failed or summary.interrupted else 0)

    return run_command


command = _command()
