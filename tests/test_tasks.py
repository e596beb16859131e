"""The ten task conditions against the official facts
(docs/official-behaviour.md#tasks, #checkable-facts items 28-37)."""
import numpy as np
import pytest

from magvit_onnx.runtime import tasks
from magvit_onnx.runtime.tasks import TASKS, condition, get_task, prefix, uncond_prefix
from magvit_onnx.runtime.vocab import SpecialTokens, Vocab

LATENT = (4, 16, 16)


def video(size=64, frames=16, batch=2, seed=0):
    return np.random.default_rng(seed).random((batch, frames, size, size, 3), dtype=np.float32)


def kept_range(mask_1d):
    idx = np.nonzero(mask_1d)[0]
    return idx[0], idx[-1], len(idx)


def test_ten_tasks_with_official_ids_and_aliases():
    assert list(TASKS) == ["frame_prediction", "frame_interpolation", "outpainting_c", "outpainting_v",
                           "outpainting_h", "outpainting_dv", "inpainting_c", "inpainting_dv",
                           "full_generation", "frame_prediction_c"]
    for abbr, name in [("FP", "frame_prediction"), ("FI", "frame_interpolation"), ("OPC", "outpainting_c"),
                       ("OPV", "outpainting_v"), ("OPH", "outpainting_h"), ("OPD", "outpainting_dv"),
                       ("IPC", "inpainting_c"), ("IPD", "inpainting_dv"), ("CG", "full_generation"),
                       ("CFP", "frame_prediction_c"), ("opc", "outpainting_c")]:
        assert get_task(abbr).name == name
    with pytest.raises(ValueError, match="valid tasks are .*frame_prediction"):
        get_task("super_resolution")


def test_task_tokens_follow_official_registry():
    # Inpainting shares TASK_OUTPAINTING (docs/official-behaviour.md#checkable-facts item 17);
    # CG/CFP per #tasks.
    assert get_task("inpainting_c").token == get_task("inpainting_dv").token == SpecialTokens.TASK_OUTPAINTING == -6
    assert get_task("frame_prediction").token == get_task("frame_prediction_c").token == -4
    assert get_task("frame_interpolation").token == -5 and get_task("full_generation").token == -3
    assert [t.name for t in TASKS.values() if t.class_conditional] == ["full_generation", "frame_prediction_c"]


def test_frame_prediction():
    v = video()
    c = condition("frame_prediction", v, LATENT)
    assert c["video_mask"].shape == (2, 16, 1, 1, 1) and c["latent_mask"].shape == (2, 4, 1, 1)
    np.testing.assert_array_equal(c["video"], np.repeat(v[:, :1], 16, axis=1))  # frame 0 repeated 16x
    assert c["video_mask"][0, :, 0, 0, 0].tolist() == [True] + [False] * 15
    assert c["latent_mask"][0, :, 0, 0].tolist() == [True, False, False, False]
    assert np.broadcast_to(c["latent_mask"], (2, *LATENT))[0].sum() == 256


def test_frame_prediction_overrides():
    v = video()
    c = condition("FP", v, LATENT, cond_frames=5, cond_latent_frames=2)
    np.testing.assert_array_equal(c["video"][:, :5], v[:, :5])
    np.testing.assert_array_equal(c["video"][:, 5:], np.repeat(v[:, 4:5], 11, axis=1))
    assert c["latent_mask"][0, :, 0, 0].tolist() == [True, True, False, False]
    z = condition("FP", v, LATENT, cond_padding="constant")["video"]
    assert (z[:, 1:] == 0).all()
    with pytest.raises(ValueError, match="cond_frames must be an integer in 1..15"):
        condition("FP", v, LATENT, cond_frames=0)
    with pytest.raises(ValueError, match="valid values are edge, constant"):
        condition("FP", v, LATENT, cond_padding="interpolate")
    with pytest.raises(ValueError, match="valid overrides are cond_frames"):
        condition("FP", v, LATENT, cond_region="rectangle_central")


def test_frame_interpolation():
    v = video()
    c = condition("frame_interpolation", v, LATENT)
    f0, f15 = v[:, 0], v[:, 15]
    np.testing.assert_allclose(c["video"][:, 7], f0 + (f15 - f0) * 7 / 15, atol=1e-6)
    np.testing.assert_array_equal(c["video"][:, 0], f0)
    np.testing.assert_array_equal(c["video"][:, 15], f15)
    assert np.nonzero(c["video_mask"][0, :, 0, 0, 0])[0].tolist() == [0, 15]
    assert np.nonzero(c["latent_mask"][0, :, 0, 0])[0].tolist() == [0, 3]
    assert np.broadcast_to(c["latent_mask"], (2, *LATENT))[0].sum() == 512


