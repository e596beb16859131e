"""`magvit_onnx.Generator`: all ten tasks, validation with clear errors, threads, no torch."""
import threading

import numpy as np
import pytest

from helpers import run_without_torch
from magvit_onnx import Generator
from magvit_onnx.runtime.artifacts import ArtifactError
from magvit_onnx.runtime.tasks import TASKS


@pytest.fixture(scope="module")
def folder(small_artifacts):
    return small_artifacts(1)


@pytest.fixture(scope="module")
def gen(folder):
    return Generator(folder)


def clip(batch=None, seed=0):
    shape = (8, 32, 32, 3) if batch is None else (batch, 8, 32, 32, 3)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_facts(gen):
    assert gen.tasks == [*TASKS, "inpainting"]  # any region, through the official inpainting token
    assert gen.classes == dict.fromkeys(range(10))  # a random init: no names
    info = gen.info()
    assert info["classes"] == [{"id": i, "name": None} for i in range(10)]
    assert info["providers"] == ["CPUExecutionProvider"] and info["video_shape"] == [8, 32, 32]
    assert info["preset"] == "tiny" and info["precision"] == "fp32" and info["num_classes"] == 10


@pytest.mark.parametrize("task", list(TASKS))
def test_every_task(gen, task):
    kwargs = {"class_id": 2} if TASKS[task].class_conditional else {}
    if TASKS[task].needs_video:
        kwargs["video"] = clip()
    out = gen.generate(task, seed=0, steps=3, **kwargs)
    assert out.shape == (1, 8, 32, 32, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, gen.generate(task, seed=0, steps=3, **kwargs))  # seeded


def test_batches_num_videos_and_float_input(gen):
    out = gen.generate("FP", video=clip(2), num_videos=3, seed=1, steps=2)
    assert out.shape == (6, 8, 32, 32, 3)
    as_float = gen.generate("FP", video=clip(2).astype(np.float32) / 255, num_videos=3, seed=1, steps=2)
    np.testing.assert_array_equal(out, as_float)
    assert gen.generate("CG", class_id=[1, 2, 3], seed=0, steps=2).shape[0] == 3
    assert gen.generate("CFP", video=clip(2), class_id=[0, 9], seed=0, steps=2).shape[0] == 2


def test_frame_prediction_takes_a_still_image_or_a_short_clip(gen):
    """Old code refused anything but T frames, though FP reads only the first frame."""
    full = clip()
    padded = np.concatenate([full[:5], np.repeat(full[4:5], 3, axis=0)])
    expected = gen.generate("FP", video=padded, seed=3, steps=2)
    np.testing.assert_array_equal(gen.generate("FP", video=full[:5], seed=3, steps=2), expected)
    still = np.repeat(full[:1], 8, axis=0)
    for image in (full[:1], full[None, :1]):  # [1, H, W, 3] and [B, 1, H, W, 3]
        np.testing.assert_array_equal(gen.generate("FP", video=image, seed=3, steps=2),
                                      gen.generate("FP", video=still, seed=3, steps=2))
    assert gen.generate("CFP", video=full[:1], class_id=4, seed=0, steps=2).shape == (1, 8, 32, 32, 3)
    with pytest.raises(ValueError, match=r"T may be 2\.\.8, got \(1, 1, 32, 32, 3\)"):
        gen.generate("FP", video=full[:1], cond_frames=2, steps=2)
    with pytest.raises(ValueError, match=r"got \(1, 5, 32, 32, 3\); only frame prediction \(FP, CFP\) and key "):
        gen.generate("OPC", video=full[:5], steps=2)


@pytest.mark.parametrize("task", ["FP", "FI", "OPC", "OPH", "OPD", "IPC", "IPD"])
def test_replace_condition_pixels_keeps_the_known_region_exactly(gen, task):
    """The official option (off by default): without it the decoder redraws the known pixels."""
    from magvit_onnx.runtime.tasks import condition

    video = clip(2, seed=5)
    mask = np.broadcast_to(condition(task, video.astype(np.float32) / 255, (2, 4, 4))["video_mask"],
                           video.shape)
    mask = np.repeat(mask, 2, axis=0)  # num_videos=2: each input twice
    inputs = np.repeat(video, 2, axis=0)
    kept = gen.generate(task, video=video, num_videos=2, seed=1, steps=2, replace_condition_pixels=True)
    redrawn = gen.generate(task, video=video, num_videos=2, seed=1, steps=2)
    np.testing.assert_array_equal(kept[mask], inputs[mask])
    np.testing.assert_array_equal(kept[~mask], redrawn[~mask])  # the rest is the decoder's, unchanged
    assert (redrawn[mask] != inputs[mask]).any()
    as_float = gen.generate(task, video=video.astype(np.float32) / 255, num_videos=2, seed=1, steps=2,
                            replace_condition_pixels=True)
    np.testing.assert_array_equal(as_float, kept)


