"""Training scripts end to end (a few steps), resume, data sources, shipping the result."""
import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from magvit_onnx import Generator
from magvit_onnx.models.checkpoint import read_config, read_metadata, save_weights
from magvit_onnx.models.vqvae import VQVAE

ROOT = Path(__file__).resolve().parents[1]


def run(script, *args):
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *map(str, args)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr + result.stdout


def test_tokenizer_then_transformer_then_export(tmp_path):
    tok = tmp_path / "tok"
    common = ["--out", tok, "--batch-size", 1, "--gan-start", 1, "--r1-every", 2, "--eval-every", 2,
              "--save-every", 1, "--log-every", 1]
    out = run("train_tokenizer.py", "--steps", 2, *common)
    assert "step 2/2" in out and "val_psnr" in out
    assert (tok / "tokenizer.safetensors").is_file() and read_metadata(tok / "tokenizer.safetensors")["step"] == "2"
    out = run("train_tokenizer.py", "--steps", 3, "--bf16", *common)  # resumes at step 2, under bf16 autocast
    assert "resumed from" in out and "at step 2" in out
    assert len((tok / "metrics.jsonl").read_text().splitlines()) == 3
    assert read_config(tok / "tokenizer.safetensors").name == "tiny"
    run("evaluate_tokenizer.py", "--weights", tok / "tokenizer.safetensors", "--count", 2, "--json", tmp_path / "tok.json")
    report = json.loads((tmp_path / "tok.json").read_text())
    assert report["weights_metadata"]["step"] == "3" and report["psnr"] > 0 and 0 <= report["ssim"] <= 1
    assert set(report["unknown_region_mse"]) == {"frame_prediction", "frame_interpolation", "outpainting_c",
                                                 "outpainting_v", "outpainting_h", "outpainting_dv", "inpainting_c",
                                                 "inpainting_dv", "frame_prediction_c"}
    sheet = tmp_path / "sheet.png"
    out = run("tokenizer_sheet.py", "--weights", tok / "tokenizer.safetensors", tok / "tokenizer.safetensors",
              "--data", "synthetic,dead_leaves", "--per-source", 1, "--out", sheet)
    width, height = (int.from_bytes(sheet.read_bytes()[k:k + 4], "big") for k in (16, 20))  # PNG IHDR
    assert width > 3 * 4 * 64 and 2 * 64 < height < 4 * 64 * 2  # 3 columns of 4 frames, 2 rows (frames at scale 1)

    tr = tmp_path / "tr"
    out = run("train_transformer.py", "--tokenizer", tok / "tokenizer.safetensors", "--out", tr, "--pool", 4,
              "--val-pool", 4, "--steps", 2, "--batch-size", 2, "--eval-every", 2, "--log-every", 1, "--bf16",
              "--task-weights", "CG=3,frame_prediction_c=1.5")
    assert "val_loss" in out and (tr / "tokens.npz").is_file()
    pool = np.load(tr / "tokens.npz")
    assert pool["inputs"].shape == (4, 4, 16, 16) and "inpainting_dv" in pool and "full_generation" not in pool
    assert read_metadata(tr / "model.safetensors")["step"] == "2"
    assert "full_generation=3,frame_prediction_c=1.5" in read_metadata(tr / "model.safetensors")["task_weights"]
    # The class probe: a model whose class tokens all embed alike cannot tell classes apart.
    run("class_likelihood.py", "--weights", tr / "model.safetensors", "--count", 4, "--json", tmp_path / "probe.json")
    probe = json.loads((tmp_path / "probe.json").read_text())
    assert set(probe["tasks"]) == {"full_generation", "frame_prediction_c"} and probe["chance"] == 0.1
    assert all(np.isfinite(e["gap"]) and e["gap"] != 0 and 0 <= e["accuracy"] <= 1 for e in probe["tasks"].values())
    weights, vocab = load_file(str(tr / "model.safetensors")), read_config(tr / "model.safetensors").vocab
    rows = [vocab.row(vocab.class_id(c)) for c in range(10)]
    word = weights["transformer.embeddings.word.weight"]
    word[rows] = word[rows[0]].clone()
    blind = tmp_path / "blind.safetensors"
    save_file(weights, str(blind), metadata=safe_open(str(tr / "model.safetensors"), "pt").metadata())
    run("class_likelihood.py", "--weights", blind, "--count", 4, "--json", tmp_path / "probe.json")
    assert all(e["gap"] == 0 for e in json.loads((tmp_path / "probe.json").read_text())["tasks"].values())

    # A warm restart: the schedule begins again at --restart-at (here without warmup: full lr, then cosine).
    again = tmp_path / "again"
    shutil.copytree(tr, again)
    restart = ["--tokenizer", tok / "tokenizer.safetensors", "--out", again, "--pool", 6, "--val-pool", 4,
               "--batch-size", 2, "--lr", 1e-3, "--warmup", 0, "--eval-every", 100]
    out = run("train_transformer.py", *restart, "--steps", 4, "--restart-at", 2)
    assert "at step 2" in out and "from 4 to 6 clips" in out  # ... and a larger --pool grows the pool
    grown = np.load(again / "tokens.npz")
    assert grown["inputs"].shape[0] == len(grown["labels"]) == 6 and np.array_equal(grown["inputs"][:4], pool["inputs"])
    rows = [json.loads(line) for line in (again / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], round(r["lr"], 9)) for r in rows[-2:]] == [(3, 1e-3), (4, 5e-4)]
    for bad, named in ((["--steps", 9, "--restart-at", 5], "past the step training resumes at (4)"),
                       (["--steps", 4, "--restart-at", 4], "must be in [0, --steps 4)")):
        refused = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_transformer.py"), *map(str, restart),
                                  *map(str, bad)], capture_output=True, text=True)
        assert refused.returncode != 0 and named in refused.stderr, refused.stderr

    # A fine-tune from the model (--init) first logs its starting validation as step 0: the same
    # weights on the same validation pool give the number the model's own run ended on.
    tuned = tmp_path / "tuned"
    run("train_transformer.py", "--tokenizer", tok / "tokenizer.safetensors", "--init", tr / "model.safetensors",
        "--out", tuned, "--pool", 4, "--val-pool", 4, "--steps", 1, "--batch-size", 2, "--eval-every", 1,
        "--task-weights", "CG=3,frame_prediction_c=1.5")
    first = json.loads((tuned / "metrics.jsonl").read_text().splitlines()[0])
    last = json.loads((tr / "metrics.jsonl").read_text().splitlines()[-1])
    assert first["step"] == 0 and np.isclose(first["val_loss"], last["val_loss"], rtol=1e-5)
    # A fine-tune that adds the mask task starts its own token where the shared one is
    regions = tmp_path / "regions"
    run("train_transformer.py", "--tokenizer", tok / "tokenizer.safetensors", "--init", tr / "model.safetensors",
        "--out", regions, "--pool", 4, "--val-pool", 4, "--steps", 1, "--batch-size", 2, "--eval-every", 1,
        "--task-weights", "IPM=1", "--save-every", 1, "--lr", 1e-12)
    word = load_file(str(regions / "model.safetensors"))["transformer.embeddings.word.weight"]
    vocab = read_config(regions / "model.safetensors").vocab
    assert "inpainting" in read_config(regions / "model.safetensors").tasks
    torch.testing.assert_close(word[vocab.row(-7)], word[vocab.row(-6)], rtol=0, atol=1e-6)

    for bad, named in (("CG", "TASK=WEIGHT"), ("XX=2", "unknown task"), ("CG=0", "> 0")):
        refused = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_transformer.py"), "--tokenizer", "t",
                                  "--out", tmp_path / "x", "--task-weights", bad], capture_output=True, text=True)
        assert refused.returncode == 2 and named in refused.stderr, refused.stderr

    # A decoder-only fine-tune of the model's tokenizer keeps its tokens; a full one does not.
    ft, full = tmp_path / "ft", tmp_path / "full"
    tuning = ["--init", tr / "model.safetensors", "--steps", 2, "--warmup", 1, "--batch-size", 1, "--eval-every", 2]
    run("train_tokenizer.py", *tuning, "--decoder-only", "--out", ft)
    baseline = json.loads((ft / "metrics.jsonl").read_text().splitlines()[0])  # the --init weights' validation
    assert baseline["step"] == 0 and baseline["val_psnr"] > 0 and "g_loss" not in baseline
    run("train_tokenizer.py", *tuning, "--out", full)
    before, tuned = load_file(str(tr / "model.safetensors")), load_file(str(ft / "tokenizer.safetensors"))
    frozen = [k for k in tuned if k.startswith("vq.") and not k.startswith("vq.decoder.")]  # (it also holds the D)
    assert frozen and all(torch.equal(tuned[k], before[k]) for k in frozen)
    assert not all(torch.equal(tuned[k], before[k]) for k in tuned if k.startswith("vq.decoder."))
    refused = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_tokenizer.py"), "--decoder-only",
                              "--out", tmp_path / "x"], capture_output=True, text=True)
    assert refused.returncode != 0 and "--init" in refused.stderr

    shipped = tmp_path / "shipped"  # fp16-stored weights + fp32 graphs exported from them, parity-checked
    out = run("ship_default_model.py", "--weights", tr / "model.safetensors", "--tokenizer", ft / "tokenizer.safetensors",
              "--out", shipped, "--note", "hours=0.1")
    assert "parity check passed" in out
    meta = read_metadata(shipped / "weights.safetensors")
    assert meta["stored_dtype"] == "float16" and meta["hours"] == "0.1" and meta["step"] == "2"
    assert meta["decoder_finetune_step"] == "2"
    stored = load_file(str(shipped / "weights.safetensors"))
    assert all(torch.equal(stored[k], tuned[k].half()) for k in tuned if k.startswith("vq."))
    mixed = subprocess.run([sys.executable, str(ROOT / "scripts" / "ship_default_model.py"), "--weights",
                            tr / "model.safetensors", "--tokenizer", full / "tokenizer.safetensors", "--out",
                            tmp_path / "mixed"], capture_output=True, text=True)
    assert mixed.returncode != 0 and "tokens would differ" in mixed.stderr
    other = read_config(tr / "model.safetensors")  # a tokenizer of another layout is refused by its config
    other = dataclasses.replace(other, vq=dataclasses.replace(other.vq, filters=other.vq.filters * 2))
    save_weights(tmp_path / "other.safetensors", other, {"vq": VQVAE(other.vq)})
    refused = subprocess.run([sys.executable, str(ROOT / "scripts" / "ship_default_model.py"), "--weights",
                              tr / "model.safetensors", "--tokenizer", tmp_path / "other.safetensors", "--out",
                              tmp_path / "other"], capture_output=True, text=True)
    assert refused.returncode != 0 and "differs from the checkpoint's in filters" in refused.stderr
    g = Generator(shipped / "artifacts")
    assert g.manifest["weights"]["random_init"] is False and len(g.manifest["weights"]["sha256"]) == 64
    assert g.generate("CG", class_id=3, seed=0, steps=2).shape == (1, 16, 64, 64, 3)




