"""Training data: procedural sources, streaming video/image files, manifests, index sampling."""
import json
import sys

import numpy as np
import pytest

from magvit_onnx import procedural
from magvit_onnx.models.data import (DeadLeaves, FileSource, ImageFiles, IndexSampler, Mixture, PhotoMoves,
                                     SyntheticClips, batches, chunks, crop_and_flip, parse_data)
from magvit_onnx.video import write_mp4, write_png

SHAPE = (8, 32, 32)


def test_dead_leaves_is_deterministic_varied_and_moving():
    clip = procedural.dead_leaves(3, 8, (32, 48))
    assert clip.shape == (8, 32, 48, 3) and clip.dtype == np.uint8
    assert np.array_equal(clip, procedural.dead_leaves(3, 8, (32, 48)))
    assert not np.array_equal(clip, procedural.dead_leaves(4, 8, (32, 48)))
    clips = np.stack([procedural.dead_leaves(seed, 8, (32, 32)) for seed in range(12)])
    assert np.abs(np.diff(clips.astype(np.int16), axis=1)).mean() > 1  # layers and camera move
    assert clips.std() > 40 and len(np.unique(clips.reshape(-1, 3), axis=0)) > 2000  # many colours, not grey


def test_photo_moves_uses_photos_and_moves():
    photos = [np.tile(np.linspace(0, 255, 160, dtype=np.uint8)[None, :, None], (120, 1, 3)),
              np.full((100, 100, 3), (200, 30, 30), np.uint8)]
    clip = procedural.photo_moves(5, photos, 8, (32, 32))
    assert clip.shape == (8, 32, 32, 3) and np.array_equal(clip, procedural.photo_moves(5, photos, 8, (32, 32)))
    with pytest.raises(ValueError, match="at least one photograph"):
        procedural.photo_moves(0, [], 8, (32, 32))


