"""All video I/O rules in one place: reading clips for the model and writing results.

Reading (`read_video`) decodes anything PyAV/FFmpeg decodes, picks frames (every
`stride`-th frame from `start`, or resampled to a target `fps`), converts every pixel
format (grayscale, alpha, YUV, palette) to RGB, scales so the clip covers the target
size keeping its aspect ratio, and centre-crops. It returns uint8 [T, H, W, 3].

Writing (`write_mp4`, `write_gif`, `write_png`, `write_video`) is atomic: the file is
written to a hidden temporary name in the target folder, flushed, fsynced and moved into
place with `os.replace`, so `path` never holds a half-written file.

`side_by_side` and `contact_sheet` compose clips for inspection; `contact_sheet` draws
its labels with a built-in 5x7 bitmap font (see `_FONT` for why not an imaging library).

Decisions:
- Resize: PyAV's `VideoFrame.reformat` (FFmpeg swscale) with AREA interpolation, which
  averages pixels when shrinking and is bilinear when enlarging. It converts the pixel
  format in the same step, so each frame is scaled and made RGB at once, in C.
- Odd sizes in MP4: yuv420p needs even width and height, so `write_mp4` pads an odd
  height or width by repeating the last row or column; the file is then one pixel larger.
- GIF colour: one palette per clip from FFmpeg's palettegen/paletteuse filters
  (256 colours, sierra2_4a dithering). GIF delays are whole centiseconds, so 8 fps reads
  back as 25/3 fps, and GIFs are written at GIF_FPS_RANGE rates only.
- Audio: none is read and none is written; an output is video only.
- Alpha is dropped, not composited: an RGBA pixel keeps its RGB values.

Only numpy and PyAV are used; this module never imports torch.
"""
from __future__ import annotations

import contextlib
import math
import numbers
import os
import uuid
import warnings
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
from av.sidedata.sidedata import Type as _SideDataType

from magvit_onnx.formats import VIDEO_SUFFIXES  # noqa: F401  (re-exported: taken as videos where a folder is searched)

MIN_SIDE = 8
"""Smallest accepted width or height, in pixels, of a video that is read (and of `size`)."""
MAX_SIDE = 8192
"""Largest accepted width or height, in pixels, of a video that is read (and of `size`)."""
INPUT_OPTIONS = {"protocol_whitelist": "none"}
"""FFmpeg options for reading: the file is opened by Python; nothing it names is opened."""
MP4_ENCODERS: tuple[tuple[str, str], ...] = (
    ("libx264", "yuv420p"),
    ("mpeg4", "yuv420p"),
    ("libx264rgb", "rgb24"),
)
"""(encoder, pix_fmt) pairs `write_mp4` tries in order; the first one PyAV has is used."""
GIF_FPS_RANGE = (Fraction(100, 65535), Fraction(50))
"""Frame rates a GIF is written at: delays are whole centiseconds (at most 65,535), and
browsers play delays under 2 cs as 10 cs, so a faster GIF would play slower."""
DISPLAYMATRIX = _SideDataType.DISPLAYMATRIX
"""Frame side data that says how to show a frame (rotation, mirroring), as phones write it."""
BACKGROUND = 255
"""Grey level of gaps and empty space in `side_by_side` and `contact_sheet` (white)."""
TEXT_COLOR = 0
"""Grey level of label and header text in `contact_sheet` (black)."""


class VideoError(ValueError):
    """Bad video input or options; the message names the file (or argument), the problem
    and what is valid."""


class TooFewFrames(VideoError):
    """The video ends before the clip asked for is complete."""


# --------------------------------------------------------------------------- reading


