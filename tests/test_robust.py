"""Adversarial input (issue 19): no bad input crashes a run, loses or corrupts data; the
artifacts folder is a checked boundary; signals stop a run cleanly. Each test names the case
it covers; each failed on the code before the fix."""
import errno
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from magvit_onnx import batch, limits, video
from magvit_onnx.generator import Generator
from magvit_onnx.runtime import artifacts as artifact_files
from magvit_onnx.runtime.artifacts import ArtifactError
from magvit_onnx.runtime.providers import ProviderError
from test_batch import (artifacts, cg, cli, files, fp, gen, media, outputs_of, rows, run_batch, sha,  # noqa: F401
                        write_jobs)


def quiet_log():
    log = io.StringIO()
    return log, batch.Progress(0, stream=log, tty=False)


def error_of(out, job_id=None, line=None):
    found = [r for r in rows(out) if r["status"] == "error" and (r["id"] == job_id if job_id else r["line"] == line)]
    assert len(found) == 1, rows(out)
    return found[0]["error"]


# ----------------------------------------------------------------- 1. errors inside worker threads


def test_unexpected_error_in_a_worker_thread_is_reported(tmp_path, media, gen, monkeypatch):
    """--workers 2: a job whose error is unexpected gets an error line, a stderr line, and exit 1
    (it used to vanish: summary failed 0)."""
    real = batch.Runner._finish

    def finish(self, job, *args):
        if job.id == "b":
            raise RuntimeError("boom")
        return real(self, job, *args)

    monkeypatch.setattr(batch.Runner, "_finish", finish)
    jobs = write_jobs(tmp_path / "jobs.jsonl", cg("a"), cg("b"), cg("c"), cg("d"))
    log, progress = quiet_log()
    summary = run_batch(jobs, tmp_path / "out", gen, workers=2, progress=progress)
    assert (summary.ok, summary.failed) == (3, 1)
    assert error_of(tmp_path / "out", "b") == "RuntimeError: boom"
    assert "error: job 'b' (line 2): RuntimeError: boom" in log.getvalue()


# ----------------------------------------------------------------- 2. lines no reader can hold

UNREADABLE = [
    ("lone surrogate in task", '{"id": "x", "task": "\\udc80"}', "unknown task"),
    ("lone surrogate in input", '{"id": "x", "task": "FP", "input": "a\\udc80.mp4"}', "input must be the path"),
    ("NUL in input", '{"id": "x", "task": "FP", "input": "a\\u0000.mp4"}', "no NUL"),
    ("nested too deeply", '{"id": "x", "task": "CG", "class": ' + "[" * 30_000 + "]" * 30_000 + "}",
     "JSON nested too deeply"),
    ("integer of 5000 digits", '{"id": "x", "task": "CG", "class": ' + "9" * 5000 + "}", "unreadable JSON value"),
    ("duplicate key", '{"id": "x", "task": "CG", "class": 1, "class": 2}', "key 'class' is given twice"),
    ("line over the length limit", '{"id": "x", "task": "CG", "pad": "' + "p" * limits.MAX_LINE_BYTES + '"}',
     "a job line may be at most 65536 bytes"),
    ("50 kB value", '{"id": "x", "task": "' + "t" * 50_000 + '"}', "task must be a string"),
]


@pytest.mark.parametrize("line, text", [pytest.param(line, text, id=case) for case, line, text in UNREADABLE])
def test_unreadable_line_is_that_lines_error_and_the_rest_runs(tmp_path, media, gen, line, text):
    """One bad JOBS line used to crash every run (UnicodeEncodeError in the report writer,
    ValueError: embedded null byte, RecursionError, ValueError for > 4300 digits)."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", line, cg("good"))
    out = tmp_path / "out"
    for _ in range(2):  # and again: a rerun does not crash either
        result = cli(jobs, "--out", out, "--artifacts", gen.artifacts)
        assert result.exit_code == 1, result.output
    message = [r["error"] for r in rows(out) if r["line"] == 1][-1]
    assert text in message and len(message) <= limits.MAX_ERROR_CHARS
    assert all(len(line) < 2000 for line in result.stderr.splitlines())  # values are not echoed whole
    assert batch.report_view(out)["good"]["status"] == "ok"
    for raw in (out / "report.jsonl").read_bytes().splitlines():
        json.loads(raw.decode("utf-8"))  # every line is valid UTF-8 JSON


def test_ids_differing_only_in_case_collide(tmp_path, media, gen):
    """On case-insensitive file systems ids 'A' and 'a' write the same file."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", cg("A"), cg("a"))
    run_batch(jobs, tmp_path / "out", gen)
    assert "output names collide with job 'A' (line 1)" in error_of(tmp_path / "out", "a")


# ----------------------------------------------------------------- 3. the report file


def test_report_that_is_a_symlink_is_refused_and_its_target_kept(tmp_path, media, gen):
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.jsonl").symlink_to(victim)
    jobs = write_jobs(tmp_path / "jobs.jsonl", cg("a"))
    result = cli(jobs, "--out", out, "--artifacts", gen.artifacts)
    assert result.exit_code == 2 and "is a symbolic link or not a regular file" in result.stderr
    assert victim.read_text() == "keep me\n" and files(out) == []


