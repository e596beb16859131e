"""The step as two graphs (issue 30): the transformer (`transformer_step.onnx`, -> logits)
and a float32 sampler graph, chained by the runtime with IO binding.

- every sampler variant ('plain', 'full', 'full_gpu') samples the tokens of the PyTorch
  reference (`StepGraph`) for the same seeds, and the runtime picks 'plain' exactly when
  guidance, top-k and top-p are off;
- 'plain' does no guidance and no filtering work (no TopK, CumSum, Where);
- the samplers hold no float16 tensor even in fp16 artifacts (so TensorRT's fp16 builder,
  which never sees them, cannot matter) — on the trained model in test_default_precision;
- artifacts made before the split (one step graph that samples inside) still run.
"""
import json
import shutil

import numpy as np
import onnx
import pytest

from helpers import small_config
from magvit_onnx.export.exporter import dynamic_shapes, example_inputs, export_all, export_graph, seeded_random_models
from magvit_onnx.export.graphs import StepGraph
from magvit_onnx.export.parity import step_feeds
from magvit_onnx.export.reference import reference_pipeline
from magvit_onnx.runtime.artifacts import load_manifest, sha256
from magvit_onnx.runtime.pipeline import OrtEngine, Pipeline, is_plain
from test_gpu_runtime import RecordingSession, gpu_machine  # noqa: F401 (a fixture: ORT's GPU sessions recorded)

SETTINGS = ({}, {"temperature": 0.5}, {"top_k": 3}, {"top_p": 0.6}, {"guidance_scale": 1.5},
            {"guidance_scale": 1.5, "top_k": 7, "top_p": 0.9, "temperature": 0.8})


@pytest.fixture(scope="module")
def model():
    config = small_config()
    return config, *seeded_random_models(config, seed=0)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("split")
    export_all(*model, folder)
    return folder


def sampler_session(folder, name):
    import onnxruntime as ort

    return ort.InferenceSession(str(folder / f"sampler_{name}.onnx"), providers=["CPUExecutionProvider"])


def test_every_sampler_draws_the_reference_tokens(model, exported):
    config, vq, transformer = model
    ref = reference_pipeline(config, vq, transformer).engine
    body = Pipeline.from_artifacts(exported).engine.sessions["transformer_step"]
    rng = np.random.default_rng(4)
    for settings in SETTINGS:
        feeds = step_feeds(config, 2, rng, **settings)
        (logits,) = body.run(None, {i.name: feeds[i.name] for i in body.get_inputs()})
        want_sampled, want_probs = ref.run_step(feeds)
        names = ["full", "full_gpu"] + (["plain"] if is_plain(feeds) else [])
        for name in names:
            session = sampler_session(exported, name)
            sampled, probs = session.run(None, {"logits": logits, **{i.name: feeds[i.name]
                                                                      for i in session.get_inputs()[1:]}})
            np.testing.assert_array_equal(sampled, want_sampled, err_msg=f"{name} {settings}")
            np.testing.assert_allclose(probs, want_probs, atol=1e-6, err_msg=f"{name} {settings}")


def test_the_runtime_runs_plain_exactly_when_everything_is_off(model, exported):
    config = model[0]
    engine = Pipeline.from_artifacts(exported).engine
    assert engine.logits_device == ("cpu", 0) and set(engine.samplers) == {"plain", "filtered"}
    ran = []
    for variant, session in list(engine.samplers.items()):
        engine.samplers[variant] = Recording(session, variant, ran)
    for settings in SETTINGS:
        engine.run_step(step_feeds(config, 2, np.random.default_rng(0), **settings))
    assert ran == ["plain", "plain", "filtered", "filtered", "filtered", "filtered"]
    assert not is_plain(step_feeds(config, 2, np.random.default_rng(0), top_p=0.5))
    assert is_plain(step_feeds(config, 2, np.random.default_rng(0), top_p=1.0))  # p >= 1 keeps every class


class Recording:
    """A sampler session that notes its variant each time it runs."""

    def __init__(self, session, variant, ran):
        self.session, self.variant, self.ran = session, variant, ran

    def run_with_iobinding(self, binding):
        self.ran.append(self.variant)
        return self.session.run_with_iobinding(binding)

    def __getattr__(self, name):
        return getattr(self.session, name)


