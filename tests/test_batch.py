"""`magvit-onnx run`: job parsing and validation, batching equal to single calls, outputs,
the report and resuming (also after kill -9), sharding, threads, exit codes, bad input."""
import errno
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from magvit_onnx import batch, video
from magvit_onnx.batch.jobs import parse_job
from magvit_onnx.cli import main
from magvit_onnx.generator import Generator
from magvit_onnx.runtime.seeding import SeedStreams

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def artifacts(small_artifacts):
    return small_artifacts(3)


@pytest.fixture(scope="module")
def gen(artifacts):
    return Generator(artifacts)


def encode(path, frames, codec="ffv1", pix_fmt="bgr0", in_format="rgb24", rate=8, **open_kw):
    """Write `frames` with plain PyAV (pixel formats and sizes write_mp4 never produces)."""
    with av.open(str(path), "w", **open_kw) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format=in_format)))
        container.mux(stream.encode())


def noise(frames, height, width, seed=0, channels=3):
    return np.random.default_rng(seed).integers(0, 256, (frames, height, width, channels), dtype=np.uint8)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Input files, good and bad, in one folder (job paths are relative to the JOBS file)."""
    d = tmp_path_factory.mktemp("media")
    video.write_mp4(d / "clip.mp4", noise(12, 40, 48))
    video.write_mp4(d / "clip2.mp4", noise(12, 40, 48, seed=1))
    encode(d / "gray.mkv", noise(10, 32, 32, channels=1)[..., 0], pix_fmt="gray", in_format="gray")
    rgba = noise(10, 32, 32, channels=4)
    encode(d / "alpha.apng", rgba, codec="apng", pix_fmt="rgba", in_format="rgba", format="apng")
    encode(d / "odd.mkv", noise(9, 37, 45))                         # odd height and width
    encode(d / "small.mkv", noise(9, 10, 12))                       # smaller than the model: upscaled
    encode(d / "wide.mkv", noise(9, 24, 64))                        # another aspect ratio
    video.write_gif(d / "clip.gif", noise(9, 32, 32))
    encode(d / "long.mkv", noise(40, 32, 32), rate=8)               # for fps / stride / start
    encode(d / "tiny.mkv", noise(9, 4, 4))
    encode(d / "short.mkv", noise(4, 32, 32))
    (d / "notes.mp4").write_text("these are not the frames you are looking for\n" * 20)
    data = (d / "clip.mp4").read_bytes()
    (d / "cut.mp4").write_bytes(data[: len(data) // 2])
    with av.open(str(d / "tone.wav"), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        samples.sample_rate = 8000
        container.mux(stream.encode(samples))
        container.mux(stream.encode())
    with av.open(str(d / "empty.avi"), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width = stream.height = 16
        container.start_encoding()
        container.mux(stream.encode())
    (d / "folder.mp4").mkdir()
    return d


def write_jobs(path, *lines):
    """JOBS file from dicts (json.dumps), str (as is) or bytes (as is)."""
    data = b"".join((line if isinstance(line, bytes) else
                     (line if isinstance(line, str) else json.dumps(line)).encode()) + b"\n" for line in lines)
    path.write_bytes(data)
    return path


def run_batch(jobs, out, gen, **kwargs):
    """batch.run in process, sharing the module's Generator (sessions are built once)."""
    kwargs.setdefault("progress", batch.Progress(0, stream=io.StringIO(), tty=False))
    lines = []
    summary = batch.run(jobs, out, artifacts=gen.artifacts, generator_factory=lambda: gen,
                        log=lines.append, **kwargs)
    return summary


def cli(*args, env=None):
    return CliRunner().invoke(main, ["run", *map(str, args)], env=env, catch_exceptions=False)


def rows(out):
    return [row for path in batch.report_files(out) for row in batch.read_report(path)]


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def outputs_of(out):
    """{output path: sha256} of the ok lines of the report view."""
    return {o["path"]: o["sha256"] for row in batch.report_view(out).values() if row["status"] == "ok"
            for o in row["outputs"]}


def files(out):
    return sorted(p.name for p in Path(out).iterdir() if not p.name.startswith("report"))


def cg(job_id, **kw):
    return {"id": job_id, "task": "CG", "class": 1, "steps": 1, "format": "npy", **kw}


def fp(job_id, source="clip.mp4", **kw):
    return {"id": job_id, "task": "FP", "input": source, "steps": 1, "format": "npy", **kw}


# ----------------------------------------------------------------- the happy path


def test_outputs_report_and_formats(tmp_path, media, gen):
    jobs = write_jobs(media / "jobs-formats.jsonl",
                      fp("a", format="mp4", side_by_side=True, seed=5),
                      cg("b", format="gif", num_videos=2, guidance_scale=1.5),
                      {"id": "c", "task": "OPC", "input": "clip2.mp4", "steps": 2, "format": "png"},
                      cg("d", **{"class": 7}))
    out = tmp_path / "out"
    result = cli(jobs, "--out", out, "--artifacts", gen.artifacts, "--batch-size", "4")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["ok"], summary["failed"], summary["skipped"], summary["stopped"]) == (4, 0, 0, False)
    assert summary["report"] == str(out / "report.jsonl") and summary["shard"] == [0, 1]
    assert files(out) == sorted(["a.mp4", "a.sbs.mp4", "b.0.gif", "b.1.gif", "d.npy"]
                                + [f"c.f{t:03d}.png" for t in range(8)])
    view = batch.report_view(out)
    assert set(view) == {"a", "b", "c", "d"}
    for row in view.values():
        assert row["status"] == "ok" and row["error"] is None and row["provider"] == "CPUExecutionProvider"
        assert set(row["seconds"]) == {"read", "generate", "decode", "write", "total"} and row["shard"] == [0, 1]
        for output in row["outputs"]:
            assert sha(out / output["path"]) == output["sha256"]
    assert view["a"]["seed"] == 5 and view["a"]["seed_from"] == "job"
    assert view["d"]["seed"] == batch.derive_seed("d") and view["d"]["seed_from"] == "id"
    assert view["a"]["input"] == str(media / "clip.mp4") and view["a"]["line"] == 1
    tokens = np.load(out / "d.npy")
    assert tokens.shape == (1, 2, 4, 4) and tokens.dtype == np.int64
    sbs = video.read_video(out / "a.sbs.mp4", num_frames=8, size=(32, 100))
    assert sbs.shape == (8, 32, 100, 3)  # input | condition | output with two 2-pixel gaps
    with av.open(str(out / "a.sbs.mp4")) as container:
        assert (container.streams.video[0].width, container.streams.video[0].height) == (3 * 32 + 4, 32)
    assert "run: 4 ok, 0 failed, 0 already done" in result.stderr