def test_report_that_is_a_fifo_is_refused(tmp_path, media, gen):
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "report.jsonl")
    with pytest.raises(batch.RunError, match="not a regular file"):
        run_batch(write_jobs(tmp_path / "jobs.jsonl", cg("a")), out, gen)


DISK_FULL = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
from magvit_onnx.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_disk_full_while_appending_the_report(tmp_path, media, artifacts):
    """A write of the report that fails half-way (here: a file size limit) ends with one line
    and a summary, no traceback and no torn line; a rerun finishes every job exactly once."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", *[cg(f"j{i}") for i in range(6)])
    out = tmp_path / "out"
    args = ["run", str(jobs), "--out", str(out), "--artifacts", str(artifacts)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full = subprocess.run([sys.executable, "-c", DISK_FULL.format(limit=1800), *args], env=env,
                          capture_output=True, text=True, timeout=300)
    assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr
    assert "cannot append to the report" in full.stderr
    assert any(line.startswith("run: ") and " ok, " in line for line in full.stderr.splitlines())  # the summary
    data = (out / "report.jsonl").read_bytes()
    assert data.endswith(b"\n") and all(json.loads(raw)["status"] == "ok" for raw in data.splitlines())
    assert 0 < len(data.splitlines()) < 6
    again = subprocess.run([sys.executable, "-m", "magvit_onnx.cli", *args], env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert sorted(r["id"] for r in rows(out)) == [f"j{i}" for i in range(6)]


# ----------------------------------------------------------------- 5. bounds


@pytest.mark.parametrize("settings, text", [
    ({"steps": 33}, "steps must be an integer <= 32, got 33 (valid: 1 .. 32)"),
    ({"steps": 10 ** 9}, "steps must be an integer <= 32"),
    ({"num_videos": 65}, "num_videos must be an integer <= 64, got 65 (valid: 1 .. 64)"),
    ({"top_k": 2 ** 63}, "top_k must be an integer <= 1024"),
    ({"sampling_temperature": 1e-300}, "sampling_temperature must be within [0.0001, 10000]"),
    ({"mask_temperature": 1e300}, "mask_temperature must be within"),
    ({"guidance_scale": 1e300}, "guidance_scale must be a finite number within ±1000"),
    ({"guidance_scale": -1e300}, "guidance_scale must be a finite number within ±1000"),
    ({"top_p": 1e-300}, "top_p must be at least 1e-06"),
    ({"schedule": "pownan"}, "powN needs a finite N > 0"),
    ({"schedule": "pow0"}, "bad schedule 'pow0': powN needs a finite N > 0"),
    ({"schedule": "pow-1"}, "powN needs a finite N > 0"),
    ({"schedule": "pow1e400"}, "powN needs a finite N > 0"),
    ({"schedule": "powinf"}, "powN needs a finite N > 0"),
], ids=["steps above the latent tokens", "steps 10**9", "num_videos 65", "top_k 2**63", "temperature 1e-300",
        "mask temperature 1e300", "guidance 1e300", "guidance -1e300", "top_p 1e-300", "schedule pow NaN",
        "schedule pow0", "schedule pow-1", "schedule pow1e400", "schedule powinf"])
def test_settings_beyond_the_bounds_are_refused_by_jobs_and_generator(tmp_path, media, gen, settings, text):
    jobs = write_jobs(tmp_path / "jobs.jsonl", cg("x", **settings))
    run_batch(jobs, tmp_path / "out", gen)
    assert text in error_of(tmp_path / "out", "x")
    with pytest.raises(ValueError, match=text.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        gen.generate_tokens("CG", class_id=1, **settings)


@pytest.mark.parametrize("key, value, text", [
    ("stride", 10 ** 6, "stride must be an integer <= 10000, got 1000000 (valid: 1 .. 10000)"),
    ("start", 10 ** 12, "start must be an integer <= 10000000"),
    ("fps", 1e-300, "fps must be within [0.001, 10000]"),
])
def test_reading_options_beyond_the_bounds_are_refused(tmp_path, media, gen, key, value, text):
    run_batch(write_jobs(tmp_path / "jobs.jsonl", fp("x", str(media / "clip.mp4"), **{key: value})),
              tmp_path / "out", gen)
    assert text in error_of(tmp_path / "out", "x")


@pytest.mark.parametrize("value, text", [
    (2000, "num_frames must be an integer <= 1024, got 2000 (valid: 16 .. 1024)"),
    (1025, "num_frames must be an integer <= 1024, got 1025 (valid: 16 .. 1024)"),
    (4, "num_frames must be an integer >= 16, got 4 (valid: 16 .. 1024)"),
    (20.0, "num_frames must be an integer >= 16, got 20.0 (valid: 16 .. 1024)"),
])
def test_a_bound_error_names_the_bound_crossed(value, text):
    """Was '>= 16' for 2000 too: the message quoted the lower bound whichever was crossed."""
    with pytest.raises(ValueError) as caught:
        limits.check_integer("num_frames", value, 16, limits.MAX_NUM_FRAMES)
    assert str(caught.value) == text
    assert limits.check_integer("num_frames", 1024, 16, limits.MAX_NUM_FRAMES) == 1024


def test_large_calls_are_split_by_input_without_changing_results(gen, monkeypatch):
    """num_videos x inputs used to go to ONNX Runtime as one batch (3,000 videos: one 25 GB buffer)."""
    whole = gen.generate_tokens("CG", class_id=[1, 2, 3], num_videos=2, seed=[5, 6, 7], steps=2)
    calls = []
    real = gen._pipeline.generate_tokens
    monkeypatch.setattr(limits, "MAX_SAMPLES_PER_CALL", 2)
    monkeypatch.setattr(gen._pipeline, "generate_tokens", lambda *a, **k: calls.append(real(*a, **k)) or calls[-1])
    split = gen.generate_tokens("CG", class_id=[1, 2, 3], num_videos=2, seed=[5, 6, 7], steps=2)
    np.testing.assert_array_equal(split, whole)
    assert [len(c) for c in calls] == [2, 2, 2]
    with pytest.raises(ValueError, match="give one seed per input"):
        gen.generate_tokens("CG", class_id=[1, 2, 3], num_videos=2, seed=5, steps=2)


# ----------------------------------------------------------------- 7, 8. the artifacts folder


def _copy(folder, to):
    to.mkdir()
    for p in folder.iterdir():
        (to / p.name).write_bytes(p.read_bytes())
    return to


def _edit(folder, change):
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def _external_data(d, location):
    """vq_decoder.onnx with its weights moved to `location` (relative to the folder), and the
    manifest's sha256 of the graph updated: the side file itself is listed nowhere."""
    import onnx

    graph = d / "vq_decoder.onnx"
    onnx.save_model(onnx.load(str(graph)), str(graph), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="dec.bin")  # tensors of 1 kB and more: weights, not shapes
    if location != "dec.bin":  # onnx writes inside the folder only: move the file, then point at it
        assert len(location) == len("dec.bin")  # the same length keeps the protobuf's lengths valid
        (d / "dec.bin").rename(d / location)
        graph.write_bytes(graph.read_bytes().replace(b"dec.bin", location.encode()))
    _edit(d, lambda m: m["files"]["vq_decoder.onnx"].update(sha256=artifact_files.sha256(graph)))