def test_a_planted_training_state_is_refused_not_run(tmp_path):
    """Issue 19 item 4: resume reads OUT/state.pt with weights_only=True; a pickle that would
    run code on load is refused with one line, and the code does not run."""
    import pickle

    marker = tmp_path / "ran"

    class Planted:
        def __reduce__(self):
            return (Path.touch, (marker,))

    out = tmp_path / "tok"
    out.mkdir()
    (out / "state.pt").write_bytes(pickle.dumps({"step": Planted()}))
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_tokenizer.py"), "--out", str(out),
                             "--steps", "1"], capture_output=True, text=True)
    assert result.returncode != 0 and "not a training state this script wrote" in result.stderr
    assert "Traceback" not in result.stderr and not marker.exists()


def test_transformer_on_videos_without_labels_leaves_out_class_tasks(tmp_path):
    """Issue 19 item 16: a folder without class sub-folders trains the other tasks (with a
    notice) instead of crashing at the first class-conditional step; validation files are
    held out from training."""
    from magvit_onnx.models.config import get_config
    from magvit_onnx.models.data import FileSource
    from magvit_onnx.video import write_mp4

    ramp = np.linspace(0, 255, 80, dtype=np.uint8)
    (tmp_path / "videos").mkdir()
    for i in range(3):
        write_mp4(tmp_path / "videos" / f"v{i}.mp4", np.stack(
            [np.roll(np.tile(ramp[None, :, None], (64, 1, 3)), 2 * t + 7 * i, axis=1) for t in range(16)]))
    train, val = (FileSource(tmp_path / "videos", (16, 64, 64), split) for split in ("train", "val"))
    assert len(val.files) == 1 and not set(val.files) & set(train.files)
    config = get_config("tiny")
    save_weights(tmp_path / "tok.safetensors", config, {"vq": VQVAE(config.vq)})
    out = run("train_transformer.py", "--tokenizer", tmp_path / "tok.safetensors", "--data", tmp_path / "videos",
              "--out", tmp_path / "tr", "--pool", 2, "--val-pool", 2, "--steps", 3, "--batch-size", 1,
              "--task-weights", "FP=1", "--eval-every", 3)
    assert "training without the class-conditional tasks full_generation, frame_prediction_c" in out
    assert "val_loss" in out and "val_full_generation" not in (tmp_path / "tr" / "metrics.jsonl").read_text()