def test_outputs_keep_the_input_frame_rate(tmp_path, gen):
    """Old: every output at 8 fps, whatever the input's rate or the job's fps."""
    video.write_mp4(tmp_path / "pal.mp4", noise(24, 32, 32), fps=25)
    video.write_png(tmp_path / "still.png", noise(1, 32, 32)[0])
    encode(tmp_path / "slow_motion.mkv", noise(10, 32, 32), rate=240)
    jobs = write_jobs(tmp_path / "jobs.jsonl",
                      fp("same", "pal.mp4", format="mp4"), fp("gif", "pal.mp4", format="gif"),
                      fp("stride", "pal.mp4", format="mp4", stride=2), fp("fps", "pal.mp4", format="mp4", fps=10),
                      fp("told", "pal.mp4", format="gif", output_fps=12.5), fp("long", "pal.mp4", format="mp4",
                                                                               num_frames=16),
                      fp("still", "still.png", format="mp4"), cg("class", format="mp4"),
                      fp("gif_of_240", "slow_motion.mkv", format="gif"), fp("sbs", "pal.mp4", format="mp4",
                                                                            side_by_side=True))
    assert run_batch(jobs, tmp_path / "out", gen).failed == 0
    rates = {p.name: video.frame_rate(p) for p in (tmp_path / "out").iterdir() if p.suffix in (".mp4", ".gif")}
    assert rates == {"same.mp4": 25, "gif.gif": 25, "stride.mp4": Fraction(25, 2), "fps.mp4": 10, "told.gif": 12.5,
                     "long.mp4": 25, "still.mp4": 8, "class.mp4": 8, "gif_of_240.gif": 50, "sbs.mp4": 25,
                     "sbs.sbs.mp4": 25}
    with av.open(str(tmp_path / "out" / "long.mp4")) as container:  # 16 frames at 25 fps: 0.64 s
        assert container.streams.video[0].frames == 16 and not container.streams.audio
    assert video.frame_rate(tmp_path / "still.png") is None


def test_batched_equals_single_calls_and_generator(tmp_path, media, gen):
    clip = video.read_video(media / "clip.mp4", num_frames=8, size=(32, 32))
    clip2 = video.read_video(media / "clip2.mp4", num_frames=8, size=(32, 32))
    lines = [fp("f1", seed=1, steps=2, format="png"), fp("f2", "clip2.mp4", seed=2, steps=2, format="png"),
             fp("f3", seed=3, steps=2, format="npy"),
             cg("g1", seed=4, steps=2, guidance_scale=2.0, num_videos=2, format="png", **{"class": 3}),
             cg("g2", seed=5, steps=2, guidance_scale=2.0, num_videos=2, format="png", **{"class": 8}),
             cg("g3", seed=6, steps=2, guidance_scale=2.0, num_videos=2, format="npy", **{"class": 0}),
             {"id": "h1", "task": "CFP", "input": "clip.mp4", "class": 2, "steps": 2, "seed": 7, "format": "png",
              "mask_temperature": 2.0, "sampling_temperature": 0.7}]
    jobs = write_jobs(media / "jobs-equal.jsonl", *lines)
    one, four = tmp_path / "one", tmp_path / "four"
    assert run_batch(jobs, one, gen, batch_size=1).failed == 0
    assert run_batch(jobs, four, gen, batch_size=4).failed == 0
    assert {r["id"]: r["batch"] for r in rows(four)} == {"f1": 3, "f2": 3, "f3": 3, "g1": 3, "g2": 3, "g3": 3,
                                                         "h1": 1}
    assert outputs_of(one) == outputs_of(four) and len(outputs_of(one)) == 2 * 8 + 2 * 2 * 8 + 8 + 2

    def frames(out, base):
        return np.stack([np.array(_png(out / f"{base}.f{t:03d}.png")) for t in range(8)])

    np.testing.assert_array_equal(frames(four, "f1"), gen.generate("FP", video=clip, seed=1, steps=2)[0])
    np.testing.assert_array_equal(frames(four, "f2"), gen.generate("FP", video=clip2, seed=2, steps=2)[0])
    expected = gen.generate("CG", class_id=8, seed=5, steps=2, guidance_scale=2.0, num_videos=2)
    np.testing.assert_array_equal(frames(four, "g2.1"), expected[1])
    np.testing.assert_array_equal(frames(four, "h1"), gen.generate(
        "CFP", video=clip, class_id=2, seed=7, steps=2, mask_temperature=2.0, sampling_temperature=0.7)[0])
    decoded = gen.decode(np.load(four / "g3.npy"))
    np.testing.assert_array_equal(decoded, gen.generate("CG", class_id=0, seed=6, steps=2, guidance_scale=2.0,
                                                        num_videos=2))