def test_replace_condition_pixels_needs_a_task_with_input_and_a_bool(gen):
    with pytest.raises(ValueError, match="replace_condition_pixels applies to tasks with an input video"):
        gen.generate("CG", class_id=1, replace_condition_pixels=True)
    with pytest.raises(ValueError, match="replace_condition_pixels must be True or False, got 1"):
        gen.generate("FP", video=clip(), replace_condition_pixels=1)
    still = gen.generate("FP", video=clip()[:1], seed=0, steps=2, replace_condition_pixels=True)
    np.testing.assert_array_equal(still[0, 0], clip()[0])


def test_encode_decode(gen):
    tokens = gen.encode(clip())
    assert tokens.shape == (1, 2, 4, 4) and tokens.dtype == np.int64
    video = gen.decode(tokens)
    assert video.shape == (1, 8, 32, 32, 3) and video.dtype == np.uint8


@pytest.mark.parametrize("call,match", [
    (lambda g: g.generate("super_resolution", video=clip()), "valid tasks are frame_prediction"),
    (lambda g: g.generate("FP"), r"needs an input video of shape \[B, 8, 32, 32, 3\]"),
    (lambda g: g.generate("CG", video=clip(), class_id=1), "takes no input video"),
    (lambda g: g.generate("CG"), "needs class_id: valid classes are 0..9"),
    (lambda g: g.generate("CG", class_id=10), "out of range: valid classes are 0..9"),
    (lambda g: g.generate("CG", class_id=1.5), "class_id must be an int"),
    (lambda g: g.generate("FP", video=clip(), class_id=1), "takes no class"),
    (lambda g: g.generate("CFP", video=clip(2), class_id=[1, 2, 3]), "3 classes for 2 input videos"),
    (lambda g: g.generate("FP", video=clip()[:, :16]), r"video must be shaped \[B, 8, 32, 32, 3\]"),
    (lambda g: g.generate("FP", video=clip()[..., :1]), "video must be shaped"),
    (lambda g: g.generate("FP", video=clip().astype(np.int32)), "uint8 .* or float in"),
    (lambda g: g.generate("FP", video=clip().astype(np.float32)), r"float video must be finite and in \[0, 1\]"),
    (lambda g: g.generate("FP", video=clip(), steps=0), "steps must be an integer >= 1"),
    (lambda g: g.generate("FP", video=clip(), seed=1.5), "seed must be an integer >= 0"),
    (lambda g: g.generate("FP", video=clip(), num_videos=0), "num_videos must be an integer >= 1"),
    (lambda g: g.generate("FP", video=clip(), sampling_temperature=0), "sampling_temperature must be a finite number > 0"),
    (lambda g: g.generate("FP", video=clip(), mask_temperature=-1.0), "mask_temperature must be"),
    (lambda g: g.generate("FP", video=clip(), top_p=1.5), r"top_p must be a number in \(0, 1\]"),
    (lambda g: g.generate("FP", video=clip(), top_k=-1), "top_k must be an integer >= 0"),
    (lambda g: g.generate("FP", video=clip(), top_k=5, top_p=0.9), "cannot both be set"),
    (lambda g: g.generate("FP", video=clip(), schedule="linear"), "valid methods are cosine"),
    (lambda g: g.generate("FP", video=clip(), cond_region="rectangle_central"), "valid overrides are cond_frames"),
    (lambda g: g.decode(np.full((1, 2, 4, 4), 1024)), r"token ids must be in 0..1023"),
    (lambda g: g.decode(np.zeros((1, 1, 4, 4), np.int64)), r"tokens must be integers shaped \[B, 2, 4, 4\]"),
])
def test_bad_input_is_named(gen, call, match):
    with pytest.raises(ValueError, match=match):
        call(gen)


def test_missing_default_model_or_folder(tmp_path):
    with pytest.raises(ArtifactError, match="manifest.json is missing"):
        Generator(tmp_path)


def test_threads_give_the_serial_results(gen):
    jobs = [("FP", {"video": clip(seed=i)}, i) for i in range(3)] + [("CG", {"class_id": i}, i) for i in range(3)]
    serial = [gen.generate(task, seed=seed, steps=3, **kw) for task, kw, seed in jobs]
    results = [None] * len(jobs)

    def work(i):
        task, kw, seed = jobs[i]
        results[i] = gen.generate(task, seed=seed, steps=3, **kw)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(serial, results):
        np.testing.assert_array_equal(a, b)


def test_generator_runs_without_torch(folder):
    code = f"""
import numpy as np, magvit_onnx
g = magvit_onnx.Generator({str(folder)!r})
video = np.zeros((8, 32, 32, 3), np.uint8)
for task in g.manifest["tasks"]:
    kw = {{"class_id": 1}} if g.manifest["tasks"][task]["class_conditional"] else {{}}
    if g.manifest["tasks"][task]["needs_video"]:
        kw["video"] = video
    print(task, g.generate(task, seed=0, steps=2, **kw).shape)
assert "torch" not in sys.modules
"""
    result = run_without_torch(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("(1, 8, 32, 32, 3)") == 10
