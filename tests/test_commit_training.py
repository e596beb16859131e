"""Multi-task COMMIT training step (docs/official-behaviour.md#commit-training) on a tiny model."""
import dataclasses
from collections import Counter

import numpy as np
import torch

from magvit_onnx.models.commit_training import commit_batch, commit_loss, commit_train_step, task_schedule
from magvit_onnx.models.token_loss import transformer_optimizer
from magvit_onnx.models.transformer import Transformer
from magvit_onnx.models.vqvae import VQVAE
from magvit_onnx.runtime import tasks
from magvit_onnx.runtime.masking import MASK_TOKEN
from magvit_onnx.runtime.tasks import TASKS


def models(config, seed=0):
    torch.manual_seed(seed)
    return VQVAE(config.vq).eval(), Transformer(config)


def clips(config, batch=2, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).random((batch, *config.vq.video_shape, 3), np.float32))


def test_task_schedule_is_exactly_uniform():
    names = list(TASKS)
    schedule = task_schedule(names, rng=np.random.default_rng(0))
    assert len(schedule) == 1000 and Counter(schedule) == {n: 100 for n in names}
    weighted = task_schedule(["a", "b"], weights=[0.5, 2], rng=np.random.default_rng(0))
    assert Counter(weighted) == {"a": 100, "b": 400}  # scaled by 100 / min(1, 0.5) = 200


def test_commit_batch_layout(config):
    vq, _ = models(config)
    video = clips(config)
    batch = commit_batch(vq, video, "frame_prediction", config, np.random.default_rng(0), ratio=0.5)
    n, p = config.vq.num_tokens, config.vocab.prefix_length
    assert batch["masked_inputs"].shape == (2, p + n)
    assert batch["masked_inputs"][:, :p].tolist() == [[-4, config.vocab.uncond_id]] * 2
    assert (batch["weights"][:, :p] == 0).all() and (batch["weights"][:, p:] == 1).all()
    masked = batch["refine"] | batch["mask"]
    assert (masked.sum(1) == n // 2).all()  # gamma 0.5 masks exactly half
    # refine inputs are the tokens of the padded condition video, in latent frame 0 only
    cond = tasks.condition("FP", video.numpy(), config.vq.latent_shape)
    cond_ids = vq.tokenize(torch.from_numpy(cond["video"])).reshape(2, -1)
    refine = batch["refine"][:, p:]
    assert torch.equal(batch["masked_inputs"][:, p:][refine], cond_ids[refine])
    frame0 = torch.zeros(config.vq.latent_shape, dtype=torch.bool)
    frame0[0] = True
    assert not (refine & ~frame0.reshape(-1)).any()
    assert (batch["masked_inputs"][batch["mask"]] == MASK_TOKEN).all()
    recons = batch["recons"]
    assert torch.equal(batch["masked_inputs"][recons], batch["targets"][recons])
    assert torch.equal(batch["targets"][:, p:], vq.tokenize(video).reshape(2, -1))


def test_class_conditional_tasks_carry_labels(config):
    vq, _ = models(config)
    rng = np.random.default_rng(0)
    cg = commit_batch(vq, clips(config), "full_generation", config, rng, labels=np.array([3, 7]))
    assert cg["masked_inputs"][:, :2].tolist() == [[-3, 1024 + 3], [-3, 1024 + 7]]
    assert not cg["refine"].any()  # nothing is known in class-conditional generation
    cfp = commit_batch(vq, clips(config), "CFP", config, rng, labels=np.array([1, 2]))
    assert cfp["masked_inputs"][:, :2].tolist() == [[-4, 1025], [-4, 1026]]


def test_condition_dropout_shows_the_unconditional_sequence(config):
    vq, _ = models(config)
    dropped = dataclasses.replace(config, training=dataclasses.replace(config.training, cond_dropout=1.0))
    batch = commit_batch(vq, clips(config), "OPC", dropped, np.random.default_rng(0), ratio=0.9)
    assert torch.equal(batch["masked_inputs"], batch["uncond_masked_inputs"])
    assert batch["masked_inputs"][:, :2].tolist() == [[-3, config.vocab.uncond_id]] * 2
    assert (batch["segment_ids"] == 0).all()
    assert batch["weights"][:, 2:].sum() == 2 * config.vq.num_tokens  # the loss is unchanged


def test_every_task_trains_and_the_loss_falls(config):
    vq, transformer = models(config)
    optimizer = transformer_optimizer(transformer, lr=3e-3)
    video, labels = clips(config), np.array([1, 2])
    for name in TASKS:  # each task runs one step with finite losses
        metrics = commit_train_step(transformer, vq, optimizer, video, name, config,
                                    np.random.default_rng(0), labels=labels)
        assert np.isfinite(metrics["loss"]) and np.isfinite(metrics["grad_norm"])
    losses = [commit_train_step(transformer, vq, optimizer, video, "frame_prediction", config,
                                np.random.default_rng(1), labels=labels)["loss"] for _ in range(25)]
    assert losses[-1] < 0.6 * losses[0]


def test_loss_terms_are_reported(config):
    vq, transformer = models(config)
    batch = commit_batch(vq, clips(config), "inpainting_c", config, np.random.default_rng(0), ratio=0.5)
    loss, metrics = commit_loss(transformer.eval(), batch, config)
    assert {"loss", "loss_refine", "loss_mask", "loss_recons"} <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values()) and loss.requires_grad