def test_plain_sampler_does_no_guidance_or_filter_work(exported):
    ops = {name: [n.op_type for n in onnx.load(str(exported / f"sampler_{name}.onnx")).graph.node]
           for name in ("plain", "full", "full_gpu")}
    assert not {"TopK", "CumSum", "Where", "ReduceSum"} & set(ops["plain"])
    assert {"TopK", "CumSum", "Where"} <= set(ops["full"]) and {"TopK", "CumSum"} <= set(ops["full_gpu"])
    assert len(ops["plain"]) < len(ops["full"]) - 30
    for name in ops:  # weight-free and small: shipping all three costs a few kB
        assert (exported / f"sampler_{name}.onnx").stat().st_size < 64_000


def test_generation_is_token_identical_to_the_reference(model, exported):
    config, vq, transformer = model
    ours, ref = Pipeline.from_artifacts(exported), reference_pipeline(config, vq, transformer)
    video = np.random.default_rng(1).random((1, *config.vq.video_shape, 3), dtype=np.float32)
    for settings in ({}, {"guidance_scale": 2.0, "top_k": 5}):
        np.testing.assert_array_equal(ours.generate_tokens("FP", video=video, seed=3, steps=4, **settings),
                                      ref.generate_tokens("FP", video=video, seed=3, steps=4, **settings))


def test_artifacts_with_one_step_graph_still_run(model, exported, tmp_path):
    """A folder from before the split: transformer_step.onnx samples inside, no 'samplers'."""
    config, vq, transformer = model
    legacy = tmp_path / "legacy"
    shutil.copytree(exported, legacy)
    names = ["tokens", "prefix", "segment_ids", "seeds", "temperature", "top_k", "top_p", "guidance_scale"]
    export_graph(StepGraph(transformer), example_inputs(config)["transformer_step"], legacy / "transformer_step.onnx",
                 names, ["sampled", "probs"], dynamic_shapes("transformer_step"), 18)
    manifest = json.loads((legacy / "manifest.json").read_text())
    for name in manifest.pop("samplers"):
        del manifest["files"][f"sampler_{name}.onnx"]
        (legacy / f"sampler_{name}.onnx").unlink()
    manifest["files"]["transformer_step.onnx"]["sha256"] = sha256(legacy / "transformer_step.onnx")
    (legacy / "manifest.json").write_text(json.dumps(manifest))
    engine = OrtEngine(legacy, load_manifest(legacy), "cpu")
    assert engine.samplers == {}
    feeds = step_feeds(config, 2, np.random.default_rng(2), guidance_scale=1.5, top_k=4)
    np.testing.assert_array_equal(engine.run_step(feeds)[0],
                                  reference_pipeline(config, vq, transformer).engine.run_step(feeds)[0])


def test_gpu_providers_get_the_gpu_sampler_of_a_default_export(exported, gpu_machine):
    """What export_all writes by default serves a GPU without an export of its own: CUDA and
    TensorRT get 'full_gpu' (a constant TopK width) and no CPU-target warning; TensorRT gets
    the transformer only. (ORT's sessions are recorded: no GPU here.)"""
    import warnings

    manifest = load_manifest(exported)
    for providers in ("cuda", "tensorrt"):
        RecordingSession.made = []
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the CPU-target advice would be a RuntimeWarning
            OrtEngine(exported, manifest, providers)
        made = {s.path.rsplit("/", 1)[-1]: [n for n, _ in s.requested] for s in RecordingSession.made}
        assert set(made) == {"vq_encoder.onnx", "transformer_step.onnx", "vq_decoder.onnx", "sampler_plain.onnx",
                             "sampler_full_gpu.onnx"}, providers
        assert made["sampler_full_gpu.onnx"] == made["sampler_plain.onnx"] == ["CUDAExecutionProvider",
                                                                               "CPUExecutionProvider"]
        assert made["transformer_step.onnx"][0] == ("TensorrtExecutionProvider" if providers == "tensorrt"
                                                     else "CUDAExecutionProvider")


def test_a_damaged_samplers_entry_is_one_line(exported, tmp_path):
    from magvit_onnx.runtime.artifacts import ArtifactError

    folder = tmp_path / "damaged"
    shutil.copytree(exported, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["samplers"]["plain"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="samplers must be an object with 'plain'"):
        load_manifest(folder)