def _graph_outside(d):
    """vq_decoder.onnx a symbolic link to the same bytes outside the folder (the sha256 matches)."""
    outside = d.parent / "elsewhere.onnx"
    (d / "vq_decoder.onnx").rename(outside)
    (d / "vq_decoder.onnx").symlink_to(outside)


def _truncate_graph_consistently(d):
    """A truncated graph whose manifest was updated to match: only loading it can tell."""
    graph = d / "vq_decoder.onnx"
    graph.write_bytes(graph.read_bytes()[:1000])
    _edit(d, lambda m: m["files"]["vq_decoder.onnx"].update(sha256=artifact_files.sha256(graph)))


MANIFEST_DAMAGE = [
    ("a key missing", lambda d: _edit(d, lambda m: m.pop("vocab")), "vocab must be an object"),
    ("files a list", lambda d: _edit(d, lambda m: m.update(files=list(m["files"]))), "files must be an object"),
    ("not UTF-8", lambda d: (d / "manifest.json").write_bytes(b'{"format_version": 1, "x": "\xff"}'),
     "is not UTF-8 text"),
    ("nested too deeply", lambda d: (d / "manifest.json").write_text("[" * 100_000 + "]" * 100_000),
     "is not a manifest"),
    ("video.shape a string", lambda d: _edit(d, lambda m: m["video"].update(shape="8x32x32")),
     "video.shape must be a list of 3 positive integers"),
    ("a truncated graph", _truncate_graph_consistently, "ONNX Runtime cannot load this graph"),
    ("graph inputs missing", lambda d: _edit(d, lambda m: m["graphs"]["transformer_step"].pop("inputs")),
     "graphs.transformer_step.inputs must be a list of inputs"),
    ("a class without an id", lambda d: _edit(d, lambda m: m.update(classes=[{"name": "circle"}])),
     "classes[0] must be a class id"),
    # 8: confined to the folder, every loaded file verified
    ("graph filename absolute", lambda d: _edit(d, lambda m: m["graphs"]["vq_decoder"].update(
        filename=str(d / "vq_decoder.onnx"))), "graphs.vq_decoder.filename must be one of the files listed"),
    ("graph filename ../", lambda d: _edit(d, lambda m: m["graphs"]["vq_decoder"].update(
        filename=f"../{d.name}/vq_decoder.onnx")), "graphs.vq_decoder.filename must be one of the files listed"),
    ("files empty", lambda d: _edit(d, lambda m: m.update(files={})),
     "graphs.vq_encoder.filename must be one of the files listed"),
    ("files key outside the folder", lambda d: _edit(d, lambda m: m["files"].update(
        {"../outside.bin": {"sha256": "0" * 64}})), "must be a plain file name inside the artifacts folder"),
    ("listed file a device", lambda d: (d / "vq_decoder.onnx").unlink() or (d / "vq_decoder.onnx").symlink_to(
        "/dev/zero"), "vq_decoder.onnx is not a regular file"),
]
ISSUE_32_DAMAGE = [
    # issue 32 (3): every byte a session reads is verified
    ("weights in an external file", lambda d: _external_data(d, "dec.bin"),
     "vq_decoder.onnx keeps tensor"),
    ("external data out of the folder", lambda d: _external_data(d, "../d.bn"),
     "vq_decoder.onnx keeps tensor"),
    ("graph a symlink out of the folder", _graph_outside, "outside the artifacts folder"),
    # issue 32 (4): values no call can use
    ("batch_profile a string", lambda d: _edit(d, lambda m: m.update(batch_profile="x")),
     'batch_profile must be an object {"opt": N, "max": M}'),
    ("sampling_temperature 0", lambda d: _edit(d, lambda m: m["decoding"].update(sampling_temperature=0)),
     "decoding must be defaults every call can use (sampling_temperature must be a finite number > 0, got 0)"),
    ("num_iter 0", lambda d: _edit(d, lambda m: m["decoding"].update(num_iter=0)),
     "decoding must be defaults every call can use (num_iter must be an integer >= 1"),
    ("an unknown task", lambda d: _edit(d, lambda m: m["tasks"].update(teleport=dict(m["tasks"]["full_generation"]))),
     "tasks key 'teleport' must be a task this magvit-onnx knows (valid tasks are frame_prediction (FP)"),
    ("no classes", lambda d: _edit(d, lambda m: m.update(classes=[])),
     "classes must be a list of vocab.num_classes (10) classes, got 0"),
]
MANIFEST_DAMAGE += ISSUE_32_DAMAGE + [
    # issue 28 (5): per-task decoding defaults every call of the task can use
    ("decoding_by_task of an alias", lambda d: _edit(d, lambda m: m.update(decoding_by_task={"FP": {}})),
     "decoding_by_task key 'FP' must be a task of this model (frame_prediction, frame_interpolation"),
    ("decoding_by_task with steps", lambda d: _edit(d, lambda m: m.update(
        decoding_by_task={"frame_prediction": {"num_iter": 4}})),
     "decoding_by_task.frame_prediction must be an object of some of sampling_temperature, mask_temperature, top_k"),
    ("decoding_by_task out of range", lambda d: _edit(d, lambda m: m.update(
        decoding_by_task={"inpainting_c": {"mask_temperature": -1}})),
     "decoding_by_task.inpainting_c must be settings every call can use (mask_temperature must be a finite number"),
    ("decoding_by_task top_k and top_p", lambda d: _edit(d, lambda m: m.update(
        decoding_by_task={"full_generation": {"top_k": 5, "top_p": 0.9}})),
     "(top_k and top_p cannot both be set"),
]