def test_a_crafted_checkpoint_config_is_one_line_before_anything_is_built(tmp_path):
    """Issue 32 item 5: `export --weights` with an edited `magvit_config` gave KeyError /
    TypeError tracebacks, and hidden_size 200000 tried to allocate 160 GB. The config is
    checked (keys, types, ranges) and the file's tensors against it before building."""
    from click.testing import CliRunner

    from helpers import small_config
    from magvit_onnx.cli import main
    from magvit_onnx.models.transformer import Transformer

    config = small_config()
    torch.manual_seed(0)
    good = tmp_path / "model.safetensors"
    save_weights(good, config, {"vq": VQVAE(config.vq), "transformer": Transformer(config)})
    tensors = load_file(str(good))

    def crafted(name, change):
        d = config.to_dict()
        change(d)
        save_file(tensors, str(tmp_path / name), metadata={"magvit_config": json.dumps(d)})
        return tmp_path / name

    cases = [(lambda d: d.pop("vq"), "missing keys ['vq']"),
             (lambda d: d["transformer"].update(extra=1), "unknown keys ['extra']"),
             (lambda d: d["transformer"].update(num_layers="2"), "config.transformer.num_layers must be an integer"),
             (lambda d: d.update(tasks=None), "config.tasks must be a non-empty list of str"),
             (lambda d: d["transformer"].update(hidden_size=200000), "hidden_size must be in [1, 8192]"),
             (lambda d: d["vq"].update(video_shape=[8, 30, 32]), "must be divisible by the pooling"),
             # within every range but not what the file holds: refused before the modules take memory
             (lambda d: d["transformer"].update(hidden_size=4096, mlp_dim=16384), "do not fit the model")]
    for i, (change, needle) in enumerate(cases):
        result = CliRunner().invoke(main, ["export", "--weights", str(crafted(f"c{i}.safetensors", change)),
                                           "--out", str(tmp_path / "out")])
        assert result.exit_code == 2 and needle in result.output, (needle, result.output)
        assert isinstance(result.exception, SystemExit) and result.output.count("Error:") == 1
    assert not (tmp_path / "out").exists()


