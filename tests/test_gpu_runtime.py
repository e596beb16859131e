"""The CUDA / TensorRT session set-up (issue 18), tested on CPU with ORT's session class
replaced by a recorder: what ORT would be asked for, and what happens when it fails.

device_id on every GPU provider, TensorRT optimisation profiles and trt_fp16_enable by
their values, use_tf32, preload_dlls before a GPU session, int8 artifacts refused on GPUs,
no silent CPU retry and ORT's own error carried in ProviderError.
"""
import copy
import os

import onnxruntime as ort
import pytest

from magvit_onnx.paths import DEFAULT_ARTIFACTS
from magvit_onnx.runtime import providers as eps
from magvit_onnx.runtime.artifacts import GRAPHS, load_manifest
from magvit_onnx.runtime.pipeline import OrtEngine

TRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"


class RecordingSession:
    """Stands in for ort.InferenceSession: records its arguments, 'creates' every provider."""
    made: list = []

    def __init__(self, path, options, providers, **kwargs):
        self.path, self.requested, self.kwargs = path, providers, kwargs
        RecordingSession.made.append(self)

    def get_providers(self):
        return [name for name, _ in self.requested]


@pytest.fixture
def gpu_machine(monkeypatch):
    """ORT reports CUDA and TensorRT available; sessions are recorded; preload is counted."""
    RecordingSession.made = []
    preloads = []
    monkeypatch.setattr(ort, "get_available_providers", lambda: [TRT, CUDA, CPU])
    monkeypatch.setattr(ort, "InferenceSession", RecordingSession)
    monkeypatch.setattr(ort, "preload_dlls", lambda *a, **k: preloads.append(1), raising=False)
    return preloads


BODY_INPUTS = ("tokens", "prefix", "segment_ids")


def manifest(**changes) -> dict:
    """The default model's manifest in the layout export_all writes (the step as the
    transformer + samplers, whatever layout the shipped folder has)."""
    m = copy.deepcopy(load_manifest(DEFAULT_ARTIFACTS, verify=False))
    step = m["graphs"]["transformer_step"]
    scalars = [i for i in step["inputs"] if i["name"] not in BODY_INPUTS]  # seeds + scalars (old layout)
    if "samplers" not in m:
        n = m["latent_shape"][0] * m["latent_shape"][1] * m["latent_shape"][2]
        logits = {"name": "logits", "dtype": "float32", "shape": ["rows", n, m["vocab"]["codebook_size"]]}
        step["inputs"] = [i for i in step["inputs"] if i["name"] in BODY_INPUTS]
        m["samplers"] = {name: {"filename": f"sampler_{name}.onnx",
                                "inputs": [logits, *scalars[:2 if name == "plain" else None]]}
                         for name in ("plain", "full", "full_gpu")}
    m.update({"target": "cpu+gpu", **changes})
    return m


def options_of(session, provider):
    return dict(session.requested)[provider]


def test_tensorrt_gets_cuda_behind_it_on_the_same_device():
    resolved = eps.resolve([("tensorrt", {"device_id": 1})], use_tf32=False)
    assert [n for n, _ in resolved] == [TRT, CUDA, CPU]
    assert dict(resolved)[TRT]["device_id"] == 1 and dict(resolved)[CUDA]["device_id"] == 1  # was 0
    assert dict(resolved)[CUDA]["use_tf32"] == 0
    assert "use_tf32" not in dict(eps.resolve("cuda"))[CUDA]  # ORT's default unless asked
    with pytest.raises(eps.ProviderError, match="different device_id"):
        eps.resolve([("tensorrt", {"device_id": 0}), ("cuda", {"device_id": 1})])


def test_tensorrt_profiles_cover_the_batch_range_and_guidance_rows(gpu_machine):
    engine = OrtEngine(DEFAULT_ARTIFACTS, manifest(), "tensorrt", batch_profile={"opt": 4, "max": 16})
    by_graph = {os.path.basename(s.path).removesuffix(".onnx"): s for s in RecordingSession.made}
    assert set(by_graph) == {*GRAPHS, "sampler_plain", "sampler_full_gpu"} and engine.providers == [TRT, CUDA, CPU]
    step = options_of(by_graph["transformer_step"], TRT)
    n = 4 * 16 * 16  # the default model's latent tokens
    assert step["trt_profile_min_shapes"] == f"tokens:1x{n},prefix:1x2,segment_ids:1x{n}"
    assert step["trt_profile_opt_shapes"] == f"tokens:4x{n},prefix:4x2,segment_ids:4x{n}"
    assert step["trt_profile_max_shapes"] == f"tokens:32x{n},prefix:32x2,segment_ids:32x{n}"
    assert options_of(by_graph["vq_decoder"], TRT)["trt_profile_max_shapes"] == "tokens:16x4x16x16"
    assert options_of(by_graph["vq_encoder"], TRT)["trt_profile_min_shapes"] == "video:1x16x64x64x3"
    assert step["trt_fp16_enable"] is False and step["trt_engine_cache_enable"] is True
    assert all(s.kwargs == {"enable_fallback": 0} for s in RecordingSession.made)  # no CPU retry
    assert gpu_machine  # preload_dlls ran


