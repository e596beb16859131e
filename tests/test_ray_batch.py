"""`magvit-onnx run --ray`: the same jobs on Ray Data (a local Ray instance) give the same
outputs and report as the local run. Skipped where Ray Data is not installed (the [ray] extra)."""
import io
import json
import os
import signal

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from click.testing import CliRunner  # noqa: E402

import numpy as np  # noqa: E402

from magvit_onnx import batch, ray_batch, video  # noqa: E402
from magvit_onnx.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def artifacts(small_artifacts):
    return small_artifacts(3)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def outputs_of(out):
    return {o["path"]: o["sha256"] for row in batch.report_view(out).values() if row["status"] == "ok"
            for o in row["outputs"]}


def assert_same_outputs(a, b, video_shape):
    """Same files; tokens (npy) and PNG frames byte for byte; MP4s by their decoded frames,
    since x264's bytes do not always repeat (see video.write_mp4)."""
    ours, theirs = outputs_of(a), outputs_of(b)
    assert sorted(ours) == sorted(theirs)
    for name, digest in ours.items():
        if name.endswith(".mp4"):
            frames, size = video_shape[0], tuple(video_shape[1:])
            x, y = (video.read_video(folder / name, num_frames=frames, size=size).astype(float) for folder in (a, b))
            assert np.abs(x - y).mean() <= 1.0, name
        else:
            assert digest == theirs[name], name


def test_ray_run_equals_the_local_run(tmp_path, artifacts, local_ray):
    lines = [{"id": f"r{i}", "task": "CG", "class": i % 10, "steps": 2, "seed": i,
              "format": ("npy", "png", "mp4")[i % 3]} for i in range(6)]
    lines += ["not json", {"id": "bad", "task": "CG", "class": 99}]
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    quiet = dict(progress=batch.Progress(0, stream=io.StringIO(), tty=False), log=lambda line: None)
    local = batch.run(jobs, tmp_path / "local", artifacts=artifacts, batch_size=2, **quiet)
    on_ray = ray_batch.run_ray(jobs, tmp_path / "ray", artifacts=artifacts, batch_size=2, workers=2,
                               progress=batch.Progress(0, stream=io.StringIO(), tty=False), log=lambda line: None)
    assert (on_ray.ok, on_ray.failed) == (local.ok, local.failed) == (6, 2)
    assert_same_outputs(tmp_path / "ray", tmp_path / "local", batch.ModelFacts.load(artifacts).video_shape)
    view = batch.report_view(tmp_path / "ray")
    assert view["bad"]["status"] == "error" and "out of range" in view["bad"]["error"]
    # resumable like the local run, and reachable from the CLI
    result = CliRunner().invoke(main, ["run", str(jobs), "--out", str(tmp_path / "ray"), "--artifacts",
                                       str(artifacts), "--ray"])
    assert result.exit_code == 1 and json.loads(result.stdout)["skipped"] == 6


def test_ray_run_survives_unreadable_lines(tmp_path, artifacts, local_ray):
    """A lone surrogate, a NUL or a too-deep line crashed the Ray path like the local one (issue 19)."""
    lines = ['{"id": "s", "task": "\\udc80"}', '{"id": "n", "task": "FP", "input": "a\\u0000.mp4"}',
             '{"id": "d", "task": "CG", "class": ' + "[" * 30_000 + "]" * 30_000 + "}",
             json.dumps({"id": "good", "task": "CG", "class": 1, "steps": 1, "format": "npy"})]
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(line + "\n" for line in lines))
    summary = ray_batch.run_ray(jobs, tmp_path / "ray", artifacts=artifacts,
                                progress=batch.Progress(0, stream=io.StringIO(), tty=False), log=lambda line: None)
    assert (summary.ok, summary.failed) == (1, 3)
    assert batch.report_view(tmp_path / "ray")["good"]["status"] == "ok"


class _SignalAfterFirstJob(batch.Progress):
    """Sends this process SIGINT when the first job is recorded, as Ctrl-C would."""

    def __init__(self):
        super().__init__(0, stream=io.StringIO(), tty=False)
        self.sent = False

    def advance(self, videos: int, failed: bool = False) -> None:
        super().advance(videos, failed)
        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)


