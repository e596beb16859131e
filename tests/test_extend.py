"""Beyond one model-sized clip (issue: long videos, stop motion and panoramas): window plans,
blended decoding, parity with the PyTorch reference, the Generator's checks, and seams on
the shipped default model."""
import numpy as np
import pytest

from helpers import run_without_torch, small_config
from magvit_onnx import Generator
from magvit_onnx.export.exporter import seeded_random_models
from magvit_onnx.export.reference import reference_pipeline
from magvit_onnx.paths import default_artifacts
from magvit_onnx.runtime import extend
from magvit_onnx.runtime.pipeline import Pipeline


# ----------------------------------------------------------------------------- plans

def test_frame_windows_overlap_by_the_context():
    # 16 latent frames, windows of 4 keeping 1: 4 + 3 + 3 + 3 + 3 = 16
    assert extend.frame_windows(16, 4, 1) == [(0, 0), (3, 1), (6, 1), (9, 1), (12, 1)]
    # 11 with a context of 2: the last window is moved back to end at 11 and knows 3 frames
    assert extend.frame_windows(11, 4, 2) == [(0, 0), (2, 2), (4, 2), (6, 2), (7, 3)]
    assert extend.frame_windows(4, 4, 1) == [(0, 0)]


def test_panorama_windows_alternate_and_cover_the_canvas():
    plan = extend.panorama_windows(48, 16)  # the input at 16..31
    assert plan == [(24, 0, 8), (8, 8, 16), (32, 0, 8), (0, 8, 16)]
    known = np.zeros(48, bool)
    known[16:32] = True
    for start, lo, hi in plan:  # every window's known part is known, and it fills the rest
        assert known[start + lo:start + hi].all()
        assert not known[start:start + lo].any() and not known[start + hi:start + 16].any()
        known[start:start + 16] = True
    assert known.all()
    assert extend.panorama_windows(20, 16) == [(4, 0, 14), (0, 2, 16)]


def test_window_starts_cover_the_axis_a_quarter_window_apart():
    assert extend.window_starts(4, 4) == [0]
    assert extend.window_starts(7, 4) == [0, 1, 2, 3]
    assert extend.window_starts(48, 16) == [0, 4, 8, 12, 16, 20, 24, 28, 32]
    assert extend.window_starts(23, 16) == [0, 4, 7]


def test_blended_decoding_is_a_partition_of_unity():
    """Windows that each decode to a constant give that constant back: the triangular
    weights of overlapping windows are normalised everywhere (a seam would show as a
    wrong value where windows meet)."""
    def fake(tokens):  # 4 pixels per token in t, h and w; value = the window's first token
        return np.broadcast_to(tokens[:, :1, :1, :1, None].astype(np.float32),
                               (len(tokens), 4 * tokens.shape[1], 4 * tokens.shape[2], 4 * tokens.shape[3], 3))
    tokens = np.full((2, 9, 4, 11), 7)
    out = extend.decode(fake, tokens, (4, 4, 4))
    assert out.shape == (2, 36, 16, 44, 3)
    np.testing.assert_allclose(out, 7.0, rtol=1e-6)
    model_sized = np.arange(2 * 4 * 4 * 4).reshape(2, 4, 4, 4)
    np.testing.assert_array_equal(extend.decode(fake, model_sized, (4, 4, 4)), fake(model_sized))


# ----------------------------------------------------------------------------- parity (small model)

@pytest.fixture(scope="module")
def pipelines(small_artifacts):
    config = small_config()
    vq, transformer = seeded_random_models(config, seed=0)
    return Pipeline.from_artifacts(small_artifacts(0), providers="cpu"), reference_pipeline(config, vq, transformer)


def clips(batch=1, frames=8, seed=0):
    return np.random.default_rng(seed).random((batch, frames, 32, 32, 3), dtype=np.float32)


LONG_TASKS = {
    "long frame prediction": lambda p: extend.frame_prediction_tokens(p, "frame_prediction", clips(2), num_frames=28,
                                                                      seed=[4, 5], steps=3),
    "long class frame prediction": lambda p: extend.frame_prediction_tokens(
        p, "frame_prediction_c", clips(), [3], num_frames=17, seed=1, steps=3, num_videos=2, guidance_scale=1.5),
    "stop motion": lambda p: extend.interpolation_tokens(p, clips(frames=4), seed=2, steps=3),
    "panorama": lambda p: extend.panorama_tokens(p, "outpainting_v", clips(), axis=2, size=11, seed=3, steps=3),
    "tall panorama": lambda p: extend.panorama_tokens(p, "outpainting_h", clips(), axis=1, size=8, seed=3, steps=3),
}