@pytest.mark.parametrize("size,lo,hi", [(64, 16, 47), (128, 32, 95)])
def test_outpainting_central(size, lo, hi):
    v = video(size)
    c = condition("outpainting_c", v, LATENT)
    m = c["video_mask"]
    assert m.shape == (2, 1, size, size, 1) and c["latent_mask"].shape == (2, 1, 16, 16)
    assert kept_range(m[0, 0, :, size // 2, 0]) == (lo, hi, size // 2)
    assert kept_range(m[0, 0, size // 2, :, 0]) == (lo, hi, size // 2)
    assert kept_range(c["latent_mask"][0, 0, :, 8]) == (4, 11, 8)
    assert np.broadcast_to(c["latent_mask"], (2, *LATENT))[0].sum() == 4 * 64 == 256
    # 'edge' fill: the kept block is copied, borders replicated, corners = corner pixel.
    np.testing.assert_array_equal(c["video"][:, :, lo:hi + 1, lo:hi + 1], v[:, :, lo:hi + 1, lo:hi + 1])
    np.testing.assert_array_equal(c["video"][:, :, 0, 0], v[:, :, lo, lo])
    np.testing.assert_array_equal(c["video"][:, :, 0, lo:hi + 1], v[:, :, lo, lo:hi + 1])
    np.testing.assert_array_equal(c["video"][:, :, -1, -1], v[:, :, hi, hi])


def test_outpainting_bands():
    v = video(128)
    h = condition("outpainting_h", v, LATENT)  # a horizontal band: rows 32..95, all columns
    assert h["video_mask"][0, 0, :, :, 0].sum(axis=1)[32] == 128 and kept_range(h["video_mask"][0, 0, :, 0, 0]) == (32, 95, 64)
    assert kept_range(h["latent_mask"][0, 0, :, 0]) == (4, 11, 8) and h["latent_mask"][0, 0].all(axis=1)[4]
    assert np.broadcast_to(h["latent_mask"], (2, *LATENT))[0].sum() == 512
    np.testing.assert_array_equal(h["video"][:, :, 0], v[:, :, 32])
    vv = condition("outpainting_v", v, LATENT)  # a vertical band: all rows, columns 32..95
    assert kept_range(vv["video_mask"][0, 0, 0, :, 0]) == (32, 95, 64) and vv["video_mask"][0, 0, :, 40, 0].all()
    assert np.broadcast_to(vv["latent_mask"], (2, *LATENT))[0].sum() == 512
    np.testing.assert_array_equal(vv["video"][:, :, :, 127], v[:, :, :, 95])


def test_inpainting_central():
    v = video(128)
    c = condition("inpainting_c", v, LATENT)
    assert (c["video"][:, :, 32:96, 32:96] == 0).all()
    np.testing.assert_array_equal(c["video"][:, :, :32], v[:, :, :32])
    assert not c["video_mask"][0, 0, 32:96, 32:96].any() and c["video_mask"][0, 0, :32].all()
    assert np.broadcast_to(c["latent_mask"], (2, *LATENT))[0].sum() == 768
    assert not c["latent_mask"][0, 0, 4:12, 4:12].any()


STARTS_64 = [0, 2, 4, 6, 9, 11, 13, 15, 17, 19, 21, 23, 26, 28, 30, 32]
STARTS_128 = [0, 4, 9, 13, 17, 21, 26, 30, 34, 38, 43, 47, 51, 55, 60, 64]


@pytest.mark.parametrize("size,starts", [(64, STARTS_64), (128, STARTS_128)])
def test_outpainting_dynamic(size, starts):
    assert tasks.dynamic_starts(size, 16).tolist() == starts
    v = video(size)
    c = condition("outpainting_dv", v, LATENT)
    assert c["video_mask"].shape == (2, 16, size, size, 1) and c["latent_mask"].shape == (2, 4, 16, 16)
    for t, s in enumerate(starts):
        assert kept_range(c["video_mask"][0, t, 0, :, 0]) == (s, s + size // 2 - 1, size // 2)
        assert c["video_mask"][0, t, :, s, 0].all()
    assert (c["video"][~np.broadcast_to(c["video_mask"], v.shape)] == 0).all()
    for tau, s in enumerate([0, 3, 5, 8]):
        assert kept_range(c["latent_mask"][0, tau, 0]) == (s, s + 7, 8)
    assert c["latent_mask"][0].sum() == 512
    with pytest.raises(ValueError, match="dynamic regions"):
        condition("outpainting_dv", v, LATENT, cond_padding="edge")


def test_inpainting_dynamic():
    v = video(128)
    c = condition("inpainting_dv", v, LATENT)
    for t, s in enumerate(STARTS_128):
        hole = ~c["video_mask"][0, t, :, :, 0]
        rows, cols = np.nonzero(hole.any(axis=1))[0], np.nonzero(hole.any(axis=0))[0]
        assert (rows[0], rows[-1], cols[0], cols[-1]) == (32, 95, s, s + 63) and hole.sum() == 64 * 64
        assert (c["video"][0, t][hole] == 0).all()
    for tau, s in enumerate([0, 3, 5, 8]):
        hole = ~c["latent_mask"][0, tau]
        assert hole.sum() == 64 and hole[4:12, s:s + 8].all()
    assert c["latent_mask"][0].sum() == 768


def test_class_generation_has_no_condition():
    c = condition("CG", video(), LATENT)
    assert not c["latent_mask"].any() and not c["video_mask"].any()
    with pytest.raises(ValueError, match="valid overrides are none"):
        condition("CG", video(), LATENT, cond_frames=1)


def test_bad_video_rejected():
    with pytest.raises(ValueError, match=r"\[B, T, H, W, C\]"):
        condition("FP", np.zeros((16, 64, 64, 3), np.float32), LATENT)
    with pytest.raises(ValueError, match="float"):
        condition("FP", np.zeros((1, 16, 64, 64, 3), np.uint8), LATENT)
    with pytest.raises(ValueError, match="valid regions"):
        condition("OPC", video(), LATENT, cond_region="circle")


def test_prefix_layout():
    vocab = Vocab(codebook_size=1024, num_classes=101, multi_task=True)
    assert vocab.size == 1142 and vocab.uncond_id == 1125
    assert prefix("frame_prediction", vocab, 2).tolist() == [[-4, 1125]] * 2
    assert prefix("full_generation", vocab, 2, class_ids=[0, 7]).tolist() == [[-3, 1024], [-3, 1031]]
    assert prefix("CFP", vocab, 1, class_ids=3).tolist() == [[-4, 1027]]
    assert uncond_prefix(vocab, 1).tolist() == [[-3, 1125]]
    with pytest.raises(ValueError, match="valid classes are 0..100"):
        prefix("CG", vocab, 1, class_ids=101)
    with pytest.raises(ValueError, match="needs a class"):
        prefix("CG", vocab, 1)
    with pytest.raises(ValueError, match="takes no class"):
        prefix("OPC", vocab, 1, class_ids=1)


def test_official_vocab_layouts():
    ucf = Vocab(1024, 101, multi_task=False)  # UCF CG: V = 1127, MASK row 1126, UNCOND 1125
    assert (ucf.size, ucf.row(-1), ucf.uncond_id, ucf.class_id(0)) == (1127, 1126, 1125, 1024)
    bair = Vocab(1024, 0, multi_task=False)
    assert (bair.size, bair.uncond_id, bair.row(-1)) == (1026, 1024, 1025)
    mt8 = Vocab(1024, 0, multi_task=True)
    assert mt8.size == 1041 and mt8.row(-4) == 1037 and mt8.row(-1) == 1040 and mt8.row(-15) == 1026
    assert prefix("frame_prediction", mt8, 1).tolist() == [[-4, 1024]]


def test_frames_needed_rule():
    """Frame prediction reads only its kept frames; every other task the whole clip."""
    from magvit_onnx.runtime.tasks import frames_needed

    assert frames_needed("FP", 16) == 1 and frames_needed("CFP", 16) == 1
    assert frames_needed("frame_prediction", 16, cond_frames=5) == 5
    assert frames_needed("FP", 16, cond_frames="x") == 16  # invalid: `condition` names it later
    for task in ("FI", "OPC", "OPD", "IPC", "IPD", "CG"):
        assert frames_needed(task, 16) == 16