def test_a_signal_leaves_no_output_without_its_report_line(tmp_path, artifacts, local_ray):
    """Issue 19: a signal stopped only the driver; the Ray workers went on writing outputs that
    got no report line, so a rerun made them again. Now the workers start no further group,
    the running ones are recorded, and the rerun does exactly the jobs that never ran."""
    lines = [{"id": f"s{i}", "task": "CG", "class": i % 10, "steps": 4, "seed": i, "format": "npy"}
             for i in range(24)]  # enough that the run cannot finish before the stop reaches the workers
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out"
    handler = signal.getsignal(signal.SIGINT)
    try:
        first = ray_batch.run_ray(jobs, out, artifacts=artifacts, batch_size=1, workers=2,
                                  progress=_SignalAfterFirstJob(), log=lambda line: None)
    finally:
        signal.signal(signal.SIGINT, handler)
    assert first.stopped and 1 <= first.ok < len(lines)
    assert sorted(p.name for p in out.glob("*.npy")) == sorted(outputs_of(out))
    second = ray_batch.run_ray(jobs, out, artifacts=artifacts, batch_size=1, workers=2,
                               progress=batch.Progress(0, stream=io.StringIO(), tty=False), log=lambda line: None)
    assert (second.skipped, second.ok, first.ok + second.ok) == (first.ok, len(lines) - first.ok, len(lines))


def test_every_jobs_key_on_the_ray_path(tmp_path, artifacts, local_ray):
    """Issue 32: a stop-motion job (`keys`: a tuple of paths) crashed the whole Ray run with
    'Object of type PosixPath is not JSON serializable'. Every JOBS key goes through Ray and
    gives the local run's outputs."""
    frames = np.random.default_rng(0).integers(0, 256, (12, 40, 48, 3), dtype=np.uint8)
    video.write_mp4(tmp_path / "clip.mp4", frames)
    for k in range(3):
        video.write_png(tmp_path / f"k{k}.png", frames[4 * k])
    hole = np.zeros((40, 48, 3), np.uint8)
    hole[10:30, 20:36] = 255
    video.write_png(tmp_path / "hole.png", hole)
    small = {"steps": 1, "format": "npy"}
    lines = [
        {"id": "stop1", "task": "FI", "keys": ["k0.png", "k1.png", "k2.png"], **small},
        {"id": "cg", "task": "CG", "class": 2, "seed": 5, "steps": 2, "sampling_temperature": 0.9,
         "mask_temperature": 3.0, "guidance_scale": 1.5, "top_k": 8, "schedule": "uniform", "num_videos": 2,
         "format": "png"},
        {"id": "cfp", "task": "CFP", "class_id": 1, "input": "clip.mp4", "top_p": 0.9, "steps": 1, "format": "gif",
         "output_fps": 12.5},
        {"id": "fp", "task": "FP", "input": "clip.mp4", "stride": 2, "start": 1, "replace_condition_pixels": True,
         "side_by_side": True, "steps": 1, "format": "png"},  # PNG: exact (x264 on noise varied by 1.6 levels)
        {"id": "fps", "task": "FP", "input": "clip.mp4", "fps": 4, **small},
        {"id": "long", "task": "FP", "input": "clip.mp4", "num_frames": 16, **small},
        {"id": "wide", "task": "OPV", "input": "clip.mp4", "width": 64, **small},
        {"id": "tall", "task": "OPH", "input": "clip.mp4", "height": 64, **small},
        {"id": "hole", "task": "IPM", "input": "clip.mp4", "mask": "hole.png", **small},
        {"id": "moving", "task": "inpainting", "input": "clip.mp4", "mask": {"box": [8, 0, 12, 10], "velocity": [0, 2]},
         "replace_condition_pixels": True, "side_by_side": True, "steps": 1, "format": "png"},  # PNG: exact
    ]
    used = {key for line in lines for key in line}
    assert set(batch.jobs.KEYS) <= used, f"add a job with {sorted(set(batch.jobs.KEYS) - used)} to this test"
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(json.dumps(line) + "\n" for line in lines))
    quiet = dict(progress=batch.Progress(0, stream=io.StringIO(), tty=False), log=lambda line: None)
    local = batch.run(jobs, tmp_path / "local", artifacts=artifacts, **quiet)
    on_ray = ray_batch.run_ray(jobs, tmp_path / "ray", artifacts=artifacts, workers=1,
                               progress=batch.Progress(0, stream=io.StringIO(), tty=False), log=lambda line: None)
    assert (on_ray.ok, on_ray.failed) == (local.ok, local.failed) == (len(lines), 0)
    assert_same_outputs(tmp_path / "ray", tmp_path / "local", batch.ModelFacts.load(artifacts).video_shape)
    # the workers' claims on their outputs (.{id}.outputs) went once the driver's report listed them
    assert [p.name for p in (tmp_path / "ray").iterdir() if p.name.startswith(".")] == []