def test_bad_training_data_and_state_end_in_one_line(tmp_path):
    """Issue 32 item 5: a pool of ids beyond the codebook trained silently; a state whose step
    is "abc", -1, NaN or 1e12, or that lacks a part, gave a traceback or 'resumed at step nan';
    an empty folder, unreadable files, a bad manifest or 'synthetic:abc' gave tracebacks."""
    from helpers import small_config
    from magvit_onnx.models.data import DataError, parse_data
    from magvit_onnx.models.training import load_state

    config = small_config()
    torch.manual_seed(0)
    save_weights(tmp_path / "tok.safetensors", config, {"vq": VQVAE(config.vq)})
    out = tmp_path / "tr"
    command = [sys.executable, str(ROOT / "scripts" / "train_transformer.py"), "--tokenizer", tmp_path / "tok.safetensors",
               "--out", out, "--pool", 2, "--val-pool", 2, "--batch-size", 1, "--eval-every", 9]
    run("train_transformer.py", *command[2:], "--steps", 1)
    pool = dict(np.load(out / "tokens.npz"))
    np.savez(out / "tokens.npz", **{**pool, "inputs": pool["inputs"] + config.vq.codebook_size})
    refused = subprocess.run([*map(str, command), "--steps", "2"], capture_output=True, text=True)
    assert refused.returncode == 1 and "token ids outside the codebook [0, 1024)" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr and "step 2/2" not in refused.stderr

    state = torch.load(out / "state.pt", weights_only=True)
    for step, needle in (("abc", "its step 'abc' is not a whole number"), (-1, "its step '-1'"),
                         (float("nan"), "its step 'nan'"), (1e12, "its step '1000000000000.0'"), (True, "'True'")):
        torch.save({**state, "step": step}, out / "state.pt")
        with pytest.raises(SystemExit, match=re.escape(needle)):
            load_state(out / "state.pt", "cpu", ("transformer", "optimizer"))
    torch.save({"step": 1, "transformer": state["transformer"]}, out / "state.pt")
    refused = subprocess.run([*map(str, command), "--steps", "2"], capture_output=True, text=True)
    assert refused.returncode == 1 and "it has no 'optimizer'" in refused.stderr and "Traceback" not in refused.stderr

    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "v.mp4").write_bytes(b"\0" * 4000)
    (tmp_path / "m.jsonl").write_text('{"path": "a.mp4"}\nnot json\n')
    (tmp_path / "m.csv").write_text("file,label\na.mp4,x\n")
    for spec, needle in ((tmp_path / "empty", "no files"), ("synthetic:abc", "the weight after ':' must be a number > 0"),
                         ("synthetic:inf", "must be a number > 0"), (tmp_path / "m.jsonl", "m.jsonl line 2: not a readable"),
                         (tmp_path / "m.csv", "every row needs a 'path'")):
        with pytest.raises(DataError, match=re.escape(needle)):
            parse_data(str(spec), (8, 32, 32))
    with pytest.raises(DataError, match="none of the 1 train files can be read"):
        parse_data(str(tmp_path / "bad"), (8, 32, 32)).take(1)
    refused = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_tokenizer.py"), "--data", "synthetic:abc",
                              "--out", str(tmp_path / "tok")], capture_output=True, text=True)
    assert refused.returncode == 1 and refused.stderr.strip().splitlines() == [
        "error: --data: 'synthetic:abc': the weight after ':' must be a number > 0, e.g. 'synthetic:2'"]