@pytest.mark.parametrize("name", LONG_TASKS)
def test_long_tasks_token_identical_to_the_reference(pipelines, name):
    """Every window is the short tasks' transformer call (`Pipeline.complete`) with the same
    random source, conditioned in tokens: ONNX Runtime and the PyTorch reference agree
    token for token, as for the short tasks."""
    ours, ref = pipelines
    a, b = LONG_TASKS[name](ours), LONG_TASKS[name](ref)
    np.testing.assert_array_equal(a, b)
    assert a.shape[1:] != ours.latent_shape  # a grid beyond one window was generated


def test_long_tasks_start_with_the_short_call(pipelines):
    """num_frames = T is the ordinary call; a longer one keeps its first window; two key
    images are the official interpolation of the clip they start and end."""
    p = pipelines[0]
    video = clips()
    short = p.generate_tokens("frame_prediction", video, seed=9, steps=3, cond_frames=2)
    same = extend.frame_prediction_tokens(p, "frame_prediction", video, num_frames=8, seed=9, steps=3,
                                          condition={"cond_frames": 2})
    longer = extend.frame_prediction_tokens(p, "frame_prediction", video, num_frames=20, seed=9, steps=3,
                                            condition={"cond_frames": 2})
    np.testing.assert_array_equal(same, short)
    np.testing.assert_array_equal(longer[:, :2], short)
    assert longer.shape == (1, 5, 4, 4)
    keys = video[:, [0, 7]]
    np.testing.assert_array_equal(extend.interpolation_tokens(p, keys, seed=9, steps=3),
                                  p.generate_tokens("frame_interpolation", video, seed=9, steps=3))


def test_panorama_keeps_the_input_tokens(pipelines):
    p = pipelines[0]
    video = clips()
    wide = extend.panorama_tokens(p, "outpainting_v", video, axis=2, size=12, seed=0, steps=3)
    np.testing.assert_array_equal(wide[:, :, :, 4:8], p.encode(video))


# ----------------------------------------------------------------------------- Generator

@pytest.fixture(scope="module")
def gen(small_artifacts):
    return Generator(small_artifacts(0))


def test_generator_outputs_and_batching(gen):
    video = (clips(2) * 255).astype(np.uint8)
    long = gen.generate("FP", video, num_frames=22, seed=[1, 2], steps=2)
    assert long.shape == (2, 22, 32, 32, 3)
    np.testing.assert_array_equal(gen.generate_tokens("FP", video, num_frames=22, seed=[1, 2], steps=2)[1:],
                                  gen.generate_tokens("FP", video[1:], num_frames=22, seed=[2], steps=2))
    assert gen.generate("FI", video[:, :3], seed=0, steps=2).shape == (2, 16, 32, 32, 3)  # 3 keys, 2 x 8
    assert gen.generate("OPV", video[0], width=48, seed=0, steps=2, num_videos=2).shape == (2, 8, 32, 48, 3)
    assert gen.generate("OPH", video[0], height=40, seed=0, steps=2).shape == (1, 8, 40, 32, 3)
    # the model's own size is the ordinary task
    np.testing.assert_array_equal(gen.generate("OPV", video[0], width=32, seed=0, steps=2),
                                  gen.generate("OPV", video[0], seed=0, steps=2))
    assert gen.decode(gen.generate_tokens("FP", video[0], num_frames=16, seed=0, steps=2)).shape == (1, 16, 32, 32, 3)


@pytest.mark.parametrize("call,match", [
    (lambda g, v: g.generate("FP", v, num_frames=4), r"num_frames must be an integer >= 8, got 4 \(valid: 8 .. 1024\)"),
    (lambda g, v: g.generate("FP", v, num_frames=20.0), "num_frames must be an integer"),
    (lambda g, v: g.generate("FP", v, num_frames=5000), r"num_frames must be an integer <= 1024, got 5000 \(valid: 8 .. 1024\)"),
    (lambda g, v: g.generate("FI", v, num_frames=16), "num_frames applies to frame_prediction and frame_prediction_c"),
    (lambda g, v: g.generate("CG", class_id=1, num_frames=16), "num_frames applies to frame_prediction"),
    (lambda g, v: g.generate("OPV", v, width=34), r"width must be a multiple of 8 \(pixels per token\) in 32 .. 512"),
    (lambda g, v: g.generate("OPV", v, width=16), r"width must be a multiple of 8 .* got 16"),
    (lambda g, v: g.generate("OPH", v, height=64.0), r"height must be a multiple of 8 .* got 64.0"),
    (lambda g, v: g.generate("OPH", v, width=64), "width applies to outpainting_v only"),
    (lambda g, v: g.generate("OPV", v, height=64), "height applies to outpainting_h only"),
    (lambda g, v: g.generate("OPV", v, width=64, cond_padding="constant"), "width takes no"),
    (lambda g, v: g.generate("FI", v[:, :3], cond_frames=1), "key images take no"),
    (lambda g, v: g.generate("FI", v[:, :1]), "and key images for frame interpolation"),
    (lambda g, v: g.generate("FP", v, num_frames=16, replace_condition_pixels=True), "leave it off with num_frames"),
    (lambda g, v: g.generate("FI", v[:, :3], replace_condition_pixels=True), "leave it off with key images"),
    (lambda g, v: g.decode(np.zeros((1, 2, 4, 1000), np.int64)), r"up to 256, 64, 64"),
])
def test_bad_extents_are_named(gen, call, match):
    with pytest.raises(ValueError, match=match):
        call(gen, clips())


def test_done_when_on_the_default_model_without_torch(tmp_path):
    """The issue's bar: a 64-frame frame prediction, stop motion from two images and a 3x
    wide panorama, from the Generator and from a JOBS file, on the shipped model, with any
    import of torch failing (1 step each: the windows are what is checked, not quality)."""
    code = f"""
import io, json, sys
from pathlib import Path
import numpy as np
import magvit_onnx
from magvit_onnx import batch, video as videoio
g = magvit_onnx.Generator()
frames = (np.random.default_rng(0).random((16, 64, 64, 3)) * 255).astype(np.uint8)
print(g.generate("FP", frames[:1], num_frames=64, seed=0, steps=1).shape)
print(g.generate("FI", frames[[0, 15]], seed=0, steps=1).shape)
print(g.generate("OPV", frames, width=192, seed=0, steps=1).shape)
d = Path({str(tmp_path)!r})
videoio.write_gif(d / "clip.gif", frames)
videoio.write_png(d / "a.png", frames[0])
videoio.write_png(d / "b.png", frames[15])
jobs = [{{"id": "long", "task": "FP", "input": "clip.gif", "num_frames": 64}},
        {{"id": "stop", "task": "FI", "keys": ["a.png", "b.png"]}},
        {{"id": "pano", "task": "OPV", "input": "clip.gif", "width": 192}}]
(d / "jobs.jsonl").write_text("".join(json.dumps({{**j, "steps": 1, "format": "gif"}}) + "\\n" for j in jobs))
summary = batch.run(d / "jobs.jsonl", d / "out", log=lambda line: None,
                    progress=batch.Progress(0, stream=io.StringIO(), tty=False))
print(summary.ok, summary.failed)
print(videoio.read_video(d / "out" / "long.gif", num_frames=64, size=(64, 64)).shape)
print(videoio.read_video(d / "out" / "pano.gif", num_frames=16, size=(64, 192)).shape)
assert "torch" not in sys.modules
"""
    result = run_without_torch(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[:6] == ["(1, 64, 64, 64, 3)", "(1, 16, 64, 64, 3)", "(1, 16, 64, 192, 3)",
                                             "3 0", "(64, 64, 64, 3)", "(16, 64, 192, 3)"]


# ----------------------------------------------------------------------------- seams (default model)

@pytest.fixture(scope="module")
def default_generator():
    return Generator(default_artifacts(), intra_op_num_threads=1)


def demo_inputs(generator, count):
    from magvit_onnx.demo import demo_clips
    return demo_clips(count, generator.video_shape)[0]


def changes(video: np.ndarray, axis: int) -> np.ndarray:
    """Mean absolute change between neighbouring frames (axis 1) or columns (axis 3) of uint8 video."""
    other = tuple(a for a in range(video.ndim) if a != axis)
    return np.abs(np.diff(video.astype(np.float32) / 255, axis=axis)).mean(axis=other)


def test_window_seams_of_long_frame_prediction_are_not_jumps(default_generator):
    """At the frame where a window's new frames begin, the frame-to-frame change is at most
    the largest change between frames inside windows: windows join without a jump. (Each
    window decoded alone and its new frames appended, the seams were 1.6-5.5x that.)"""
    g = default_generator
    frames, latent = g.video_shape[0], g.manifest["latent_shape"][0]
    per_latent = frames // latent
    for i, clip in enumerate(demo_inputs(g, 2)):
        video = g.generate("FP", clip, num_frames=3 * frames, seed=i)
        plan = extend.frame_windows(3 * latent, latent, extend.trained_context(g.manifest))
        seams = [per_latent * (start + known) - 1 for start, known in plan[1:]]
        d = changes(video, 1)
        assert np.max(d[seams]) <= np.max(np.delete(d, seams)), (d[seams], np.delete(d, seams).max())


def test_panorama_seams_are_not_jumps(default_generator):
    """The same for a 3x wide panorama: the change between neighbouring columns where a
    window's new columns begin is at most the largest change inside windows' new parts."""
    g = default_generator
    width, latent_w = g.video_shape[2], g.manifest["latent_shape"][2]
    per_token = width // latent_w
    clip = demo_inputs(g, 1)[0]
    video = g.generate("OPV", clip, width=3 * width, seed=0)
    seams = []
    for start, lo, hi in extend.panorama_windows(3 * latent_w, latent_w):
        edge = start + hi if lo == 0 else start + lo  # first new column (right) / last new one (left)
        seams.append(per_token * edge - 1)
    d = changes(video, 3)
    assert np.max(d[seams]) <= np.max(np.delete(d, seams)), (d[seams], np.delete(d, seams).max())


# ----------------------------------------------------------------------------- JOBS (magvit-onnx run)

def run_jobs(tmp_path, gen, *lines):
    import io
    import json

    from magvit_onnx import batch

    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out"
    summary = batch.run(jobs, out, artifacts=gen.artifacts, generator_factory=lambda: gen, log=lambda line: None,
                        progress=batch.Progress(0, stream=io.StringIO(), tty=False))
    report = {row["id"]: row for path in batch.report_files(out) for row in batch.read_report(path)}
    return summary, report, out


def test_jobs_make_long_clips_stop_motion_and_panoramas(tmp_path, gen):
    """num_frames, keys and width in a JOBS file give what the Generator gives."""
    from magvit_onnx import video as videoio

    frames = (clips(frames=8, seed=5)[0] * 255).astype(np.uint8)
    videoio.write_gif(tmp_path / "clip.gif", frames)
    for i in (0, 4, 7):
        videoio.write_png(tmp_path / f"key{i}.png", frames[i])
    summary, report, out = run_jobs(
        tmp_path, gen,
        {"id": "long", "task": "FP", "input": "clip.gif", "num_frames": 20, "seed": 1, "steps": 2, "format": "npy"},
        {"id": "long-mp4", "task": "FP", "input": "clip.gif", "num_frames": 20, "seed": 1, "steps": 2},
        {"id": "stop", "task": "FI", "keys": ["key0.png", "key4.png", "key7.png"], "seed": 2, "steps": 2,
         "format": "png"},
        {"id": "wide", "task": "OPV", "input": "clip.gif", "width": 64, "seed": 3, "steps": 2, "format": "npy"})
    assert summary.ok == 4 and summary.failed == 0, report
    clip = videoio.read_video(tmp_path / "clip.gif", num_frames=8, size=(32, 32))
    np.testing.assert_array_equal(np.load(out / "long.npy"),
                                  gen.generate_tokens("FP", clip, num_frames=20, seed=[1], steps=2))
    assert videoio.read_video(out / "long-mp4.mp4", num_frames=20, size=(32, 32)).shape == (20, 32, 32, 3)
    stop = np.stack([videoio.read_video(out / f"stop.f{t:03d}.png", num_frames=1, size=(32, 32))[0]
                     for t in range(16)])
    np.testing.assert_array_equal(stop, gen.generate("FI", frames[[0, 4, 7]], seed=[2], steps=2)[0])
    np.testing.assert_array_equal(np.load(out / "wide.npy"),
                                  gen.generate_tokens("OPV", clip, width=64, seed=[3], steps=2))


@pytest.mark.parametrize("line, text", [
    ({"task": "FI", "input": "clip.gif", "num_frames": 16}, "num_frames applies to frame_prediction and"),
    ({"task": "FP", "input": "clip.gif", "num_frames": True}, "num_frames must be an integer >= 8, got True"),
    ({"task": "OPV", "input": "clip.gif", "width": 60}, "width must be a multiple of 8 (pixels per token) in 32 .. 512, got 60"),
    ({"task": "FP", "keys": ["a.png", "b.png"]}, "keys (key images) apply to frame_interpolation only"),
    ({"task": "FI", "keys": ["a.png", "b.png"], "input": "clip.gif"}, "give keys (key images) or input, not both"),
    ({"task": "FI", "keys": ["a.png"]}, "keys must be a list of 2 .. 7 image paths"),
    ({"task": "FP", "input": "clip.gif", "num_frames": 16, "side_by_side": True}, "side_by_side shows model-sized"),
    ({"task": "OPV", "input": "clip.gif", "width": 64, "replace_condition_pixels": True},
     "replace_condition_pixels applies to model-sized outputs only"),
    ({"task": "FI", "keys": ["nope.png", "b.png"]}, "nope.png: no such file"),
])
def test_bad_extent_jobs_get_one_error_line(tmp_path, gen, line, text):
    summary, report, out = run_jobs(tmp_path, gen, {"id": "x", "steps": 1, **line})
    assert summary.failed == 1 and text in report["x"]["error"] and "\n" not in report["x"]["error"], report
    assert [p.name for p in out.iterdir() if not p.name.startswith("report")] == []


def test_demo_writes_a_long_clip_stop_motion_and_a_panorama(tmp_path, gen):
    from magvit_onnx.extended_demo import write_extended

    summary = write_extended(gen, (clips()[0] * 255).astype(np.uint8), tmp_path, steps=1, log=lambda line: None)
    assert {k: v["shape"] for k, v in summary.items()} == {
        "long_frame_prediction": [32, 32, 32, 3], "stop_motion": [16, 32, 32, 3], "panorama": [8, 32, 96, 3]}
    for name in summary:
        assert (tmp_path / f"{name}.mp4").stat().st_size > 0 and (tmp_path / f"{name}.gif").stat().st_size > 0


def test_demo_skips_what_the_model_has_no_task_for(tmp_path, gen):
    """Old: a model without frame_interpolation failed the demo after every other output was written."""
    from magvit_onnx.extended_demo import write_extended

    class WithoutInterpolation:
        tasks = [name for name in gen.tasks if name != "frame_interpolation"]

        def __getattr__(self, name):
            return getattr(gen, name)

    lines = []
    summary = write_extended(WithoutInterpolation(), (clips()[0] * 255).astype(np.uint8), tmp_path, steps=1,
                             log=lines.append)
    assert list(summary) == ["long_frame_prediction", "panorama"]
    assert "stop_motion: skipped (the model has no frame_interpolation task)" in lines


def test_key_images_of_the_wrong_size_are_named(gen):
    with pytest.raises(ValueError, match=r"key images: T may be 2..7, got \(1, 3, 16, 16, 3\)"):
        gen.generate("FI", np.zeros((1, 3, 16, 16, 3), np.uint8))


@pytest.mark.parametrize("recorded, context", [(None, 1), ("1", 1), ("1,5", 2), ("5", 2), ("1,9", 3),
                                               ("1,15", 3), ("junk", 1)])
def test_later_windows_continue_from_what_the_model_was_trained_on(recorded, context):
    """16 frames, 4 latent frames: a 5-frame condition reaches 2 latent frames, at most 3."""
    training = {} if recorded is None else {"fp_cond_frames": recorded}
    manifest = {"video": {"shape": [16, 64, 64]}, "latent_shape": [4, 16, 16], "model_card": {"training": training}}
    assert extend.trained_context(manifest) == context
    assert extend.trained_context({**manifest, "model_card": None}) == 1


def test_generator_continues_with_the_trained_context(gen, monkeypatch):
    video = clips()
    trained = extend.frame_prediction_tokens(gen._pipeline, "frame_prediction", video, num_frames=24, seed=[0],
                                             steps=2, context=1)
    np.testing.assert_array_equal(gen.generate_tokens("FP", video, num_frames=24, seed=0, steps=2), trained)
    # the small model has 2 latent frames, so its context is 1 whatever it was trained on; a given
    # cond_latent_frames is used as it is
    calls = []
    monkeypatch.setattr(extend, "trained_context", lambda manifest: calls.append(manifest) or 1)
    gen.generate_tokens("FP", video, num_frames=16, seed=0, steps=1)
    gen.generate_tokens("FP", video, num_frames=16, seed=0, steps=1, cond_latent_frames=1)
    assert len(calls) == 1


def test_long_grids_decode_a_few_rows_at_a_time(gen, monkeypatch):
    """A grid 16x the model's decodes at most 64 / 16 = 4 rows per blended decode, so its
    float32 pixels stay those of 64 model-sized clips (1,024 frames x 64 videos was 3 GB)."""
    rows = []
    decode = gen._pipeline.decode
    monkeypatch.setattr(gen._pipeline, "decode", lambda tokens: rows.append(len(tokens)) or decode(tokens))
    out = gen.decode(np.zeros((9, 32, 4, 4), np.int64))  # 16 latent grids of the model's [2, 4, 4] each
    assert out.shape == (9, 128, 32, 32, 3) and rows == [4, 4, 1]