def test_find_photos_takes_only_still_images(tmp_path):
    for name in ("a.png", "b.JPG", "clip.mp4", "notes.txt", "tests/c.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = procedural.find_photos([tmp_path], packages=False)
    assert [p.name for p in found] == ["a.png", "b.JPG"]  # no video, nothing under tests/


def test_sources_are_pure_functions_of_the_index():
    for source in (SyntheticClips(SHAPE), DeadLeaves(SHAPE)):
        first = source[7]
        assert first.clip.shape == (*SHAPE, 3) and np.array_equal(first.clip, source[7].clip)
        assert not np.array_equal(first.clip, source[8].clip)
    assert SyntheticClips(SHAPE)[0].label >= 0 and DeadLeaves(SHAPE)[0].label == -1
    train, val = DeadLeaves(SHAPE, "train"), DeadLeaves(SHAPE, "val")
    assert not np.array_equal(train[0].clip, val[0].clip)  # disjoint seed ranges


def test_index_sampler_gives_each_rank_its_slice_of_the_global_batch():
    def first(sampler, n):
        it = iter(sampler)
        return [next(it) for _ in range(n)]

    # global batch 4 = batch 2 x 2 ranks: step s covers 4s..4s+3, rank r takes 2 of them
    assert first(IndexSampler(2, rank=0, world=2), 4) == [0, 1, 4, 5]
    assert first(IndexSampler(2, rank=1, world=2), 4) == [2, 3, 6, 7]
    assert first(IndexSampler(4), 8) == list(range(8))
    # accumulation: micro-batch m of rank r at offset (m * world + r) * b
    assert first(IndexSampler(1, rank=1, world=2, accumulation=2), 4) == [1, 3, 5, 7]
    assert first(IndexSampler(2, start_step=3), 2) == [6, 7]  # a resumed run continues the stream


def test_mixture_and_spec_parsing():
    source = parse_data("synthetic:1,dead_leaves:3", SHAPE, seed=1)
    assert isinstance(source, Mixture) and source.num_classes == 10
    labels = np.array([source[i].label for i in range(200)])
    assert 0.1 < (labels >= 0).mean() < 0.45  # about a quarter synthetic
    with pytest.raises(ValueError, match="empty data spec"):
        parse_data(" , ", SHAPE)
    with pytest.raises(ValueError, match="no such folder"):
        parse_data("/nonexistent/videos", SHAPE)


def _write_videos(root, names, frames=12, size=(40, 56)):
    ramp = np.linspace(0, 255, size[1], dtype=np.uint8)
    for i, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        video = np.stack([np.roll(np.tile(ramp[None, :, None], (size[0], 1, 3)), 3 * t + 7 * i, axis=1)
                          for t in range(frames)])
        write_mp4(path, video)


def test_video_folder_streams_random_windows_crops_and_flips(tmp_path):
    _write_videos(tmp_path, ["cats/a.mp4", "cats/b.mp4", "dogs/c.mp4", "loose.mp4"])
    source = FileSource(tmp_path, (4, 32, 32))
    val = FileSource(tmp_path, (4, 32, 32), split="val")
    assert source.class_names == ("cats", "dogs")
    assert len(val.files) == 1 and len(source.files) == 3 and not set(val.files) & set(source.files)
    assert sorted(e.label for e in source.files + val.files) == [-1, 0, 0, 1]
    samples = [source[i] for i in range(12)]
    assert all(s.clip.shape == (4, 32, 32, 3) for s in samples)
    assert np.array_equal(samples[5].clip, source[5].clip)  # deterministic
    # every file once per epoch of 3 items, in a fresh order each epoch
    firsts = {tuple(source[i].clip[0, 0, :, 0]) for i in range(3)}
    assert len(firsts) > 1


def test_crop_and_flip():
    clip = np.arange(2 * 4 * 6 * 3, dtype=np.uint8).reshape(2, 4, 6, 3)
    centre = crop_and_flip(clip, (4, 4), None)
    assert np.array_equal(centre, clip[:, :, 1:5])
    crops = {crop_and_flip(clip, (4, 4), np.random.default_rng(s)).tobytes() for s in range(40)}
    assert len(crops) == 6  # 3 offsets x (flipped or not)


def test_manifest_csv_and_jsonl(tmp_path):
    _write_videos(tmp_path / "v", ["x.mp4", "y.mp4"])
    (tmp_path / "m.csv").write_text("path,label\nv/x.mp4,run\nv/y.mp4,\n")
    (tmp_path / "m.jsonl").write_text(json.dumps({"path": "v/x.mp4", "label": 3}) + "\n"
                                      + json.dumps({"path": "v/y.mp4"}) + "\n")
    for manifest in ("m.csv", "m.jsonl"):
        source, val = (parse_data(str(tmp_path / manifest), (4, 32, 32), split) for split in ("train", "val"))
        assert source.num_classes == 1 and sorted(e.label for e in source.files + val.files) == [-1, 0]
        assert source[0].clip.shape == (4, 32, 32, 3)
    (tmp_path / "bad.csv").write_text("file\nv/x.mp4\n")
    with pytest.raises(ValueError, match="needs a 'path'"):
        parse_data(str(tmp_path / "bad.csv"), (4, 32, 32))


def test_a_corrupt_video_is_skipped_with_a_warning_and_counted(tmp_path, capsys):
    _write_videos(tmp_path, ["a.mp4", "b.mp4", "c.mp4"])
    (tmp_path / "zz_broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    source = FileSource(tmp_path, (4, 32, 32))
    assert any(e.path.name == "zz_broken.mp4" for e in source.files)  # a training file (one other is held out)
    samples = [source[i] for i in range(6)]  # two epochs of 3: the broken file comes up twice
    assert all(s.clip.shape == (4, 32, 32, 3) for s in samples)
    assert sum(s.skipped for s in samples) == 2 and source.failures == 2
    err = capsys.readouterr().err
    assert err.count("warning: skipping") == 2 and "broken.mp4" in err


def test_image_folder_gives_stills(tmp_path):
    for i in range(3):
        write_png(tmp_path / f"p{i}.png", np.full((120, 150, 3), 40 * i, np.uint8))
    source = ImageFiles(tmp_path, (1, 32, 32))
    assert source[0].clip.shape == (1, 32, 32, 3) and source[0].label == -1


def test_photo_moves_source_reads_a_folder(tmp_path):
    write_png(tmp_path / "p.png", np.tile(np.arange(128, dtype=np.uint8)[None, :, None], (100, 1, 3)))
    source = PhotoMoves((4, 32, 32), folders=[tmp_path])
    assert len(source.photos) == 1 and source[0].clip.shape == (4, 32, 32, 3)
    with pytest.raises(ValueError, match="no photographs"):
        PhotoMoves((4, 32, 32), folders=[tmp_path / "empty"])


def test_batches_in_worker_processes_equal_in_process():
    source = DeadLeaves((2, 16, 16), seed=3)
    here, there = batches(source, 2), batches(source, 2, workers=2)
    for _ in range(3):
        a, b = next(here), next(there)
        assert np.array_equal(a.clip.numpy(), b.clip.numpy()) and a.clip.shape == (2, 2, 16, 16, 3)


def test_chunks_in_worker_processes_equal_take():
    source = Mixture([DeadLeaves((2, 16, 16), seed=3), SyntheticClips((2, 16, 16), seed=3)], [1.0, 1.0], seed=3)
    clips, labels = source.take(5, start=7)
    parts = list(chunks(source, 7, 5, chunk=2, workers=2))
    assert [len(p.clip) for p in parts] == [2, 2, 1]
    assert np.array_equal(np.concatenate([p.clip.numpy() for p in parts]), clips)
    assert np.array_equal(np.concatenate([p.label.numpy() for p in parts]), labels)


def test_photos_load_without_pyav_as_with_it(monkeypatch):
    """The lent GPU image has scikit-image but not PyAV: the photographs decode the same there
    (PNGs exactly; JPEG decoders may round differently)."""
    paths = [p for p in procedural.find_photos() if p.suffix == ".png"][:6]
    with_av = procedural.load_photos(paths)
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError
    without = procedural.load_photos(paths)
    assert len(without) == len(with_av) == 6
    assert all(np.array_equal(a, b) and b.dtype == np.uint8 and b.shape[2] == 3 for a, b in zip(with_av, without))