def _png(path):
    """Decode one of write_png's files (RGB) with PyAV."""
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def test_still_image_and_short_clip_animate_through_frame_prediction(tmp_path, media, gen):
    """Old code: 'too few frames ... num_frames=8' for any input shorter than the model's clip."""
    still = noise(1, 32, 32, seed=9)[0]
    video.write_png(media / "still.png", still)
    jobs = write_jobs(media / "jobs-still.jsonl", fp("s", "still.png", seed=1, steps=2, format="png"),
                      fp("five", "short.mkv", seed=2, steps=2, format="png", task="CFP", **{"class": 3}))
    out = tmp_path / "out"
    result = cli(jobs, "--out", out, "--artifacts", gen.artifacts)
    assert result.exit_code == 0, result.output

    def frames(base):
        return np.stack([_png(out / f"{base}.f{t:03d}.png") for t in range(8)])

    np.testing.assert_array_equal(frames("s"), gen.generate("FP", video=still[None], seed=1, steps=2)[0])
    short = video.read_video(media / "short.mkv", num_frames=4, size=(32, 32))
    np.testing.assert_array_equal(frames("five"), gen.generate("CFP", video=short, class_id=3, seed=2, steps=2)[0])


def test_replace_condition_pixels_job_keeps_the_input_pixels(tmp_path, media, gen):
    clip = video.read_video(media / "clip.mp4", num_frames=8, size=(32, 32))
    lines = [fp("kept", seed=1, steps=2, format="png", task="OPC", replace_condition_pixels=True, num_videos=2),
             fp("redrawn", seed=1, steps=2, format="png", task="OPC", replace_condition_pixels=False, num_videos=2)]
    jobs = write_jobs(media / "jobs-keep.jsonl", *lines)
    out = tmp_path / "out"
    assert run_batch(jobs, out, gen, batch_size=2).ok == 2
    for k in range(2):
        kept = np.stack([_png(out / f"kept.{k}.f{t:03d}.png") for t in range(8)])
        np.testing.assert_array_equal(kept, gen.generate("OPC", video=clip, seed=1, steps=2, num_videos=2,
                                                         replace_condition_pixels=True)[k])
        np.testing.assert_array_equal(kept[:, 8:24, 8:24], clip[:, 8:24, 8:24])  # the central square, exactly
        redrawn = np.stack([_png(out / f"redrawn.{k}.f{t:03d}.png") for t in range(8)])
        assert (redrawn[:, 8:24, 8:24] != clip[:, 8:24, 8:24]).any()
    facts = batch.ModelFacts.load(gen.artifacts)
    on, off = (parse_job(fp("x", replace_condition_pixels=flag), 1, facts, media) for flag in (True, False))
    default = parse_job(fp("x"), 1, facts, media)
    assert off.config(facts) == default.config(facts) != on.config(facts)  # old reports stay valid


def test_eight_threads_give_the_serial_results(tmp_path, media, gen):
    lines = [cg(f"t{i}", seed=i, steps=2, format="png" if i % 2 else "npy", **{"class": i % 10}) for i in range(12)]
    lines += [fp(f"v{i}", "clip.mp4" if i % 2 else "clip2.mp4", seed=100 + i, steps=2, format="png")
              for i in range(4)]
    jobs = write_jobs(media / "jobs-threads.jsonl", *lines)
    serial, threaded = tmp_path / "serial", tmp_path / "threads"
    assert run_batch(jobs, serial, gen, batch_size=1, workers=1).ok == 16
    assert run_batch(jobs, threaded, gen, batch_size=1, workers=8).ok == 16
    assert outputs_of(serial) == outputs_of(threaded)


def test_job_without_seed_uses_the_derived_seed(tmp_path, media, gen):
    assert 0 <= batch.derive_seed("clip-1") < 2 ** 53
    assert batch.derive_seed("clip-1") != batch.derive_seed("clip-2")
    expected = int.from_bytes(hashlib.sha256(b"magvit-onnx/seed/clip-1").digest()[:8], "big") >> 11
    assert batch.derive_seed("clip-1") == expected
    jobs = write_jobs(media / "jobs-seed.jsonl", cg("clip-1"), cg("explicit", seed=batch.derive_seed("clip-1")))
    out = tmp_path / "out"
    run_batch(jobs, out, gen)
    assert sha(out / "clip-1.npy") == sha(out / "explicit.npy")


@pytest.mark.parametrize("name, extra", [
    ("gray.mkv", {}),                         # grayscale: converted to RGB
    ("alpha.apng", {}),                       # alpha: dropped
    ("odd.mkv", {}),                          # odd height and width
    ("small.mkv", {}),                        # 12x10, upscaled to cover 32x32
    ("wide.mkv", {}),                         # 64x24, scaled and centre-cropped
    ("clip.gif", {}),                         # another container
    ("long.mkv", {"fps": 4, "start": 3}),     # resampled in time
    ("long.mkv", {"stride": 3, "start": 5}),  # every third frame
])
def test_inputs_that_work(tmp_path, media, gen, name, extra):
    jobs = write_jobs(tmp_path / "jobs.jsonl", fp("ok", str(media / name), format="mp4", **extra))
    out = tmp_path / "out"
    summary = run_batch(jobs, out, gen)
    assert (summary.ok, summary.failed) == (1, 0), rows(out)
    assert video.read_video(out / "ok.mp4", num_frames=8, size=(32, 32)).shape == (8, 32, 32, 3)


