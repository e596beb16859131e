"""`magvit-onnx demo / info / export`, and scripts/evaluate.py, on a small random-init model."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from helpers import run_without, run_without_torch
from magvit_onnx.cli import main
from magvit_onnx.demo import MASK_ROWS, PHOTO_ROWS
from magvit_onnx.runtime.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def artifacts(small_artifacts):
    return small_artifacts(2)


def test_demo_writes_every_task_and_a_contact_sheet(artifacts, tmp_path):
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--artifacts", str(artifacts), "--steps", "2"])
    assert result.exit_code == 0, result.output
    for name in TASKS:
        assert (tmp_path / f"{name}.mp4").stat().st_size > 0 and (tmp_path / f"{name}.gif").stat().st_size > 0
    sheet = (tmp_path / "contact_sheet.png").read_bytes()
    assert sheet.startswith(b"\x89PNG")
    summary = json.loads((tmp_path / "demo.json").read_text())
    photos = [f"photo_{clip}_{name}" for clip, name in PHOTO_ROWS]
    assert list(summary["tasks"]) == list(TASKS) + photos + list(MASK_ROWS)
    assert summary["providers"] == ["CPUExecutionProvider"]
    assert all((tmp_path / f"{stem}.mp4").stat().st_size > 0 for stem in photos + list(MASK_ROWS))
    assert set(summary["beyond_one_clip"]) == {"long_frame_prediction", "stop_motion", "panorama"}
    # `demo --help` names every file the demo writes (it once named only the tasks and the sheet)
    help_text = CliRunner().invoke(main, ["demo", "--help"]).output
    listed = [line.split()[0] for line in help_text.splitlines() if re.match(r"  \S+\.(png|json|mp4/\.gif)\s", line)]
    videos = ".mp4/.gif"  # one name for both files
    patterns = [re.escape(name.removesuffix(videos)).replace("<task>", f"({'|'.join(TASKS)})")
                .replace("<clip>", "[a-z]+") + (r"\.(mp4|gif)" if name.endswith(videos) else "") for name in listed]
    undocumented = [f.name for f in tmp_path.iterdir() if not any(re.fullmatch(p, f.name) for p in patterns)]
    assert "demo.json" in listed and undocumented == [], (listed, undocumented)


def test_info(artifacts):
    result = CliRunner().invoke(main, ["info", "--artifacts", str(artifacts)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["providers"] == ["CPUExecutionProvider"] and "CPUExecutionProvider" in report["available_providers"]
    assert report["tasks"] == [*TASKS, "inpainting"]  # any region, through the official inpainting token


def test_info_shows_class_names_and_the_model_card(artifacts, tmp_path):
    """Old `info`: class numbers only, and model_card always null."""
    from magvit_onnx.export.model_card import class_entries, model_card
    from helpers import small_config

    folder = tmp_path / "named"
    shutil.copytree(artifacts, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    training = {"data": "synthetic", "step": "100"}
    manifest["classes"] = class_entries(small_config(), training)
    manifest["model_card"] = model_card(small_config(), {"random_init": False}, training)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(main, ["info", "--artifacts", str(folder)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["classes"][3] == {"id": 3, "name": "circle moving down"} and report["num_classes"] == 10
    card = report["model_card"]
    assert "trained on our synthetic video set" in card["summary"] and card["training"] == training
    assert "circle or triangle" in card["data"] and "synthetic shapes" in card["limits"]
    random_card = model_card(small_config(), {"random_init": True, "seed": 0}, {})
    assert "random init (seed 0)" in random_card["summary"] and class_entries(small_config(), {})[0]["name"] is None


def test_the_model_card_names_each_source_of_a_mixture():
    from magvit_onnx.export.model_card import class_entries, model_card
    from helpers import small_config

    mixture = {"data": "synthetic:1,dead_leaves:1,photos=my/photos:2"}
    card = model_card(small_config(), {"random_init": False}, mixture)
    assert card["summary"].endswith("trained on our synthetic video set, procedural dead-leaves video and "
                                    "camera moves over photographs")
    assert "circle or triangle" in card["data"] and "dead_leaves" in card["data"] and "no real video" in card["limits"]
    assert class_entries(small_config(), mixture)[3]["name"] == "circle moving down"
    folder = model_card(small_config(), {"random_init": False}, {"data": "videos/:1"})
    assert folder["summary"].endswith("trained on videos/:1") and folder["limits"] is None


def test_clear_errors_and_exit_codes(artifacts, tmp_path):
    result = CliRunner().invoke(main, ["info", "--artifacts", str(tmp_path)])
    assert result.exit_code == 1 and "manifest.json is missing" in result.output
    result = CliRunner().invoke(main, ["info", "--artifacts", str(artifacts), "--providers", "cuda"])
    assert result.exit_code == 1 and "CUDAExecutionProvider not available" in result.output
    # the commands have no allow_fallback (Python only): the advice names their own option
    assert "allow_fallback" not in result.output and "run with --providers cpu" in result.output
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--artifacts", str(artifacts), "--steps", "0"])
    assert result.exit_code == 2


def test_info_on_a_missing_folder_says_so(tmp_path):
    """Old message: 'manifest.json is missing', for a folder that does not exist at all."""
    result = CliRunner().invoke(main, ["info", "--artifacts", str(tmp_path / "nonexistent")])
    assert result.exit_code == 1
    assert result.output.strip() == (f"Error: {tmp_path / 'nonexistent'}: no such folder; give an artifacts folder "
                                     "(made by `python export/export_all.py --out DIR`), or none for the shipped "
                                     "default model")
    from magvit_onnx.runtime.artifacts import ArtifactError, load_manifest

    (tmp_path / "a_file").write_text("x")  # the CLI's --artifacts refuses a file itself; Python callers get:
    with pytest.raises(ArtifactError, match="a_file: not a folder; give an artifacts folder"):
        load_manifest(tmp_path / "a_file")


def test_run_provider_advice_names_the_command_line_option(artifacts, tmp_path):
    (tmp_path / "jobs.jsonl").write_text('{"id": "a", "task": "CG", "class": 1}\n')
    result = CliRunner().invoke(main, ["run", str(tmp_path / "jobs.jsonl"), "--out", str(tmp_path / "out"),
                                       "--artifacts", str(artifacts), "--providers", "cuda"])
    assert result.exit_code == 1 and "CUDAExecutionProvider not available" in result.output
    assert "allow_fallback" not in result.output and "run with --providers cpu" in result.output


@pytest.mark.parametrize("command", [["info"], ["demo", "--out", "demo"], ["run", "jobs.jsonl", "--out", "out"]])
def test_an_unknown_provider_is_a_usage_error(tmp_path, monkeypatch, command):
    """Old: exit 1, although a bad option value is a usage error (2) everywhere else."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs.jsonl").write_text('{"id": "a", "task": "CG", "class": 1}\n')
    result = CliRunner().invoke(main, [*command, "--providers", "foo"])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--providers': unknown provider 'foo': valid providers are cpu, cuda, tensorrt" \
        in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobs.jsonl"]  # refused before any output