@pytest.mark.parametrize("damage, text", [pytest.param(d, t, id=case) for case, d, t in MANIFEST_DAMAGE])
def test_damaged_artifacts_give_one_artifact_error_line(tmp_path, artifacts, damage, text):
    broken = _copy(artifacts, tmp_path / "broken")
    damage(broken)
    with pytest.raises(ArtifactError, match=re.escape(text)):
        Generator(broken)
    from click.testing import CliRunner

    from magvit_onnx.cli import main

    result = CliRunner().invoke(main, ["info", "--artifacts", str(broken)])
    assert result.exit_code == 1 and text in result.stderr and "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("damage, text", [pytest.param(d, t, id=case) for case, d, t in ISSUE_32_DAMAGE])
def test_run_refuses_damaged_artifacts_in_one_line(tmp_path, media, artifacts, damage, text):
    """`run` gave a TypeError traceback for "batch_profile": "x", failed every job with
    'unknown task' for one extra task, and loaded unverified external data."""
    broken = _copy(artifacts, tmp_path / "broken")
    damage(broken)
    result = cli(write_jobs(tmp_path / "jobs.jsonl", cg("a")), "--out", tmp_path / "out", "--artifacts", broken)
    assert result.exit_code == 1 and text in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert rows(tmp_path / "out") == []


def test_an_unreadable_graph_is_one_artifact_error_line(tmp_path, artifacts, monkeypatch):
    """Old: a listed file that could not be read (permissions) raised OSError from the hash."""
    def unreadable(path):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(artifact_files, "sha256", unreadable)
    with pytest.raises(ArtifactError, match=r"vq_encoder\.onnx: cannot read it \(Permission denied\)"):
        Generator(artifacts)


# ----------------------------------------------------------------- 9. inputs that name other files


def test_hls_playlist_input_reads_no_other_file(tmp_path, media, gen):
    """An HLS playlist (or an ffconcat list) given as input used to make FFmpeg read the files it names."""
    (tmp_path / "secret.mp4").write_bytes((media / "clip.mp4").read_bytes())
    (tmp_path / "play.m3u8").write_text("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nsecret.mp4\n"
                                        "#EXT-X-ENDLIST\n")
    (tmp_path / "list.txt").write_text("ffconcat version 1.0\nfile secret.mp4\n")
    for name in ("play.m3u8", "list.txt"):
        with pytest.raises(video.VideoError, match="cannot decode"):
            video.read_video(tmp_path / name, num_frames=8, size=(32, 32))
    jobs = write_jobs(tmp_path / "jobs.jsonl", fp("x", "play.m3u8"))
    run_batch(jobs, tmp_path / "out", gen)
    assert "play.m3u8: cannot decode" in error_of(tmp_path / "out", "x")


# ----------------------------------------------------------------- 10. runs sharing --out, report paths