def test_grayscale_input_is_read_as_rgb_for_the_model(tmp_path, media, gen):
    gray = video.read_video(media / "gray.mkv", num_frames=8, size=(32, 32))
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    jobs = write_jobs(tmp_path / "jobs.jsonl", fp("g", str(media / "gray.mkv"), seed=0, format="png"))
    run_batch(jobs, tmp_path / "out", gen)
    np.testing.assert_array_equal(_png(tmp_path / "out" / "g.f000.png"),
                                  gen.generate("FP", video=gray, seed=0, steps=1)[0, 0])


# ----------------------------------------------------------------- bad input: one case per line

BAD = [  # (case, JOBS lines, job named in the error line, expected text)
    ("malformed JSON", ['{"id": "x", "task": "FP",'], None, "malformed JSON"),
    ("not UTF-8", [b'{"id": "x\xff", "task": "CG"}'], None, "not UTF-8 text"),
    ("not an object", ["[1, 2]"], None, "a job must be a JSON object"),
    ("missing id", [{"task": "CG", "class": 1}], None, "missing 'id'"),
    ("bad id characters", [{"id": "../x", "task": "CG", "class": 1}], None, "id must be a string of 1-128 letters"),
    ("id not a string", [{"id": 7, "task": "CG", "class": 1}], None, "id must be a string"),
    ("duplicate id", [cg("x"), cg("x", seed=1)], "x", "duplicate id 'x' on lines 1, 2: ids must be unique"),
    ("unknown key", [cg("x", stesp=2)], "x", "unknown key 'stesp' (did you mean 'steps'?): valid keys are id,"),
    ("missing task", [{"id": "x"}], "x", "missing 'task': valid tasks are frame_prediction (FP)"),
    ("unknown task", [{"id": "x", "task": "super_resolution"}], "x",
     "unknown task 'super_resolution': valid tasks are frame_prediction (FP)"),
    ("task not a string", [{"id": "x", "task": 3}], "x", "task must be a string"),
    ("class out of range", [cg("x", **{"class": 10})], "x", "class 10 is out of range: valid classes are 0 .. 9"),
    ("class negative", [cg("x", **{"class": -1})], "x", "class -1 is out of range: valid classes are 0 .. 9"),
    ("class not an integer", [cg("x", **{"class": 1.5})], "x", "class must be an integer in 0 .. 9, got 1.5"),
    ("class for a task without classes", [fp("x", **{"class": 1})], "x",
     "task 'frame_prediction' takes no class; remove it (class-conditional tasks: full_generation, "
     "frame_prediction_c)"),
    ("class missing", [{"id": "x", "task": "CG"}], "x", "task 'full_generation' needs a class"),
    ("class and class_id", [cg("x", class_id=1)], "x", "give 'class' or 'class_id'"),
    ("input missing", [{"id": "x", "task": "FP"}], "x", "task 'frame_prediction' needs an input video"),
    ("input for class generation", [cg("x", input="clip.mp4")], "x",
     "task 'full_generation' takes no input video"),
    ("input not a path", [fp("x", 5)], "x", "input must be the path of a video file"),
    ("steps 0", [cg("x", steps=0)], "x", "steps must be an integer >= 1, got 0"),
    ("steps not an integer", [cg("x", steps=2.5)], "x", "steps must be an integer >= 1, got 2.5"),
    ("sampling temperature 0", [cg("x", sampling_temperature=0)], "x",
     "sampling_temperature must be a finite number > 0, got 0"),
    ("mask temperature negative", [cg("x", mask_temperature=-1.0)], "x",
     "mask_temperature must be a finite number > 0, got -1.0"),
    ("temperature NaN", ['{"id": "x", "task": "CG", "class": 1, "sampling_temperature": NaN}'], "x",
     "sampling_temperature must be a finite number > 0, got nan"),
    ("top_p 0", [cg("x", top_p=0)], "x", "top_p must be a number in (0, 1], got 0"),
    ("top_p above 1", [cg("x", top_p=1.5)], "x", "top_p must be a number in (0, 1], got 1.5"),
    ("top_k with top_p", [cg("x", top_k=5, top_p=0.9)], "x", "top_k and top_p cannot both be set"),
    ("top_k negative", [cg("x", top_k=-1)], "x", "top_k must be an integer >= 0, got -1"),
    ("guidance not a number", [cg("x", guidance_scale="high")], "x", "guidance_scale must be a finite number"),
    ("num_videos 0", [cg("x", num_videos=0)], "x", "num_videos must be an integer >= 1, got 0"),
    ("seed negative", [cg("x", seed=-1)], "x", "seed must be an integer in 0 .. 18446744073709551615, got -1"),
    ("seed too large", [cg("x", seed=2 ** 64)], "x", "seed must be an integer in 0 .. 18446744073709551615"),
    ("unknown schedule", [cg("x", schedule="zigzag")], "x",
     "unknown mask schedule 'zigzag': valid methods are cosine, uniform, powN"),
    ("unknown format", [cg("x", format="avi")], "x", "format must be one of mp4, gif, png, npy"),
    ("side by side of tokens", [cg("x", side_by_side=True)], "x", "side_by_side needs a video format"),
    ("side_by_side not a bool", [cg("x", format="mp4", side_by_side="yes")], "x",
     "side_by_side must be true or false"),
    ("stride and fps", [fp("x", stride=2, fps=4)], "x", "give stride (every n-th frame) or fps"),
    ("stride 0", [fp("x", stride=0)], "x", "stride must be an integer >= 1, got 0"),
    ("fps 0", [fp("x", fps=0)], "x", "fps must be a finite number > 0, got 0"),
    ("start negative", [fp("x", start=-2)], "x", "start must be an integer >= 0, got -2"),
    ("stride without input", [cg("x", stride=2)], "x", "stride only applies to an input video"),
    ("output_fps of tokens", [cg("x", output_fps=25)], "x",
     "output_fps applies to mp4 and gif outputs; format 'npy' has no frame rate"),
    ("output_fps 0", [cg("x", format="mp4", output_fps=0)], "x", "output_fps must be a finite number > 0, got 0"),
    ("output_fps too fast for a GIF", [cg("x", format="gif", output_fps=60)], "x",
     "output_fps: 60 fps cannot be a GIF's: its frame delays are whole centiseconds, 0.0015 to 50 fps"),
    ("colliding output names", [cg("x", num_videos=2, format="mp4"), cg("x.0", format="mp4")], "x.0",
     "output names collide with job 'x' (line 1)"),
    ("missing file", [fp("x", "nope.mp4")], "x", "nope.mp4: no such file"),
    ("input is a folder", [fp("x", "folder.mp4")], "x", "folder.mp4: not a file"),
    ("not a video", [fp("x", "notes.mp4")], "x", "notes.mp4: cannot decode"),
    ("truncated video", [fp("x", "cut.mp4")], "x", "cut.mp4: cannot decode"),
    ("no video stream", [fp("x", "tone.wav")], "x", "tone.wav: no video stream"),
    ("zero frames", [fp("x", "empty.avi")], "x", "empty.avi: the video stream has no frames"),
    ("too few frames", [fp("x", "short.mkv", task="FI")], "x",
     "short.mkv: too few frames: the video has 4, but 8 frames with stride=1 from start=0 need at least 8; "
     "the model reads 8-frame clips (only frame prediction, FP and CFP, reads just the first frame"),
    ("start past the end", [fp("x", "long.mkv", start=100)], "x",
     "long.mkv: too few frames: start=100 is past the end of the video (about 40 frames (5.00 s at 8 fps))"),
    ("too short for fps", [fp("x", "clip.mp4", task="OPC", fps=1)], "x", "clip.mp4: too short: 8 frames at fps=1"),
    ("replace_condition_pixels not a bool", [fp("x", replace_condition_pixels="yes")], "x",
     "replace_condition_pixels must be true or false, got 'yes'"),
    ("replace_condition_pixels without input", [cg("x", replace_condition_pixels=True)], "x",
     "replace_condition_pixels only applies to an input video"),
    ("tiny video", [fp("x", "tiny.mkv")], "x",
     "tiny.mkv: video is 4x4 pixels; width and height must be within [8, 8192]"),
]
CASES = [pytest.param(lines, job, text, id=case) for case, lines, job, text in BAD]


