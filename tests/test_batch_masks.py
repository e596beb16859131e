"""The `mask` key of batch jobs (task inpainting, issue 31 item 2): every form, every bad
form in one line, the input's crop, and outputs equal to `Generator.generate_tokens`."""
import io
import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from magvit_onnx import Generator, batch, video
from magvit_onnx.batch.jobs import read_jobs
from magvit_onnx.batch.masks import MaskSpec, box_mask
from magvit_onnx.cli import main


@pytest.fixture(scope="module")
def artifacts(small_artifacts):
    return small_artifacts(0)


@pytest.fixture(scope="module")
def facts(artifacts):
    return batch.ModelFacts.load(artifacts)


def white(height, width, rows, cols):
    image = np.zeros((height, width, 3), np.uint8)
    image[rows, cols] = 255
    return image


@pytest.fixture
def files(tmp_path):
    """An input of 32 x 64 pixels (the 32 x 32 model crops columns 16..47), masks of its size."""
    frames = np.random.default_rng(0).integers(0, 256, (8, 32, 64, 3), dtype=np.uint8)
    video.write_mp4(tmp_path / "clip.mp4", frames)
    video.write_png(tmp_path / "hole.png", white(32, 64, slice(8, 24), slice(16, 32)))
    (tmp_path / "masks").mkdir()
    for f in range(8):
        video.write_png(tmp_path / "masks" / f"{f:02d}.png", white(32, 64, slice(4, 12), slice(16 + 2 * f, 32 + 2 * f)))
    video.write_mp4(tmp_path / "masks.mp4", np.stack([white(32, 64, slice(8, 24), slice(16 + 2 * f, 32 + 2 * f))
                                                      for f in range(16)]))
    video.write_png(tmp_path / "black.png", np.zeros((32, 64, 3), np.uint8))
    return tmp_path


def test_masks_are_read_with_the_inputs_crop(files, facts):
    shape, latent = facts.video_shape, facts.latent_shape
    expected = np.zeros(shape[1:], bool)
    expected[8:24, 0:16] = True  # columns 16..31 of the 64-wide image are 0..15 after the centre crop
    np.testing.assert_array_equal(MaskSpec(path=files / "hole.png").read(shape, latent), expected)
    np.testing.assert_array_equal(MaskSpec(path=files / "hole.png", invert=True).read(shape, latent), ~expected)
    per_frame = MaskSpec(path=files / "masks").read(shape, latent)
    assert per_frame.shape == shape
    for f in range(8):
        assert np.nonzero(per_frame[f].any(axis=0))[0].tolist() == list(range(2 * f, 16 + 2 * f))
    from_video = MaskSpec(path=files / "masks.mp4").read(shape, latent)  # lossy H.264: compare the bulk
    assert from_video.shape == shape and np.mean(from_video[:, 8:24] == per_frame[:, 4:12].repeat(2, axis=1)) > 0.95
    second = MaskSpec(path=files / "masks.mp4").read(shape, latent, stride=2)  # read like the input
    assert np.mean(second[:4] == from_video[::2]) > 0.95
    moving = box_mask((4, -2, 8, 6), (1.0, 2.5), shape)
    assert moving[0, 4:12, 0:4].all() and moving[0].sum() == 32          # the part outside is dropped
    assert moving[2, 6:14, 3:9].all() and moving[2].sum() == 48          # round(-2 + 5) = 3


def jobs_file(tmp_path, lines):
    path = tmp_path / "jobs.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


BAD = [
    ({"task": "IPM"}, "task 'inpainting' needs a mask \\(white = generate\\)"),
    ({"task": "FP", "mask": "hole.png"}, "mask applies to task inpainting \\(IPM\\) only, not 'frame_prediction'"),
    ({"task": "IPM", "mask": 3}, "mask must be a path .*; got 3"),
    ({"task": "IPM", "mask": {"path": "hole.png", "box": [0, 0, 4, 4]}}, "mask object must be"),
    ({"task": "IPM", "mask": {"velocity": [0, 1]}}, "mask object must be"),
    ({"task": "IPM", "mask": {"box": [0, 0, 4, 4], "speed": 1}}, "mask object must be"),
    ({"task": "IPM", "mask": [1, 2, 3]}, "mask box must be 4 integers"),
    ({"task": "IPM", "mask": [0, 0, 0, 4]}, "mask box must be 4 integers"),
    ({"task": "IPM", "mask": [0, 0, 4.5, 4]}, "mask box must be 4 integers"),
    ({"task": "IPM", "mask": {"box": [0, 0, 4, 4], "velocity": [1]}}, "mask velocity must be 2 numbers"),
    ({"task": "IPM", "mask": {"box": [0, 0, 4, 4], "velocity": [1, 1e9]}}, "mask velocity must be 2 numbers"),
    ({"task": "IPM", "mask": {"box": [0, 0, 4, 4], "invert": "yes"}}, "mask invert must be true or false"),
    ({"task": "IPM", "mask": ""}, "mask path must be a non-empty string"),
    ({"task": "IPM", "mask": {"path": "a\u0000b"}}, "mask path must be a non-empty string"),
    ({"task": "IPM", "mask": [40, 40, 4, 4]}, "mask box \\[40, 40, 4, 4\\]: mask is empty"),
    ({"task": "IPM", "mask": [0, 0, 32, 32]}, "mask covers every pixel"),
    ({"task": "IPM", "mask": {"box": [4, 4, 8, 8], "invert": True}}, "inverted: mask touches every token"),
]


