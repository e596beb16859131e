"""Execution providers for ONNX Runtime sessions: choose, check, and never fall back silently.

Names users pass: 'cpu', 'cuda', 'tensorrt' (or ORT's own '...ExecutionProvider' names),
optionally with options: `("cuda", {"device_id": 1})`. ORT quietly builds a CPU session
when a GPU provider cannot load (missing CUDA/cuDNN), or retries on CPU after an error;
`create_session` turns the retry off, and raises `ProviderError` carrying ORT's own error
(what it raised, or what it printed) unless `allow_fallback=True`.

TensorRT gets optimisation profiles for every dynamic input (`trt_profiles`): batch 1 to
the manifest's (or the caller's) maximum, rows up to 2 x batch for guidance. Without them
every new batch size, or guidance switched on, rebuilds the engines (minutes).
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

try:
    import onnxruntime as ort
    from onnxruntime.capi.onnxruntime_pybind11_state import InvalidGraph, InvalidProtobuf, NoSuchFile
except ImportError as error:  # the flavour is an extra: one line that says which to install
    missing = isinstance(error, ModuleNotFoundError) and error.name == "onnxruntime"
    problem = "is not installed" if missing else f"cannot be imported ({error})"
    raise ImportError(f"onnxruntime {problem}: pip install 'magvit-onnx[cpu]', "
                      "or 'magvit-onnx[gpu]' on a CUDA machine") from None

ALIASES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
           "tensorrt": "TensorrtExecutionProvider", "trt": "TensorrtExecutionProvider"}
DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    "CUDAExecutionProvider": {"cudnn_conv_algo_search": "HEURISTIC"},
    "TensorrtExecutionProvider": {"trt_engine_cache_enable": True,
                                  "trt_timing_cache_enable": True},
}
GPU = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
ProviderSpec = str | tuple[str, dict[str, Any]]
# Batch range of the TensorRT profiles when neither the caller nor the manifest gives one.
DEFAULT_BATCH_PROFILE = {"opt": 8, "max": 64}


FALLBACK_ADVICE = "pass providers='cpu', or allow_fallback=True to run on what is available"
"""How a Python caller gets past a ProviderError; the CLI swaps it for its own options."""


class ProviderError(RuntimeError):
    """A requested execution provider is not available."""

    def command_line(self) -> str:
        """The message for the commands, which have --providers but no allow_fallback."""
        return str(self).replace(FALLBACK_ADVICE, "run with --providers cpu")


def resolve(providers: Sequence[ProviderSpec] | str | None, *, use_tf32: bool | None = None
            ) -> list[tuple[str, dict[str, Any]]]:
    """Normalise user provider specs to ORT `(name, options)` pairs, in priority order.

    None or 'cpu' -> CPU only. GPU providers get CPU appended as the home of nodes they
    have no kernel for (that is ORT placement, not a fallback; `check_session` still
    insists the GPU provider itself was created). TensorRT gets CUDA behind it likewise,
    on the same `device_id`. `use_tf32` sets CUDA's TF32 math for fp32 MatMul/Conv
    (ORT's default is on; off gives fp32 results that match the CPU's).
    """
    given = providers
    if providers is None:
        providers = ["cpu"]
    elif isinstance(providers, str):
        providers = [p.strip() for p in providers.split(",") if p.strip()]
    valid = isinstance(providers, (list, tuple)) and all(
        isinstance(s, str) or (isinstance(s, (list, tuple)) and len(s) == 2 and isinstance(s[0], str)
                               and isinstance(s[1], dict)) for s in providers)
    if not valid or not providers:  # '' or [] would silently mean the CPU
        raise ProviderError(f"providers must be 'cpu', 'cuda', 'tensorrt', a list of them or of (name, options) "
                            f"pairs, got {str(given)[:80]!r}")
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
    device_ids = {int(o["device_id"]) for n, o in out if n in GPU and "device_id" in o}
    if len(device_ids) > 1:
        raise ProviderError(f"CUDA and TensorRT asked for different device_id values {sorted(device_ids)}; "
                            "TensorRT runs what it cannot take on CUDA, so they must share one device")
    for name, options in out:
        if name in GPU and device_ids:
            options.setdefault("device_id", device_ids.copy().pop())
        if name == "CUDAExecutionProvider" and use_tf32 is not None:
            options["use_tf32"] = int(use_tf32)
    return out


def uses_gpu(providers: list[tuple[str, dict]]) -> bool:
    return any(name in GPU for name, _ in providers)


def trt_profiles(inputs: list[dict], opt: int, maximum: int, guided: bool = False) -> dict[str, str]:
    """TensorRT profile options for one graph: `inputs` are the manifest's entries
    (name, dtype, shape with 'batch' / 'rows' for the dynamic axis). Batch runs from 1 to
    `maximum`; rows (2 x batch with guidance) from 1 to 2 x `maximum`; the engine is tuned
    for `opt` (rows: 2 x `opt` when the decoding defaults use guidance)."""
    if not 1 <= opt <= maximum:
        raise ProviderError(f"TensorRT batch profile needs 1 <= opt <= max, got opt {opt}, max {maximum}")
    sizes = {"min": {"batch": 1, "rows": 1}, "opt": {"batch": opt, "rows": 2 * opt if guided else opt},
             "max": {"batch": maximum, "rows": 2 * maximum}}
    options = {}
    for key, size in sizes.items():
        shapes = [f"{i['name']}:" + "x".join(str(size.get(d, d)) for d in i["shape"])
                  for i in inputs if any(isinstance(d, str) for d in i["shape"])]
        options[f"trt_profile_{key}_shapes"] = ",".join(shapes)
    return options


def without_tensorrt(providers: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """`providers` less TensorRT (CUDA, which `resolve` puts behind it, takes its place):
    for graphs that must stay float32, which TensorRT's fp16 builder does not promise."""
    return [(n, o) for n, o in providers if n != "TensorrtExecutionProvider"]