def test_at_least_thirty_cases():
    assert len({case for case, *_ in BAD}) >= 30


def _check_one_error(out, stderr, job, text, line=1):
    """Each bad line (a duplicate id: each of its lines) has one error line in the report and
    one on stderr, naming the job (or the line) and the problem."""
    errors = [r for r in rows(out) if r["status"] == "error"]
    bad = [r for r in errors if r["id"] == job] if job else [r for r in errors if r["line"] == line and r["id"] is None]
    assert len(bad) == (2 if text.startswith("duplicate id") else 1), errors
    for row in bad:
        assert text in row["error"] and "\n" not in row["error"] and row["outputs"] == [], row
        who = f"error: job {job!r} (line {row['line']}): " if job else f"error: line {line}: "
        named = [line for line in stderr.splitlines() if line.startswith(who)]
        assert len(named) == 1 and text in named[0], stderr


@pytest.mark.parametrize("lines, job, text", CASES)
def test_bad_input(tmp_path, media, gen, lines, job, text):
    jobs = write_jobs(media / f"jobs-bad-{hashlib.md5(text.encode()).hexdigest()[:8]}.jsonl", *lines)
    out = tmp_path / "out"
    log = io.StringIO()
    summary = run_batch(jobs, out, gen, progress=batch.Progress(0, stream=log, tty=False))
    assert summary.failed >= 1
    _check_one_error(out, log.getvalue(), job, text)
    assert files(out) == sorted(outputs_of(out))  # no partial outputs of the failed job


def test_bad_lines_do_not_stop_the_others_and_exit_1(tmp_path, media, gen):
    lines = [line for case, case_lines, job, text in BAD if case not in ("duplicate id", "colliding output names")
             for line in case_lines]
    lines = [cg("good-1")] + lines + [fp("good-2", seed=1)]
    jobs = write_jobs(media / "jobs-all-bad.jsonl", *lines)
    out = tmp_path / "out"
    result = cli(jobs, "--out", out, "--artifacts", gen.artifacts)
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert (summary["ok"], summary["failed"]) == (2, len(lines) - 2)
    assert files(out) == ["good-1.npy", "good-2.npy"]
    assert len([line for line in result.stderr.splitlines() if line.startswith("error: ")]) == len(lines) - 2


def test_fail_fast_stops_at_the_first_failure(tmp_path, media, gen):
    jobs = write_jobs(media / "jobs-fail-fast.jsonl", cg("a"), fp("b", "nope.mp4"), cg("c"), cg("d", steps=0))
    out = tmp_path / "out"
    result = cli(jobs, "--out", out, "--artifacts", gen.artifacts, "--fail-fast")
    assert result.exit_code == 1 and json.loads(result.stdout)["stopped"] is True
    assert [(r["id"], r["status"]) for r in rows(out)] == [("d", "error")]  # invalid lines are found first
    jobs = write_jobs(media / "jobs-fail-fast.jsonl", cg("a"), fp("b", "nope.mp4"), cg("c"))
    result = cli(jobs, "--out", out, "--artifacts", gen.artifacts, "--fail-fast")
    assert result.exit_code == 1
    assert [(r["id"], r["status"]) for r in rows(out)][1:] == [("a", "ok"), ("b", "error")]
    assert files(out) == ["a.npy"]


