"""Video I/O: round trips, frame picking, resizing, pixel formats, errors, atomic writes,
composition helpers."""
from fractions import Fraction

import av
import numpy as np
import pytest

from magvit_onnx import video
from magvit_onnx.video import (
    VideoError,
    contact_sheet,
    read_video,
    side_by_side,
    write_gif,
    write_mp4,
    write_png,
    write_video,
)


def smooth_clip(frames: int, height: int, width: int) -> np.ndarray:
    """A moving colour gradient: smooth in space and time, so lossy codecs keep it well."""
    t = np.arange(frames)[:, None, None]
    y = np.arange(height)[None, :, None]
    x = np.arange(width)[None, None, :]
    red = 128 + 100 * np.sin((x + 2 * t) / 9.0) + 0 * y
    green = 128 + 100 * np.cos((y + t) / 11.0) + 0 * x
    blue = 40 + (x + y) * 160 / (height + width) + 0 * t
    return np.stack(np.broadcast_arrays(red, green, blue), axis=-1).round().astype(np.uint8)


def numbered_clip(frames: int, height: int, width: int) -> np.ndarray:
    """Frame t has red = 16 + 7 t everywhere (its index, read back from the mean),
    green = 2 y and blue = 3 x (to check crops)."""
    t = np.arange(frames)[:, None, None]
    y = np.arange(height)[None, :, None]
    x = np.arange(width)[None, None, :]
    channels = np.broadcast_arrays(16 + 7 * t + 0 * x * y, 2 * y + 0 * t * x, 3 * x + 0 * t * y)
    return np.stack(channels, axis=-1).astype(np.uint8)


def frame_indices(clip: np.ndarray) -> list[int]:
    return np.round((clip[..., 0].mean(axis=(1, 2)) - 16) / 7).astype(int).tolist()


def picked(path, **options) -> list[int]:
    """Source frame indices of the clip `read_video(path, size=(40, 40), **options)` returns."""
    return frame_indices(read_video(path, size=(40, 40), **options))


def mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def encode(path, frames: np.ndarray, codec: str, pix_fmt: str, in_format: str, **open_kw) -> None:
    """Write `frames` with plain PyAV (for inputs `write_mp4` never produces)."""
    with av.open(str(path), "w", **open_kw) as container:
        stream = container.add_stream(codec, rate=8)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format=in_format)))
        container.mux(stream.encode())


@pytest.fixture(scope="module")
def clip30(tmp_path_factory):
    """30 numbered frames of 96x80 (H x W) at 30 fps, and the path of their MP4."""
    frames = numbered_clip(30, 96, 80)
    path = tmp_path_factory.mktemp("clip") / "clip30.mp4"
    write_mp4(path, frames, fps=30)
    return path, frames


# ----------------------------------------------------------------- round trips


def test_mp4_round_trip(tmp_path):
    frames = smooth_clip(16, 64, 64)
    path = tmp_path / "clip.mp4"
    write_mp4(path, frames, fps=8)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert stream.average_rate == 8
        assert stream.frames == 16
    clip = read_video(path, num_frames=16, size=(64, 64))
    assert clip.shape == (16, 64, 64, 3) and clip.dtype == np.uint8
    assert mae(clip, frames) < 3
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_gif_round_trip(tmp_path):
    frames = smooth_clip(16, 48, 40)
    path = tmp_path / "clip.gif"
    write_gif(path, frames, fps=8)
    with av.open(str(path)) as container:
        assert container.format.name == "gif"
        assert abs(container.streams.video[0].average_rate - 8) < 0.5  # centisecond delays
    clip = read_video(path, num_frames=16, size=(48, 40))
    assert clip.shape == (16, 48, 40, 3)
    assert mae(clip, frames) < 12
    with pytest.raises(VideoError, match="too few frames"):
        read_video(path, num_frames=17, size=(48, 40))


def test_frame_rate_of_videos_and_stills(tmp_path):
    frames = smooth_clip(6, 16, 16)
    write_mp4(tmp_path / "pal.mp4", frames, fps=25)
    write_mp4(tmp_path / "ntsc.mp4", frames, fps=Fraction(30000, 1001))
    write_gif(tmp_path / "clip.gif", frames, fps=20)
    write_png(tmp_path / "still.png", frames[0])
    assert video.frame_rate(tmp_path / "pal.mp4") == 25
    assert video.frame_rate(tmp_path / "ntsc.mp4") == Fraction(30000, 1001)
    assert video.frame_rate(tmp_path / "clip.gif") == 20
    assert video.frame_rate(tmp_path / "still.png") is None  # FFmpeg would say 25
    assert video.frame_rate(tmp_path / "missing.mp4") is None