def test_frame_prediction_condition_variants(config):
    """--fp-cond-frames 1,5: one variant per length for the frame-prediction tasks, with the
    latent frames those frames reach; other tasks keep their one (official) condition."""
    from magvit_onnx.models.commit_training import condition_variants
    from magvit_onnx.models.config import get_config
    from magvit_onnx.runtime import tasks

    assert condition_variants(["frame_prediction", "inpainting_c"], config) == {
        "frame_prediction": ("frame_prediction", {}), "inpainting_c": ("inpainting_c", {})}
    variants = condition_variants(["frame_prediction", "frame_prediction_c", "outpainting_c"], config, (1, 5))
    assert list(variants) == ["frame_prediction@1", "frame_prediction@5", "frame_prediction_c@1",
                              "frame_prediction_c@5", "outpainting_c"]
    assert variants["frame_prediction@5"] == ("frame_prediction", {"cond_frames": 5, "cond_latent_frames": 1})
    tiny = get_config("tiny")  # 16 frames -> 4 latent frames of 4: 5 frames reach 2 of them
    task, overrides = condition_variants(["frame_prediction"], tiny, (1, 5))["frame_prediction@5"]
    assert overrides == {"cond_frames": 5, "cond_latent_frames": 2}
    video = np.random.default_rng(0).random((1, *tiny.vq.video_shape, 3), dtype=np.float32)
    cond = tasks.condition(task, video, tiny.vq.latent_shape, **overrides)
    assert cond["latent_mask"][0, :, 0, 0].tolist() == [True, True, False, False]
    assert cond["video_mask"][0, :, 0, 0, 0].sum() == 5


def test_random_region_variants_are_drawn_per_clip_and_kind(config):
    """The mask task (IPM) trains one condition variant per region kind; a clip's region
    depends on (seed, clip index, kind) only, is given at pixel resolution, and is neither
    empty nor every token."""
    import pytest

    from magvit_onnx.models.commit_training import REGION_KINDS, condition_variants, training_masks
    from magvit_onnx.runtime import regions

    assert REGION_KINDS == ("box", "moving_box", "blob", "box_inverted", "moving_box_inverted", "blob_inverted")
    variants = condition_variants(["inpainting_c", "inpainting"], config)
    assert variants == {"inpainting_c": ("inpainting_c", {}),
                        **{f"inpainting@{k}": ("inpainting", {"random_region": k}) for k in REGION_KINDS}}
    latent, items = config.vq.latent_shape, range(40)
    drawn = {}
    for kind in REGION_KINDS:
        masks = training_masks(kind, items, 7, config)
        assert masks.shape == (40, *config.vq.video_shape) and masks.dtype == bool
        np.testing.assert_array_equal(masks, training_masks(kind, items, 7, config))  # seeded
        np.testing.assert_array_equal(masks[[5, 9]], training_masks(kind, [5, 9], 7, config))  # per clip
        region = regions.token_region(masks, latent)
        np.testing.assert_array_equal(regions.pixel_region(region, config.vq.video_shape), masks)  # whole tokens
        flat = region.reshape(40, -1)
        assert flat.any(axis=1).all() and not flat.all(axis=1).any()
        assert len({r.tobytes() for r in region}) > 10  # clips get different regions
        assert not np.array_equal(masks, training_masks(kind, items, 8, config))  # ... and the seed matters
        drawn[kind] = region
    static = [(r == r[:1]).all() for r in drawn["box"]]
    assert all(static) and not all((r == r[:1]).all() for r in drawn["moving_box"])
    assert np.mean([r.mean() for r in drawn["box_inverted"]]) > np.mean([r.mean() for r in drawn["box"]])
    with pytest.raises(ValueError, match="valid kinds are box, moving_box, blob, box_inverted"):
        training_masks("star", [0], 0, config)


def test_the_mask_task_trains_the_runtime_condition_under_the_runtime_token(config):
    """A random-region step: the condition is `tasks.condition('inpainting', mask=...)`'s (the
    runtime's), refine inputs are its tokens inside the kept region, and the task token is
    the one the runtime gives the mask task on a model of these tasks."""
    from magvit_onnx.models.commit_training import mask_tokens, tokenize_task, training_masks, variant_overrides

    vq, _ = models(config)
    video = clips(config, batch=3)
    overrides = variant_overrides({"random_region": "blob"}, [0, 1, 2], 0, config)
    np.testing.assert_array_equal(overrides["mask"], training_masks("blob", [0, 1, 2], 0, config))
    inputs, cond_ids, latent_mask = tokenize_task(vq, video, "IPM", config, **overrides)
    runtime = tasks.condition("inpainting", video.numpy(), config.vq.latent_shape, mask=overrides["mask"])
    np.testing.assert_array_equal(latent_mask, runtime["latent_mask"])
    np.testing.assert_array_equal(cond_ids, vq.tokenize(torch.from_numpy(runtime["video"])).numpy())
    batch = mask_tokens(inputs, cond_ids, latent_mask, "inpainting", config, np.random.default_rng(0), ratio=0.9,
                        drop=np.zeros(3, bool))  # no condition dropout
    served = {name: tasks.get_task(name).as_dict() for name in config.tasks}  # as the exporter's manifest
    p = config.vocab.prefix_length
    assert batch["masked_inputs"][:, 0].tolist() == [tasks.task_token("inpainting", served)] * 3
    refine = batch["refine"][:, p:].numpy()
    assert refine.any() and not (refine & ~latent_mask.reshape(3, -1)).any()
    np.testing.assert_array_equal(batch["masked_inputs"][:, p:].numpy()[refine], cond_ids.reshape(3, -1)[refine])