def test_huge_video_is_refused(tmp_path, media, gen, monkeypatch):
    monkeypatch.setattr(video, "MAX_SIDE", 40)
    jobs = write_jobs(media / "jobs-huge.jsonl", fp("x", "clip.mp4"))
    log = io.StringIO()
    run_batch(jobs, tmp_path / "out", gen, progress=batch.Progress(0, stream=log, tty=False))
    _check_one_error(tmp_path / "out", log.getvalue(), "x", "clip.mp4: video is 48x40 pixels; width and height "
                                                            "must be within [8, 40]")


@pytest.mark.parametrize("code, text", [
    (errno.ENOSPC, "cannot write full.sbs.mp4: No space left on device (errno 28); the output folder's disk is full"),
    (errno.EROFS, "cannot write full.sbs.mp4: Read-only file system (errno 30)"),
    (errno.EACCES, "cannot write full.sbs.mp4: Permission denied (errno 13)"),
], ids=["out of disk space", "read-only file system", "permission denied"])
def test_write_errors_keep_no_partial_output(tmp_path, media, gen, monkeypatch, code, text):
    real = video.write_mp4

    def failing(path, frames, fps=8):
        if ".sbs." in Path(path).name:  # the job's second file: its first one is already in place
            raise OSError(code, os.strerror(code))
        real(path, frames, fps)

    monkeypatch.setattr(video, "write_mp4", failing)
    jobs = write_jobs(media / f"jobs-oserror-{code}.jsonl", fp("full", format="mp4", side_by_side=True), cg("fine"))
    out = tmp_path / "out"
    log = io.StringIO()
    summary = run_batch(jobs, out, gen, progress=batch.Progress(0, stream=log, tty=False))
    assert (summary.ok, summary.failed) == (1, 1)
    _check_one_error(out, log.getvalue(), "full", text)
    assert files(out) == ["fine.npy"]  # full.mp4 was written, then removed with the failed job
    monkeypatch.setattr(video, "write_mp4", real)
    assert run_batch(jobs, out, gen).ok == 1  # a rerun after fixing it does the failed job only
    assert files(out) == ["fine.npy", "full.mp4", "full.sbs.mp4"]


# ----------------------------------------------------------------- problems of the whole run


def test_usage_errors_exit_2(tmp_path, media, gen):
    jobs = write_jobs(tmp_path / "jobs.jsonl", cg("a"))
    a = str(gen.artifacts)
    (tmp_path / "a-file").write_text("x")
    for args, text in [
        ((tmp_path / "missing.jsonl", "--out", tmp_path / "o", "--artifacts", a), "does not exist"),
        ((tmp_path, "--out", tmp_path / "o", "--artifacts", a), "is a directory"),
        ((jobs, "--out", tmp_path / "a-file" / "sub", "--artifacts", a), "cannot create or write the folder"),
        ((jobs, "--artifacts", a), "Missing option '--out'"),
        ((jobs, "--out", tmp_path / "o", "--artifacts", a, "--shard", "4/4"), "--shard must be INDEX/COUNT"),
        ((jobs, "--out", tmp_path / "o", "--artifacts", a, "--shard", "x"), "--shard must be INDEX/COUNT"),
        ((jobs, "--out", tmp_path / "o", "--artifacts", a, "--shard", "-1/2"), "--shard must be INDEX/COUNT"),
        ((jobs, "--out", tmp_path / "o", "--artifacts", a, "--batch-size", "0"), "--batch-size"),
    ]:
        result = cli(*args)
        assert result.exit_code == 2 and text in result.stderr, (args, result.stderr)
    result = cli(jobs, "--out", tmp_path / "a-file", "--artifacts", a)
    assert result.exit_code == 2 and "is a file" in result.stderr
    env = {"JOB_COMPLETION_INDEX": "1", "MAGVIT_NUM_SHARDS": None, "SLURM_ARRAY_TASK_ID": None}
    result = cli(jobs, "--out", tmp_path / "o", "--artifacts", a, env=env)
    assert result.exit_code == 2 and "JOB_COMPLETION_INDEX=1 is set but the number of shards is not" in result.stderr
    env = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": None}
    result = cli(jobs, "--out", tmp_path / "o", "--artifacts", a, env=env)
    assert result.exit_code == 2 and "SLURM_ARRAY_TASK_COUNT" in result.stderr


def _copy(folder, to):
    to.mkdir()
    for p in folder.iterdir():
        (to / p.name).write_bytes(p.read_bytes())
    return to


@pytest.mark.parametrize("damage, text", [
    (lambda d: (d / "vq_decoder.onnx").unlink(), "vq_decoder.onnx is missing (listed in manifest.json)"),
    (lambda d: (d / "transformer_step.onnx").write_bytes((d / "transformer_step.onnx").read_bytes()[:-10]),
     "transformer_step.onnx does not match its manifest"),
    (lambda d: (d / "manifest.json").write_text(
        (d / "manifest.json").read_text().replace('"format_version": 1', '"format_version": 2')),
     "format_version 2 is not supported"),
    (lambda d: (d / "manifest.json").unlink(), "manifest.json is missing"),
])
def test_unusable_artifacts_exit_1_before_any_job(tmp_path, media, artifacts, damage, text):
    broken = _copy(artifacts, tmp_path / "broken")
    damage(broken)
    jobs = write_jobs(tmp_path / "jobs.jsonl", cg("a"), cg("b", steps=0))
    result = cli(jobs, "--out", tmp_path / "out", "--artifacts", broken)
    assert result.exit_code == 1 and text in result.stderr, result.stderr
    assert rows(tmp_path / "out") == [] and files(tmp_path / "out") == []


