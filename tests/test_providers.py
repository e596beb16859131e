"""Provider specs: names, options, TensorRT defaults, loud failures."""
import pytest

from magvit_onnx.runtime.providers import ProviderError, check_available, resolve, with_trt_cache


def test_resolve_names_and_order():
    assert resolve(None) == [("CPUExecutionProvider", {})]
    assert [n for n, _ in resolve("cuda")] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert [n for n, _ in resolve("tensorrt,cpu")] == ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                                        "CPUExecutionProvider"]
    name, options = resolve([("cuda", {"device_id": 1})])[0]
    assert name == "CUDAExecutionProvider" and options["device_id"] == 1
    with pytest.raises(ProviderError, match="valid providers are cpu, cuda, tensorrt"):
        resolve("npu")


def test_tensorrt_gets_a_model_keyed_engine_cache():
    providers = with_trt_cache(resolve("tensorrt"), "abc-ort1")
    trt = dict(providers)["TensorrtExecutionProvider"]
    assert trt["trt_engine_cache_enable"] and trt["trt_engine_cache_path"].endswith("tensorrt/abc-ort1")
    mine = with_trt_cache(resolve([("tensorrt", {"trt_engine_cache_path": "/x"})]), "k")
    assert dict(mine)["TensorrtExecutionProvider"]["trt_engine_cache_path"] == "/x"


def test_unavailable_provider_is_an_error_unless_fallback_is_allowed():
    with pytest.raises(ProviderError, match="TensorrtExecutionProvider, CUDAExecutionProvider not available"):
        check_available(resolve("tensorrt"))
    with pytest.warns(RuntimeWarning, match="not available"):
        assert check_available(resolve("cuda"), allow_fallback=True) == [("CPUExecutionProvider", {})]