def test_run_with_another_shard_count_on_the_same_out_is_refused(tmp_path, media, gen):
    """Concurrent runs with --shard 0/2 and 0/1 would both do the same jobs, and one's stale
    temporary cleanup could delete the other's file mid-write."""
    out = tmp_path / "out"
    out.mkdir()
    other = batch.ReportWriter(out / "report.shard-00000-of-00002.jsonl")
    try:
        (out / ".a.npy.0123abcd.tmp").write_bytes(b"being written by the other run")
        with pytest.raises(batch.RunError, match="is being written by a run with another shard count"):
            run_batch(write_jobs(tmp_path / "jobs.jsonl", cg("a")), out, gen)
        assert (out / ".a.npy.0123abcd.tmp").exists()
        assert run_batch(write_jobs(tmp_path / "jobs.jsonl", cg("a")), out, gen, shard=(1, 2)).failed == 0
    finally:
        other.close()
    assert run_batch(write_jobs(tmp_path / "jobs.jsonl", cg("a")), out, gen).failed == 0  # once it has ended


def _plant(out, job_id, **changes):
    """Rewrite the report line of `job_id` with `changes`."""
    report = out / "report.jsonl"
    lines = [json.loads(raw) for raw in report.read_bytes().splitlines()]
    for row in lines:
        if row["id"] == job_id:
            row.update(changes)
    report.write_text("".join(json.dumps(row) + "\n" for row in lines))


def test_report_paths_are_not_trusted(tmp_path, media, gen):
    """'path': '/dev/zero' in a report hung planning; '../../x' with a matching sha256 counted as done."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", cg("a"), cg("b"))
    out = tmp_path / "out"
    run_batch(jobs, out, gen)
    outside = tmp_path / "x.npy"
    outside.write_bytes((out / "b.npy").read_bytes())
    _plant(out, "a", outputs=[{"path": "/dev/zero", "sha256": "0" * 64}])
    _plant(out, "b", outputs=[{"path": "../x.npy", "sha256": artifact_files.sha256(outside)}])
    facts = batch.ModelFacts.load(gen.artifacts)
    planned = []
    planner = threading.Thread(target=lambda: planned.append(batch.plan(jobs, out, facts)), daemon=True)
    planner.start()
    planner.join(120)
    assert planned, "planning did not finish (read /dev/zero?)"
    assert planned[0].done == []
    # and as no report lists a.npy and b.npy any more, they are files no run wrote: kept, not replaced
    assert {bad.id: bad.error.split(" would")[0] for bad in planned[0].invalid} == {"a": "output a.npy",
                                                                                 "b": "output b.npy"}


def test_output_replaced_by_a_symlink_is_not_trusted(tmp_path, media, gen):
    jobs = write_jobs(tmp_path / "jobs.jsonl", cg("a"))
    out = tmp_path / "out"
    run_batch(jobs, out, gen)
    (tmp_path / "copy.npy").write_bytes((out / "a.npy").read_bytes())
    (out / "a.npy").unlink()
    (out / "a.npy").symlink_to(tmp_path / "copy.npy")
    assert run_batch(jobs, out, gen).ok == 1


def test_finished_null_and_clock_skew_between_report_files(tmp_path, media, gen):
    """A line with "finished": null made every rerun crash; a stale line in another report file
    with a later clock made a job redo on every rerun."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", cg("a"), cg("b"))
    out = tmp_path / "out"
    run_batch(jobs, out, gen)
    _plant(out, "a", finished=None)
    a_row, b_row = rows(out)
    stale = dict(b_row, config="0" * 64, finished=time.time() + 86400)  # b, from a machine a day ahead
    (out / "report.shard-00000-of-00002.jsonl").write_text(
        json.dumps(dict(a_row, status="error")) + "\n" + json.dumps(stale) + "\n")
    again = run_batch(jobs, out, gen)
    assert (again.ok, again.failed, again.skipped) == (0, 0, 2)


# ----------------------------------------------------------------- 11. signals


