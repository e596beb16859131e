"""Any region (issue 31): the token region of a pixel mask, the condition built from it against
the official inpainting/outpainting conditions and the PyTorch reference's training, the
random training regions, and `Generator.generate("inpainting", mask=...)`."""
import json
import shutil

import numpy as np
import pytest

from magvit_onnx.runtime import regions, tasks
from magvit_onnx.runtime.pipeline import Pipeline
from magvit_onnx.runtime.vocab import SpecialTokens, Vocab

VIDEO, LATENT = (16, 64, 64), (4, 16, 16)


def clips(batch=2, shape=VIDEO, seed=0):
    return np.random.default_rng(seed).random((batch, *shape, 3), dtype=np.float32)


def moving_box(shape=VIDEO, size=(16, 20)):
    """A box sliding right 2 pixels a frame (True = generate)."""
    mask = np.zeros(shape, bool)
    for frame in range(shape[0]):
        mask[frame, 20:20 + size[0], 2 * frame:2 * frame + size[1]] = True
    return mask


# ----------------------------------------------------------------------------- token region

def test_token_region_is_every_token_a_true_pixel_touches():
    mask = np.zeros(VIDEO, bool)
    mask[5, 7, 9] = True                   # one pixel: frame 5 -> latent frame 1, row 7 -> 1, col 9 -> 2
    mask[12, 60:64, 0:4] = True            # exactly one token's pixels in one frame
    region = regions.token_region(mask, LATENT)
    assert region.shape == LATENT
    assert sorted(zip(*np.nonzero(region))) == [(1, 1, 2), (3, 15, 0)]
    static = np.zeros(VIDEO[1:], bool)
    static[3:5, 3:5] = True                # 2x2 pixels straddling four tokens
    region = regions.token_region(static[None], LATENT)
    assert region.shape == (1, 16, 16) and sorted(zip(*np.nonzero(region[0]))) == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_pixel_region_is_the_way_back():
    region = regions.random_regions(np.random.default_rng(1), 6, LATENT)
    pixels = regions.pixel_region(region, VIDEO)
    assert pixels.shape == (6, *VIDEO) and pixels.sum() == 64 * region.sum()
    np.testing.assert_array_equal(regions.token_region(pixels, LATENT), region)
    # a coarser grid (the test model: 4 x 8 x 8 pixels per token)
    small = regions.random_regions(np.random.default_rng(2), 3, (2, 4, 4))
    np.testing.assert_array_equal(regions.token_region(regions.pixel_region(small, (8, 32, 32)), (2, 4, 4)), small)


# ----------------------------------------------------------------------------- condition

def test_the_central_square_is_the_official_inpainting_and_outpainting_condition():
    """The condition of a mask is the official one of that region: IPC for the central
    square, OPC (zero fill) for its inverse; video, pixel mask and token mask alike."""
    video = clips()
    square = tasks.region("rectangle_central", *VIDEO)[0]
    for mask, task, overrides in ((square, "inpainting_c", {}),
                                  (~square, "outpainting_c", {"cond_padding": "constant"})):
        ours = tasks.condition("inpainting", video, LATENT, mask=mask)
        official = tasks.condition(task, video, LATENT, **overrides)
        for key in ("video", "video_mask", "latent_mask"):
            assert ours[key].shape == official[key].shape, key
            np.testing.assert_array_equal(ours[key], official[key], err_msg=key)


