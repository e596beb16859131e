"""Mask schedules, COMMIT masking and decoding against the official behaviour
(docs/official-behaviour.md#commit-training, #decoding, #checkable-facts items 18-27)."""
import numpy as np
import pytest

from magvit_onnx.runtime.commit import decode
from magvit_onnx.runtime.masking import MASK_TOKEN, random_mask, with_prefix
from magvit_onnx.runtime.schedule import mask_ratio

COSINE_UNKNOWN = [1024, 1015, 989, 946, 886, 812, 724, 623, 511, 391, 265, 133]
EXP_UNKNOWN = [1024, 1022, 1020, 1018, 1013, 1006, 992, 966, 922, 842, 701, 449]


def tokens(batch=2, shape=(4, 16, 16), seed=0):
    return np.random.default_rng(seed).integers(0, 1024, (batch, *shape))


# ----------------------------------------------------------------------------- schedule

def test_schedules():
    r = np.array([0.0, 0.25, 0.5, 1.0], np.float32)
    np.testing.assert_allclose(mask_ratio(r, 1024, "cosine"), np.clip(np.cos(np.pi / 2 * r), 1e-6, 1), rtol=1e-6)
    np.testing.assert_allclose(mask_ratio(r, 1024, "uniform"), [1, 0.75, 0.5, 1e-6], rtol=1e-6)
    np.testing.assert_allclose(mask_ratio(r, 1024, "pow2"), [1, 0.9375, 0.75, 1e-6], rtol=1e-6)
    np.testing.assert_allclose(mask_ratio(r, 1024, "log"), [1, 0.2, 0.1, 1e-6], rtol=1e-6)
    np.testing.assert_allclose(mask_ratio(r, 1024, "exp"), [1 - 2 ** -10, 1 - 2 ** -7.5, 1 - 2 ** -5, 1e-6], rtol=1e-6)
    assert mask_ratio(0.5, 1024).dtype == np.float32
    # float32, like JAX: cos(pi/3) = 0.49999997, so 511 of 1024 stay masked, not 512.
    assert mask_ratio(np.float32(8) / np.float32(12), 1024, "cosine") == np.float32(0.49999997)
    with pytest.raises(ValueError, match="valid methods are cosine"):
        mask_ratio(0.5, 1024, "linear")


# ----------------------------------------------------------------------------- random_mask

def test_training_mask_counts():
    x = tokens()
    out = random_mask(x, 0.5, rng=np.random.default_rng(0))
    assert ((out["masked_inputs"] == MASK_TOKEN).reshape(2, -1).sum(1) == 512).all()
    out = random_mask(x, 1e-9, rng=np.random.default_rng(0))  # gamma -> 0 still masks one
    assert ((out["masked_inputs"] == MASK_TOKEN).reshape(2, -1).sum(1) == 1).all()
    np.testing.assert_array_equal(out["targets"], x)
    assert out["masked_inputs"].shape == x.shape


def test_lowest_scores_masked_and_ties_at_cutoff():
    x = np.arange(8)[None]
    score = np.array([[0.5, 0.1, 0.9, 0.3, 0.3, 0.8, 0.7, 0.6]], np.float32)
    out = random_mask(x, 0.25, mask_score=score)  # floor(8*0.25)=2: cut-off 0.3 -> ties mask too
    assert np.nonzero(out["masked_inputs"][0] == MASK_TOKEN)[0].tolist() == [1, 3, 4]
    out = random_mask(x, 0.125, mask_score=score)
    assert np.nonzero(out["masked_inputs"][0] == MASK_TOKEN)[0].tolist() == [1]


def test_weight_modes():
    x = tokens()
    full = random_mask(x, 0.3, weight_mode=None, rng=np.random.default_rng(1))
    assert (full["weights"].reshape(2, -1).sum(1) == 1024).all()
    part = random_mask(x, 0.3, weight_mode="mask+refine", rng=np.random.default_rng(1))
    masked = (part["masked_inputs"] == MASK_TOKEN)
    np.testing.assert_array_equal(part["weights"], masked.astype(np.float32))
    assert (part["weights"].reshape(2, -1).sum(1) == int(1024 * np.float32(0.3))).all()
    np.testing.assert_array_equal(random_mask(x, 0.3, weight_mode=True, rng=np.random.default_rng(1))["weights"],
                                  part["weights"])
    with pytest.raises(ValueError, match="weight_mode"):
        random_mask(x, 0.3, weight_mode="mask")


def commit_case(mode, ratio=0.5, seed=2):
    x = tokens(seed=seed)
    cond = tokens(seed=seed + 1)
    cmask = np.zeros((2, 4, 1, 1), bool)
    cmask[:, 0] = True  # frame prediction: latent frame 0
    return x, cond, np.broadcast_to(cmask, x.shape), random_mask(
        x, ratio, cond_inputs=cond, cond_mask=cmask, condition_mode=mode, rng=np.random.default_rng(seed))


def test_cond_to_input():
    x, cond, cmask, out = commit_case("cond->input")
    m = out["masked_inputs"]
    should = (m == MASK_TOKEN) | (out["segment_ids"] == 1)
    assert (should.reshape(2, -1).sum(1) == 512).all()
    # refine: masked inside the condition region -> condition token, segment 1
    np.testing.assert_array_equal(m[should & cmask], cond[should & cmask])
    assert ((out["segment_ids"] == 1) == (should & cmask)).all()
    # mask: masked outside -> MASK; recons: unmasked -> the true token (also inside the region)
    assert (m[should & ~cmask] == MASK_TOKEN).all()
    np.testing.assert_array_equal(m[~should], x[~should])
    assert (out["uncond_masked_inputs"][should] == MASK_TOKEN).all()
    np.testing.assert_array_equal(out["targets"], x)
    assert (out["weights"] == 1).all()