def _start(command, out, signals, env):
    """Start a run, send `signals` (0.3 s apart) once its first job is in the report (a second
    signal may come while the run finishes, or after it has stopped)."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while process.poll() is None and not (out.exists() and any(r["status"] == "ok" for r in rows(out))):
        time.sleep(0.002)
    for number in signals:
        if process.poll() is None:
            process.send_signal(number)
            time.sleep(0.3)
    stdout, stderr = process.communicate(timeout=300)
    return process.returncode, stdout, stderr


@pytest.mark.parametrize("signals, workers", [([signal.SIGTERM], 1), ([signal.SIGINT, signal.SIGINT], 2)],
                         ids=["SIGTERM", "Ctrl-C twice with --workers 2"])
def test_signal_stops_the_run_cleanly(tmp_path, media, artifacts, signals, workers):
    """SIGTERM (Slurm, Kubernetes) used to kill at once: no summary, a temporary left; Ctrl-C
    with --workers kept running queued groups, and a second one left outputs without lines."""
    names = [f"s{i:03d}" for i in range(150)]
    jobs = write_jobs(tmp_path / "jobs.jsonl", *[cg(n, steps=3, format="mp4") for n in names])
    out = tmp_path / "out"
    command = [sys.executable, "-m", "magvit_onnx.cli", "run", str(jobs), "--out", str(out), "--artifacts",
               str(artifacts), "--workers", str(workers)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    code, stdout, stderr = _start(command, out, signals, env)
    summary = json.loads(stdout)
    assert code == 1 and summary["interrupted"] == signals[0].name and summary["stopped"], stderr
    assert f"stopped by {signals[0].name}" in stderr
    assert 0 < summary["ok"] < len(names)
    assert files(out) == sorted(outputs_of(out))  # no temporary, no output without its report line
    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    assert sorted(r["id"] for r in rows(out)) == names  # every job exactly once


# ----------------------------------------------------------------- 12. messages


def test_read_error_is_named_a_read_error(tmp_path, media, gen, monkeypatch):
    def unreadable(path, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(video, "read_video", unreadable)
    run_batch(write_jobs(tmp_path / "jobs.jsonl", fp("x")), tmp_path / "out", gen)
    assert error_of(tmp_path / "out", "x").startswith("cannot read clip.mp4: Permission denied")


def test_read_only_file_system_is_named(tmp_path, media, gen, monkeypatch):
    class ReadOnly:
        f_flag = os.ST_RDONLY

    out, access = tmp_path / "out", os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **k: Path(path) != out and access(path, mode, **k))
    monkeypatch.setattr(os, "statvfs", lambda path: ReadOnly())
    result = cli(write_jobs(tmp_path / "jobs.jsonl", cg("a")), "--out", out, "--artifacts", gen.artifacts)
    assert result.exit_code == 2 and "read-only file system" in result.stderr.lower()


def test_bad_start_or_fps_is_refused_before_decoding(tmp_path, media, gen, monkeypatch):
    """A clip the header says is too short used to be refused only after decoding the whole file."""
    def decoded(*args, **kwargs):
        raise AssertionError("decoded")

    monkeypatch.setattr(video, "_pick_by_stride", decoded)
    monkeypatch.setattr(video, "_pick_by_fps", decoded)
    with pytest.raises(video.VideoError, match=r"too few frames: start=100 is past the end of the video \(12 frames\)"):
        video.read_video(media / "clip.mp4", num_frames=8, size=(32, 32), start=100)
    with pytest.raises(video.VideoError, match="too few frames: the video has 12, but 8 frames with stride=2"):
        video.read_video(media / "clip.mp4", num_frames=8, size=(32, 32), stride=2)
    with pytest.raises(video.VideoError, match="too short: 8 frames at fps=0.01"):
        video.read_video(media / "clip.mp4", num_frames=8, size=(32, 32), fps=0.01)


def test_nan_in_a_float_video_is_named(gen):
    clip = np.full((1, 8, 32, 32, 3), 0.5, np.float32)
    clip[0, 0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="1 NaN or infinite values"):
        gen.generate("FP", video=clip)


# ----------------------------------------------------------------- 13. the Generator's own checks


def test_generator_refuses_what_it_cannot_use(gen):
    with pytest.raises(ValueError, match=r"takes no keyword \['gudiance_scale'\]"):
        gen.generate("CG", class_id=1, gudiance_scale=3.0)  # a typo used to change nothing, silently
    with pytest.raises(ValueError, match="seed must be an integer >= 0 \\(below 2\\*\\*64\\)"):
        gen.generate("CG", class_id=1, seed=2 ** 64)
    with pytest.raises(ValueError, match="schedule must be a string"):
        gen.generate("CG", class_id=1, schedule=3)
    with pytest.raises(ValueError, match="with B >= 1"):
        gen.decode(np.zeros((0, 2, 4, 4), np.int64))
    with pytest.raises(ProviderError, match="providers must be 'cpu', 'cuda', 'tensorrt'"):
        Generator(gen.artifacts, providers=123)


@pytest.mark.parametrize("kwargs, text", [
    ({"providers": ""}, "providers must be 'cpu', 'cuda', 'tensorrt', .* got ''"),  # was: silently the CPU
    ({"providers": []}, "providers must be"),
    ({"intra_op_num_threads": "x"}, "intra_op_num_threads must be an integer >= 0, got 'x'"),  # was a TypeError
    ({"intra_op_num_threads": -5}, "intra_op_num_threads must be an integer >= 0, got -5"),  # was accepted
])
def test_generator_refuses_degenerate_engine_options(gen, kwargs, text):
    """Issue 32 item 8."""
    with pytest.raises((ValueError, ProviderError), match=text):
        Generator(gen.artifacts, **kwargs)


def test_generator_refuses_an_artifacts_argument_that_is_no_path():
    with pytest.raises(ValueError, match="artifacts must be a folder path .* got int 123"):  # was a TypeError
        Generator(123)


def test_generator_takes_numpy_numbers(gen):
    """np.float32 settings were refused while np.int64 ones were accepted."""
    plain = gen.generate_tokens("CG", class_id=1, seed=0, steps=2, sampling_temperature=0.5, top_p=0.9)
    typed = gen.generate_tokens("CG", class_id=1, seed=np.uint64(0), steps=np.int64(2),
                                sampling_temperature=np.float32(0.5), top_p=np.float64(0.9))
    np.testing.assert_array_equal(plain, typed)


# ----------------------------------------------------------------- issue 32 (10): small things


def test_report_is_created_with_the_umasks_file_mode(tmp_path, media, gen):
    """report.jsonl was created 0755 (os.open's default 0777 less the umask): a file, not a program."""
    previous = os.umask(0o022)
    try:
        run_batch(write_jobs(tmp_path / "jobs.jsonl", cg("a")), tmp_path / "out", gen)
    finally:
        os.umask(previous)
    assert (tmp_path / "out" / "report.jsonl").stat().st_mode & 0o777 == 0o644


def test_an_over_long_jobs_line_is_refused_unread(tmp_path, media, gen):
    """A JOBS file of one huge line without a newline was read whole (1 GB file: 1.1 GB peak)."""
    import tracemalloc

    size = 8 << 20
    jobs = tmp_path / "jobs.jsonl"
    with open(jobs, "wb") as f:
        f.write(json.dumps(cg("a")).encode() + b"\n")
        f.write(b"{" + b" " * (size - 1))
    facts = batch.ModelFacts.load(gen.artifacts)
    tracemalloc.start()
    try:
        good, bad = batch.jobs.read_jobs(jobs, facts)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [j.id for j in good] == ["a"]
    assert [(b.line, b.error.split(";")[0]) for b in bad] == [(2, f"line is {size} bytes")]
    assert peak < size // 8, peak
    # the limit itself, a BOM on line 1 and a last line without a newline are as before
    limit = limits.MAX_LINE_BYTES
    line = json.dumps(cg("b", seed=1)).encode()
    jobs.write_bytes(b"\xef\xbb\xbf" + line + b" " * (limit - len(line)) + b"\n"
                     + line[:-1] + b" " * (limit - len(line) + 2) + b"}\r\n" + json.dumps(cg("c")).encode())
    good, bad = batch.jobs.read_jobs(jobs, facts)
    assert [j.id for j in good] == ["b", "c"] and [(b.line, b.error.split(";")[0]) for b in bad] == [
        (2, f"line is {limit + 3} bytes")]  # the \r counts


def test_a_stride_past_the_end_is_refused_before_decoding_without_a_frame_count(media, monkeypatch):
    """Matroska stores no frame count: stride=10000 decoded the whole file before refusing."""
    import av

    with av.open(str(media / "long.mkv")) as container:
        assert container.streams.video[0].frames == 0  # the case: only a duration in the header

    def decoded(*args, **kwargs):
        raise AssertionError("decoded")

    monkeypatch.setattr(video, "_decode", decoded)
    with pytest.raises(video.VideoError, match=r"too few frames: the video lasts about 5\.0\d* s \(about 40 frames"):
        video.read_video(media / "long.mkv", num_frames=8, size=(32, 32), stride=10000)


# ----------------------------------------------------------------- issue 32 (1): an output replaces no input


def test_an_output_never_replaces_an_input_of_the_run(tmp_path, media, gen):
    """`run ow/jobs.jsonl --out ow` with {"id": "c16", "input": "c16.mp4"} replaced the input with
    the output; a job reading another job's output read the generated file. Both are refused,
    the inputs are kept, the other jobs run."""
    ow = tmp_path / "ow"
    ow.mkdir()
    for name in ("c16.mp4", "x.mp4"):
        (ow / name).write_bytes((media / "clip.mp4").read_bytes())
    before = {name: sha(ow / name) for name in ("c16.mp4", "x.mp4")}
    jobs = write_jobs(ow / "jobs.jsonl", fp("c16", "c16.mp4", format="mp4"), cg("x", format="mp4"),
                      fp("reads-x", "x.mp4"), cg("fine"))
    result = cli(jobs, "--out", ow, "--artifacts", gen.artifacts)
    assert result.exit_code == 1, result.stderr
    assert {name: sha(ow / name) for name in before} == before
    assert error_of(ow, "c16") == (f"output c16.mp4 would replace an input of job 'c16' (line 1), {ow / 'c16.mp4'}: "
                                   "an output never replaces an input of the run; write to another --out")
    assert error_of(ow, "x").startswith("output x.mp4 would replace an input of job 'reads-x' (line 3)")
    assert {r["id"] for r in rows(ow) if r["status"] == "ok"} == {"reads-x", "fine"}
    assert "Traceback" not in result.stderr


def test_an_output_never_replaces_a_file_no_run_wrote(tmp_path, media, gen):
    """A file of the user's at an output name in --out is kept; the job is refused in one line.
    Files the runs wrote (listed in a report) are replaced on a rerun as before."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.npy").write_bytes(b"the user's own file")
    jobs = write_jobs(tmp_path / "jobs.jsonl", cg("mine"), cg("a"))
    summary = run_batch(jobs, out, gen)
    assert (summary.ok, summary.failed) == (1, 1) and (out / "mine.npy").read_bytes() == b"the user's own file"
    assert error_of(out, "mine") == ("output mine.npy would replace a file in --out that no run wrote (no report "
                                     "there lists it); move it away or choose another --out")
    written = sha(out / "a.npy")
    write_jobs(tmp_path / "jobs.jsonl", cg("a", seed=7))  # changed: redone over its own output
    assert run_batch(jobs, out, gen).ok == 1 and sha(out / "a.npy") != written


def test_outputs_of_a_run_killed_before_its_report_line_are_its_own(tmp_path, media, gen, monkeypatch):
    """The outputs are in place before the report line: a run killed in between leaves outputs
    no report lists. Their claim (.{id}.outputs, made before the first output) makes the
    rerun redo the job over them, and goes once the report lists them."""
    out = tmp_path / "out"
    jobs = write_jobs(tmp_path / "jobs.jsonl", cg("a", format="png"))

    def killed(self, row):
        raise batch.RunError("killed before the report line")

    with monkeypatch.context() as patch:
        patch.setattr(batch.ReportWriter, "append", killed)
        with pytest.raises(batch.RunError):
            run_batch(jobs, out, gen)
    assert rows(out) == [] and (out / "a.f000.png").exists() and (out / ".a.outputs").exists()
    summary = run_batch(jobs, out, gen)
    assert (summary.ok, summary.failed) == (1, 0)
    assert files(out) == sorted(outputs_of(out))  # the claim is gone, nothing else is left


# ----------------------------------------------------------------- issue 32 (11): nothing outside --out


def test_run_writes_nothing_outside_out(tmp_path, media, artifacts):
    """`import onnxruntime` wrote ~/.cache/Microsoft/DeveloperTools/.onnxruntime/ (telemetry: a
    device id and an event database); the command turns that off with ORT_DISABLE_TELEMETRY=1."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME")}
    jobs = write_jobs(tmp_path / "jobs.jsonl", cg("a"))
    result = subprocess.run([sys.executable, "-m", "magvit_onnx.cli", "run", str(jobs), "--out", str(tmp_path / "out"),
                             "--artifacts", str(artifacts)], env={**env, "HOME": str(home)}, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert list(home.rglob("*")) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "jobs.jsonl", "out"]