@pytest.mark.parametrize("fps", [60, 0.001])
def test_gif_refuses_rates_it_cannot_store(tmp_path, fps):
    """Old: 60 fps ended in FFmpeg's 'Invalid argument' (delays under 1 cs do not exist)."""
    with pytest.raises(VideoError, match=f"{fps:g} fps cannot be a GIF's: its frame delays are whole centiseconds"):
        write_gif(tmp_path / "fast.gif", smooth_clip(4, 16, 16), fps=fps)
    assert list(tmp_path.iterdir()) == []


def test_odd_sizes_are_padded_to_even(tmp_path):
    frames = smooth_clip(4, 63, 65)
    path = tmp_path / "odd.mp4"
    write_mp4(path, frames)
    clip = read_video(path, num_frames=4, size=(64, 66))
    assert mae(clip[:, :63, :65], frames) < 4
    assert mae(clip[:, 63, :65], frames[:, 62]) < 4  # the padding repeats the last row
    assert mae(clip[:, :63, 65], frames[:, :, 64]) < 4  # ... and the last column
    write_gif(tmp_path / "odd.gif", frames)  # GIF takes odd sizes as they are
    assert read_video(tmp_path / "odd.gif", num_frames=4, size=(63, 65)).shape == (4, 63, 65, 3)


@pytest.mark.parametrize("fps, expected", [(Fraction(15, 2), Fraction(15, 2)), (7.5, Fraction(15, 2)),
                                           (Fraction(30000, 1001), Fraction(30000, 1001)), (12, 12)])
def test_fps_fractions(tmp_path, fps, expected):
    path = tmp_path / "rate.mp4"
    write_mp4(path, smooth_clip(4, 16, 16), fps=fps)
    with av.open(str(path)) as container:
        assert container.streams.video[0].average_rate == expected


def test_png_still_round_trip(tmp_path):
    image = smooth_clip(1, 21, 35)[0]
    path = tmp_path / "still.png"
    write_png(path, image)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with av.open(str(path)) as container:
        decoded = next(container.decode(video=0)).to_ndarray(format="rgb24")
    np.testing.assert_array_equal(decoded, image)


def test_write_video_dispatches_on_suffix(tmp_path):
    frames = smooth_clip(5, 16, 24)
    write_video(tmp_path / "a.MP4", frames)
    write_video(tmp_path / "a.gif", frames)
    write_video(tmp_path / "a.png", frames)
    assert read_video(tmp_path / "a.MP4", num_frames=5, size=(16, 24)).shape == (5, 16, 24, 3)
    assert read_video(tmp_path / "a.gif", num_frames=5, size=(16, 24)).shape == (5, 16, 24, 3)
    strip = read_video(tmp_path / "a.png", num_frames=1, size=(16, 5 * 24 + 4 * 2))[0]
    np.testing.assert_array_equal(strip, side_by_side(*frames[:, None])[0])
    with pytest.raises(VideoError, match=r"unsupported suffix '\.avi'; use \.mp4, \.gif or \.png"):
        write_video(tmp_path / "a.avi", frames)