def test_a_moving_mask_keeps_the_pixels_outside_it_and_the_tokens_it_does_not_touch():
    video = clips()
    mask = moving_box()
    c = tasks.condition("IPM", video, LATENT, mask=mask)
    assert c["video_mask"].shape == (2, *VIDEO, 1) and c["latent_mask"].shape == (2, *LATENT)
    np.testing.assert_array_equal(c["video"][:, ~mask], video[:, ~mask])
    assert (c["video"][:, mask] == 0).all()
    np.testing.assert_array_equal(c["latent_mask"][0], ~regions.token_region(mask, LATENT))
    # the box covers rows 20..35 (tokens 5..8); in latent frame 0 (frames 0..3) columns 0..25 (tokens 0..6)
    assert np.nonzero(~c["latent_mask"][0, 0].all(axis=1))[0].tolist() == [5, 6, 7, 8]
    assert np.nonzero(~c["latent_mask"][0, 0].all(axis=0))[0].tolist() == list(range(7))
    # one region per example (training)
    per_example = np.stack([mask, ~mask])
    c = tasks.condition("IPM", video, LATENT, mask=per_example)
    np.testing.assert_array_equal(c["latent_mask"][1], ~regions.token_region(~mask, LATENT))


@pytest.mark.parametrize("mask, error", [
    (None, "needs mask="),
    (np.ones((64, 64), np.uint8), "must be a bool array"),
    (np.zeros((64, 32), bool), r"must be shaped \[64, 64\]"),
    (np.zeros((8, 64, 64), bool), r"must be shaped"),
    (np.zeros((64, 64), bool), "mask is empty"),
    (np.ones((16, 64, 64), bool), "covers every pixel"),
    (np.ones((3, 16, 64, 64), bool), "covers every pixel"),
    (moving_box()[None].repeat(3, 0), "3 regions for 2 videos"),
])
def test_bad_masks_are_refused_with_one_line(mask, error):
    with pytest.raises(ValueError, match=error) as e:
        tasks.condition("inpainting", clips(), LATENT, mask=mask)
    assert "\n" not in str(e.value)


def test_a_mask_touching_every_token_is_refused():
    grid = np.zeros(VIDEO[1:], bool)
    grid[::4, ::4] = True  # one pixel in every token: nothing is kept
    with pytest.raises(ValueError, match="touches every token .*4 frames x 4 x 4 pixels"):
        tasks.condition("inpainting", clips(), LATENT, mask=grid)


def test_the_mask_task_is_not_one_of_the_ten_and_has_its_own_token_where_listed():
    spec = tasks.get_task("IPM")
    assert spec is tasks.MASK_TASK and spec.name == "inpainting" and "inpainting" not in tasks.TASKS
    assert spec.token == SpecialTokens.TASK_INPAINTING  # a model trained on random regions lists it with this
    assert tasks.get_task("IPC").token == tasks.get_task("IPD").token == tasks.SHARED_TOKEN == SpecialTokens.TASK_OUTPAINTING
    official = {name: t.as_dict() for name, t in tasks.TASKS.items()}
    assert tasks.serves_mask_task(official) and tasks.serves_mask_task({"outpainting_c": official["outpainting_c"]})
    assert not tasks.serves_mask_task({n: official[n] for n in ("frame_prediction", "full_generation")})
    # a model that does not list it serves it under the shared token (0.3.x's default model trained it there)
    assert tasks.task_token("inpainting", official) == tasks.served(official)["inpainting"]["token"] == -6
    dedicated = {**official, "inpainting": spec.as_dict()}
    assert tasks.task_token("inpainting", dedicated) == tasks.served(dedicated)["inpainting"]["token"] == -7
    assert tasks.task_token("IPC", dedicated) == -6
    vocab = Vocab(1024, 10)
    assert tasks.prefix("inpainting", vocab, 2, token=-7).tolist() == [[-7, vocab.uncond_id]] * 2


class Recorder:
    """An engine that records the prefixes the step is given (tokens 0, probability 1)."""

    def __init__(self):
        self.prefixes = []

    def encode(self, video):
        return np.zeros((len(video), *LATENT), np.int64)

    def run_step(self, feeds):
        self.prefixes.append(feeds["prefix"])
        return np.zeros(feeds["tokens"].shape, np.int64), np.ones(feeds["tokens"].shape, np.float32)

    def decode(self, tokens):
        raise AssertionError("not needed")


