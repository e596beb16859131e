"""Execution providers for ONNX Runtime sessions: choose, check, and never fall back silently.

Names users pass: 'cpu', 'cuda', 'tensorrt' (or ORT's own '...ExecutionProvider' names),
optionally with options: `("cuda", {"device_id": 1})`. ORT quietly builds a CPU session
when a GPU provider cannot load (missing CUDA/cuDNN); `check_session` compares what the
session really got with what was asked and raises unless `allow_fallback=True`.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import onnxruntime as ort

ALIASES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
           "tensorrt": "TensorrtExecutionProvider", "trt": "TensorrtExecutionProvider"}
DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    "CUDAExecutionProvider": {"cudnn_conv_algo_search": "HEURISTIC"},
    "TensorrtExecutionProvider": {"trt_fp16_enable": False, "trt_engine_cache_enable": True,
                                  "trt_timing_cache_enable": True},
}
ProviderSpec = str | tuple[str, dict[str, Any]]


FALLBACK_ADVICE = "pass providers='cpu', or allow_fallback=True to run on what is available"
"""How a Python caller gets past a ProviderError; the CLI swaps it for its own options."""


class ProviderError(RuntimeError):
    """A requested execution provider is not available."""

    def command_line(self) -> str:
        """The message for the commands, which have --providers but no allow_fallback."""
        return str(self).replace(FALLBACK_ADVICE, "run with --providers cpu")


def resolve(providers: Sequence[ProviderSpec] | str | None) -> list[tuple[str, dict[str, Any]]]:
    """Normalise user provider specs to ORT `(name, options)` pairs, in priority order.

    None or 'cpu' -> CPU only. GPU providers get CPU appended as the home of nodes they
    have no kernel for (that is ORT placement, not a fallback; `check_session` still
    insists the GPU provider itself was created). TensorRT gets CUDA behind it likewise.
    """
    if providers is None:
        providers = ["cpu"]
    elif isinstance(providers, str):
        providers = [p.strip() for p in providers.split(",") if p.strip()]
    out: list[tuple[str, dict[str, Any]]] = []
    for spec in providers:
        name, options = (spec, {}) if isinstance(spec, str) else (spec[0], dict(spec[1]))
        full = ALIASES.get(name.lower(), name)
        if full not in ALIASES.values():
            raise ProviderError(f"unknown provider {name!r}: valid providers are cpu, cuda, tensorrt")
        out.append((full, {**DEFAULT_OPTIONS.get(full, {}), **options}))
    names = [n for n, _ in out]
    if "TensorrtExecutionProvider" in names and "CUDAExecutionProvider" not in names:
        out.insert(names.index("TensorrtExecutionProvider") + 1,
                   ("CUDAExecutionProvider", dict(DEFAULT_OPTIONS["CUDAExecutionProvider"])))
    if "CPUExecutionProvider" not in names:
        out.append(("CPUExecutionProvider", {}))
    return out


def with_trt_cache(providers: list[tuple[str, dict]], key: str) -> list[tuple[str, dict]]:
    """Give TensorRT an engine cache folder of its own for this model unless the user set one:
    ~/.cache/magvit-onnx/tensorrt/<key> (building engines takes minutes; reuse them)."""
    out = []
    for name, options in providers:
        if name == "TensorrtExecutionProvider" and "trt_engine_cache_path" not in options:
            cache = Path.home() / ".cache" / "magvit-onnx" / "tensorrt" / key
            options = {**options, "trt_engine_cache_path": str(cache), "trt_timing_cache_path": str(cache)}
        out.append((name, options))
    return out


def check_available(requested: list[tuple[str, dict]], allow_fallback: bool = False) -> list[tuple[str, dict]]:
    """Drop unavailable providers only with `allow_fallback`; otherwise raise, naming them."""
    available = ort.get_available_providers()
    missing = [n for n, _ in requested if n not in available]
    if missing and not allow_fallback:
        raise ProviderError(
            f"execution provider(s) {', '.join(missing)} not available in onnxruntime {ort.__version__} "
            f"(available: {', '.join(available)}). Install onnxruntime-gpu (the [gpu] extra, instead of "
            f"onnxruntime) with matching CUDA 12/13 and cuDNN 9 libraries, or {FALLBACK_ADVICE}.")
    if missing:
        warnings.warn(f"providers {missing} not available; running on {[n for n, _ in requested if n in available]}",
                      RuntimeWarning, stacklevel=3)
    return [(n, o) for n, o in requested if n in available]


def check_session(session: ort.InferenceSession, requested: list[tuple[str, dict]],
                  allow_fallback: bool = False) -> None:
    """Raise if ORT silently dropped a requested GPU provider while creating `session`."""
    got = session.get_providers()
    dropped = [n for n, _ in requested if n not in got]
    if dropped and not allow_fallback:
        raise ProviderError(
            f"onnxruntime could not create {', '.join(dropped)} (session runs on {', '.join(got)}); "
            "this usually means missing or mismatched CUDA/cuDNN libraries "
            f"(try onnxruntime.preload_dlls()), or {FALLBACK_ADVICE}")
    if dropped:
        warnings.warn(f"providers {dropped} could not be created; session runs on {got}", RuntimeWarning,
                      stacklevel=3)