def test_falls_back_to_another_mp4_encoder(tmp_path, monkeypatch):
    monkeypatch.setattr(video, "MP4_ENCODERS", (("no_such_encoder", "yuv420p"), ("mpeg4", "yuv420p")))
    frames = smooth_clip(8, 32, 32)
    with pytest.warns(UserWarning, match="'no_such_encoder' is not available.*'mpeg4'"):
        write_mp4(tmp_path / "fallback.mp4", frames)
    with av.open(str(tmp_path / "fallback.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
    assert mae(read_video(tmp_path / "fallback.mp4", num_frames=8, size=(32, 32)), frames) < 6
    monkeypatch.setattr(video, "MP4_ENCODERS", (("no_such_encoder", "yuv420p"),))
    with pytest.raises(VideoError, match="no MP4 encoder available"):
        write_mp4(tmp_path / "none.mp4", frames)
    assert not (tmp_path / "none.mp4").exists()


# ----------------------------------------------------------------- picking and resizing


def test_stride_and_start(clip30):
    path, _ = clip30
    assert frame_indices(read_video(path, num_frames=30, size=(96, 80))) == list(range(30))
    assert picked(path, num_frames=5, stride=3, start=2) == [2, 5, 8, 11, 14]
    assert picked(path, num_frames=2, stride=29) == [0, 29]
    expected = "has 30, but 2 frames with stride=30 from start=0 need at least 31"
    with pytest.raises(VideoError, match=expected):
        read_video(path, num_frames=2, size=(40, 40), stride=30)
    with pytest.raises(VideoError, match="too few frames"):
        read_video(path, num_frames=1, size=(40, 40), start=30)


def test_fps_resampling(clip30):
    path, _ = clip30
    # 30 -> 10 fps takes every third frame; `stride` is ignored when `fps` is given.
    assert picked(path, num_frames=10, fps=10, stride=7) == list(range(0, 30, 3))
    assert picked(path, num_frames=10, fps=10, start=2) == list(range(2, 30, 3))
    assert picked(path, num_frames=4, fps=Fraction(15)) == [0, 2, 4, 6]
    # Upsampling repeats the nearest frame: 45 fps samples at 0, 2/3, 4/3, 2, ... source frames.
    assert picked(path, num_frames=8, fps=45) == [0, 1, 1, 2, 3, 3, 4, 5]
    with pytest.raises(VideoError, match=r"too short: 11 frames at fps=10 need 1\.000 s"):
        read_video(path, num_frames=11, size=(40, 40), fps=10)


def test_resize_keeps_aspect_and_centre_crops(clip30):
    path, _ = clip30
    full = read_video(path, num_frames=2, size=(96, 80)).astype(np.float32)
    # 96x80 -> 40x40: scale 1/2 to 48x40 (area = 2x2 means), then rows 4..43.
    reference = full.reshape(2, 48, 2, 40, 2, 3).mean(axis=(2, 4))[:, 4:44]
    small = read_video(path, num_frames=2, size=(40, 40))
    assert small.shape == (2, 40, 40, 3)
    assert np.abs(small - reference).mean() < 1.5
    # Non-square target: scale 0.8 to 77x64, crop rows 6..37 (green = 2 y keeps the centre).
    wide = read_video(path, num_frames=2, size=(32, 64))
    assert wide.shape == (2, 32, 64, 3)
    assert abs(wide[..., 1].mean() - full[..., 1].mean()) < 3
    assert abs(wide[..., 2].mean() - full[..., 2].mean()) < 3
    assert read_video(path, num_frames=1, size=(200, 120)).shape == (1, 200, 120, 3)  # upscaling


def test_grayscale_input_reads_as_rgb(tmp_path):
    gray = smooth_clip(4, 32, 32)[..., 1]
    path = tmp_path / "gray.mkv"
    encode(path, gray, "ffv1", "gray", "gray")
    clip = read_video(path, num_frames=4, size=(32, 32))
    assert clip.shape == (4, 32, 32, 3)
    for channel in range(3):
        np.testing.assert_array_equal(clip[..., channel], gray)


def test_alpha_input_reads_as_rgb(tmp_path):
    rgb = smooth_clip(4, 32, 32)
    rgba = np.concatenate([rgb, np.full((4, 32, 32, 1), 100, np.uint8)], axis=-1)
    path = tmp_path / "alpha.apng"
    encode(path, rgba, "apng", "rgba", "rgba", format="apng")
    np.testing.assert_array_equal(read_video(path, num_frames=4, size=(32, 32)), rgb)


# ----------------------------------------------------------------- orientation, short inputs, seeking


def write_oriented(path, coded: np.ndarray, rotation: dict | None = None, tags: dict | None = None) -> None:
    """Lossless FFV1 in Matroska of the `coded` frames, with a display matrix
    (`set_display_rotation(**rotation)`, as phones store it) and/or stream tags."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=8)
        stream.height, stream.width = coded.shape[1:3]
        stream.pix_fmt = "bgr0"
        if rotation:
            stream.set_display_rotation(**rotation)
        stream.metadata.update(tags or {})
        for frame in coded:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


@pytest.mark.parametrize("rotation, stored", [
    (dict(degrees=90), lambda c: np.rot90(c, -1, axes=(1, 2))),   # shot upright, stored turned clockwise
    (dict(degrees=-90), lambda c: np.rot90(c, 1, axes=(1, 2))),
    (dict(degrees=180), lambda c: c[:, ::-1, ::-1]),
    (dict(degrees=0, hflip=True), lambda c: c[:, :, ::-1]),         # a mirrored front camera
    (dict(degrees=90, vflip=True), lambda c: c.transpose(0, 2, 1, 3)),
])
def test_display_matrix_is_applied_so_phone_videos_come_out_upright(tmp_path, rotation, stored):
    """Old code read the coded (sideways) frames and ignored the display matrix."""
    upright = numbered_clip(3, 48, 32)  # portrait: 48 rows, 32 columns
    path = tmp_path / "phone.mkv"
    write_oriented(path, np.ascontiguousarray(stored(upright)), rotation=rotation)
    np.testing.assert_array_equal(read_video(path, num_frames=3, size=(48, 32)), upright)


def test_rotate_tag_is_applied(tmp_path):
    """The older way: a `rotate` stream tag in clockwise degrees (Matroska keeps it as ROTATE)."""
    upright = numbered_clip(3, 48, 32)
    path = tmp_path / "tagged.mkv"
    write_oriented(path, np.ascontiguousarray(np.rot90(upright, 1, axes=(1, 2))), tags={"rotate": "90"})
    np.testing.assert_array_equal(read_video(path, num_frames=3, size=(48, 32)), upright)


def test_rotated_video_is_scaled_and_cropped_as_displayed(tmp_path):
    """Cover-and-crop works on the upright picture: the same result as an upright file."""
    upright = smooth_clip(2, 48, 32)
    write_oriented(tmp_path / "upright.mkv", upright)
    write_oriented(tmp_path / "turned.mkv", np.ascontiguousarray(np.rot90(upright, -1, axes=(1, 2))),
                   rotation=dict(degrees=90))
    for size in ((20, 20), (24, 12), (30, 12)):  # swscale rounds rows and columns a little differently
        expected = read_video(tmp_path / "upright.mkv", num_frames=2, size=size)
        assert mae(read_video(tmp_path / "turned.mkv", num_frames=2, size=size), expected) < 0.5


def test_short_clip_and_still_image_are_padded_when_min_frames_allows(tmp_path):
    """A 5-frame clip or one PNG gives a full clip by repeating the last frame (old code:
    'too few frames' whatever the caller needed)."""
    frames = numbered_clip(5, 32, 32)
    path = tmp_path / "five.mkv"
    write_oriented(path, frames)
    clip = read_video(path, num_frames=16, size=(32, 32), min_frames=1)
    assert frame_indices(clip) == [0, 1, 2, 3, 4] + [4] * 11
    assert frame_indices(read_video(path, num_frames=16, size=(32, 32), stride=2, min_frames=3)) == [0, 2, 4] + [4] * 13
    assert frame_indices(read_video(path, num_frames=16, size=(32, 32), fps=4, min_frames=1))[:3] == [0, 2, 4]
    with pytest.raises(VideoError, match=r"too few frames: the video has 5, .*\(6 picked frames are enough here\)"):
        read_video(path, num_frames=16, size=(32, 32), min_frames=6)
    with pytest.raises(VideoError, match="too few frames"):
        read_video(path, num_frames=16, size=(32, 32))
    still = tmp_path / "still.png"
    write_png(still, frames[2])
    np.testing.assert_array_equal(read_video(still, num_frames=16, size=(32, 32), min_frames=1),
                                  np.repeat(frames[2:3], 16, axis=0))


def indexed_clip(frames: int, size: int = 32) -> np.ndarray:
    """Frame t: red = 16 + 7 (t mod 32), green = 16 + 7 (t div 32), flat (lossy codecs keep it)."""
    t = np.arange(frames)
    colours = np.stack([16 + 7 * (t % 32), 16 + 7 * (t // 32), np.full(frames, 128)], axis=-1)
    return np.broadcast_to(colours[:, None, None], (frames, size, size, 3)).astype(np.uint8)


def indices_of(clip: np.ndarray) -> list[int]:
    red, green = (np.round((clip[..., c].mean(axis=(1, 2)) - 16) / 7).astype(int) for c in (0, 1))
    return (green * 32 + red).tolist()


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """300 frames at 25 fps, H.264 with a keyframe every 25 frames; and a decoded-frame counter."""
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"g": "25", "keyint_min": "25"})
        stream.height = stream.width = 32
        stream.pix_fmt = "yuv420p"
        for frame in indexed_clip(300):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def counting_decodes(monkeypatch) -> list[int]:
    decoded = [0]
    original = video._decode

    def counted(container, stream):
        for frame in original(container, stream):
            decoded[0] += 1
            yield frame

    monkeypatch.setattr(video, "_decode", counted)
    return decoded


def test_late_start_seeks_instead_of_decoding_everything_before_it(long_clip, monkeypatch):
    """Old code decoded all 296 frames up to the clip's end; seeking decodes at most one GOP
    (25 frames) before `start`, plus the clip."""
    decoded = counting_decodes(monkeypatch)
    assert indices_of(read_video(long_clip, num_frames=16, size=(32, 32), start=280)) == list(range(280, 296))
    assert decoded[0] <= 25 + 16
    decoded[0] = 0
    assert indices_of(read_video(long_clip, num_frames=4, size=(32, 32), start=137, stride=5)) == [137, 142, 147, 152]
    assert indices_of(read_video(long_clip, num_frames=5, size=(32, 32), start=200, fps=5)) == list(range(200, 225, 5))
    assert decoded[0] <= 2 * (25 + 25)


@pytest.mark.parametrize("start", [300, 10_000])
def test_start_past_the_end_fails_before_decoding(long_clip, monkeypatch, start):
    """Old code decoded the whole file before saying 'too few frames'."""
    decoded = counting_decodes(monkeypatch)
    with pytest.raises(VideoError, match=rf"start={start} is past the end of the video \(300 frames\); "
                                         r"start must be below 300"):
        read_video(long_clip, num_frames=1, size=(32, 32), start=start)
    assert decoded[0] == 0


def test_start_past_the_end_without_a_frame_count_uses_the_duration(tmp_path, monkeypatch):
    path = tmp_path / "forty.mkv"  # Matroska stores no frame count, only a duration
    write_oriented(path, indexed_clip(40))
    assert indices_of(read_video(path, num_frames=3, size=(32, 32), start=37)) == [37, 38, 39]
    decoded = counting_decodes(monkeypatch)
    with pytest.raises(VideoError, match=r"start=60 is past the end of the video \(about 40 frames \(5\.00 s at 8 fps\)\)"):
        read_video(path, num_frames=1, size=(32, 32), start=60)
    assert decoded[0] == 0


# ----------------------------------------------------------------- read errors


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(VideoError, match=r"nope\.mp4: no such file"):
        read_video(tmp_path / "nope.mp4")
    with pytest.raises(VideoError, match="not a file"):
        read_video(tmp_path)


def test_text_file_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are not the frames you are looking for\n" * 20)
    with pytest.raises(VideoError, match=r"notes\.mp4: cannot decode .*corrupt, truncated or not") as error:
        read_video(path)
    assert "Errno" not in str(error.value) and str(path) in str(error.value)


def test_zero_byte_file_message_has_no_raw_errno(tmp_path):
    """Old message: 'cannot decode ([Errno 1094995529] Invalid data found ...)'."""
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(VideoError, match=r"empty\.mp4: the file is empty \(0 bytes\); give a video file") as error:
        read_video(path)
    assert "Errno" not in str(error.value)


def test_truncated_mp4(tmp_path, clip30):
    data = clip30[0].read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match=r"cut\.mp4: cannot decode"):
        read_video(path, num_frames=2, size=(40, 40))


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        samples.sample_rate = 8000
        container.mux(stream.encode(samples))
        container.mux(stream.encode())
    with pytest.raises(VideoError, match=r"tone\.wav: no video stream"):
        read_video(path)


def test_zero_frames(tmp_path):
    path = tmp_path / "empty.avi"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width = stream.height = 16
        container.start_encoding()  # writes the header of a stream that never gets a frame
        container.mux(stream.encode())
    for fps in (None, 8):
        with pytest.raises(VideoError, match=r"empty\.avi: the video stream has no frames"):
            read_video(path, num_frames=1, size=(16, 16), fps=fps)


def test_too_small_and_too_large_videos(tmp_path, clip30, monkeypatch):
    path = tmp_path / "tiny.mp4"
    write_mp4(path, smooth_clip(16, 4, 4))
    expected = r"tiny\.mp4: video is 4x4 pixels; width and height must be within \[8, 8192\]"
    with pytest.raises(VideoError, match=expected):
        read_video(path, size=(16, 16))
    monkeypatch.setattr(video, "MAX_SIDE", 90)
    with pytest.raises(VideoError, match="video is 80x96 pixels"):
        read_video(clip30[0], num_frames=1, size=(40, 40))


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(num_frames=0), "num_frames must be an integer >= 1"),
        (dict(num_frames=2.0), "num_frames must be an integer >= 1"),
        (dict(stride=0), "stride must be an integer >= 1"),
        (dict(stride=True), "stride must be an integer >= 1"),
        (dict(start=-1), "start must be an integer >= 0"),
        (dict(fps=0), "fps must be None or a positive number"),
        (dict(fps=float("nan")), "fps must be None or a positive number"),
        (dict(fps="8"), "fps must be None or a positive number"),
        (dict(size=128), r"size must be \(height, width\)"),
        (dict(size=(128,)), r"size must be \(height, width\)"),
        (dict(size=(4, 128)), r"size must be \(height, width\) with integers in \[8, 8192\]"),
        (dict(size=(128, 9000)), r"size must be \(height, width\)"),
        (dict(min_frames=0), r"min_frames must be an integer in 1\.\.num_frames"),
        (dict(num_frames=4, min_frames=5), r"min_frames must be an integer in 1\.\.num_frames \(4\)"),
    ],
)
def test_bad_read_options(clip30, options, message):
    with pytest.raises(VideoError, match=message) as error:
        read_video(clip30[0], **options)
    assert "clip30.mp4" in str(error.value)


# ----------------------------------------------------------------- atomic writes


@pytest.mark.parametrize("writer", [write_mp4, write_gif, write_video])
@pytest.mark.parametrize(
    "frames",
    [
        smooth_clip(2, 16, 16).astype(np.float32) / 255,  # wrong dtype
        smooth_clip(2, 16, 16)[..., 0],  # no channel axis
        smooth_clip(2, 16, 16)[0],  # one frame without the time axis
        np.zeros((0, 16, 16, 3), np.uint8),  # no frames
        np.zeros((2, 16, 16, 4), np.uint8),  # RGBA
    ],
)
def test_bad_frames_raise_and_write_nothing(tmp_path, writer, frames):
    with pytest.raises(ValueError, match=r"frames must be a non-empty uint8 array \[T, H, W, 3\]"):
        writer(tmp_path / "out.gif" if writer is write_gif else tmp_path / "out.mp4", frames)
    assert list(tmp_path.iterdir()) == []


def test_bad_png_image_and_fps(tmp_path):
    with pytest.raises(VideoError, match=r"image must be a non-empty uint8 array \[H, W, 3\]"):
        write_png(tmp_path / "a.png", smooth_clip(2, 8, 8))
    for fps in (0, -8, float("inf"), "8"):
        with pytest.raises(VideoError, match="fps must be a positive number"):
            write_mp4(tmp_path / "a.mp4", smooth_clip(2, 8, 8), fps=fps)
    with pytest.raises(VideoError, match="does not exist"):
        write_mp4(tmp_path / "missing" / "a.mp4", smooth_clip(2, 8, 8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["clip.mp4", "clip.gif"])
def test_failed_encode_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch, name):
    path = tmp_path / name
    path.write_bytes(b"previous result")
    calls = []
    from_ndarray = av.VideoFrame.from_ndarray

    def failing_from_ndarray(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("encoder died")
        return from_ndarray(*args, **kwargs)

    monkeypatch.setattr(video.av.VideoFrame, "from_ndarray", failing_from_ndarray)
    with pytest.raises(RuntimeError, match="encoder died"):
        write_video(path, smooth_clip(8, 16, 16))
    assert path.read_bytes() == b"previous result"
    assert list(tmp_path.iterdir()) == [path]


# ----------------------------------------------------------------- composition


def test_side_by_side():
    a, b, c = smooth_clip(3, 16, 10), smooth_clip(3, 16, 7), smooth_clip(3, 16, 5)
    joined = side_by_side(a, b, c, gap=2)
    assert joined.shape == (3, 16, 10 + 7 + 5 + 2 * 2, 3)
    np.testing.assert_array_equal(joined[:, :, :10], a)
    np.testing.assert_array_equal(joined[:, :, 12:19], b)
    assert (joined[:, :, 10:12] == video.BACKGROUND).all()
    assert side_by_side(a, b, gap=0).shape == (3, 16, 17, 3)
    with pytest.raises(VideoError, match="same T and H"):
        side_by_side(a, smooth_clip(4, 16, 10))
    with pytest.raises(VideoError, match="at least one video"):
        side_by_side()


def test_contact_sheet_layout_and_text(tmp_path):
    clip = smooth_clip(16, 32, 32)
    rows = [("frame_prediction", [clip, clip // 2, clip]), ("class_cond", [None, None, clip])]
    sheet = contact_sheet(rows, headers=["input", "condition", "output"], gap=2, group_gap=10)
    label_width = len("frame_prediction") * 12 - 2  # 6 columns per glyph at scale 2, minus 1
    group_width = 4 * 32 + 3 * 2
    assert sheet.dtype == np.uint8
    height = 10 + 14 + 10 + 2 * (32 + 10)  # border, header, gap, two rows each with a gap
    width = 10 + label_width + 10 + 3 * (group_width + 10)
    assert sheet.shape == (height, width, 3)
    label_area = sheet[10 + 14 + 10 : 10 + 14 + 10 + 32, 10 : 10 + label_width]
    assert (label_area < 128).any()  # the label is drawn
    header_area = sheet[10:24, 10 + label_width + 10 :]
    assert (header_area < 128).any()
    first_tile_x = 10 + label_width + 10
    np.testing.assert_array_equal(sheet[34:66, first_tile_x : first_tile_x + 32], clip[0])
    np.testing.assert_array_equal(sheet[34:66, first_tile_x + 34 : first_tile_x + 66], clip[5])
    assert (sheet[76:108, first_tile_x : first_tile_x + group_width] == video.BACKGROUND).all()  # None
    write_png(tmp_path / "sheet.png", sheet)
    read_back = read_video(tmp_path / "sheet.png", num_frames=1, size=sheet.shape[:2])[0]
    np.testing.assert_array_equal(read_back, sheet)


def test_contact_sheet_without_labels_and_errors():
    clip = smooth_clip(8, 16, 16)
    sheet = contact_sheet([("", [clip])], frames=(0, 7), group_gap=4)
    assert sheet.shape == (4 + 16 + 4, 4 + 16 + 2 + 16 + 4, 3)
    expected = r"frame 15 requested from a 8-frame video; frames must be in \[0, 7\]"
    with pytest.raises(VideoError, match=expected):
        contact_sheet([("short", [clip])])
    with pytest.raises(VideoError, match="2 headers for 1 columns"):
        contact_sheet([("a", [clip])], frames=(0,), headers=["input", "output"])
    with pytest.raises(VideoError, match="rows must be a non-empty list"):
        contact_sheet([])
    with pytest.raises(VideoError, match="scale must be an integer >= 1"):
        contact_sheet([("a", [clip])], frames=(0,), scale=0)


def test_text_rendering_is_legible_shapes():
    image = np.full((14, 60, 3), 255, np.uint8)
    video._draw_text(image, "I", 0, 0, 60, scale=2)
    ink = (image[..., 0] == 0)
    # "I" is a 3-wide stem with serifs: full top and bottom bars of 3 glyph columns.
    assert ink[:2, 2:8].all() and ink[-2:, 2:8].all() and ink[6:8, 4:6].all() and not ink[6:8, :4].any()
    assert video._text_width("abc", 2) == 34
    lower, upper = np.full_like(image, 255), np.full_like(image, 255)
    video._draw_text(lower, "ok", 0, 0, 60, scale=2)
    video._draw_text(upper, "OK", 0, 0, 60, scale=2)
    np.testing.assert_array_equal(lower, upper)


# ----------------------------------------------------------------- import hygiene