def read_video(
    path: str | os.PathLike,
    *,
    num_frames: int = 16,
    size: tuple[int, int] = (128, 128),
    stride: int = 1,
    fps: float | Fraction | None = None,
    start: int = 0,
    min_frames: int | None = None,
) -> np.ndarray:
    """Decode `num_frames` frames of the first video stream as uint8 [num_frames, H, W, 3].

    Frames: decoding begins at frame index `start` (0-based). Without `fps`, every
    `stride`-th frame is taken (`start`, `start + stride`, ...). With `fps`, `stride` is
    ignored and the clip is resampled in time: sample k is the frame whose timestamp is
    nearest to `t_start + k / fps` (frames repeat when `fps` exceeds the source rate).

    Short inputs: a video (or still image) that gives fewer than `num_frames` but at least
    `min_frames` frames (default: `num_frames`, i.e. none missing) is padded to
    `num_frames` by repeating its last picked frame.

    Seeking: for `start` > 0 the start is first checked against the stream's length, then
    the reader seeks to the keyframe at or before frame `start` and decodes forward, so a
    late start costs what is read, not what comes before it. Frames are then numbered by
    their timestamps at the stream's average rate (for constant-rate video, the same
    numbers as counting from the first frame).

    Orientation: a display matrix (phone videos) or a `rotate` tag is applied, so a
    portrait clip stored landscape comes out upright, as players show it.

    Size: each frame is scaled (keeping its aspect ratio) by the smallest factor that
    makes it cover `size = (H, W)`, so for a square target the short side becomes the
    target, then centre-cropped to H x W. Any pixel format is converted to RGB.

    Raises VideoError for a missing file, a file that is not a video or has no video
    stream, a corrupt or truncated file, a video with no frames or too few for the
    requested clip, a video smaller than MIN_SIDE or larger than MAX_SIDE pixels on a
    side, and invalid option values.
    """
    path = Path(path)
    _check_read_options(path, num_frames, size, stride, fps, start)
    if min_frames is None:
        min_frames = num_frames
    if not _is_int(min_frames) or not 1 <= min_frames <= num_frames:
        raise VideoError(f"read_video({path}): min_frames must be an integer in 1..num_frames "
                         f"({num_frames}), got {min_frames!r}")
    if not path.exists():
        raise VideoError(f"{path}: no such file")
    if not path.is_file():
        raise VideoError(f"{path}: not a file; give the path of a video file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: the file is empty (0 bytes); give a video file")
    try:
        file = open(path, "rb")
    except OSError as error:
        raise VideoError(f"{path}: cannot read ({error.strerror or error})") from None
    try:
        # Through a file object, with no protocol allowed for anything the file names: a playlist
        # (HLS .m3u8) or a list of files (ffconcat) cannot make FFmpeg read other files or URLs.
        with file, av.open(file, container_options=INPUT_OPTIONS) as container:
            if not container.streams.video:
                raise VideoError(
                    f"{path}: no video stream (container {container.format.name!r} holds "
                    f"{len(container.streams)} other streams); give a video file"
                )
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if stream.codec_context.width and stream.codec_context.height:
                _check_source_size(path, stream.codec_context.height, stream.codec_context.width)
            rate = stream.average_rate or stream.guessed_rate
            _check_start(path, container, stream, start, rate)
            _check_span(path, container, stream, min_frames, stride, fps, start, rate)
            frames = _frames_from(container, stream, start, rate)
            turn = _rotate_tag(stream)
            if fps is None:
                clip = _pick_by_stride(path, frames, num_frames, stride, start, size, min_frames, turn)
            else:
                clip = _pick_by_fps(path, frames, num_frames, Fraction(fps), start, size, rate, min_frames,
                                    turn)
    except av.FFmpegError as error:
        reason = error.strerror or type(error).__name__  # the text, without FFmpeg's raw errno
        raise VideoError(
            f"{path}: cannot decode ({reason}); the file is corrupt, truncated or not a video "
            "(playlists such as HLS .m3u8 and lists of other files are not read)"
        ) from error
    return np.stack(clip + clip[-1:] * (num_frames - len(clip)))


def frame_rate(path: str | os.PathLike) -> Fraction | None:
    """Frames per second of the first video stream of `path` (its average rate, else the rate
    FFmpeg guesses); None for a still image (FFmpeg invents 25 for one), a file without a
    rate, or one that cannot be opened."""
    try:
        with open(path, "rb") as file, av.open(file, container_options=INPUT_OPTIONS) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            still = container.format.name == "image2" or container.format.name.endswith("_pipe") or stream.frames == 1
            rate = None if still else stream.average_rate or stream.guessed_rate
    except (OSError, av.FFmpegError):
        return None
    return Fraction(rate) if rate and rate > 0 else None


def _check_read_options(
    path: Path, num_frames: object, size: object, stride: object, fps: object, start: object
) -> None:
    where = f"read_video({path})"
    if not _is_int(num_frames) or num_frames < 1:
        raise VideoError(f"{where}: num_frames must be an integer >= 1, got {num_frames!r}")
    if not _is_int(stride) or stride < 1:
        raise VideoError(f"{where}: stride must be an integer >= 1, got {stride!r}")
    if not _is_int(start) or start < 0:
        raise VideoError(f"{where}: start must be an integer >= 0, got {start!r}")
    if fps is not None and not _is_positive_number(fps):
        raise VideoError(f"{where}: fps must be None or a positive number, got {fps!r}")
    if (
        not isinstance(size, Sequence)
        or len(size) != 2
        or not all(_is_int(side) and MIN_SIDE <= side <= MAX_SIDE for side in size)
    ):
        raise VideoError(
            f"{where}: size must be (height, width) with integers in "
            f"[{MIN_SIDE}, {MAX_SIDE}], got {size!r}"
        )