def output_device(providers: list[tuple[str, dict]]) -> tuple[str, int]:
    """(device type, id) for IO binding outputs that should stay where the graph ran."""
    for name, options in providers:
        if name in GPU:
            return "cuda", int(options.get("device_id", 0))
    return "cpu", 0


def disable_tf32(providers: list[tuple[str, dict]]) -> None:
    """TF32 off on TensorRT too. ORT's TensorRT provider has no TF32 option, and TensorRT
    allows TF32 for float32 layers by default (BuilderFlag::kTF32); NVIDIA's libraries read
    NVIDIA_TF32_OVERRIDE=0 as 'no TF32' when they start, so it is set for this process
    before any GPU session exists (CUDA gets its own `use_tf32` option from `resolve`)."""
    if any(name == "TensorrtExecutionProvider" for name, _ in providers):
        os.environ["NVIDIA_TF32_OVERRIDE"] = "0"


def with_trt_options(providers: list[tuple[str, dict]], extra: dict[str, Any]) -> list[tuple[str, dict]]:
    """`providers` with `extra` added to TensorRT's options (the caller's own options win)."""
    return [(n, {**extra, **o} if n == "TensorrtExecutionProvider" else o) for n, o in providers]


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


def preload_gpu_libraries(providers: list[tuple[str, dict]]) -> None:
    """Load the CUDA/cuDNN libraries of pip's nvidia-* wheels (or torch's) before a GPU
    session exists: onnxruntime-gpu does not find them on its own."""
    preload = getattr(ort, "preload_dlls", None)
    if uses_gpu(providers) and preload is not None:
        preload()


def create_session(path: Path, options: ort.SessionOptions, providers: list[tuple[str, dict]],
                   allow_fallback: bool = False) -> ort.InferenceSession:
    """An InferenceSession on `providers`, or ProviderError with ORT's own words.

    ORT's Python layer retries on the CPU when a provider raises (`enable_fallback`); that
    is turned off here. A provider that fails to load is only logged by ORT, to stderr:
    for GPU sessions that output is captured (and passed on) so the error can quote it."""
    if not uses_gpu(providers):
        return ort.InferenceSession(str(path), options, providers=providers, enable_fallback=0)
    with captured_stderr() as log:
        try:
            session = ort.InferenceSession(str(path), options, providers=providers, enable_fallback=0)
        except (InvalidProtobuf, InvalidGraph, NoSuchFile):
            raise  # the graph itself is bad, whatever the provider: the caller says so
        except (RuntimeError, ValueError) as e:
            session, error = None, str(e).strip()
    if session is None:
        raise ProviderError(f"onnxruntime could not create a session of {path.name} on "
                            f"{', '.join(n for n, _ in providers)}: {error}{_quote(''.join(log))}") from None
    check_session(session, providers, allow_fallback, log="".join(log))
    return session


def check_session(session: ort.InferenceSession, requested: list[tuple[str, dict]],
                  allow_fallback: bool = False, log: str = "") -> None:
    """Raise if ORT silently dropped a requested GPU provider while creating `session`;
    `log` is what ORT printed meanwhile (its reason)."""
    got = session.get_providers()
    dropped = [n for n, _ in requested if n not in got]
    if dropped and not allow_fallback:
        raise ProviderError(
            f"onnxruntime could not create {', '.join(dropped)} (session runs on {', '.join(got)})"
            + (_quote(log) or "; this usually means missing or mismatched CUDA/cuDNN libraries")
            + f"; or {FALLBACK_ADVICE}")
    if dropped:
        warnings.warn(f"providers {dropped} could not be created; session runs on {got}", RuntimeWarning,
                      stacklevel=3)


def _quote(log: str, lines: int = 6) -> str:
    tail = [line for line in log.strip().splitlines() if line.strip()][-lines:]
    return "; onnxruntime said: " + " | ".join(tail) if tail else ""


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Collect what is written to file descriptor 2 (ORT's C++ logging included) in the
    block into the yielded list (filled on exit); the text also goes on to the real stderr."""
    sys.stderr.flush()
    saved, text = os.dup(2), []
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield text
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            data = sink.read()
            os.write(2, data)
            text.append(data.decode(errors="replace"))