def test_manifest_batch_profile_and_fp16_reach_tensorrt(gpu_machine):
    guided = manifest(precision="fp16 (float32 I/O)", batch_profile={"opt": 2, "max": 8})
    guided["decoding"]["guidance_scale"] = 1.5
    OrtEngine(DEFAULT_ARTIFACTS, guided, [("tensorrt", {"trt_engine_cache_enable": False})])
    step = next(s for s in RecordingSession.made if "transformer_step" in s.path)
    trt = options_of(step, TRT)
    assert trt["trt_fp16_enable"] is True and trt["trt_engine_cache_enable"] is False
    assert trt["trt_profile_opt_shapes"].startswith("tokens:4x")  # rows = 2 x batch with guidance
    assert trt["trt_profile_max_shapes"].endswith("segment_ids:16x1024")
    with pytest.raises(eps.ProviderError, match="1 <= opt <= max"):
        OrtEngine(DEFAULT_ARTIFACTS, manifest(), "tensorrt", batch_profile={"opt": 9, "max": 4})


def test_no_preload_and_no_profiles_on_cpu(gpu_machine):
    OrtEngine(DEFAULT_ARTIFACTS, manifest(), "cpu")
    assert not gpu_machine and [s.requested for s in RecordingSession.made][0] == [(CPU, {})]


def test_int8_artifacts_are_refused_on_gpus(gpu_machine):
    int8 = manifest(precision="fp32, transformer_step int8 (dynamic quantisation of its MatMuls)")
    for provider in ("cuda", "tensorrt"):
        with pytest.raises(eps.ProviderError, match="int8.*runs on the CPU only"):
            OrtEngine(DEFAULT_ARTIFACTS, int8, provider)
    assert RecordingSession.made == []


def test_samplers_never_run_on_tensorrt_and_fit_the_provider(gpu_machine):
    """TensorRT may run any float32 layer in fp16 once trt_fp16_enable is on; the samplers
    are separate graphs, so their sessions get CUDA (same device) and never TensorRT, with
    the logits bound on the GPU. A GPU picks the constant-width filter, the CPU the other."""
    fp16 = manifest(precision="fp16 (float32 I/O)")
    engine = OrtEngine(DEFAULT_ARTIFACTS, fp16, [("tensorrt", {"device_id": 1})])
    samplers = [s for s in RecordingSession.made if "sampler_" in s.path]
    assert sorted(os.path.basename(s.path) for s in samplers) == ["sampler_full_gpu.onnx", "sampler_plain.onnx"]
    for session in samplers:
        assert [n for n, _ in session.requested] == [CUDA, CPU] and options_of(session, CUDA)["device_id"] == 1
    assert options_of(next(s for s in RecordingSession.made if "transformer_step" in s.path), TRT)["trt_fp16_enable"]
    assert engine.logits_device == ("cuda", 1)
    RecordingSession.made = []
    assert OrtEngine(DEFAULT_ARTIFACTS, fp16, "cpu").logits_device == ("cpu", 0)
    assert "sampler_full.onnx" in [os.path.basename(s.path) for s in RecordingSession.made]


def test_tf32_off_reaches_tensorrt_through_the_environment(gpu_machine, monkeypatch):
    """ORT's TensorRT provider has no TF32 option and TensorRT allows TF32 by default."""
    monkeypatch.delenv("NVIDIA_TF32_OVERRIDE", raising=False)
    OrtEngine(DEFAULT_ARTIFACTS, manifest(), "cuda", use_tf32=False)
    assert "NVIDIA_TF32_OVERRIDE" not in os.environ  # CUDA has its own option (use_tf32 = 0)
    OrtEngine(DEFAULT_ARTIFACTS, manifest(), "tensorrt", use_tf32=False)
    assert os.environ["NVIDIA_TF32_OVERRIDE"] == "0"


def test_cpu_target_artifacts_warn_on_gpus(gpu_machine):
    with pytest.warns(RuntimeWarning, match="exported for the CPU"):
        OrtEngine(DEFAULT_ARTIFACTS, manifest(target="cpu"), "cuda")


def test_a_provider_error_carries_onnxruntime_own_words(gpu_machine, monkeypatch):
    """ORT raising: no retry on CPU (the old code let ORT print 'Falling back' and go on),
    and ProviderError quotes ORT's error and what it printed."""
    class Failing(RecordingSession):
        def __init__(self, path, options, providers, **kwargs):
            os.write(2, b"LoadLibrary failed: libcudnn.so.9: cannot open shared object file\n")
            raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected")

    monkeypatch.setattr(ort, "InferenceSession", Failing)
    with pytest.raises(eps.ProviderError, match="no CUDA-capable device.*onnxruntime said: LoadLibrary failed"):
        OrtEngine(DEFAULT_ARTIFACTS, manifest(), "cuda")


def test_a_silently_dropped_provider_is_named_with_the_reason(gpu_machine, monkeypatch):
    class Dropping(RecordingSession):
        def __init__(self, *args, **kwargs):
            os.write(2, b"Failed to load libonnxruntime_providers_cuda.so: libcublasLt.so.13 missing\n")
            super().__init__(*args, **kwargs)

        def get_providers(self):
            return [CPU]

    monkeypatch.setattr(ort, "InferenceSession", Dropping)
    with pytest.raises(eps.ProviderError, match="could not create CUDAExecutionProvider.*libcublasLt.so.13 missing"):
        OrtEngine(DEFAULT_ARTIFACTS, manifest(), "cuda")


def test_stderr_capture_passes_the_text_on(capfd):
    with eps.captured_stderr() as log:
        os.write(2, b"from C++\n")
    assert log == ["from C++\n"] and "from C++" in capfd.readouterr().err