def _check_span(
    path: Path, container, stream, num_frames: int, stride: int, fps: float | Fraction | None, start: int,
    rate: Fraction | None,
) -> None:
    """Refuse a clip the video is clearly too short for before decoding anything, from its
    header: its frame count, else its duration (at its rate, for a stride); headers that say
    neither leave it to decoding."""
    duration = _duration(container, stream)
    if fps is None:
        last_needed = start + (num_frames - 1) * stride
        if stream.frames > 0 and last_needed >= stream.frames:
            raise VideoError(
                f"{path}: too few frames: the video has {stream.frames}, but {num_frames} frames with "
                f"stride={stride} from start={start} need at least {last_needed + 1}"
            )
        # no frame count (e.g. Matroska): a stride far past the end must not decode the whole file first
        if not stream.frames and duration is not None and rate and last_needed / rate > duration * 1.1 + 1.0:
            raise VideoError(
                f"{path}: too few frames: the video lasts about {duration:.3f} s (about "
                f"{round(duration * rate)} frames at {float(rate):.3g} fps), but {num_frames} frames with "
                f"stride={stride} from start={start} need at least {last_needed + 1}"
            )
        return
    if duration is None:
        return
    needed = float((num_frames - 1) / Fraction(fps))
    if needed > duration * 1.1 + 1.0:  # a margin: durations in headers are not exact
        raise VideoError(
            f"{path}: too short: {num_frames} frames at fps={float(fps):g} need {needed:.3f} s after frame "
            f"{start}, the video lasts about {duration:.3f} s"
        )


def _duration(container, stream) -> float | None:
    """Seconds of `stream` from the header (the stream's, else the container's), or None."""
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _check_source_size(path: Path, height: int, width: int) -> None:
    if min(height, width) < MIN_SIDE or max(height, width) > MAX_SIDE:
        raise VideoError(
            f"{path}: video is {width}x{height} pixels; width and height must be "
            f"within [{MIN_SIDE}, {MAX_SIDE}]"
        )


def _check_start(path: Path, container, stream, start: int, rate: Fraction | None) -> None:
    """Refuse a `start` at or past the end of the stream before decoding anything.

    The length is the stream's frame count when the container stores one (exact), else
    its duration times its rate (then one frame of slack for rounding)."""
    if start == 0 or not rate:
        return
    if stream.frames:
        length, slack, how = stream.frames, 0, f"{stream.frames} frames"
    else:
        seconds = _duration(container, stream)
        if seconds is None:
            return  # no length known: decoding will tell
        length, slack = round(seconds * rate), 1
        how = f"about {length} frames ({seconds:.2f} s at {float(rate):.3g} fps)"
    if start >= length + slack:
        raise VideoError(f"{path}: too few frames: start={start} is past the end of the video ({how}); "
                         f"start must be below {length}")


def _decode(container, stream) -> Iterator[av.VideoFrame]:
    """Every frame of `stream` from the container's current position (one seam for tests)."""
    return container.decode(stream)


def _frames_from(container, stream, start: int, rate: Fraction | None) -> Iterator[tuple[int, av.VideoFrame]]:
    """(index, frame) pairs from at most one GOP before frame `start` on.

    With `start` > 0, a known rate and timestamps, seek to the keyframe at or before
    frame `start` and number frames by timestamp (the first decoded one) then by count.
    Otherwise, or if the seek lands after `start`, decode from the first frame."""
    time_base = stream.time_base
    origin = stream.start_time or 0
    if start > 0 and rate and time_base:
        target = origin + int(Fraction(start) / rate / time_base)
        try:
            container.seek(target, stream=stream, backward=True, any_frame=False)
        except av.FFmpegError:
            pass  # not seekable: nothing was read yet, so decode from the beginning
        else:
            frames = _decode(container, stream)
            first = next(frames, None)
            if first is not None and first.pts is not None:
                index = round((first.pts - origin) * time_base * rate)
                if 0 <= index <= start:
                    yield index, first
                    yield from enumerate(frames, start=index + 1)
                    return
            container.seek(origin, stream=stream, backward=True, any_frame=False)  # landed after start
    yield from enumerate(_decode(container, stream))


def _pick_by_stride(
    path: Path,
    frames: Iterator[tuple[int, av.VideoFrame]],
    num_frames: int,
    stride: int,
    start: int,
    size: tuple[int, int],
    min_frames: int,
    turn: int,
) -> list[np.ndarray]:
    """Frames `start`, `start + stride`, ... (`num_frames` of them, at least `min_frames`)
    from (index, frame) pairs."""
    last_needed = start + (num_frames - 1) * stride
    clip: list[np.ndarray] = []
    count = 0
    for index, frame in frames:
        count = index + 1
        if index >= start and (index - start) % stride == 0:
            clip.append(_to_rgb(path, frame, size, turn))
        if index == last_needed:
            return clip
    if count == 0:
        raise VideoError(f"{path}: the video stream has no frames")
    if len(clip) >= min_frames:
        return clip
    raise TooFewFrames(
        f"{path}: too few frames: the video has {count}, but {num_frames} frames with "
        f"stride={stride} from start={start} need at least {last_needed + 1}"
        + (f" ({min_frames} picked frames are enough here)" if min_frames < num_frames else "")
    )