def test_the_default_pool_holds_what_the_run_draws(tmp_path):
    """Issue 32 item 6: a 12-step run on a small folder tokenized the default --pool of 4,096
    clips first (over 5 minutes, 4 GB). Left at their defaults, the pools hold what each task
    draws over the run (steps x global batch / tasks), with a progress line while tokenizing;
    a given --pool is honoured up to steps x global batch."""
    from helpers import small_config

    config = small_config()
    torch.manual_seed(0)
    save_weights(tmp_path / "tok.safetensors", config, {"vq": VQVAE(config.vq)})
    common = ["--tokenizer", tmp_path / "tok.safetensors", "--batch-size", 2, "--eval-every", 9]
    out = run("train_transformer.py", *common, "--out", tmp_path / "a", "--steps", 6)
    tasks = len(config.tasks)
    drawn = -(-6 * 2 // tasks)  # 12 clips drawn over ten tasks: 2 per task
    assert f"token pools: {drawn} training clips, {drawn} validation clips" in out
    assert f"step {drawn}/{drawn} | clips tokenized {drawn}" in out
    for name in ("tokens.npz", "val_tokens.npz"):
        assert len(np.load(tmp_path / "a" / name)["labels"]) == drawn
    out = run("train_transformer.py", *common, "--out", tmp_path / "b", "--steps", 1, "--pool", 100, "--val-pool", 3)
    assert "token pools: 2 training clips, 3 validation clips" in out


def test_random_region_training_pool_and_stream(tmp_path, small_artifacts):
    """Issue 31 item 3: `--task-weights IPM=W` trains the mask task on random regions, with a
    pool and streaming; the pool holds, per clip and region kind, the condition tokens and the
    latent mask the runtime (ONNX Runtime) builds for that clip's mask, under a seed of (run
    seed, clip, kind), and is the same whoever tokenizes it."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import train_transformer

    from helpers import small_config
    from magvit_onnx.export.exporter import seeded_random_models
    from magvit_onnx.models.commit_training import REGION_KINDS, condition_variants, training_masks
    from magvit_onnx.models.data import parse_data
    from magvit_onnx.runtime import tasks
    from magvit_onnx.runtime.pipeline import Pipeline

    config = small_config()
    vq, _ = seeded_random_models(config, seed=0)  # the weights of small_artifacts(0)
    save_weights(tmp_path / "tok.safetensors", config, {"vq": vq})
    common = ["--tokenizer", tmp_path / "tok.safetensors", "--val-pool", 3, "--steps", 2, "--batch-size", 2,
              "--eval-every", 2, "--log-every", 1, "--task-weights", "IPM=10000", "--seed", 5]
    for pool in (4, 0):  # a pool; streaming (each step draws its clips' regions)
        run("train_transformer.py", *common, "--pool", pool, "--out", tmp_path / f"pool{pool}")
        rows = [json.loads(line) for line in (tmp_path / f"pool{pool}" / "metrics.jsonl").read_text().splitlines()]
        assert all(r["task"].startswith("inpainting@") and np.isfinite(r["loss"]) for r in rows)
        assert {f"val_inpainting@{k}" for k in REGION_KINDS} | {"val_inpainting", "val_inpainting_c"} <= set(rows[-1])
        meta = read_metadata(tmp_path / f"pool{pool}" / "model.safetensors")
        assert meta["task_weights"].endswith(",inpainting=10000")
    held = [dict(np.load(tmp_path / f"pool{pool}" / "val_tokens.npz")) for pool in (4, 0)]
    assert held[0].keys() == held[1].keys() and all(np.array_equal(held[0][k], held[1][k]) for k in held[0])

    # The training pool, row by row, against the runtime's condition of the row's mask
    pool = dict(np.load(tmp_path / "pool4" / "tokens.npz"))
    source = parse_data("synthetic", config.vq.video_shape, "train", 5)
    video = source.take(4)[0].astype(np.float32) / 255
    pipeline = Pipeline.from_artifacts(small_artifacts(0), providers="cpu")
    for kind in REGION_KINDS:
        key = f"inpainting@{kind}"
        masks = training_masks(kind, range(4), 5, config)
        for row in range(4):
            cond, cond_mask, _ = pipeline.condition_tokens("inpainting", video[row:row + 1], None, 1, mask=masks[row])
            np.testing.assert_array_equal(pool[key][row], cond[0], err_msg=key)
            np.testing.assert_array_equal(pool[f"{key}.latent_mask"][row], cond_mask[0], err_msg=key)
    # ... and the rows do not depend on which chunk tokenized them (a pool grown later)
    variants = condition_variants((*config.tasks, "inpainting"), config)
    later = train_transformer.tokenize_pool(vq, source, 2, 2, config, variants, "cpu", seed=5)
    assert later.keys() == pool.keys() and all(np.array_equal(later[k], pool[k][2:]) for k in pool)
    # The step's prefix: the task token the runtime gives the mask task on this model
    masks = train_transformer.latent_masks(config, variants)
    batch = train_transformer.pool_batch(pool, masks, "inpainting@blob", "inpainting", np.arange(4), config, "cpu",
                                         drop=np.zeros(4, bool))
    token = tasks.task_token("inpainting", pipeline.manifest["tasks"])  # a model that does not list it: -6
    assert batch["masked_inputs"][:, 0].tolist() == [token] * 4 == [-6] * 4
    # The run's model lists the mask task and trained it under its own token, which its
    # manifest (and so the runtime) gives it; IPC keeps the shared one
    trained = read_config(tmp_path / "pool4" / "model.safetensors")
    assert trained.tasks == (*config.tasks, "inpainting")
    batch = train_transformer.pool_batch(pool, masks, "inpainting@blob", "inpainting", np.arange(4), trained, "cpu",
                                         drop=np.zeros(4, bool))
    listed = {name: tasks.get_task(name).as_dict() for name in trained.tasks}  # as the exporter writes them
    assert batch["masked_inputs"][:, 0].tolist() == [tasks.task_token("inpainting", listed)] * 4 == [-7] * 4
    assert tasks.task_token("inpainting_c", listed) == -6

    # Any model can train the mask task (it has its own token); a run without IPM lists only the others
    narrow = dataclasses.replace(config, tasks=("frame_prediction", "full_generation"))
    assert train_transformer.trained_tasks(narrow, {"inpainting": 1.0}) == (*narrow.tasks, "inpainting")
    assert train_transformer.trained_tasks(trained, {"full_generation": 2.0}) == tuple(config.tasks)