def test_an_unavailable_gpu_is_one_line_without_a_warning(artifacts, tmp_path):
    """Old: `info --providers cuda` on CPU-target artifacts printed a RuntimeWarning (file, line,
    source) about GPU performance before saying that there is no GPU."""
    import warnings

    folder = tmp_path / "cpu_target"
    shutil.copytree(artifacts, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "target": "cpu"}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(main, ["info", "--artifacts", str(folder), "--providers", "cuda"])
    assert result.exit_code == 1 and caught == []
    assert result.output.startswith("Error: execution provider(s) CUDAExecutionProvider not available")
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_a_warning_is_one_line(artifacts, monkeypatch):
    """Python's format of a warning adds a file, a line number and the source line."""
    import warnings

    from magvit_onnx.generator import Generator

    info = Generator.info
    monkeypatch.setattr(Generator, "info", lambda self: warnings.warn("mind the gap", RuntimeWarning) or info(self))
    shown = warnings.showwarning
    result = CliRunner().invoke(main, ["info", "--artifacts", str(artifacts)])
    assert result.exit_code == 0 and result.stderr == "Warning: mind the gap\n"
    assert json.loads(result.stdout)["tasks"] == [*TASKS, "inpainting"]
    assert warnings.showwarning is shown  # put back when the command ends


def test_generator_without_onnxruntime_names_the_extra(monkeypatch):
    """Old: `Generator()` without onnxruntime ended in a bare ModuleNotFoundError."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an absent module looks like to import
    for name in ("magvit_onnx.runtime.providers", "magvit_onnx.runtime.pipeline", "magvit_onnx.generator"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(ImportError) as caught:
        from magvit_onnx.generator import Generator  # noqa: F401
    assert str(caught.value) == ("onnxruntime is not installed: pip install 'magvit-onnx[cpu]', "
                                 "or 'magvit-onnx[gpu]' on a CUDA machine")
    assert caught.value.__suppress_context__ and caught.value.__cause__ is None  # one message, no chained traceback


@pytest.mark.parametrize("where", ["under_a_file/out", "file"])
def test_demo_out_that_cannot_be_created_is_one_line(artifacts, tmp_path, where):
    """Old: a NotADirectoryError/FileExistsError traceback from mkdir."""
    (tmp_path / "under_a_file").write_text("x")
    (tmp_path / "file").mkdir()
    (tmp_path / "file" / "x").write_text("x")
    out = tmp_path / where if where != "file" else tmp_path / "file" / "x" / "out"
    result = CliRunner().invoke(main, ["demo", "--out", str(out), "--artifacts", str(artifacts), "--steps", "1"])
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line and line.startswith(f"Error: --out {out}: cannot create or write the folder (")
    assert "Traceback" not in result.output


def test_demo_keeps_condition_pixels_when_asked(artifacts, tmp_path):
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--artifacts", str(artifacts), "--steps", "1",
                                       "--replace-condition-pixels"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "demo.json").read_text())["replace_condition_pixels"] is True


def test_export_help_needs_no_torch():
    """Old: 'exporting needs torch' even for --help."""
    result = run_without_torch("from magvit_onnx.cli import main\nmain(['export', '--help'])")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--preset" in result.stdout and "--int8" in result.stdout
    result = run_without_torch("from magvit_onnx.cli import main\nmain(['export', '--out', 'x'])")
    assert result.returncode == 1 and "exporting needs torch" in result.stderr


def test_without_onnxruntime_commands_name_the_extra(tmp_path):
    """Old: a plain install (onnxruntime is an extra) failed `magvit-onnx --help` with a traceback."""
    result = run_without("onnxruntime", "from magvit_onnx.cli import main\nmain(['--help'])")
    assert result.returncode == 0 and "demo" in result.stdout, result.stderr[-2000:]
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"task": "frame_prediction"}\n')
    for args in (["info"], ["demo", "--out", str(tmp_path / "demo")], ["run", str(jobs), "--out", str(tmp_path / "run")]):
        result = run_without("onnxruntime", f"from magvit_onnx.cli import main\nmain({args!r})")
        assert result.returncode != 0 and "Traceback" not in result.stderr, (args, result.stderr[-2000:])
        assert "pip install 'magvit-onnx[cpu]'" in result.stderr.strip().splitlines()[-1], args


def test_export_forwards_to_the_exporter(tmp_path):
    result = CliRunner().invoke(main, ["export", "--out", str(tmp_path / "a"), "--opset", "12"])
    assert result.exit_code == 2 and "opset" in result.output


def test_export_refuses_bad_arguments_in_one_line(tmp_path):
    """Old: an unknown preset, a file that is no checkpoint, a tokenizer-only checkpoint and an
    --out that cannot be made each ended in a traceback."""
    import torch

    from helpers import small_config
    from magvit_onnx.models.checkpoint import save_weights
    from magvit_onnx.models.vqvae import VQVAE

    not_a_checkpoint = tmp_path / "notes.safetensors"
    not_a_checkpoint.write_text("not a checkpoint")
    tokenizer_only = tmp_path / "tokenizer.safetensors"
    config = small_config()
    torch.manual_seed(0)
    save_weights(tokenizer_only, config, {"vq": VQVAE(config.vq)})
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    out = str(tmp_path / "out")
    cases = [(["--preset", "XL", "--out", out], "'XL' is not one of"),
             (["--weights", str(not_a_checkpoint), "--out", out], "not a safetensors file"),
             (["--weights", str(tokenizer_only), "--out", out], "holds no 'transformer' weights"),
             (["--random-init", "--out", str(a_file / "sub")], "cannot create or write the folder")]
    for args, needle in cases:
        result = CliRunner().invoke(main, ["export", *args])
        assert result.exit_code == 2 and needle in result.output, (args, result.output)
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), args
    assert not (tmp_path / "out").exists()


def test_evaluate_script(artifacts, tmp_path):
    out = tmp_path / "eval.json"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--artifacts", str(artifacts),
                             "--count", "4", "--steps", "1", "--batch", "4", "--json", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert set(report["tasks"]) == {*TASKS, "inpainting"}  # the ten and any region (IPM)
    assert 0 < report["tokenizer"]["psnr"] < 100 and -1 <= report["tokenizer"]["ssim"] <= 1
    regions = report["tasks"].pop("inpainting")  # per kind of random region, as drawn and inverted
    assert set(regions) == {"box", "moving_box", "blob", "box_inverted", "moving_box_inverted", "blob_inverted"}
    for entry in regions.values():
        assert np.isfinite(entry["unknown_mse"]) and np.isfinite(entry["mean_fill_mse"])
        assert 0 < entry["generated_fraction"] < 1
    assert regions["box"]["generated_fraction"] < regions["box_inverted"]["generated_fraction"]
    for name, entry in report["tasks"].items():
        assert entry["seconds_per_video"] > 0
        if TASKS[name].needs_video:
            assert np.isfinite(entry["unknown_mse"]) and np.isfinite(entry["baseline_mse"])
            assert np.mean(entry["unknown_mse_per_clip"]) == pytest.approx(entry["unknown_mse"]) and \
                len(entry["unknown_mse_per_clip"]) == 4
        if TASKS[name].class_conditional:
            assert 0 <= entry["class_accuracy"] <= 1
    assert np.isfinite(report["tasks"]["full_generation"]["frechet_distance"])
    assert report["guidance_scale"] == 0 and report["steps"] == 1

    # Every clip has its own seed, so the numbers do not depend on --batch.
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--artifacts", str(artifacts),
                             "--count", "4", "--steps", "1", "--batch", "1", "--tasks", "CG,FP",
                             "--json", str(tmp_path / "batch1.json")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    batch1 = json.loads((tmp_path / "batch1.json").read_text())["tasks"]
    assert batch1["frame_prediction"]["unknown_mse"] == pytest.approx(report["tasks"]["frame_prediction"]["unknown_mse"], rel=1e-4)
    assert batch1["full_generation"]["frechet_distance"] == pytest.approx(report["tasks"]["full_generation"]["frechet_distance"], rel=1e-4)

    # A subset of tasks, with guidance; a task the model does not know is refused by name.
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--artifacts", str(artifacts),
                             "--count", "4", "--steps", "1", "--tasks", "CG,FP", "--guidance-scale", "2",
                             "--json", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert set(report["tasks"]) == {"full_generation", "frame_prediction"} and report["guidance_scale"] == 2
    # Another sampling temperature draws other tokens from the same seeds.
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--artifacts", str(artifacts),
                             "--count", "4", "--steps", "1", "--batch", "1", "--tasks", "FP",
                             "--sampling-temperature", "0.5", "--json", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["sampling_temperature"] == 0.5
    assert report["tasks"]["frame_prediction"]["unknown_mse"] != batch1["frame_prediction"]["unknown_mse"]
    # A model's per-task decoding defaults decode unless --decoding official; the report says which
    chosen = tmp_path / "chosen"
    shutil.copytree(artifacts, chosen)
    manifest = json.loads((chosen / "manifest.json").read_text())
    manifest["decoding_by_task"] = {"frame_prediction": {"sampling_temperature": 0.5}}
    (chosen / "manifest.json").write_text(json.dumps(manifest))
    for choice, same_as in (("model", report), ("official", json.loads((tmp_path / "batch1.json").read_text()))):
        result = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--artifacts", str(chosen),
                                 "--count", "4", "--steps", "1", "--batch", "1", "--tasks", "FP", "--decoding", choice,
                                 "--json", str(tmp_path / "chosen.json")], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
        chose = json.loads((tmp_path / "chosen.json").read_text())
        assert chose["decoding"] == choice and bool(chose["decoding_by_task"]) == (choice == "model")
        assert chose["tasks"]["frame_prediction"]["unknown_mse"] == same_as["tasks"]["frame_prediction"]["unknown_mse"]
    # Known pixels kept (for FVD against the baselines, which keep them): the generated pixels do
    # not change; class-conditional generation, which has no input, still runs.
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--artifacts", str(artifacts),
                             "--count", "4", "--steps", "1", "--batch", "1", "--tasks", "CG,FP",
                             "--replace-condition-pixels", "--json", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["replace_condition_pixels"] is True
    assert json.loads((tmp_path / "batch1.json").read_text())["replace_condition_pixels"] is False
    assert report["tasks"]["frame_prediction"]["unknown_mse"] == batch1["frame_prediction"]["unknown_mse"]
    assert report["tasks"]["full_generation"]["frechet_distance"] == batch1["full_generation"]["frechet_distance"]
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--artifacts", str(artifacts),
                             "--tasks", "CG,XX"], capture_output=True, text=True)
    assert result.returncode == 2 and "XX" in result.stderr

    # A task the model does not serve is refused before any work, naming what it serves.
    fewer = tmp_path / "fewer"
    shutil.copytree(artifacts, fewer)
    manifest = json.loads((fewer / "manifest.json").read_text())
    del manifest["tasks"]["inpainting_dv"]
    (fewer / "manifest.json").write_text(json.dumps(manifest))
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--artifacts", str(fewer),
                             "--tasks", "CG,IPD"], capture_output=True, text=True)
    assert result.returncode == 2 and "does not serve inpainting_dv" in result.stderr and "tokenizer" not in result.stderr


def test_compare_evals_pairs_clips_and_says_when_a_model_is_worse(tmp_path):
    def report(seed, fp, box):
        return {"count": len(fp), "seed": seed, "tasks": {
            "frame_prediction": {"unknown_mse": float(np.mean(fp)), "unknown_mse_per_clip": fp},
            "inpainting": {"box": {"unknown_mse": float(np.mean(box)), "unknown_mse_per_clip": box}}}}

    rng = np.random.default_rng(0)
    clips = [rng.uniform(0.005, 0.03, 10).tolist() for _ in range(2)]  # clips differ far more than the models
    paths = {}
    for name, scale in (("base", 1.0), ("worse", 1.1), ("noisy", None)):
        for seed in (0, 1):
            fp = [v * (scale or rng.uniform(0.8, 1.2)) for v in clips[seed]]
            paths[name, seed] = tmp_path / f"{name}{seed}.json"
            paths[name, seed].write_text(json.dumps(report(seed, fp, clips[seed])))
    script = [sys.executable, str(ROOT / "scripts" / "compare_evals.py"), "--base", paths["base", 0], paths["base", 1]]
    for other, verdict in (("worse", "worse"), ("noisy", "no difference shown")):
        result = subprocess.run([*map(str, script), "--new", str(paths[other, 0]), str(paths[other, 1]),
                                 "--json", str(tmp_path / "cmp.json")], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        cmp = json.loads((tmp_path / "cmp.json").read_text())["tasks"]
        fp = cmp["frame_prediction"]
        assert fp["clips"] == 20 and fp["verdict"] == verdict and fp["ci95"][0] <= fp["ratio"] <= fp["ci95"][1]
        assert cmp["inpainting:box"]["ratio"] == 1 and cmp["inpainting:box"]["verdict"] == "no difference shown"
    assert fp["ratio"] != 1 and cmp["frame_prediction"]["ci95"][0] < 1 < cmp["frame_prediction"]["ci95"][1]
    # reports of other seeds are not the same clips' numbers: refused
    result = subprocess.run([*map(str, script), "--new", str(paths["worse", 1]), str(paths["worse", 0])],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "must share clips, count and seed" in result.stderr


def test_evaluate_script_on_a_folder_of_videos(artifacts, tmp_path):
    """--data: windows of the user's videos (a file that is no video is named and skipped); reference
    lines (block averaging, mean-colour fill); class-conditional tasks skipped (no labels)."""
    from magvit_onnx.video import write_mp4

    (tmp_path / "videos").mkdir()
    ramp = np.linspace(0, 255, 48, dtype=np.uint8)
    for i in range(2):  # 20 frames each: windows start at 0 and 8 with --window-gap 8 (two per video)
        frames = np.stack([np.roll(np.tile(ramp[None, :, None], (40, 1, 3)), 2 * t + 5 * i, axis=1) for t in range(20)])
        write_mp4(tmp_path / "videos" / f"v{i}.mp4", frames)
    (tmp_path / "videos" / "broken.mp4").write_bytes(b"not a video")  # named, skipped, not fatal
    out = tmp_path / "real.json"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--artifacts", str(artifacts),
                             "--data", str(tmp_path / "videos"), "--window-gap", "8", "--count", "10", "--steps", "1",
                             "--tasks", "FP,IPC,OPC,CG", "--json", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"--data: skipped {tmp_path / 'videos' / 'broken.mp4'}: " in result.stderr
    report = json.loads(out.read_text())
    assert report["count"] == 4 and set(report["tasks"]) == {"frame_prediction", "inpainting_c", "outpainting_c"}
    tokenizer = report["tokenizer"]
    assert tokenizer["block"] == [4, 8, 8]  # the small model's token covers 4x8x8 pixels
    assert tokenizer["frame_block_average_psnr"] > tokenizer["block_average_psnr"] > 10
    for name in ("inpainting_c", "outpainting_c"):
        assert np.isfinite(report["tasks"][name]["mean_fill_mse"]) and "beats_mean_fill" in report["tasks"][name]
    assert "mean_fill_mse" not in report["tasks"]["frame_prediction"]
    (tmp_path / "empty").mkdir()
    empty = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--artifacts", str(artifacts),
                            "--data", str(tmp_path / "empty")], capture_output=True, text=True)
    assert empty.returncode != 0 and "no videos" in empty.stderr and "Traceback" not in empty.stderr


def test_run_help_names_every_job_key():
    from magvit_onnx.batch.jobs import KEYS

    help_text = CliRunner().invoke(main, ["run", "--help"]).output
    assert [key for key in KEYS if f'"{key}"' not in help_text] == []