def _pick_by_fps(
    path: Path,
    frames: Iterator[tuple[int, av.VideoFrame]],
    num_frames: int,
    fps: Fraction,
    start: int,
    size: tuple[int, int],
    rate: Fraction | None,
    min_frames: int,
    turn: int,
) -> list[np.ndarray]:
    """`num_frames` frames (at least `min_frames`) from `start` on, sample k being the frame
    nearest in time to k / fps after frame `start`, from (index, frame) pairs."""
    clip: list[np.ndarray] = []
    t_start: float | None = None
    t = 0.0
    previous: tuple[float, av.VideoFrame] | None = None
    picked: tuple[av.VideoFrame, np.ndarray] | None = None  # reused when a frame repeats
    count = 0
    for index, frame in frames:
        count = index + 1
        if index < start:
            continue
        if t_start is None:
            t_start = _frame_time(path, frame, index, rate)
        t = _frame_time(path, frame, index, rate) - t_start
        while len(clip) < num_frames and t >= float(len(clip) / fps) - 1e-9:
            target = float(len(clip) / fps)
            nearest = frame
            if previous is not None and target - previous[0] < t - target:
                nearest = previous[1]
            if picked is None or picked[0] is not nearest:
                picked = (nearest, _to_rgb(path, nearest, size, turn))
            clip.append(picked[1])
        if len(clip) == num_frames:
            return clip
        previous = (t, frame)
    if count == 0:
        raise VideoError(f"{path}: the video stream has no frames")
    if t_start is None:
        raise VideoError(f"{path}: too few frames: start={start} but the video has {count}")
    if len(clip) >= min_frames:
        return clip
    raise TooFewFrames(
        f"{path}: too short: {num_frames} frames at fps={fps} need "
        f"{float((num_frames - 1) / fps):.3f} s after frame {start}, the video has "
        f"{count} frames covering {t:.3f} s after it"
    )


def _frame_time(path: Path, frame: av.VideoFrame, index: int, rate: Fraction | None) -> float:
    """Presentation time in seconds: the frame's timestamp, else index / stream rate."""
    if frame.time is not None:
        return frame.time
    if rate:
        return float(index / rate)
    raise VideoError(f"{path}: cannot resample to fps: the video has no timestamps or frame rate")


def _to_rgb(path: Path, frame: av.VideoFrame, size: tuple[int, int], turn: int = 0) -> np.ndarray:
    """Scale `frame` to cover `size` (aspect kept), convert to RGB, centre-crop to `size`,
    shown as players show it: its display matrix applied, else `turn` quarter turns
    counter-clockwise (from a `rotate` tag)."""
    _check_source_size(path, frame.height, frame.width)
    transpose, flip_rows, flip_cols = _orientation(frame, turn)
    height, width = size[::-1] if transpose else size  # the crop, in the coded frame's axes
    scale = max(height / frame.height, width / frame.width)
    scaled_h = max(height, round(frame.height * scale))
    scaled_w = max(width, round(frame.width * scale))
    rgb = frame.reformat(
        width=scaled_w, height=scaled_h, format="rgb24", interpolation="AREA"
    ).to_ndarray()
    top, left = (scaled_h - height) // 2, (scaled_w - width) // 2
    rgb = rgb[top : top + height, left : left + width]
    if transpose:
        rgb = rgb.transpose(1, 0, 2)
    return np.ascontiguousarray(rgb[:: -1 if flip_rows else 1, :: -1 if flip_cols else 1])


def _rotate_tag(stream) -> int:
    """Quarter turns counter-clockwise asked by a `rotate` tag (clockwise degrees, the older
    FFmpeg and Matroska way of storing what display matrices store now)."""
    tags = {key.lower(): value for key, value in stream.metadata.items()}
    try:
        degrees = float(tags.get("rotate", 0))
    except ValueError:
        return 0
    return -round(degrees / 90) % 4