def test_unknown_provider_is_a_usage_error(tmp_path, artifacts):
    jobs = write_jobs(tmp_path / "jobs.jsonl", cg("a"))
    result = cli(jobs, "--out", tmp_path / "out", "--artifacts", artifacts, "--providers", "quantum")
    assert result.exit_code == 2 and "unknown provider 'quantum'" in result.stderr


# ----------------------------------------------------------------- resuming


def test_rerun_skips_done_jobs_and_redoes_the_rest(tmp_path, media, gen):
    jobs = write_jobs(media / "jobs-rerun.jsonl", cg("a"), cg("b", format="mp4"), fp("c", "nope.mp4"))
    out = tmp_path / "out"
    first = run_batch(jobs, out, gen)
    assert (first.ok, first.failed, first.skipped) == (2, 1, 0)
    again = run_batch(jobs, out, gen)  # done jobs skipped (no new line), the failed one retried
    assert (again.ok, again.failed, again.skipped) == (0, 1, 2) and len(rows(out)) == 4
    (out / "b.mp4").write_bytes(b"tampered")  # an output that no longer matches its sha256
    (out / ".a.npy.0123abcd.tmp").write_bytes(b"left by a killed run")
    (out / ".someone-else.mp4.0123abcd.tmp").write_bytes(b"another shard's")
    third = run_batch(jobs, out, gen)
    assert (third.ok, third.skipped) == (1, 1) and batch.report_view(out)["b"]["status"] == "ok"
    assert not (out / ".a.npy.0123abcd.tmp").exists() and (out / ".someone-else.mp4.0123abcd.tmp").exists()
    write_jobs(jobs, cg("a", steps=2), cg("b", format="mp4"), fp("c", "clip.mp4"))  # a changed, c fixed
    fourth = run_batch(jobs, out, gen)
    assert (fourth.ok, fourth.failed, fourth.skipped) == (2, 0, 1)
    view = batch.report_view(out)
    assert all(row["status"] == "ok" for row in view.values())
    assert outputs_of(out) == {p: sha(out / p) for p in ["a.npy", "b.mp4", "c.npy"]}
    os.utime(media / "clip.mp4")  # the input file changed: c is done again
    assert run_batch(jobs, out, gen).ok == 1


def test_torn_report_line_is_cut_off(tmp_path, media, gen):
    jobs = write_jobs(media / "jobs-torn.jsonl", cg("a"), cg("b"))
    out = tmp_path / "out"
    run_batch(jobs, out, gen)
    report = out / "report.jsonl"
    lines = report.read_bytes().splitlines(keepends=True)
    report.write_bytes(lines[0] + lines[1][:25])  # as if killed while appending b's line,
    (out / ".b.outputs").write_text('["b.npy"]')  # which leaves b's claim on its outputs
    assert run_batch(jobs, out, gen).ok == 1
    assert [json.loads(line)["id"] for line in report.read_bytes().splitlines()] == ["a", "b"]
    assert files(out) == ["a.npy", "b.npy"]


def test_second_process_on_the_same_shard_is_refused(tmp_path, media, gen):
    jobs = write_jobs(media / "jobs-lock.jsonl", cg("a"))
    out = tmp_path / "out"
    out.mkdir()
    holder = batch.ReportWriter(out / "report.jsonl")
    try:
        with pytest.raises(batch.RunError, match="is being written by another run of this shard"):
            run_batch(jobs, out, gen)
    finally:
        holder.close()


KILL_JOBS = [cg(f"k{i:02d}", steps=3, format=("mp4", "gif", "png", "npy")[i % 4], seed=i, **{"class": i % 10})
             for i in range(23)] + [fp("kf", steps=3, format="mp4", side_by_side=True)]


def test_kill_9_at_any_moment_then_rerun(tmp_path, media, artifacts):
    """kill -9 during a write, after a report line, in the middle of a job and during start-up;
    then a rerun: every job exactly once in the report, outputs match, nothing else is left."""
    jobs = write_jobs(media / "jobs-kill.jsonl", *KILL_JOBS)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "magvit_onnx.cli", "run", str(jobs), "--out", str(out), "--artifacts",
               str(artifacts), "--batch-size", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def ok_lines():
        return sum(r["status"] == "ok" for r in rows(out)) if out.exists() else 0

    def writing():
        return out.exists() and any(name.endswith(".tmp") for name in os.listdir(out))

    def after(seconds, condition=lambda: True):
        """True from `seconds` after `condition` first holds."""
        since = []

        def check():
            if not since and condition():
                since.append(time.monotonic())
            return bool(since) and time.monotonic() - since[0] >= seconds
        return check

    def start_and_kill(condition, limit=120.0):
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + limit
        while process.poll() is None and not condition() and time.monotonic() < deadline:
            time.sleep(0.002)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        return process.wait()

    assert start_and_kill(lambda: ok_lines() >= 1) == -signal.SIGKILL  # right after the first report line
    assert 0 < ok_lines() < len(KILL_JOBS)
    # Best effort (on a fast machine a run may finish first; then the rest has nothing to do):
    start_and_kill(writing)                                     # while an output is being written
    before = ok_lines()
    start_and_kill(after(0.05, lambda: ok_lines() > before))    # during the next job
    start_and_kill(after(0.5))                                  # during start-up
    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    all_rows = rows(out)
    assert all(r["status"] == "ok" for r in all_rows)
    ids = [r["id"] for r in all_rows]
    assert sorted(ids) == sorted(job["id"] for job in KILL_JOBS)  # every job exactly once
    listed = outputs_of(out)
    assert {p: sha(out / p) for p in listed} == listed
    assert files(out) == sorted(listed)  # nothing else: no temporary, no partial file
    assert all(raw.endswith(b"\n") for raw in [p.read_bytes() for p in batch.report_files(out)])
    summary = json.loads(final.stdout)
    assert summary["ok"] + summary["skipped"] == len(KILL_JOBS) and summary["failed"] == 0