def test_a_redrawn_mask_file_changes_the_jobs_config(files, facts):
    """Editing a mask is editing the region: a resumed run must redo the job, not skip it."""
    def config(name):
        line = {"id": "a", "task": "inpainting", "input": "clip.mp4", "mask": name}
        return read_jobs(jobs_file(files, [line]), facts)[0][0].config(facts)

    before, before_folder = config("hole.png"), config("masks")
    video.write_png(files / "hole.png", white(32, 64, slice(8, 24), slice(20, 36)))
    video.write_png(files / "masks" / "03.png", white(32, 64, slice(4, 12), slice(0, 16)))
    assert config("hole.png") != before and config("masks") != before_folder
    assert config("hole.png") == config("hole.png")


def test_every_bad_mask_is_one_line(tmp_path, facts):
    lines = [{"id": f"b{i}", "input": "clip.mp4", **line} for i, (line, _) in enumerate(BAD)]
    lines.append({"id": "good", "task": "inpainting", "input": "clip.mp4", "mask": {"box": [0, 0, 8, 8], "invert": True}})
    jobs, invalid = read_jobs(jobs_file(tmp_path, lines), facts)
    assert [j.id for j in jobs] == ["good"]
    errors = {bad.id: bad.error for bad in invalid}
    for i, (_, pattern) in enumerate(BAD):
        assert re.search(pattern, errors[f"b{i}"]), (pattern, errors[f"b{i}"])
        assert "\n" not in errors[f"b{i}"]


def test_mask_jobs_equal_the_generator_and_run_from_the_cli(files, artifacts, facts):
    boxed = {"box": [4, 0, 8, 10], "velocity": [0, 2]}
    lines = [
        {"id": "png", "task": "inpainting", "input": "clip.mp4", "mask": "hole.png", "seed": 1},
        {"id": "png2", "task": "inpainting", "input": "clip.mp4", "mask": "hole.png", "seed": 2, "stride": 1},
        {"id": "folder", "task": "IPM", "input": "clip.mp4", "mask": "masks", "seed": 3},
        {"id": "video", "task": "IPM", "input": "clip.mp4", "mask": "masks.mp4", "seed": 4},
        {"id": "moving", "task": "IPM", "input": "clip.mp4", "mask": boxed, "seed": 5},
        {"id": "outside", "task": "IPM", "input": "clip.mp4", "mask": {"path": "hole.png", "invert": True}, "seed": 6},
        {"id": "black", "task": "IPM", "input": "clip.mp4", "mask": "black.png"},
        {"id": "nofile", "task": "IPM", "input": "clip.mp4", "mask": "nope.png"},
    ]
    lines = [{**line, "steps": 2, "format": "npy"} for line in lines]
    path = jobs_file(files, lines)
    quiet = dict(progress=batch.Progress(0, stream=io.StringIO(), tty=False), log=lambda line: None)
    summary = batch.run(path, files / "out", artifacts=artifacts, batch_size=2, **quiet)
    assert (summary.ok, summary.failed) == (6, 2)
    view = batch.report_view(files / "out")
    assert "black.png (white = generate): mask is empty" in view["black"]["error"]
    assert view["nofile"]["error"].endswith("nope.png: no such file")
    assert view["png"]["batch"] == 2  # the two jobs with one mask were generated together
    generator = Generator(artifacts)
    clip = video.read_video(files / "clip.mp4", num_frames=8, size=(32, 32))
    shape, latent = facts.video_shape, facts.latent_shape
    for line in lines[:6]:
        spec = read_jobs(jobs_file(files, [line]), facts)[0][0].mask
        expected = generator.generate_tokens("inpainting", clip, mask=spec.read(shape, latent), seed=line["seed"],
                                             steps=2)
        np.testing.assert_array_equal(np.load(files / "out" / f"{line['id']}.npy"), expected, err_msg=line["id"])
    # through the CLI: a PNG mask, with the condition beside the output
    cli_jobs = jobs_file(files, [{"id": "cli", "task": "IPM", "input": "clip.mp4", "mask": "hole.png", "steps": 1,
                                  "side_by_side": True, "replace_condition_pixels": True}])
    result = CliRunner().invoke(main, ["run", str(cli_jobs), "--out", str(files / "cli"), "--artifacts", str(artifacts)])
    assert result.exit_code == 0, result.output
    assert (files / "cli" / "cli.mp4").is_file() and (files / "cli" / "cli.sbs.mp4").is_file()