@pytest.mark.parametrize("listed, token", [(False, -6), (True, -7)])
def test_the_pipeline_reads_the_mask_tasks_token_from_the_manifest(listed, token):
    served = {name: t.as_dict() for name, t in tasks.TASKS.items()}
    if listed:  # a model trained with a dedicated entry
        served["inpainting"] = {**tasks.MASK_TASK.as_dict(), "token": token}
    engine = Recorder()
    pipeline = Pipeline(engine, vocab=Vocab(1024, 10), latent_shape=LATENT, video_shape=VIDEO,
                        decoding={"num_iter": 2, "schedule": "cosine", "mask_temperature": 4.5,
                                  "sampling_temperature": 1.0, "top_k": 0, "top_p": 0.0, "guidance_scale": 0.0},
                        manifest={"tasks": served})
    pipeline.generate_tokens("inpainting", clips(1), mask=moving_box(), seed=0)
    assert [p[0, 0] for p in engine.prefixes] == [token, token]


# ----------------------------------------------------------------------------- random training regions

def test_random_regions_are_seeded_and_never_empty_or_everything():
    a = regions.random_regions(np.random.default_rng(7), 200, LATENT, invert=0.3)
    b = regions.random_regions(np.random.default_rng(7), 200, LATENT, invert=0.3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (200, *LATENT) and a.dtype == bool
    flat = a.reshape(200, -1)
    assert flat.any(axis=1).all() and not flat.all(axis=1).any()
    assert len({r.tobytes() for r in a}) == 200  # all different


def test_each_region_kind_has_its_shape():
    rng = np.random.default_rng(3)
    boxes = regions.random_regions(rng, 50, LATENT, kinds=("box",))
    for box in boxes:  # the same rectangle in every latent frame, within 1/5 .. 4/5 of each side
        assert (box == box[:1]).all()
        rows, cols = np.nonzero(box[0].any(axis=1))[0], np.nonzero(box[0].any(axis=0))[0]
        assert box[0].sum() == len(rows) * len(cols) and 3 <= len(rows) <= 13 and 3 <= len(cols) <= 13
    moving = regions.random_regions(rng, 50, LATENT, kinds=("moving_box",))
    areas = moving.reshape(50, 4, -1).sum(axis=2)
    assert (areas == areas[:, :1]).all()  # a box of one size
    assert np.mean([(m != m[:1]).any() for m in moving]) > 0.8  # that moves
    blobs = regions.random_regions(rng, 50, LATENT, kinds=("blob",))
    assert np.mean([b[0].sum() != len(np.nonzero(b[0].any(1))[0]) * len(np.nonzero(b[0].any(0))[0])
                    for b in blobs]) > 0.8  # mostly not rectangles
    inverted = regions.random_regions(np.random.default_rng(3), 50, LATENT, kinds=("box",), invert=1.0)
    np.testing.assert_array_equal(inverted, ~boxes)
    with pytest.raises(ValueError, match="valid kinds are box, moving_box, blob"):
        regions.random_regions(rng, 1, LATENT, kinds=("star",))


# ----------------------------------------------------------------------------- the PyTorch reference

def test_training_builds_the_condition_the_runtime_builds(small_artifacts, config):
    """models/commit_training (the PyTorch reference's training) and the ONNX Runtime
    pipeline tokenize the same condition for a random region: same condition tokens,
    same token mask (= the region's complement)."""
    import torch

    from magvit_onnx.export.exporter import seeded_random_models
    from magvit_onnx.models.commit_training import tokenize_task

    vq, _ = seeded_random_models(config, seed=0)
    video_shape, latent = config.vq.video_shape, config.vq.latent_shape
    region = regions.random_regions(np.random.default_rng(0), 2, latent, invert=0.5)
    mask = regions.pixel_region(region, video_shape)
    video = clips(2, video_shape)
    with torch.no_grad():
        _, cond_tokens, latent_mask = tokenize_task(vq, torch.from_numpy(video), "inpainting", config, mask=mask)
    np.testing.assert_array_equal(latent_mask, ~region)
    pipeline = Pipeline.from_artifacts(small_artifacts(0), providers="cpu")
    for row in range(2):
        ours, ours_mask, _ = pipeline.condition_tokens("inpainting", video[row:row + 1], None, 1, mask=mask[row])
        np.testing.assert_array_equal(ours[0], cond_tokens[row])
        np.testing.assert_array_equal(ours_mask[0], ~region[row])


def test_mask_generation_is_token_identical_to_the_reference(small_artifacts, config):
    from magvit_onnx.export.exporter import seeded_random_models
    from magvit_onnx.export.reference import reference_pipeline

    ours = Pipeline.from_artifacts(small_artifacts(0), providers="cpu")
    ref = reference_pipeline(config, *seeded_random_models(config, seed=0))
    mask = moving_box(config.vq.video_shape, size=(10, 12))
    video = clips(1, config.vq.video_shape)
    for guidance in (0.0, 2.0):
        a = ours.generate_tokens("inpainting", video, mask=mask, seed=3, steps=4, guidance_scale=guidance)
        b = ref.generate_tokens("inpainting", video, mask=mask, seed=3, steps=4, guidance_scale=guidance)
        np.testing.assert_array_equal(a, b)


def test_a_model_listing_the_mask_task_is_driven_with_its_own_token(tmp_path, config):
    """A model trained on random regions lists `inpainting` (train_transformer.py): its manifest
    gives the task TASK_INPAINTING, and ONNX Runtime and the reference both drive it with that."""
    import dataclasses

    from magvit_onnx.export.exporter import export_all, seeded_random_models
    from magvit_onnx.export.reference import reference_pipeline

    listed = dataclasses.replace(config, tasks=(*config.tasks, "inpainting"))
    models = seeded_random_models(listed, seed=0)
    export_all(listed, *models, tmp_path)
    ours = Pipeline.from_artifacts(tmp_path, providers="cpu")
    assert ours.manifest["tasks"]["inpainting"]["token"] == -7 and ours.manifest["tasks"]["inpainting_c"]["token"] == -6
    mask, video = moving_box(config.vq.video_shape, size=(10, 12)), clips(1, config.vq.video_shape)
    ref = reference_pipeline(listed, *models)
    assert tasks.task_token("inpainting", ref.manifest["tasks"]) == -7  # (a random init decodes alike under any token)
    assert tasks.task_token("inpainting", reference_pipeline(config, *models).manifest["tasks"]) == -6
    np.testing.assert_array_equal(ours.generate_tokens("inpainting", video, mask=mask, seed=3, steps=4),
                                  ref.generate_tokens("inpainting", video, mask=mask, seed=3, steps=4))


# ----------------------------------------------------------------------------- Generator

@pytest.fixture(scope="module")
def gen(small_artifacts):
    from magvit_onnx import Generator

    return Generator(small_artifacts(0))


def test_generate_with_a_fixed_and_a_moving_mask(gen):
    frames, height, width = gen.video_shape
    video = (clips(2, gen.video_shape) * 255).astype(np.uint8)
    fixed = np.zeros((height, width), bool)
    fixed[4:12, 10:30] = True
    moving = moving_box(gen.video_shape, size=(10, 12))
    keep = np.zeros((height, width), bool)
    keep[8:24, 8:24] = True  # outpainting around whole tokens (8 x 8 pixels on the test model)
    for mask in (fixed, moving, ~keep):
        out = gen.generate("inpainting", video=video, mask=mask, seed=[1, 2], steps=3)
        assert out.shape == (2, *gen.video_shape, 3) and out.dtype == np.uint8
        tokens = gen.generate_tokens("inpainting", video=video, mask=mask, seed=[1, 2], steps=3)
        alone = gen.generate_tokens("IPM", video=video[1], mask=mask, seed=2, steps=3)
        np.testing.assert_array_equal(tokens[1:], alone)  # batching changes no token
        kept = gen.generate("inpainting", video=video, mask=mask, seed=[1, 2], steps=3, replace_condition_pixels=True)
        where = np.broadcast_to(mask, gen.video_shape)
        np.testing.assert_array_equal(kept[:, ~where], video[:, ~where])  # the given pixels exactly
        np.testing.assert_array_equal(kept[:, where], out[:, where])      # the generated ones as generated
    # the official central square gives IPC's tokens: the same condition, the same task token
    square = tasks.region("rectangle_central", *gen.video_shape)[0]
    np.testing.assert_array_equal(gen.generate_tokens("inpainting", video, mask=square, seed=5, steps=3),
                                  gen.generate_tokens("IPC", video, seed=5, steps=3))
    guided = gen.generate("inpainting", video=video[0], mask=fixed, seed=4, steps=3, guidance_scale=1.5, num_videos=2)
    assert guided.shape == (2, *gen.video_shape, 3)


def test_one_region_per_clip_gives_each_clip_what_it_gives_alone(gen, monkeypatch):
    """mask [B, T, H, W]: clip i meets region i, with or without num_videos, and also when
    the call is split (a limit of 2 samples per call splits 3 clips x 2 videos by clip)."""
    video = (clips(3, gen.video_shape, seed=4) * 255).astype(np.uint8)
    drawn = regions.random_regions(np.random.default_rng(0), 3, tuple(gen.manifest["latent_shape"]), regions.KINDS, 0.5)
    masks = regions.pixel_region(drawn, gen.video_shape)
    alone = [gen.generate_tokens("inpainting", video=video[i], mask=masks[i], seed=i, steps=3, num_videos=2)
             for i in range(3)]
    together = gen.generate_tokens("inpainting", video=video, mask=masks, seed=[0, 1, 2], steps=3, num_videos=2)
    np.testing.assert_array_equal(together, np.concatenate(alone))
    assert not np.array_equal(alone[0], alone[1])
    monkeypatch.setattr("magvit_onnx.limits.MAX_SAMPLES_PER_CALL", 2)
    np.testing.assert_array_equal(
        gen.generate_tokens("inpainting", video=video, mask=masks, seed=[0, 1, 2], steps=3, num_videos=2), together)


@pytest.mark.parametrize("kwargs, error", [
    ({}, "needs mask="),
    ({"mask": np.zeros((32, 32), np.int64)}, "must be a bool array"),
    ({"mask": np.zeros((2, 8, 32, 32), bool)},
     r"must be shaped \[32, 32\] \(every frame\), \[8, 32, 32\] \(per frame\) or \[1, 8, 32, 32\] \(one region per"),
    ({"mask": np.zeros((32, 32), bool)}, "mask is empty"),
    ({"mask": np.ones((32, 32), bool)}, "covers every pixel"),
    ({"mask": np.eye(32, dtype=bool), "num_frames": 16}, "num_frames applies to frame_prediction"),
    ({"mask": np.eye(32, dtype=bool), "width": 64}, "width applies to outpainting_v only"),
])
def test_generate_refuses_bad_masks_with_one_line(gen, kwargs, error):
    video = clips(1, gen.video_shape)
    with pytest.raises(ValueError, match=error) as e:
        gen.generate("inpainting", video=video, **kwargs)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"does not take \['mask'\]"):
        gen.generate("IPC", video=video, mask=np.eye(32, dtype=bool))


def test_the_mask_task_needs_an_inpainting_or_outpainting_model(small_artifacts, tmp_path):
    from magvit_onnx import Generator

    folder = tmp_path / "fp-only"
    shutil.copytree(small_artifacts(0), folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["tasks"] = {n: e for n, e in manifest["tasks"].items() if e["kind"] in ("frame_prediction", None)}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="task 'inpainting' is not served by this model"):
        Generator(folder).generate("inpainting", video=clips(1, (8, 32, 32)), mask=np.eye(32, dtype=bool))