# ----------------------------------------------------------------- issue 32 (7): messages that point the right way


def test_jobs_and_report_that_are_no_regular_files_are_named(tmp_path, media, gen):
    """/dev/zero or a FIFO as JOBS said 'no such file'; a folder named report.jsonl said
    'cannot create the folder' (the folder was fine)."""
    os.mkfifo(tmp_path / "fifo")
    for jobs, text in (("/dev/zero", "JOBS /dev/zero: a character device, not a file"),
                       (tmp_path / "fifo", "a FIFO, not a file"), (tmp_path, "a folder, not a file"),
                       (tmp_path / "nope.jsonl", "nope.jsonl: no such file")):
        with pytest.raises(batch.RunError, match=re.escape(text)):
            run_batch(jobs, tmp_path / "out", gen)
    out = tmp_path / "out"
    (out / "report.jsonl").mkdir(parents=True)
    with pytest.raises(batch.RunError, match=re.escape(f"--out {out}: its report report.jsonl cannot be opened "
                                                       "(Is a directory)")):
        run_batch(write_jobs(tmp_path / "jobs.jsonl", cg("a")), out, gen)


def test_key_images_with_reading_options_name_the_option(tmp_path, media, gen):
    """keys with replace_condition_pixels said 'give keys or input, not both' (no input given)."""
    line = {"id": "k", "task": "FI", "keys": ["a.png", "b.png"], "replace_condition_pixels": True}
    run_batch(write_jobs(tmp_path / "jobs.jsonl", line), tmp_path / "out", gen)
    assert error_of(tmp_path / "out", "k") == ("replace_condition_pixels applies to an input video, not to key "
                                               "images; remove replace_condition_pixels")