def _orientation(frame: av.VideoFrame, turn: int) -> tuple[bool, bool, bool]:
    """(transpose, flip rows, flip columns), in that order, that show `frame` upright.

    FFmpeg's display matrix maps a coded pixel (x, y) to (a x + c y, b x + d y) on screen
    (plus a shift); for the eight right-angle orientations a, b, c, d are 0 or +-1."""
    matrix = frame.side_data.get(DISPLAYMATRIX)
    if matrix is not None:
        a, b, _, c, d = np.frombuffer(bytes(matrix), np.int32)[:5]
    else:  # quarter turns counter-clockwise: cos, -sin, sin, cos as FFmpeg writes them
        a, b, c, d = ((1, 0, 0, 1), (0, -1, 1, 0), (-1, 0, 0, -1), (0, 1, -1, 0))[turn]
    if abs(a) >= abs(b):  # no transpose: x' = a x, y' = d y
        return False, d < 0, a < 0
    return True, b < 0, c < 0  # transposed: x' = c y, y' = b x


# --------------------------------------------------------------------------- writing


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float | Fraction = 8) -> None:
    """Write uint8 [T, H, W, 3] `frames` by the suffix of `path`.

    `.mp4` -> `write_mp4`, `.gif` -> `write_gif`, `.png` -> `write_png` of all frames in
    one horizontal strip (2-pixel white gaps; `fps` unused).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".mp4":
        write_mp4(path, frames, fps)
    elif suffix == ".gif":
        write_gif(path, frames, fps)
    elif suffix == ".png":
        frames = _check_video(str(path), frames)
        write_png(path, side_by_side(*frames[:, None])[0])
    else:
        raise VideoError(f"{path}: unsupported suffix {suffix!r}; use .mp4, .gif or .png")


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: float | Fraction = 8) -> None:
    """Write uint8 [T, H, W, 3] `frames` as an H.264 (libx264, yuv420p, CRF 18, one thread) MP4.

    An odd height or width is padded to even by repeating the last row or column.
    If libx264 is missing, the next encoder of MP4_ENCODERS that PyAV has is used
    (mpeg4, then libx264rgb) with a warning. The write is atomic (see module docstring).
    """
    path = Path(path)
    frames = _check_video(str(path), frames)
    rate = _check_fps(path, fps)
    codec, pix_fmt = _mp4_encoder()
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    with atomic_file(path) as file, _encoder_errors(path, codec):
        with av.open(file, "w", format="mp4") as container:
            # One encoder thread, lookahead included: with its default threads x264's output
            # depends on the CPUs a process sees and on thread timing (the generic `threads`
            # option does not reach its lookahead). Even so, x264's bytes are not guaranteed
            # to repeat from run to run (a process that has loaded torch showed variants that
            # decode within a mean of 0.5 grey levels of each other); frames and tokens repeat.
            options = ({"threads": "1"} if codec == "mpeg4" else
                       {"crf": "18", "x264-params": "threads=1:lookahead-threads=1:sliced-threads=0"})
            stream = container.add_stream(codec, rate=rate, options=options)
            stream.height, stream.width = frames.shape[1:3]
            stream.pix_fmt = pix_fmt
            if codec == "mpeg4":
                stream.codec_context.qscale = 3  # its default bitrate is far too low
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())


def _mp4_encoder() -> tuple[str, str]:
    """The first (encoder, pix_fmt) of MP4_ENCODERS that PyAV has; warn if not the first."""
    for rank, (codec, pix_fmt) in enumerate(MP4_ENCODERS):
        try:
            av.codec.Codec(codec, "w")
        except av.codec.codec.UnknownCodecError:
            continue
        if rank:
            warnings.warn(
                f"MP4 encoder {MP4_ENCODERS[0][0]!r} is not available in this PyAV build; "
                f"using {codec!r}",
                stacklevel=3,
            )
        return codec, pix_fmt
    names = ", ".join(codec for codec, _ in MP4_ENCODERS)
    raise VideoError(f"no MP4 encoder available in this PyAV build (tried {names})")


def write_gif(path: str | os.PathLike, frames: np.ndarray, fps: float | Fraction = 8) -> None:
    """Write uint8 [T, H, W, 3] `frames` as a looping GIF with one palette for the clip.

    The palette comes from FFmpeg's palettegen/paletteuse filters. Frame delays are whole
    centiseconds, so the stored rate is approximate; `fps` must be within GIF_FPS_RANGE.
    The write is atomic.
    """
    path = Path(path)
    frames = _check_video(str(path), frames)
    rate = check_gif_fps(str(path), _check_fps(path, fps))
    height, width = frames.shape[1:3]
    with atomic_file(path) as file, _encoder_errors(path, "gif"):
        graph = _palette_graph(width, height, rate)
        for index, frame in enumerate(frames):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts, video_frame.time_base = index, 1 / rate
            graph.push(video_frame)
        graph.push(None)  # palettegen sees the whole clip before paletteuse emits frames
        with av.open(file, "w", format="gif") as container:
            stream = container.add_stream("gif", rate=rate)
            stream.height, stream.width = height, width
            stream.pix_fmt = "pal8"
            for _ in range(len(frames)):
                container.mux(stream.encode(graph.pull()))
            container.mux(stream.encode())


def check_gif_fps(where: str, fps: Fraction) -> Fraction:
    """`fps` if a GIF can be written at it (GIF_FPS_RANGE), else VideoError naming `where`."""
    low, high = GIF_FPS_RANGE
    if not low <= fps <= high:
        raise VideoError(f"{where}: {float(fps):g} fps cannot be a GIF's: its frame delays are whole centiseconds, "
                         f"{float(low):.4f} to {float(high):g} fps (browsers play faster GIFs slower)")
    return fps


def _palette_graph(width: int, height: int, rate: Fraction) -> av.filter.Graph:
    """rgb24 frames in, pal8 frames out, with one 256-colour palette for the whole clip."""
    graph = av.filter.Graph()
    source = graph.add_buffer(width=width, height=height, format="rgb24", time_base=1 / rate)
    split = graph.add("split")
    palette = graph.add("palettegen", "stats_mode=full:reserve_transparent=0")
    apply_palette = graph.add("paletteuse", "dither=sierra2_4a")
    sink = graph.add("buffersink")
    source.link_to(split)
    split.link_to(palette, 0, 0)
    split.link_to(apply_palette, 1, 0)
    palette.link_to(apply_palette, 0, 1)
    apply_palette.link_to(sink)
    graph.configure()
    return graph


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a uint8 [H, W, 3] RGB image as a PNG (PyAV's lossless png encoder), atomically."""
    path = Path(path)
    image = _check_rgb(str(path), image, "image", "[H, W, 3]")
    with atomic_file(path) as file, _encoder_errors(path, "png"):
        encoder = av.CodecContext.create("png", "w")
        encoder.height, encoder.width = image.shape[:2]
        encoder.pix_fmt = "rgb24"
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        for packet in [*encoder.encode(frame), *encoder.encode(None)]:  # None flushes
            file.write(bytes(packet))


