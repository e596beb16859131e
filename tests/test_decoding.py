"""Per-task decoding defaults (runtime/decoding.py): a manifest's `decoding_by_task` applies
with decoding="model" (the default) and not with "official"; the exporter writes it, checked."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from magvit_onnx import batch, video
from magvit_onnx.cli import main
from magvit_onnx.generator import Generator

TUNED = {"sampling_temperature": 0.25, "mask_temperature": 1.0, "top_p": 0.9}  # far from the official 1, 4.5, off


def _with_choice(folder, to, by_task):
    """A copy of the artifacts folder whose manifest holds `by_task` (only the graphs are hash-checked)."""
    to.mkdir()
    for p in folder.iterdir():
        (to / p.name).write_bytes(p.read_bytes())
    manifest = json.loads((to / "manifest.json").read_text())
    (to / "manifest.json").write_text(json.dumps({**manifest, "decoding_by_task": by_task}))
    return to


@pytest.fixture(scope="module")
def folders(small_artifacts, tmp_path_factory):
    plain = small_artifacts(3)
    return plain, _with_choice(plain, tmp_path_factory.mktemp("tuned") / "a", {"frame_prediction": TUNED})


def test_official_and_model_differ_exactly_where_the_manifest_has_values(folders):
    plain, tuned = folders
    clips = np.random.default_rng(0).integers(0, 256, (2, 8, 32, 32, 3), dtype=np.uint8)
    model, official, untouched = Generator(tuned), Generator(tuned, decoding="official"), Generator(plain)

    def tokens(gen, task, **kw):
        video = None if task == "full_generation" else clips
        return gen.generate_tokens(task, video, class_id=[1, 2] if video is None else None, seed=[3, 4],
                                   steps=4, **kw)

    assert not np.array_equal(tokens(model, "frame_prediction"), tokens(official, "frame_prediction"))
    assert np.array_equal(tokens(official, "frame_prediction"), tokens(untouched, "frame_prediction"))
    # the per-task values are defaults: a call that sets them gets what it asks for
    assert np.array_equal(tokens(model, "frame_prediction", sampling_temperature=1.0, mask_temperature=4.5, top_p=1.0),
                          tokens(official, "frame_prediction", top_p=1.0))
    assert np.array_equal(tokens(model, "frame_prediction"), tokens(untouched, "frame_prediction", **TUNED))
    for task in ("frame_interpolation", "full_generation"):  # no per-task values: the same
        assert np.array_equal(tokens(model, task), tokens(official, task))
    assert model.info()["decoding_by_task"] == {"frame_prediction": TUNED}
    with pytest.raises(ValueError, match="decoding must be one of 'model', 'official', got 'tuned'"):
        Generator(plain, decoding="tuned")


def _run(jobs, out, artifacts, *extra):
    return CliRunner().invoke(main, ["run", str(jobs), "--out", str(out), "--artifacts", str(artifacts), *extra],
                              catch_exceptions=False)


def test_run_decoding_official_changes_config_and_outputs_of_tuned_tasks_only(tmp_path, folders):
    _, tuned = folders
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("\n".join(json.dumps(j) for j in (
        {"id": "fp", "task": "FP", "input": "clip.mp4", "steps": 3, "seed": 1, "format": "npy"},
        {"id": "cg", "task": "CG", "class": 1, "steps": 3, "seed": 1, "format": "npy"})) + "\n")
    video.write_mp4(tmp_path / "clip.mp4", np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3), np.uint8))
    rows = {}
    for choice in ("model", "official"):
        result = _run(jobs, tmp_path / choice, tuned, "--decoding", choice)
        assert result.exit_code == 0, result.stderr
        rows[choice] = batch.report_view(tmp_path / choice)
        assert {row["decoding"] for row in rows[choice].values()} == {choice}
    model, official = rows["model"], rows["official"]
    assert model["fp"]["config"] != official["fp"]["config"]
    assert model["fp"]["outputs"][0]["sha256"] != official["fp"]["outputs"][0]["sha256"]
    assert model["cg"]["config"] == official["cg"]["config"]
    assert model["cg"]["outputs"][0]["sha256"] == official["cg"]["outputs"][0]["sha256"]
    result = _run(jobs, tmp_path / "bad", tuned, "--decoding", "tuned")
    assert result.exit_code == 2 and "'tuned' is not one of 'model', 'official'" in result.stderr, result.stderr


def test_info_shows_the_per_task_defaults(folders):
    _, tuned = folders
    result = CliRunner().invoke(main, ["info", "--artifacts", str(tuned)])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["decoding_by_task"] == {"frame_prediction": TUNED}


def test_export_writes_checked_per_task_defaults(tmp_path):
    from magvit_onnx.export.export_all import main as export_main

    bad = tmp_path / "choice.json"  # as scripts/choose_decoding.py writes it
    bad.write_text(json.dumps({"frame_prediction": {"sampling_temperature": 0}, "scores": {}, "command": "x"}))
    result = CliRunner().invoke(export_main, ["--preset", "tiny", "--random-init", "--out", str(tmp_path / "a"),
                                              "--decoding-by-task", str(bad)])
    assert result.exit_code == 2 and "decoding_by_task.frame_prediction must be settings every call can use " \
                                      "(sampling_temperature must be a finite number > 0, got 0)" in result.output
    assert not (tmp_path / "a").exists()  # refused before anything is written
    from helpers import small_config

    from magvit_onnx.export.exporter import export_all, seeded_random_models

    config = small_config()
    with pytest.raises(ValueError, match="decoding_by_task key 'FP' must be a task of this model"):
        export_all(config, *seeded_random_models(config, seed=0), tmp_path / "b", decoding_by_task={"FP": {}})
    export_all(config, *seeded_random_models(config, seed=0), tmp_path / "c",
               decoding_by_task={"frame_prediction": {"sampling_temperature": 0.7}})
    assert Generator(tmp_path / "c").info()["decoding_by_task"] == {"frame_prediction": {"sampling_temperature": 0.7}}


def test_choose_decoding_picks_the_best_setting_shown_better(tmp_path, folders):
    import importlib.util
    from pathlib import Path

    from helpers import small_config

    from magvit_onnx.export.export_all import read_decoding_by_task

    path = Path(__file__).parents[1] / "scripts" / "choose_decoding.py"
    spec = importlib.util.spec_from_file_location("choose_decoding", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "choice.json"
    script.main(["--artifacts", str(folders[0]), "--json", str(out), "--clips", "1", "--cg-clips", "2", "--steps", "2",
                 "--sampling-temperatures", "1.0,0.5", "--mask-temperatures", "4.5", "--tasks", "FP,CG,IPM",
                 "--min-gain", "0"])
    report = json.loads(out.read_text())
    for task in ("frame_prediction", "full_generation", "inpainting"):
        rows = report["scores"][task]
        assert rows[0]["sampling_temperature"] == 1.0 and "top_p" not in rows[0]  # official first
        assert len(rows) == 4 and sum("top_p" in row for row in rows) == 2
        beaten = [row for row in rows if row["beats"]]  # the official setting never beats itself
        assert not rows[0]["beats"]
        if beaten:
            best = min(beaten, key=lambda row: row["score"])
            assert report[task] == {k: v for k, v in best.items() if k in TUNED}
        else:
            assert task not in report  # the official setting: nothing for the manifest to say
    assert report["scores"]["frame_prediction"][0]["score"] == 1  # relative to the official setting
    assert set(report["scores"]["frame_prediction"][0]) >= {"mse_synthetic", "mse_dead_leaves", "mse_photos", "mse"}
    # the mask task: random regions (half inverted), scored on the generated pixels
    assert set(report["scores"]["inpainting"][0]) >= {"mse_synthetic", "mse"}
    assert read_decoding_by_task(out, small_config()).keys() == {task for task in report["scores"] if task in report}

    assert "ci95" in report["scores"]["frame_prediction"][1] and "beats" in report["scores"]["full_generation"][1]

    # --from-scores picks again from stored per-clip scores without decoding. Each source weighs
    # the same: half the error on a source of small errors outweighs 10 % more on one of large
    # errors (absolute means would keep the official setting); --min-gain sets the margin.
    official, other = {"sampling_temperature": 1.0, "mask_temperature": 4.5}, {"sampling_temperature": 0.5,
                                                                               "mask_temperature": 4.5}
    noise = np.linspace(0.9, 1.1, 8)
    sources = lambda a, b: {"mse_per_clip_a": list(a * noise), "mse_per_clip_b": list(b * noise)}  # noqa: E731

    def pick_again(rows: list[dict], gain: str = "0.05") -> dict:
        sweep = {"criterion": "squared error, 8 'val' clips per source of a,b, 12 steps", "command": "python ...",
                 "scores": {"frame_prediction": rows}}
        (tmp_path / "sweep.json").write_text(json.dumps(sweep))
        script.main(["--from-scores", str(tmp_path / "sweep.json"), "--json", str(out), "--min-gain", gain])
        again = json.loads(out.read_text())
        assert again["command"].endswith("(scores: python ...)")
        assert again["criterion"].endswith("8 'val' clips per source of a,b, 12 steps")
        assert read_decoding_by_task(out, small_config()) == {k: again[k] for k in ("frame_prediction",) if k in again}
        return again

    rows = [{**official, **sources(0.01, 0.1)}, {**other, **sources(0.005, 0.11)}]
    for gain, chosen in (("0.05", other), ("0.25", None)):
        again = pick_again(rows, gain)
        assert again.get("frame_prediction") == chosen  # None: the official setting, left to the manifest
        assert [row["score"] for row in again["scores"]["frame_prediction"]] == pytest.approx([1.0, 0.8])
    # As much better on average, but from one lucky clip against a worse one: the interval spans
    # 1, so the official setting stays (4 clips per source once picked noise).
    lucky = {"mse_per_clip_a": [0.0005] * 7 + [0.06], "mse_per_clip_b": list(0.1 * noise)}
    again = pick_again([{**official, **sources(0.01, 0.1)}, {**other, **lucky}])
    assert again["scores"]["frame_prediction"][1]["score"] < 0.95
    assert again["scores"]["frame_prediction"][1]["ci95"][1] > 1 and "frame_prediction" not in again
    # CG: fewer class errors replace the official setting only with clips as varied as its
    errors = lambda k: {"error_rate": k / 10, "errors_per_clip": [1] * k + [0] * (10 - k)}  # noqa: E731
    for frechet, chosen in ((2.0, other), (9.0, None)):
        again = pick_again([{**official, **errors(9), "frechet_distance": 3.0},
                            {**other, **errors(1), "frechet_distance": frechet}])
        assert again.get("frame_prediction") == chosen
    with pytest.raises(SystemExit, match="no per-clip scores"):
        pick_again([{**official, "mse_a": 0.01}, {**other, "mse_a": 0.005}])


def test_paired_ratio_averages_sources_and_its_interval_follows_the_noise():
    from magvit_onnx.metrics import paired_ratio

    rng = np.random.default_rng(0)
    base = [rng.uniform(0.01, 0.02, 12), rng.uniform(0.1, 0.2, 12)]
    steady = paired_ratio(base, [0.5 * base[0], 1.1 * base[1]])  # every clip changes alike: no doubt
    assert steady["ratio"] == pytest.approx(0.8) and steady["ci95"] == pytest.approx([0.8, 0.8])
    noisy = paired_ratio(base, [base[0] * rng.uniform(0, 1.6, 12), base[1] * rng.uniform(0.4, 2.0, 12)])
    low, high = noisy["ci95"]
    assert low < noisy["ratio"] < high and high - low > 0.2
    assert paired_ratio(base, base, seed=1)["ci95"] == pytest.approx([1.0, 1.0])
    assert np.isnan(paired_ratio([np.zeros(4)], [np.ones(4)])["ci95"]).all()  # nothing to divide by: shows nothing
