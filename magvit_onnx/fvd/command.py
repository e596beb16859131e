"""`magvit-onnx fvd DIR_A DIR_B`: FVD between two folders of videos.

Each folder gives up to --count clips: windows of --frames frames (every --stride-th frame)
starting at frames 0, --gap, 2 --gap, ... of every video under it (sorted, recursively),
read at --size x --size (short side scaled, centre crop, as everywhere in magvit-onnx),
then resized bilinearly to 224 x 224 as the reference FVD does. A video too short for one
window, or unreadable, is skipped with a line on stderr.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import numpy as np

from magvit_onnx.batch.progress import Progress
from magvit_onnx.fvd.i3d import CLIPS_PER_RUN
from magvit_onnx.options import PROVIDERS

MIN_CLIPS = 2
"""A covariance needs two clips; FVD is biased at small N (docs/fvd.md), use hundreds."""


def video_files(folder: Path) -> list[Path]:
    from magvit_onnx.video import VIDEO_SUFFIXES

    if not folder.is_dir():
        raise click.ClickException(f"{folder}: not a folder; give two folders of videos")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not files:
        raise click.ClickException(f"{folder}: no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) there")
    return files


def windows(files: list[Path], count: int, frames: int, stride: int, gap: int, size: int,
            progress: Progress) -> Iterator[np.ndarray]:
    """Up to `count` uint8 clips [frames, size, size, 3], in file order."""
    from magvit_onnx.video import VideoError, read_video

    found = 0
    for path in files:
        start = 0
        while found < count:
            try:
                clip = read_video(path, num_frames=frames, size=(size, size), stride=stride, start=start)
            except VideoError as e:
                if start == 0:  # not merely past the end: this file gives no window at all
                    progress.message(f"skipped {e}")
                break
            found += 1
            yield clip
            start += gap


def features(i3d, folder: Path, count: int, frames: int, stride: int, gap: int, size: int,
             progress: Progress) -> np.ndarray:
    files = video_files(folder)
    out, batch = [], []
    for clip in windows(files, count, frames, stride, gap, size, progress):
        batch.append(clip)
        if len(batch) == CLIPS_PER_RUN:
            out.append(i3d.logits(np.stack(batch)))
            progress.advance(len(batch))
            batch = []
    if batch:
        out.append(i3d.logits(np.stack(batch)))
        progress.advance(len(batch))
    found = sum(len(f) for f in out)
    progress.total -= count - found  # the folder gave fewer clips than --count
    if found < MIN_CLIPS:
        raise click.ClickException(f"{folder}: {found} clip(s) of {frames} frames (stride {stride}); "
                                   f"FVD needs at least {MIN_CLIPS}")
    return np.concatenate(out)


@click.command()
@click.argument("dir_a", type=click.Path(path_type=Path))
@click.argument("dir_b", type=click.Path(path_type=Path))
@click.option("--frames", type=click.IntRange(min=9), default=16, show_default=True,
              help="Frames per clip (the reference FVD: 16; I3D needs 9 or more).")
@click.option("--stride", type=click.IntRange(min=1), default=1, show_default=True,
              help="Take every STRIDE-th frame of a video.")
@click.option("--gap", type=click.IntRange(min=1), default=None,
              help="Source frames between window starts in one video (default: frames x stride, no overlap).")
@click.option("--count", type=click.IntRange(min=MIN_CLIPS), default=256, show_default=True,
              help="Most clips per folder (FVD is biased at small counts: use as many as you can).")
@click.option("--size", type=click.IntRange(min=16, max=1024), default=128, show_default=True,
              help="Clips are read at SIZE x SIZE before the reference's bilinear resize to 224: "
                   "give your generated clips' size.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the result as JSON to this file.")
@PROVIDERS
def fvd(dir_a, dir_b, frames, stride, gap, count, size, json_out, providers):
    """Fréchet Video Distance between the videos of DIR_A and DIR_B (Kinetics-400 I3D over ONNX Runtime)."""
    from magvit_onnx.fvd import I3D, frechet_distance
    from magvit_onnx.fvd.weights import WeightsError
    from magvit_onnx.runtime.providers import ProviderError

    for folder in (dir_a, dir_b):
        video_files(folder)  # both folders checked before the minutes of work
    if json_out is not None and not json_out.parent.is_dir():
        raise click.ClickException(f"--json {json_out}: folder {json_out.parent} does not exist")
    gap = gap or frames * stride
    try:
        i3d = I3D(providers)
    except (WeightsError, ProviderError) as e:
        raise click.ClickException(e.command_line() if isinstance(e, ProviderError) else str(e)) from None
    except ImportError as e:  # onnx, of the [fvd] extra, is missing (onnxruntime: --providers says so)
        raise click.ClickException(str(e)) from None
    progress = Progress(2 * count)
    try:
        a = features(i3d, dir_a, count, frames, stride, gap, size, progress)
        b = features(i3d, dir_b, count, frames, stride, gap, size, progress)
    finally:
        progress.close()
    report = {"fvd": frechet_distance(a, b),
              "clips": {"a": len(a), "b": len(b)}, "dirs": {"a": str(dir_a), "b": str(dir_b)},
              "frames": frames, "stride": stride, "gap": gap, "size": size,
              "resize": "bilinear to 224, TF1 resize_bilinear convention (no half-pixel centers)"}
    text = json.dumps(report, indent=2)
    if json_out is not None:
        try:
            temporary = json_out.with_name(f".{json_out.name}.tmp")
            temporary.write_text(text + "\n")
            temporary.replace(json_out)  # never a half-written file
        except OSError as e:
            temporary.unlink(missing_ok=True)
            raise click.ClickException(f"--json {json_out}: cannot write ({e.strerror or e})") from None
    click.echo(text)
