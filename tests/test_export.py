"""Export and parity: ONNX Runtime (CPU) against the PyTorch reference (issue: three graphs).

Tolerances (fp32): encoder token ids equal; decoder 1e-4 max abs; step logits 1e-4 max abs;
sampled tokens identical for the same seeds; whole generations token-identical.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import magvit_onnx
from helpers import small_config
from magvit_onnx.export.exporter import export_all, seeded_random_models, versions
from magvit_onnx.export.graphs import filter_logits, sample
from magvit_onnx.export.parity import check_parity, encoder_mismatches, step_feeds, step_logits_max_abs
from magvit_onnx.export.reference import reference_pipeline
from magvit_onnx.runtime.artifacts import ArtifactError, load_manifest
from magvit_onnx.runtime.pipeline import Pipeline
from magvit_onnx.runtime.providers import ProviderError
from magvit_onnx.runtime.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]
GRAPH_FILES = ("vq_encoder.onnx", "transformer_step.onnx", "vq_decoder.onnx", "sampler_plain.onnx",
               "sampler_full.onnx", "sampler_full_gpu.onnx")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    config = small_config()
    vq, transformer = seeded_random_models(config, seed=0)
    folder = tmp_path_factory.mktemp("artifacts")
    export_all(config, vq, transformer, folder)
    return folder, config, vq, transformer


@pytest.fixture(scope="module")
def pipelines(exported):
    folder, config, vq, transformer = exported
    return Pipeline.from_artifacts(folder, providers="cpu"), reference_pipeline(config, vq, transformer)


def test_graphs_are_valid_with_dynamic_batch(exported):
    folder = exported[0]
    for name in GRAPH_FILES:
        model = onnx.load(str(folder / name))
        onnx.checker.check_model(model, full_check=True)
        assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 18
        first = model.graph.input[0].type.tensor_type.shape.dim[0]
        assert first.dim_param in ("batch", "rows"), name


def test_manifest(exported):
    folder, config = exported[:2]
    manifest = load_manifest(folder)
    assert manifest["format_version"] == 1 and manifest["preset"] == "tiny"
    assert list(manifest["tasks"]) == list(TASKS) and manifest["video"]["pixel_range"] == [0.0, 1.0]
    assert manifest["decoding"]["num_iter"] == 12 and manifest["decoding"]["mask_temperature"] == 4.5
    assert manifest["vocab"]["vocab_size"] == config.vocab.size and manifest["vocab"]["special_tokens"]["MASK"] == -1
    for name in GRAPH_FILES:
        assert manifest["files"][name]["sha256"] == hashlib.sha256((folder / name).read_bytes()).hexdigest()
    step, samplers = manifest["graphs"]["transformer_step"], manifest["samplers"]
    assert [i["name"] for i in step["inputs"]] == ["tokens", "prefix", "segment_ids"]
    assert [o["name"] for o in step["outputs"]] == ["logits"] and manifest["target"] == "cpu+gpu"
    assert [i["name"] for i in samplers["plain"]["inputs"]] == ["logits", "seeds", "temperature"]
    assert [i["name"] for i in samplers["full_gpu"]["inputs"]] == ["logits", "seeds", "temperature", "top_k",
                                                                   "top_p", "guidance_scale"]
    assert all([o["name"] for o in entry["outputs"]] == ["sampled", "probs"] for entry in samplers.values())
    assert manifest["config"]["vq"]["video_shape"] == [8, 32, 32] and "torch" in manifest["versions"]
    assert manifest["versions"]["magvit-onnx"] == magvit_onnx.__version__


def test_manifest_names_the_source_version_not_stale_install_metadata(monkeypatch):
    """An editable install keeps the metadata of the version it was installed at: the shipped
    0.3.0 manifest said 0.2.0."""
    import importlib.metadata

    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.0.1" if name == "magvit-onnx" else real(name))
    assert versions()["magvit-onnx"] == magvit_onnx.__version__ != "0.0.1"


def test_encoder_and_decoder_parity(pipelines):
    ours, ref = pipelines
    video = np.random.default_rng(0).random((3, 8, 32, 32, 3), dtype=np.float32)
    ids = ours.engine.encode(video)
    np.testing.assert_array_equal(ids, ref.engine.encode(video))  # no distance ties here
    assert ids.shape == (3, 2, 4, 4) and ids.dtype == np.int64
    a, b = ours.engine.decode(ids), ref.engine.decode(ids)
    assert np.isfinite(a).all() and a.std() > 0
    assert np.abs(a - b).max() < 1e-4


def test_encoder_parity_forgives_only_exact_ties():
    config = small_config()
    vq, _ = seeded_random_models(config, seed=0)
    video = np.random.default_rng(1).random((1, 8, 32, 32, 3), dtype=np.float32)
    with torch.no_grad():
        ref = vq.tokenize(torch.from_numpy(video)).numpy()
    spare = next(k for k in range(config.vq.codebook_size) if k not in ref)
    first = ref[0, 0, 0, 0]
    with torch.no_grad():  # a spare codeword within float error of the first latent's codeword: a tie
        vq.quantizer.codebook[spare] = vq.quantizer.codebook[first] * (1 + 1e-7)
    tie_flip = ref.copy()
    tie_flip[0, 0, 0, 0] = spare
    assert encoder_mismatches(vq, video, tie_flip, ref) == (0, 1)
    far = np.argmax(vq.quantizer.distances(vq.encode(torch.from_numpy(video)))[0, 0, 0, 0].detach().numpy())
    wrong = ref.copy()
    wrong[0, 0, 0, 0] = far
    assert encoder_mismatches(vq, video, wrong, ref) == (1, 0)


@pytest.mark.parametrize("settings", [{}, {"guidance_scale": 2.0}, {"top_k": 3}, {"top_p": 0.5},
                                      {"temperature": 0.3}, {"temperature": 5.0, "guidance_scale": -0.5}])
def test_step_parity(pipelines, exported, settings):
    ours, ref = pipelines
    feeds = step_feeds(exported[1], 3, np.random.default_rng(1), **settings)
    (s1, p1), (s2, p2) = ours.engine.run_step(feeds), ref.engine.run_step(feeds)
    np.testing.assert_array_equal(s1, s2)
    assert ((s1 >= 0) & (s1 < 1024)).all() and np.isfinite(p1).all() and (p1 > 0).all()
    assert np.abs(p1 - p2).max() < 1e-6


def test_step_logits_parity(exported):
    folder, config, _, transformer = exported
    assert step_logits_max_abs(folder, config, transformer) < 1e-4


def test_whole_generation_token_identical_for_every_task(exported):
    folder, config, vq, transformer = exported
    report = check_parity(folder, config, vq, transformer, seed=3, steps=12)
    assert report["generation_token_mismatches"] == {name: 0 for name in TASKS}
    assert report["long_generation_token_mismatches"] == {"frame_prediction_2x": 0, "stop_motion_3_keys": 0,
                                                          "panorama_2x_width": 0, "panorama_2x_height": 0}
    assert report["encoder_token_mismatches"] == 0 and report["step_sampled_mismatches"] == 0


def test_guided_generation_token_identical(pipelines):
    ours, ref = pipelines
    args = dict(class_ids=[0, 5], seed=11, guidance_scale=3.0, num_videos=2)
    np.testing.assert_array_equal(ours.generate_tokens("CG", **args), ref.generate_tokens("CG", **args))


def test_in_graph_sampling_follows_the_softmax():
    """Gumbel-max with hashed noise: frequencies match softmax(logits / T), filters apply."""
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -3.0, 0.2, 1.5]).expand(1, 40000, 8)
    seeds = torch.from_numpy(np.random.default_rng(0).integers(0, 2 ** 31 - 1, (1, 40000)))
    for temperature in (1.0, 0.5):
        drawn = sample(logits, seeds, torch.tensor(temperature))
        freq = np.bincount(drawn.reshape(-1).numpy(), minlength=8) / 40000
        expected = torch.softmax(logits[0, 0] / temperature, -1).numpy()
        assert np.abs(freq - expected).max() < 4 * np.sqrt(expected.max() / 40000)
    kept = filter_logits(logits[:, :10], torch.tensor(2), torch.tensor(0.0))
    assert (kept[0, 0] > -1e6).nonzero().reshape(-1).tolist() == [0, 7]
    kept = filter_logits(logits[:, :10], torch.tensor(0), torch.tensor(0.5))  # softmax: 0.39, 0.26 (cum 0.65)
    assert (kept[0, 0] > -1e6).nonzero().reshape(-1).tolist() == [0, 7]
    assert (filter_logits(logits, torch.tensor(0), torch.tensor(0.0)) == logits).all()


def test_step_sorts_only_what_the_filters_need(exported):
    """The step's one TopK takes its width from top_k / top_p at run time (1 when both are
    off), never the whole vocabulary as a constant: the full sort was a quarter of a step."""
    graph = onnx.load(str(exported[0] / "sampler_full.onnx")).graph
    (topk,) = [n for n in graph.node if n.op_type == "TopK"]
    constants = {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    assert topk.input[1] not in constants
    logits = torch.randn(2, 7, 50)
    for top_k, top_p in ((0, 0.0), (1, 0.0), (50, 0.0), (80, 0.0), (0, 0.9), (4, 0.3), (0, 1.0)):
        kept = filter_logits(logits, torch.tensor(top_k), torch.tensor(top_p)) > -1e6
        ranks = logits.argsort(-1, descending=True).argsort(-1)  # 0 = largest
        by_k = ranks < (top_k if top_k > 0 else 50)
        cumulative = torch.softmax(logits, -1).sort(-1, descending=True).values.cumsum(-1)
        by_p = ranks <= ((cumulative < top_p).sum(-1, keepdim=True).clamp(max=49) if 0 < top_p < 1 else 49)
        assert torch.equal(kept, by_k & by_p), (top_k, top_p)


def test_export_is_deterministic(exported, tmp_path):
    folder, config, vq, transformer = exported
    export_all(config, vq, transformer, tmp_path)
    for name in GRAPH_FILES:
        assert (tmp_path / name).read_bytes() == (folder / name).read_bytes(), name


def source_copy(where: Path) -> Path:
    """The package as another checkout would hold it: a folder of links to this one's
    sources, imported from `where` (so stack traces name `where`, not this checkout)."""
    package = where / "magvit_onnx"
    package.mkdir(parents=True)
    for entry in (ROOT / "magvit_onnx").iterdir():
        (package / entry.name).symlink_to(entry)
    for part in ("models", "runtime", "export"):
        (package / part).symlink_to(ROOT / part)
    return where


def test_export_is_byte_identical_from_two_checkouts(tmp_path):
    """The same weights give the same bytes wherever the sources live: the exporter's node
    metadata (stack traces with this checkout's paths and line numbers) is stripped. It made
    exports from two folders differ."""
    code = ("import sys; sys.path.insert(0, %r); from helpers import small_config; "
            "from magvit_onnx.export.exporter import export_all, seeded_random_models; "
            "import magvit_onnx; assert magvit_onnx.__file__.startswith(sys.argv[1]), magvit_onnx.__file__; "
            "c = small_config(); export_all(c, *seeded_random_models(c, 0), sys.argv[2])") % str(ROOT / "tests")
    for name in ("a", "b"):
        checkout = source_copy(tmp_path / f"checkout_{name}")
        result = subprocess.run([sys.executable, "-c", code, str(checkout), str(tmp_path / f"out_{name}")],
                                capture_output=True, text=True, cwd=tmp_path,  # not this checkout's folder
                                env={**os.environ, "PYTHONPATH": str(checkout)})
        assert result.returncode == 0, result.stderr[-2000:]
    for name in GRAPH_FILES:
        assert (tmp_path / "out_a" / name).read_bytes() == (tmp_path / "out_b" / name).read_bytes(), name


def test_tampered_or_truncated_artifacts_are_refused(exported, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(exported[0], folder)
    data = bytearray((folder / "vq_decoder.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "vq_decoder.onnx").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="vq_decoder.onnx does not match its manifest"):
        Pipeline.from_artifacts(folder)
    shutil.copy(exported[0] / "vq_decoder.onnx", folder / "vq_decoder.onnx")
    (folder / "vq_encoder.onnx").write_bytes((exported[0] / "vq_encoder.onnx").read_bytes()[:1000])
    with pytest.raises(ArtifactError, match="vq_encoder.onnx does not match"):
        Pipeline.from_artifacts(folder)
    (folder / "vq_encoder.onnx").unlink()
    with pytest.raises(ArtifactError, match="vq_encoder.onnx is missing"):
        Pipeline.from_artifacts(folder)
    manifest = json.loads((exported[0] / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(ArtifactError, match="format_version 99 is not supported"):
        Pipeline.from_artifacts(folder)
    with pytest.raises(ArtifactError, match="manifest.json is missing"):
        Pipeline.from_artifacts(tmp_path)


def test_missing_provider_is_loud(exported):
    with pytest.raises(ProviderError, match="CUDAExecutionProvider not available"):
        Pipeline.from_artifacts(exported[0], providers="cuda")
    with pytest.raises(ProviderError, match="unknown provider 'rocm'"):
        Pipeline.from_artifacts(exported[0], providers="rocm")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipeline = Pipeline.from_artifacts(exported[0], providers=["cuda", "cpu"], allow_fallback=True)
    assert pipeline.engine.providers == ["CPUExecutionProvider"]
    assert any("not available" in str(w.message) for w in caught)


def test_export_cli(tmp_path):
    out = tmp_path / "a"
    script = ROOT / "export" / "export_all.py"
    result = subprocess.run([sys.executable, str(script), "--preset", "tiny", "--random-init", "--out", str(out), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "RANDOM init" in result.stderr and "parity check passed" in result.stderr
    assert json.loads(result.stdout)["generation_token_mismatches"] == {name: 0 for name in TASKS}
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", *sorted(GRAPH_FILES)]
    bad = subprocess.run([sys.executable, str(script), "--out", str(out), "--opset", "13"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "opset" in bad.stderr
    both = subprocess.run([sys.executable, str(script), "--out", str(out), "--random-init", "--weights", str(script)],
                          capture_output=True, text=True)
    assert both.returncode == 2 and "not both" in both.stderr


def test_fp16_graphs_within_stated_tolerances(exported, tmp_path):
    """fp16 weights/math with float32 I/O. Measured on this random-init model: decoder
    ~5e-3 max abs, step probabilities ~5e-3; stated tolerances 3e-2 and 2e-2. Sampled
    tokens may differ where fp16 moves a logit (random weights give near-uniform logits, the
    worst case), so fp16 is compared by tolerance, not token identity."""
    _, config, vq, transformer = exported
    export_all(config, vq, transformer, tmp_path, fp16=True)
    manifest = load_manifest(tmp_path)
    assert manifest["precision"] == "fp16 (float32 I/O)"
    assert [i["dtype"] for i in manifest["graphs"]["vq_encoder"]["inputs"]] == ["float32"]
    half, ref = Pipeline.from_artifacts(tmp_path), reference_pipeline(config, vq, transformer)
    video = np.random.default_rng(0).random((2, 8, 32, 32, 3), dtype=np.float32)
    ids = ref.engine.encode(video)
    assert (half.engine.encode(video) == ids).mean() > 0.9
    assert np.abs(half.engine.decode(ids) - ref.engine.decode(ids)).max() < 3e-2
    feeds = step_feeds(config, 2, np.random.default_rng(1))
    (_, p1), (_, p2) = half.engine.run_step(feeds), ref.engine.run_step(feeds)
    assert np.isfinite(p1).all() and np.abs(p1 - p2).max() < 2e-2
    out = half.generate("FP", video=video[:1], seed=0, steps=3)
    assert out.shape == (1, 8, 32, 32, 3) and np.isfinite(out).all()


def test_int8_step_within_stated_tolerance(exported, tmp_path):
    """`int8=True` quantises the step graph's MatMuls (ORT dynamic quantisation); the
    tokenizer graphs stay fp32 and exact. Stated tolerance: step probabilities within
    LIMITS['int8'] of torch fp32: token agreement, and probabilities where tokens agree."""
    from magvit_onnx.export.export_all import parity_failures

    _, config, vq, transformer = exported
    export_all(config, vq, transformer, tmp_path, int8=True)
    manifest = load_manifest(tmp_path)
    assert manifest["precision"].startswith("fp32, transformer_step int8")
    ops = {node.op_type for node in onnx.load(str(tmp_path / "transformer_step.onnx")).graph.node}
    assert "DynamicQuantizeLinear" in ops and ("MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops)
    report = check_parity(tmp_path, config, vq, transformer, tasks=("frame_prediction",), steps=3)
    assert report["encoder_token_mismatches"] == 0 and report["decoder_max_abs"] < 1e-4
    assert parity_failures(report, "int8") == []
    with pytest.raises(ValueError, match="not both"):
        export_all(config, vq, transformer, tmp_path / "x", int8=True, fp16=True)


def run_script(name, *args):
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / name), *map(str, args)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_compare_artifacts_measures_token_agreement(exported, tmp_path):
    folder, config, vq, transformer = exported
    export_all(config, vq, transformer, tmp_path / "int8", int8=True)
    same = json.loads(run_script("compare_artifacts.py", "--reference", folder, "--candidate", folder,
                                 "--count", 2).stdout)
    assert same["first_step"] == 1.0 and set(same["generation"].values()) == {1.0}
    assert set(same["generation"]) == set(config.tasks)
    run_script("compare_artifacts.py", "--reference", folder, "--candidate", tmp_path / "int8", "--count", 2,
               "--json", tmp_path / "agreement.json")
    report = json.loads((tmp_path / "agreement.json").read_text())
    assert report["candidate"]["precision"].startswith("fp32, transformer_step int8")
    assert 0.0 < report["first_step"] <= 1.0 and 0.0 < report["generation_mean"] <= 1.0


def test_profile_graphs_reports_operators_and_fusions(exported, tmp_path):
    run_script("profile_graphs.py", "--artifacts", exported[0], "--runs", 1, "--fused", "--json", tmp_path / "p.json")
    report = json.loads((tmp_path / "p.json").read_text())
    assert set(report["graphs"]) == {"vq_encoder", "transformer_step", "vq_decoder", "transformer_step_fused",
                                     "sampler_plain", "sampler_full", "sampler_full_gpu"}
    assert "Conv" in report["graphs"]["vq_encoder"]["ops"] and "MatMul" in report["graphs"]["transformer_step"]["ops"]
    assert report["fusions"].get("Attention") == exported[1].transformer.num_layers  # one per layer
    assert "Attention" in report["graphs"]["transformer_step_fused"]["ops"]