def _check_video(name: str, frames: object) -> np.ndarray:
    """`frames` as a C-contiguous uint8 [T, H, W, 3] array with T, H, W >= 1."""
    return _check_rgb(name, frames, "frames", "[T, H, W, 3]")


def _check_rgb(name: str, array: object, what: str, layout: str) -> np.ndarray:
    """`array` as a C-contiguous, non-empty uint8 array shaped like `layout`."""
    array = np.asarray(array)
    if (
        array.dtype != np.uint8
        or array.ndim != layout.count(",") + 1
        or array.shape[-1] != 3
        or 0 in array.shape
    ):
        raise VideoError(
            f"{name}: {what} must be a non-empty uint8 array {layout}, got {array.dtype} "
            f"{list(array.shape)} (from floats in [0, 1] use "
            f"(x * 255).round().clip(0, 255).astype(np.uint8))"
        )
    return np.ascontiguousarray(array)


def _check_fps(path: Path, fps: object) -> Fraction:
    """`fps` as a Fraction (floats are approximated with a denominator <= 1001)."""
    if not _is_positive_number(fps):
        raise VideoError(f"{path}: fps must be a positive number, got {fps!r}")
    return Fraction(fps).limit_denominator(1001)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """Yield a file in `path`'s folder; on success fsync it and move it to `path`.

    On any error the temporary file is removed and `path` is left as it was.
    """
    if not path.parent.is_dir():
        raise VideoError(f"{path}: folder {path.parent} does not exist")
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "xb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _encoder_errors(path: Path, codec: str) -> Iterator[None]:
    """Turn FFmpeg errors while encoding into a VideoError that names file and encoder."""
    try:
        yield
    except av.FFmpegError as error:
        raise VideoError(f"{path}: encoding with {codec!r} failed: {error}") from error


# --------------------------------------------------------------------------- composing


def side_by_side(*videos: np.ndarray, gap: int = 2) -> np.ndarray:
    """Join uint8 [T, H, W_i, 3] videos (same T and H) left to right with `gap`-pixel
    white columns between them: [T, H, sum(W_i) + gap * (n - 1), 3]."""
    if not videos:
        raise VideoError("side_by_side: give at least one video")
    if not _is_int(gap) or gap < 0:
        raise VideoError(f"side_by_side: gap must be an integer >= 0, got {gap!r}")
    videos = tuple(_check_video(f"side_by_side video {i}", v) for i, v in enumerate(videos))
    if len({v.shape[:2] for v in videos}) > 1:
        shapes = ", ".join(str(list(v.shape)) for v in videos)
        raise VideoError(f"side_by_side: videos need the same T and H, got {shapes}")
    frames, height = videos[0].shape[:2]
    spacer = np.full((frames, height, gap, 3), BACKGROUND, np.uint8)
    pieces = [videos[0]]
    for video in videos[1:]:
        pieces += [spacer, video]
    return np.concatenate(pieces, axis=2)