def test_input_to_input_and_cond_to_cond():
    x, cond, cmask, out = commit_case("input->input", ratio=0.5)
    masked = out["masked_inputs"] == MASK_TOKEN
    assert not (masked & cmask).any() and (masked.reshape(2, -1).sum(1) == 384).all()  # floor(768 * 0.5)
    np.testing.assert_array_equal(out["weights"], (~cmask).astype(np.float32))
    np.testing.assert_array_equal(out["masked_inputs"][cmask], x[cmask])
    x, cond, cmask, out = commit_case("cond->cond", ratio=1.0)
    np.testing.assert_array_equal(out["masked_inputs"][cmask], cond[cmask])
    np.testing.assert_array_equal(out["targets"][cmask], cond[cmask])
    assert (out["masked_inputs"][~cmask] == MASK_TOKEN).all()  # at most all non-condition positions
    assert (out["segment_ids"] == 0).all()


def test_per_sample_limits():
    x = tokens()
    out = random_mask(x, 0.5, num_masked_limits=(np.array([1, 600]), np.array([10, 1000])),
                      rng=np.random.default_rng(3))
    assert (out["masked_inputs"] == MASK_TOKEN).reshape(2, -1).sum(1).tolist() == [10, 600]


def test_with_prefix():
    x = tokens()
    out = with_prefix(random_mask(x, 0.5, rng=np.random.default_rng(0)), np.array([[-4, 1125]] * 2))
    assert out["masked_inputs"].shape == (2, 1026)
    assert out["weights"][:, :2].sum() == 0 and out["targets"][0, :2].tolist() == [-4, 1125]
    assert out["weights"].sum() == 2 * 1024


# ----------------------------------------------------------------------------- decode

class FakeModel:
    """Samples a fixed token per position with a random confidence; records each call."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.calls = []

    def __call__(self, masked, segment_ids, uncond):
        self.calls.append((masked.copy(), segment_ids.copy(), uncond.copy()))
        sampled = self.rng.integers(0, 1024, masked.shape)
        return sampled, self.rng.random(masked.shape).astype(np.float32)


@pytest.mark.parametrize("schedule,expected", [("cosine", COSINE_UNKNOWN), ("exp", EXP_UNKNOWN)])
def test_decode_unknown_counts(schedule, expected):
    model = FakeModel()
    cond = tokens()
    out, steps = decode(cond, np.zeros((2, 1, 1, 1), bool), model, schedule=schedule,
                        rng=np.random.default_rng(0), return_intermediates=True)
    counts = [(m == MASK_TOKEN).reshape(2, -1).sum(1).tolist() for m, _, _ in model.calls]
    assert counts == [[n, n] for n in expected]
    assert [s["unknown"].reshape(2, -1).sum(1)[0] for s in steps] == expected
    assert out.shape == cond.shape and (out >= 0).all()  # no MASK survives


def test_decode_commits_and_conditions():
    model = FakeModel(1)
    cond = tokens(seed=5)
    cmask = np.zeros((2, 4, 1, 1), bool)
    cmask[:, 0] = True
    out, steps = decode(cond, cmask, model, rng=np.random.default_rng(1), return_intermediates=True)
    first_masked, first_segment, first_uncond = model.calls[0]
    # Step 0: every position unknown; the condition region holds condition tokens (segment 1).
    full = np.broadcast_to(cmask, cond.shape).reshape(2, -1)
    np.testing.assert_array_equal(first_masked[full], cond.reshape(2, -1)[full])
    assert (first_masked[~full] == MASK_TOKEN).all() and (first_segment == full).all()
    assert (first_uncond == MASK_TOKEN).all()
    # A committed position never changes again.
    for before, after in zip(steps, steps[1:]):
        committed = ~after["unknown"]
        np.testing.assert_array_equal(after["tokens"][committed], before["tokens"][committed])
        assert not (after["unknown"] & ~before["unknown"]).any()
    np.testing.assert_array_equal(out, steps[-1]["tokens"])
    # Unknown positions inside the region hold the condition token (segment 1), outside MASK.
    for (masked, segment, _), step in zip(model.calls, steps):
        unknown = step["unknown"].reshape(2, -1)
        assert ((segment == 1) == (unknown & full)).all()
        np.testing.assert_array_equal(masked[unknown & full], cond.reshape(2, -1)[unknown & full])
        assert (masked[unknown & ~full] == MASK_TOKEN).all()


def test_decode_is_deterministic_and_validates():
    runs = [decode(tokens(), np.zeros((2, 1, 1, 1), bool), FakeModel(7), rng=np.random.default_rng(3))
            for _ in range(2)]
    np.testing.assert_array_equal(*runs)
    with pytest.raises(ValueError, match="num_iter"):
        decode(tokens(), np.zeros((2, 1, 1, 1), bool), FakeModel(), num_iter=0)


def test_decode_noise_scale_keeps_confident_tokens_without_noise():
    """mask_temperature 0: the most confident samples are committed first."""
    cond = tokens(batch=1)

    def model(masked, segment, uncond):
        return np.zeros_like(masked), np.linspace(0.01, 1, masked.size, dtype=np.float32).reshape(masked.shape)

    _, steps = decode(cond, np.zeros((1, 1, 1, 1), bool), model, mask_temperature=0.0,
                      rng=np.random.default_rng(0), return_intermediates=True)
    still = steps[1]["unknown"].reshape(-1)
    assert still[:1015].all() and not still[1015:].any()