# ----------------------------------------------------------------- shards


SHARD_JOBS = [cg(f"s{i:02d}", seed=i, **{"class": i % 10}) for i in range(16)] + ["not json", {"id": "bad"}]


def test_shards_partition_the_jobs_and_equal_one_machine(tmp_path, media, gen):
    jobs = write_jobs(media / "jobs-shards.jsonl", *SHARD_JOBS)
    single = tmp_path / "single"
    run_batch(jobs, single, gen, batch_size=3)
    sharded = tmp_path / "sharded"
    seen = []
    for index in range(3):
        summary = run_batch(jobs, sharded, gen, batch_size=3, shard=(index, 3))
        assert summary.report == str(sharded / f"report.shard-{index:05d}-of-00003.jsonl")
        seen.append([(r["id"], r["line"]) for r in batch.read_report(Path(summary.report))])
    flat = [key for shard in seen for key in shard]
    assert len(flat) == len(set(flat)) == len(SHARD_JOBS)  # disjoint, and the union is every line
    assert all(seen)  # every shard got some
    assert outputs_of(sharded) == outputs_of(single)
    assert run_batch(jobs, sharded, gen, shard=(1, 3)).ok == 0  # resumes per shard


def test_shard_from_environment(tmp_path, media, gen):
    assert batch.shard_from_env({}) == (0, 1)
    assert batch.shard_from_env({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "4"}) == (2, 4)
    assert batch.shard_from_env({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "4",
                                 "SLURM_ARRAY_TASK_MIN": "3"}) == (2, 4)
    assert batch.shard_from_env({"JOB_COMPLETION_INDEX": "3"}, num_shards=8) == (3, 8)
    for env, count in [({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4"}, None),
                       ({"JOB_COMPLETION_INDEX": "8"}, 8), ({"JOB_COMPLETION_INDEX": "1"}, None), ({}, 4)]:
        with pytest.raises(ValueError):
            batch.shard_from_env(env, count)
    assert batch.parse_shard(" 3 / 16 ") == (3, 16)
    jobs = write_jobs(media / "jobs-env.jsonl", *SHARD_JOBS[:6])
    for env, name in [({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2", "JOB_COMPLETION_INDEX": None},
                       "report.shard-00001-of-00002.jsonl"),
                      ({"SLURM_ARRAY_TASK_ID": None, "JOB_COMPLETION_INDEX": "0", "MAGVIT_NUM_SHARDS": "2"},
                       "report.shard-00000-of-00002.jsonl")]:
        out = tmp_path / name
        result = cli(jobs, "--out", out, "--artifacts", gen.artifacts, env=env)
        assert result.exit_code == 0 and json.loads(result.stdout)["report"] == str(out / name)
    result = cli(jobs, "--out", tmp_path / "explicit", "--artifacts", gen.artifacts, "--shard", "0/1",
                 env={"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2"})
    assert json.loads(result.stdout)["ok"] == 6  # --shard wins over the environment


def test_slurm_and_kubernetes_examples_use_the_shard_variables():
    slurm = (ROOT / "scripts" / "slurm_array.sh").read_text()
    assert "#SBATCH --array=" in slurm and "magvit-onnx run" in slurm
    k8s = (ROOT / "scripts" / "k8s_indexed_job.yaml").read_text()
    assert "completionMode: Indexed" in k8s and "MAGVIT_NUM_SHARDS" in k8s and "magvit-onnx" in k8s
    subprocess.run(["bash", "-n", str(ROOT / "scripts" / "slurm_array.sh")], check=True)


# ----------------------------------------------------------------- pieces


def test_seed_streams_match_one_generator_per_input():
    streams = SeedStreams([1, 2], 2)
    draws = streams.integers(0, 100, (4, 3))
    np.testing.assert_array_equal(draws[:2], np.random.default_rng(1).integers(0, 100, (2, 3)))
    np.testing.assert_array_equal(draws[2:], np.random.default_rng(2).integers(0, 100, (2, 3)))
    with pytest.raises(ValueError, match="does not split"):
        streams.random((3, 2))


def test_progress_bar_on_a_terminal_and_plain_lines_otherwise():
    stream = io.StringIO()
    bar = batch.Progress(4, stream=stream, tty=True)
    bar.advance(2)
    bar.message("error: job 'x' (line 1): broken")
    bar.advance(2, failed=True)
    bar.close()
    text = stream.getvalue()
    assert "\r" in text and "4/4 videos" in text and "videos/s" in text and "ETA" in text and "1 failed" in text
    assert "error: job 'x' (line 1): broken\n" in text
    stream = io.StringIO()
    plain = batch.Progress(4, stream=stream, tty=False, interval=0)
    plain.advance(1)
    assert stream.getvalue().startswith("progress: 1/4 videos") and "\r" not in stream.getvalue()