def contact_sheet(
    rows: Sequence[tuple[str, Sequence[np.ndarray | None]]],
    *,
    frames: Sequence[int] = (0, 5, 10, 15),
    headers: Sequence[str] | None = None,
    label_width: int | None = None,
    scale: int = 2,
    gap: int = 2,
    group_gap: int = 10,
) -> np.ndarray:
    """One uint8 [H, W, 3] image summarising several clips, ready for `write_png`.

    Each row is `(label, videos)`: the label on the left, then for each uint8
    [T, H, W, 3] video (e.g. input, condition, output) the frames at indices `frames`
    side by side, `gap` pixels apart. Videos at the same position in different rows
    share a column; `None` leaves that column empty in the row. `headers` (one per
    column, e.g. ("input", "condition", "output")) are drawn above the columns.
    Columns, rows and the border are `group_gap` pixels apart.

    Text uses a built-in 5x7 font scaled by `scale` (upper case, digits and
    ` _-:./()|+=,?#%'[]`; lower case is drawn as upper case, anything else as `?`).
    `label_width` defaults to the widest label; longer labels and headers are clipped.
    """
    _check_sheet_options(rows, frames, headers, label_width, scale, gap, group_gap)
    columns = max(len(videos) for _, videos in rows)
    if headers is not None and len(headers) != columns:
        raise VideoError(
            f"contact_sheet: {len(headers)} headers for {columns} columns; give one per column"
        )
    grid = [
        [None if v is None else _check_video(f"contact_sheet row {label!r}", v) for v in videos]
        for label, videos in rows
    ]
    for (label, _), videos in zip(rows, grid):
        for video in videos:
            if video is not None and max(frames) >= len(video):
                raise VideoError(
                    f"contact_sheet row {label!r}: frame {max(frames)} requested from a "
                    f"{len(video)}-frame video; frames must be in [0, {len(video) - 1}]"
                )
    tile_widths = [
        max((videos[c].shape[2] for videos in grid if c < len(videos) and videos[c] is not None),
            default=0)
        for c in range(columns)
    ]
    column_widths = [len(frames) * w + (len(frames) - 1) * gap if w else 0 for w in tile_widths]
    row_heights = [max((v.shape[1] for v in videos if v is not None), default=0) for videos in grid]
    text_height = 7 * scale
    row_heights = [max(h, text_height) for h in row_heights]
    if label_width is None:
        label_width = max(_text_width(label, scale) for label, _ in rows)

    x = group_gap
    label_x = x
    if label_width:
        x += label_width + group_gap
    column_xs = []
    for width in column_widths:
        column_xs.append(x)
        x += width + group_gap
    y = group_gap
    header_y = y
    if headers is not None:
        y += text_height + group_gap
    row_ys = []
    for height in row_heights:
        row_ys.append(y)
        y += height + group_gap

    sheet = np.full((y, x, 3), BACKGROUND, np.uint8)
    for column, header in enumerate(headers or ()):
        _draw_text(sheet, header, column_xs[column], header_y, column_widths[column], scale)
    for (label, _), videos, row_y, row_h in zip(rows, grid, row_ys, row_heights):
        _draw_text(sheet, label, label_x, row_y + (row_h - text_height) // 2, label_width, scale)
        for column, video in enumerate(videos):
            if video is None:
                continue
            tile_x = column_xs[column]
            for index in frames:
                tile = video[index]
                sheet[row_y : row_y + tile.shape[0], tile_x : tile_x + tile.shape[1]] = tile
                tile_x += tile_widths[column] + gap
    return sheet


def _check_sheet_options(
    rows: object,
    frames: object,
    headers: object,
    label_width: object,
    scale: object,
    gap: object,
    group_gap: object,
) -> None:
    if not isinstance(rows, Sequence) or not rows or not all(
        isinstance(row, (tuple, list))
        and len(row) == 2
        and isinstance(row[0], str)
        and isinstance(row[1], (tuple, list))
        and row[1]
        for row in rows
    ):
        raise VideoError(
            "contact_sheet: rows must be a non-empty list of (label, [video, ...]) "
            "with a str label and at least one video (or None) per row"
        )
    if not isinstance(frames, Sequence) or not frames or not all(
        _is_int(i) and i >= 0 for i in frames
    ):
        raise VideoError(f"contact_sheet: frames must be non-empty indices >= 0, got {frames!r}")
    if headers is not None and (
        not isinstance(headers, Sequence) or not all(isinstance(h, str) for h in headers)
    ):
        raise VideoError(f"contact_sheet: headers must be None or a list of str, got {headers!r}")
    if label_width is not None and (not _is_int(label_width) or label_width < 0):
        raise VideoError(
            f"contact_sheet: label_width must be None or an integer >= 0, got {label_width!r}"
        )
    for name, value, low in (("scale", scale, 1), ("gap", gap, 0), ("group_gap", group_gap, 0)):
        if not _is_int(value) or value < low:
            raise VideoError(f"contact_sheet: {name} must be an integer >= {low}, got {value!r}")


# A 5x7 bitmap font: per character, 7 rows of 5 bits (most significant bit on the left).
# Kept rather than an imaging library: the labels are short ASCII names, FFmpeg's drawtext
# filter is not in PyAV's builds, and Pillow would be a fourth runtime dependency or, as an
# optional extra, a second text path whose sheets differ by installed version and font.
_FONT = {
    "A": "0e 11 11 11 1f 11 11", "B": "1e 11 11 1e 11 11 1e", "C": "0e 11 10 10 10 11 0e",
    "D": "1c 12 11 11 11 12 1c", "E": "1f 10 10 1e 10 10 1f", "F": "1f 10 10 1e 10 10 10",
    "G": "0e 11 10 17 11 11 0f", "H": "11 11 11 1f 11 11 11", "I": "0e 04 04 04 04 04 0e",
    "J": "07 02 02 02 02 12 0c", "K": "11 12 14 18 14 12 11", "L": "10 10 10 10 10 10 1f",
    "M": "11 1b 15 15 11 11 11", "N": "11 11 19 15 13 11 11", "O": "0e 11 11 11 11 11 0e",
    "P": "1e 11 11 1e 10 10 10", "Q": "0e 11 11 11 15 12 0d", "R": "1e 11 11 1e 14 12 11",
    "S": "0f 10 10 0e 01 01 1e", "T": "1f 04 04 04 04 04 04", "U": "11 11 11 11 11 11 0e",
    "V": "11 11 11 11 11 0a 04", "W": "11 11 11 15 15 15 0a", "X": "11 11 0a 04 0a 11 11",
    "Y": "11 11 11 0a 04 04 04", "Z": "1f 01 02 04 08 10 1f",
    "0": "0e 11 13 15 19 11 0e", "1": "04 0c 04 04 04 04 0e", "2": "0e 11 01 02 04 08 1f",
    "3": "1f 02 04 02 01 11 0e", "4": "02 06 0a 12 1f 02 02", "5": "1f 10 1e 01 01 11 0e",
    "6": "06 08 10 1e 11 11 0e", "7": "1f 01 02 04 08 08 08", "8": "0e 11 11 0e 11 11 0e",
    "9": "0e 11 11 0f 01 02 0c",
    " ": "00 00 00 00 00 00 00", "_": "00 00 00 00 00 00 1f", "-": "00 00 00 1f 00 00 00",
    ":": "00 0c 0c 00 0c 0c 00", ".": "00 00 00 00 00 0c 0c", "/": "00 01 02 04 08 10 00",
    "(": "02 04 08 08 08 04 02", ")": "08 04 02 02 02 04 08", "|": "04 04 04 04 04 04 04",
    "+": "00 04 04 1f 04 04 00", "=": "00 00 1f 00 1f 00 00", ",": "00 00 00 00 0c 04 08",
    "?": "0e 11 01 02 04 00 04", "#": "0a 0a 1f 0a 1f 0a 0a", "%": "18 19 02 04 08 13 03",
    "'": "0c 04 08 00 00 00 00", "[": "0e 08 08 08 08 08 0e", "]": "0e 02 02 02 02 02 0e",
}
_GLYPHS = {
    char: np.unpackbits(np.frombuffer(bytes.fromhex(rows), np.uint8)[:, None], axis=1)[:, 3:]
    for char, rows in _FONT.items()
}


def _text_width(text: str, scale: int) -> int:
    """Width in pixels of `text` drawn by `_draw_text`: 5 columns per glyph, 1 between."""
    return max(6 * len(text.upper()) - 1, 0) * scale


def _draw_text(image: np.ndarray, text: str, x: int, y: int, max_width: int, scale: int) -> None:
    """Draw `text` in TEXT_COLOR with its top-left corner at (x, y), clipped to `max_width`."""
    text = text.upper()
    if not text:
        return
    mask = np.zeros((7, 6 * len(text) - 1), bool)
    for i, char in enumerate(text):
        mask[:, 6 * i : 6 * i + 5] = _GLYPHS.get(char, _GLYPHS["?"])
    mask = mask.repeat(scale, axis=0).repeat(scale, axis=1)[:, :max_width]
    region = image[y : y + mask.shape[0], x : x + mask.shape[1]]
    region[mask[: region.shape[0], : region.shape[1]]] = TEXT_COLOR


# --------------------------------------------------------------------------- helpers


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_positive_number(value: object) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )
