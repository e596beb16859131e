"""The synthetic video set: determinism, splits, labels, physics, and the analytic classifier."""

import numpy as np
import pytest

from magvit_onnx import synthetic
from magvit_onnx.synthetic import (CLASS_NAMES, FRAMES, NUM_CLASSES, SIZE, classify, make_dataset,
                                   render_clip, split_seeds)

@pytest.fixture(scope="module")
def held_out():
    return make_dataset("test", 300)


def degrade(videos: np.ndarray, seed: int = 0) -> np.ndarray:
    """3x3 box blur, gaussian noise sigma 0.03, uint8 quantisation: a stand-in for decoded videos."""
    rng = np.random.default_rng(seed)
    out = np.empty_like(videos)
    for n, video in enumerate(videos):  # clip by clip: small temporaries
        padded = np.pad(video.astype(np.float32) / 255, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="edge")
        blurred = sum(padded[:, i:i + SIZE, j:j + SIZE] for i in range(3) for j in range(3)) / 9
        noisy = blurred + 0.03 * rng.standard_normal(blurred.shape, dtype=np.float32)
        out[n] = np.round(np.clip(noisy, 0, 1) * 255)
    return out


def test_classes():
    assert NUM_CLASSES == len(CLASS_NAMES) >= 10
    assert len(set(CLASS_NAMES)) == NUM_CLASSES
    assert "circle moving right" in CLASS_NAMES


def test_shapes_dtypes_and_determinism():
    clip, label = render_clip(123)
    assert clip.shape == (FRAMES, SIZE, SIZE, 3) and clip.dtype == np.uint8
    assert isinstance(label, int) and 0 <= label < NUM_CLASSES
    again, label_again = render_clip(np.int64(123))
    np.testing.assert_array_equal(clip, again)
    assert label == label_again
    assert not np.array_equal(clip, render_clip(124)[0])

    videos, labels = make_dataset("val", 4)
    assert videos.shape == (4, FRAMES, SIZE, SIZE, 3) and videos.dtype == np.uint8
    assert labels.shape == (4,) and labels.dtype == np.int64
    for video, label, seed in zip(videos, labels, split_seeds("val", 4)):
        expected, expected_label = render_clip(int(seed))
        np.testing.assert_array_equal(video, expected)
        assert label == expected_label


def test_resize_clips():
    videos, _ = make_dataset("val", 2)
    np.testing.assert_array_equal(synthetic.resize_clips(videos, (FRAMES, SIZE, SIZE)), videos)
    small = synthetic.resize_clips(videos, (8, 32, 32))
    assert small.shape == (2, 8, 32, 32, 3) and small.dtype == np.uint8


def test_splits_are_disjoint():
    seeds = {split: split_seeds(split, 1000) for split in ("train", "val", "test")}
    assert all(s.dtype == np.int64 and len(s) == 1000 and len(np.unique(s)) == 1000 for s in seeds.values())
    assert seeds["train"][0] == 0 and seeds["val"][0] == 10_000_000 and seeds["test"][0] == 20_000_000
    # Whole ranges, without materialising them: each split's last seed is below the next one's first.
    starts = sorted(synthetic.SPLIT_STARTS.values())
    assert all(b - a >= synthetic.SPLIT_SIZE for a, b in zip(starts, starts[1:]))
    assert len(split_seeds("train", 0)) == 0
    with pytest.raises(ValueError, match="unknown split 'validation'.*valid splits are"):
        split_seeds("validation", 10)
    with pytest.raises(ValueError, match="count must be in"):
        split_seeds("train", synthetic.SPLIT_SIZE + 1)
    with pytest.raises(ValueError, match="count must be in"):
        split_seeds("test", -1)


def test_labels_cover_every_class_evenly(held_out):
    _, labels = held_out  # 300 consecutive seeds
    assert (np.bincount(labels, minlength=NUM_CLASSES) == 30).all()
    # Any seeds, not only consecutive ones: every class, roughly balanced.
    seeds = np.random.default_rng(0).integers(0, 30_000_000, 200)
    counts = np.bincount([render_clip(int(s))[1] for s in seeds], minlength=NUM_CLASSES)
    assert counts.min() >= 8 and counts.max() <= 35


def test_motion_stays_in_frame_and_starts_bounce_free():
    rng = np.random.default_rng(0)
    for motion, direction in synthetic._DIRECTIONS.items():
        for _ in range(50):
            size = rng.uniform(12, 18)
            centres = synthetic._trajectory(rng, motion, size)
            assert centres.shape == (FRAMES, 2)
            assert (centres >= size / 2 - 1e-9).all() and (centres <= SIZE - size / 2 + 1e-9).all()
            steps = np.diff(centres[: synthetic.BOUNCE_FREE_FRAMES], axis=0)  # before any bounce
            along = steps @ np.array(direction)
            if any(direction):
                assert np.allclose(along, along[0]) and 2.0 <= along[0] <= 3.2
                assert np.ptp(centres @ np.array(direction)) >= 2.0 * 9  # crosses a good part of the frame
            else:
                assert (steps == 0).all()


def test_classifier_on_clean_clips(held_out):
    videos, labels = held_out
    predicted = classify(videos)
    assert predicted.dtype == np.int64 and predicted.shape == labels.shape
    accuracy = (predicted == labels).mean()
    print(f"analytic classifier, 300 clean test clips: {accuracy:.3f}")
    assert accuracy >= 0.99
    # Float input in [0, 1] and single clips give the same answers.
    assert (classify(videos[:60] / 255.0) == predicted[:60]).all()
    single = classify(videos[0])
    assert isinstance(single, int) and single == predicted[0]


def test_classifier_on_degraded_clips(held_out):
    videos, labels = held_out
    degraded = degrade(videos)
    accuracy = (classify(degraded) == labels).mean()
    float_accuracy = (classify(degraded[:50] / 255.0) == labels[:50]).mean()
    print(f"analytic classifier, 300 degraded test clips: {accuracy:.3f} (float input, 50: {float_accuracy:.3f})")
    assert accuracy >= 0.9 and float_accuracy >= 0.9


@pytest.mark.parametrize("video", [
    np.zeros((FRAMES, SIZE, SIZE, 3), np.uint8),                                       # nothing there
    np.random.default_rng(0).integers(0, 256, (FRAMES, SIZE, SIZE, 3)).astype(np.uint8),  # pure noise
    np.full((FRAMES, SIZE, SIZE, 3), np.nan, np.float32),                              # broken floats
    np.random.default_rng(0).normal(0.5, 2.0, (2, 1, SIZE, SIZE, 3)),                  # one frame, out of range
    np.zeros((4, 8, 8, 3), np.uint8),                                                  # tiny
], ids=["black", "noise", "nan", "one-frame", "tiny"])
def test_classifier_never_crashes(video):
    labels = np.atleast_1d(classify(video))
    assert ((labels >= 0) & (labels < NUM_CLASSES)).all()


def test_classifier_rejects_non_videos():
    with pytest.raises(ValueError, match=r"expected a video \[T, H, W, 3\]"):
        classify(np.zeros((SIZE, SIZE, 3), np.uint8))