def test_fps_range_error_gives_no_float32_reason(tmp_path, media, gen):
    run_batch(write_jobs(tmp_path / "jobs.jsonl", fp("x", str(media / "clip.mp4"), fps=1e-300)), tmp_path / "out", gen)
    assert error_of(tmp_path / "out", "x") == "fps must be within [0.001, 10000], got 1e-300"


def test_a_short_write_of_tokens_names_its_errno(tmp_path, media, gen):
    """np.save into a file that takes only part of the write (a full disk, a size limit) said
    '1024 requested and 496 written (errno None)': no errno, so never 'disk full'. A size limit
    (EFBIG) stands in for the full disk here: the same short write, then the errno."""
    import resource

    jobs = write_jobs(tmp_path / "jobs.jsonl", cg("a", num_videos=64, steps=1))  # 16 KiB of tokens
    limits_before, handler = resource.getrlimit(resource.RLIMIT_FSIZE), signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, limits_before[1]))
    try:
        summary = run_batch(jobs, tmp_path / "out", gen)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits_before)
        signal.signal(signal.SIGXFSZ, handler)
    assert summary.failed == 1
    assert error_of(tmp_path / "out", "a") == "cannot write a.npy: File too large (errno 27)"


# ----------------------------------------------------------------- issue 32 (9): the evaluation script


def test_evaluate_refuses_bad_arguments_before_evaluating(tmp_path, artifacts):
    """--batch 0/-1, a bad --artifacts, --steps 0 and --providers cuda without CUDA were
    tracebacks; an unwritable --json failed only after the whole evaluation."""
    import onnxruntime

    script = Path(__file__).resolve().parents[1] / "scripts" / "evaluate.py"
    data = ["--data", str(tmp_path), "--count", "4"]
    cases = [([*data, "--batch", "0"], 2, "--batch must be >= 1"),
             ([*data, "--batch", "-1"], 2, "--batch must be >= 1"),
             (["--artifacts", str(tmp_path / "nope")], 2, "--artifacts: "),
             (["--artifacts", str(artifacts), "--steps", "0"], 2, "steps must be an integer >= 1, got 0"),
             (["--artifacts", str(artifacts), "--json", str(tmp_path / "no" / "e.json")], 2, "does not exist"),
             (["--artifacts", str(artifacts), "--json", str(tmp_path)], 2, f"--json {tmp_path}: is a folder")]
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        cases.append((["--artifacts", str(artifacts), "--providers", "cuda"], 1, "CUDAExecutionProvider not available"))
    for args, code, text in cases:
        result = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300)
        assert result.returncode == code and text in result.stderr, (args, result.stderr[-2000:])
        assert "Traceback" not in result.stderr and "tokenizer:" not in result.stderr, args  # nothing evaluated
