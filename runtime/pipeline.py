"""MAGVIT generation over an engine of three graphs, numpy only.

    pipeline = Pipeline.from_artifacts("artifacts/tiny", providers="cpu")
    video = pipeline.generate("frame_prediction", video=clip, seed=0)   # float32 [B, T, H, W, 3]

An *engine* runs the three graphs: `encode(video) -> tokens`, `run_step(feeds) ->
(sampled, probs)`, `decode(tokens) -> video`. `OrtEngine` runs the exported ONNX graphs
with ONNX Runtime; the PyTorch reference (`magvit_onnx.export.reference.TorchEngine`)
runs the same graphs in torch, so both share this generation code token for token.

Inputs are assumed valid here (float32 in [0, 1], right shapes); `magvit_onnx.Generator`
is the checked, user-facing wrapper. One Pipeline may serve many threads: sessions are
thread-safe and every call keeps its own state and random generator.
"""
from __future__ import annotations

import hashlib
import threading
import warnings
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from magvit_onnx.runtime import commit, extend, providers as eps, tasks
# onnxruntime through `providers`, whose import of it names the extra to install when it is missing
from magvit_onnx.runtime.providers import InvalidGraph, InvalidProtobuf, NoSuchFile, ort
from magvit_onnx.runtime.artifacts import GRAPHS, ArtifactError, load_manifest
from magvit_onnx.runtime.seeding import random_source
from magvit_onnx.runtime.step import make_model_fn
from magvit_onnx.runtime.vocab import Vocab


class Engine(Protocol):
    def encode(self, video: np.ndarray) -> np.ndarray: ...
    def run_step(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]: ...
    def decode(self, tokens: np.ndarray) -> np.ndarray: ...


class OrtEngine:
    """The graphs of a verified artifacts folder as ONNX Runtime sessions.

    A step is two sessions: the transformer (`transformer_step.onnx`, -> logits) and a
    float32 sampler (`manifest['samplers']`): 'plain' when guidance, top-k and top-p are
    all off, else the filtered one of the provider's kind ('full' on the CPU, 'full_gpu'
    on CUDA/TensorRT). IO binding chains them: the logits stay where the transformer wrote
    them (GPU memory on CUDA/TensorRT) and only tokens and probabilities come back. The
    samplers never run on TensorRT (CUDA, or the CPU, takes them): TensorRT's fp16 builder
    may run any float32 layer in fp16, and the sampler's noise and probabilities must stay
    float32 (`export/graphs.py`). Artifacts made before the split have one step graph that
    samples inside (no 'samplers'); they run as before, with plain `run()`.

    `batch_profile` ({'opt': int, 'max': int}; default: the manifest's, else
    providers.DEFAULT_BATCH_PROFILE) sizes TensorRT's optimisation profiles; fp16
    artifacts turn on `trt_fp16_enable`. `use_tf32`: CUDA's TF32 math for fp32 MatMul and
    Conv (None: ORT's default, on; off for results that match the CPU's); False with
    TensorRT also sets NVIDIA_TF32_OVERRIDE=0 (`providers.disable_tf32`).
    """

    def __init__(self, folder: str | Path, manifest: dict, providers=None, *, allow_fallback: bool = False,
                 intra_op_num_threads: int = 0, use_tf32: bool | None = None, batch_profile: dict | None = None):
        requested = eps.with_trt_cache(eps.resolve(providers, use_tf32=use_tf32), engine_cache_key(folder))
        if eps.uses_gpu(requested):
            if use_tf32 is False:
                eps.disable_tf32(requested)
            eps.preload_gpu_libraries(requested)
        usable = eps.check_available(requested, allow_fallback)
        if eps.uses_gpu(usable):  # after the availability check: no advice about a GPU that is not there
            check_gpu_artifacts(manifest)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = intra_op_num_threads
        options.log_severity_level = 3
        # One CPU arena for the three sessions: each session's own arena keeps its peak
        # (encoder, step and decoder activations) for the life of the session, so peaks
        # added up (B: 2.7 GB RSS against torch's 1.5 GB). Shared, the peak is the largest one.
        share_cpu_arena()
        options.add_session_config_entry("session.use_env_allocators", "1")
        profile = {**eps.DEFAULT_BATCH_PROFILE, **manifest.get("batch_profile", {}), **(batch_profile or {})}
        guided = bool(manifest["decoding"].get("guidance_scale"))
        trt = {"trt_fp16_enable": manifest["precision"].startswith("fp16")}
        self.sessions = {}
        for name in GRAPHS:
            graph = manifest["graphs"][name]
            per_graph = eps.with_trt_options(usable, {**trt, **eps.trt_profiles(
                graph["inputs"], profile["opt"], profile["max"], guided)})
            self.sessions[name] = _session(Path(folder) / graph["filename"], options, per_graph, allow_fallback)
        self.providers = self.sessions["transformer_step"].get_providers()
        # sampler variant -> session; empty for a single step graph (artifacts before the split)
        self.samplers = {}
        if "samplers" in manifest:
            float32_only = eps.without_tensorrt(usable)
            for variant, name in pick_samplers(manifest["samplers"], eps.uses_gpu(usable)).items():
                self.samplers[variant] = _session(Path(folder) / manifest["samplers"][name]["filename"], options,
                                                  float32_only, allow_fallback)
        self.logits_device = eps.output_device(usable)

    def run(self, name: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.sessions[name].run(None, feeds)

    def encode(self, video: np.ndarray) -> np.ndarray:
        return self.run("vq_encoder", {"video": np.ascontiguousarray(video, np.float32)})[0]

    def run_step(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        if not self.samplers:
            sampled, probs = self.run("transformer_step", feeds)
            return sampled, probs
        body = self.sessions["transformer_step"]
        binding = body.io_binding()
        for meta in body.get_inputs():
            binding.bind_cpu_input(meta.name, np.ascontiguousarray(feeds[meta.name]))
        binding.bind_output("logits", *self.logits_device)  # stays on the device
        body.run_with_iobinding(binding)
        sampler = self.samplers["plain" if is_plain(feeds) else "filtered"]
        chained = sampler.io_binding()
        chained.bind_ortvalue_input("logits", binding.get_outputs()[0])
        for meta in sampler.get_inputs()[1:]:
            chained.bind_cpu_input(meta.name, np.ascontiguousarray(feeds[meta.name]))
        for meta in sampler.get_outputs():
            chained.bind_output(meta.name)  # to host memory
        sampler.run_with_iobinding(chained)
        sampled, probs = chained.copy_outputs_to_cpu()
        return sampled, probs

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        return self.run("vq_decoder", {"tokens": np.ascontiguousarray(tokens, np.int64)})[0]


def _session(path: Path, options: ort.SessionOptions, providers: list, allow_fallback: bool) -> ort.InferenceSession:
    try:
        return eps.create_session(path, options, providers, allow_fallback)
    except (InvalidProtobuf, InvalidGraph, NoSuchFile) as e:  # not a valid model (e.g. truncated)
        raise ArtifactError(f"{path}: ONNX Runtime cannot load this graph ({str(e).splitlines()[0][:200]}); "
                            "re-export the artifacts") from None


def pick_samplers(samplers: dict, gpu: bool) -> dict[str, str]:
    """{'plain': 'plain', 'filtered': the filtered sampler for this kind of provider}: on a
    GPU 'full_gpu' (a constant TopK width), on the CPU 'full' (sorts only what the filters
    need); the other one where a folder has only that (same tokens, see check_gpu_artifacts)."""
    preferred = ("full_gpu", "full") if gpu else ("full", "full_gpu")
    return {"plain": "plain", "filtered": next(name for name in preferred if name in samplers)}


def is_plain(feeds: dict[str, np.ndarray]) -> bool:
    """Guidance, top-k and top-p all off (the official default), and no guidance rows: the
    'plain' sampler gives the same tokens as the filtered one, without its work."""
    top_p = float(feeds["top_p"])
    return (int(feeds["top_k"]) == 0 and not 0 < top_p < 1 and float(feeds["guidance_scale"]) == 0
            and feeds["tokens"].shape[0] == feeds["seeds"].shape[0])


def check_gpu_artifacts(manifest: dict) -> None:
    """Refuse int8 artifacts on CUDA/TensorRT (ORT's dynamic quantisation has no GPU kernels:
    about a hundred step nodes would run on the CPU, copies across every step); warn about
    CPU-target ones (their run-time TopK width syncs the GPU every step)."""
    if "int8" in manifest["precision"]:
        raise eps.ProviderError(
            f"these artifacts are int8 ({manifest['precision']}), which runs on the CPU only: CUDA and TensorRT "
            "have no kernels for its DynamicQuantizeLinear / uint8 MatMulInteger. Use providers='cpu', or "
            "export fp32 or fp16 artifacts for the GPU (export_all.py --target gpu, or --fp16)")
    if "gpu" not in manifest.get("target", "cpu").split("+"):
        warnings.warn("these artifacts were exported for the CPU: the step's TopK width is computed at run time, "
                      "which costs a device sync per step on CUDA and splits TensorRT's engine; re-export "
                      "(export_all.py makes both targets by default) for GPUs", RuntimeWarning, stacklevel=4)


_shared_arena = threading.Lock()
_shared_arena_registered = False


def share_cpu_arena() -> None:
    """Register one CPU arena allocator in ONNX Runtime's process-wide environment (once);
    sessions opt in with the `session.use_env_allocators` config entry."""
    global _shared_arena_registered
    with _shared_arena:
        if not _shared_arena_registered:
            memory = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
            ort.create_and_register_allocator(memory, None)
            _shared_arena_registered = True


def engine_cache_key(folder: str | Path) -> str:
    """TensorRT engines are valid for one model, ORT version and GPU: key their cache by the
    manifest (which hashes every graph) and the ORT version (TensorRT keys the GPU itself)."""
    digest = hashlib.sha256((Path(folder) / "manifest.json").read_bytes()).hexdigest()[:16]
    return f"{digest}-ort{ort.__version__}"


class Pipeline:
    """Task conditions + COMMIT decoding around an engine."""

    def __init__(self, engine: Engine, *, vocab: Vocab, latent_shape: tuple[int, int, int], decoding: dict,
                 video_shape: tuple[int, int, int], manifest: dict):
        self.engine = engine
        self.vocab = vocab
        self.latent_shape = tuple(latent_shape)
        self.video_shape = tuple(video_shape)  # (T, H, W) of one window
        self.defaults = dict(decoding)
        self.manifest = manifest  # of the artifacts folder, or {"tasks": ...} of a torch model

    @classmethod
    def from_artifacts(cls, folder: str | Path, providers=None, **engine_options) -> "Pipeline":
        manifest = load_manifest(folder)  # verifies every sha256 before any session exists
        v = manifest["vocab"]
        return cls(OrtEngine(folder, manifest, providers, **engine_options),
                   vocab=Vocab(v["codebook_size"], v["num_classes"], v["multi_task"]),
                   latent_shape=manifest["latent_shape"], decoding=manifest["decoding"],
                   video_shape=manifest["video"]["shape"], manifest=manifest)

    def encode(self, video: np.ndarray) -> np.ndarray:
        """float32 video [B, T, H, W, 3] in [0, 1] -> token ids [B, t, h, w] int64."""
        return self.engine.encode(video)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """token ids [B, t, h, w] -> float32 video [B, T, H, W, 3] clipped to [0, 1]. A grid
        larger than the model's (a long clip, a panorama) is decoded in blended windows
        (`extend.decode`)."""
        return np.clip(extend.decode(self.engine.decode, tokens, self.latent_shape), 0.0, 1.0)

    def generate_tokens(self, task: str, video: np.ndarray | None = None, class_ids=None, *,
                        num_videos: int = 1, steps: int | None = None, seed: int | Sequence[int] | None = None,
                        schedule: str | None = None, sampling_temperature: float | None = None,
                        mask_temperature: float | None = None, guidance_scale: float | None = None,
                        top_k: int | None = None, top_p: float | None = None,
                        return_intermediates: bool = False, **condition_overrides):
        """COMMIT decoding of `task`; returns tokens [B * num_videos, t, h, w].

        Conditional tasks take `video[B, ...]` and make `num_videos` samples of each
        (repeats of an input are adjacent); class-conditional generation makes
        `num_videos` clips per class id. `seed`: one int for the call, or one per input
        (then each input's rows equal a call with that input alone; see `seeding`).
        Unset settings come from the decoding defaults.
        """
        rng = random_source(seed, num_videos)
        cond_tokens, cond_mask, class_rows = self.condition_tokens(task, video, class_ids, num_videos,
                                                                   **condition_overrides)
        return self.complete(task, cond_tokens, cond_mask, class_rows, rng, steps=steps, schedule=schedule,
                             sampling_temperature=sampling_temperature, mask_temperature=mask_temperature,
                             guidance_scale=guidance_scale, top_k=top_k, top_p=top_p,
                             return_intermediates=return_intermediates)

    def condition_tokens(self, task: str, video: np.ndarray | None, class_ids, num_videos: int,
                         **condition_overrides) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The official condition of `task` in tokens: (cond_tokens [R, t, h, w], its latent
        mask, the class id of each row or None), R = inputs x num_videos rows."""
        spec = tasks.get_task(task)
        if spec.needs_video:
            video = np.repeat(np.asarray(video, np.float32), num_videos, axis=0)
            if np.ndim(condition_overrides.get("mask")) == 4:  # one region per input: repeated as its input
                condition_overrides["mask"] = np.repeat(condition_overrides["mask"], num_videos, axis=0)
            cond = tasks.condition(spec.name, video, self.latent_shape, **condition_overrides)
            cond_tokens, cond_mask = self.engine.encode(cond["video"]), cond["latent_mask"]
        else:
            inputs = 1 if class_ids is None else np.size(class_ids)
            cond_tokens = np.zeros((inputs * num_videos, *self.latent_shape), np.int64)
            cond_mask = np.zeros((inputs * num_videos, 1, 1, 1), bool)
        if class_ids is not None:
            per_input = np.broadcast_to(np.asarray(class_ids, np.int64).reshape(-1), (len(cond_tokens) // num_videos,))
            class_ids = np.repeat(per_input, num_videos)
        return cond_tokens, cond_mask, class_ids

    def complete(self, task: str, cond_tokens: np.ndarray, cond_mask: np.ndarray, class_rows: np.ndarray | None,
                 rng, *, steps: int | None = None, schedule: str | None = None,
                 sampling_temperature: float | None = None, mask_temperature: float | None = None,
                 guidance_scale: float | None = None, top_k: int | None = None, top_p: float | None = None,
                 return_intermediates: bool = False):
        """COMMIT decoding of one model-sized window from its condition tokens and mask (the
        transformer part of `generate_tokens`; `extend` calls it once per window)."""
        spec = tasks.get_task(task)
        d = self.defaults
        batch = cond_tokens.shape[0]
        model_fn = make_model_fn(
            self.engine.run_step, tasks.prefix(spec.name, self.vocab, batch, class_rows, token=tasks.task_token(
                spec.name, self.manifest["tasks"])),
            tasks.uncond_prefix(self.vocab, batch), rng,
            temperature=_pick(sampling_temperature, d["sampling_temperature"]), top_k=_pick(top_k, d["top_k"]),
            top_p=_pick(top_p, d["top_p"]), guidance_scale=_pick(guidance_scale, d["guidance_scale"]))
        return commit.decode(cond_tokens, cond_mask, model_fn, num_iter=_pick(steps, d["num_iter"]),
                             schedule=_pick(schedule, d["schedule"]),
                             mask_temperature=_pick(mask_temperature, d["mask_temperature"]), rng=rng,
                             return_intermediates=return_intermediates)

    def generate(self, task: str, video: np.ndarray | None = None, class_ids=None, **settings) -> np.ndarray:
        """Generated video, float32 [B, T, H, W, 3] in [0, 1]. Condition pixels are the
        decoder's, not pasted back (official `replace_condition_pixels` is off)."""
        return self.decode(self.generate_tokens(task, video, class_ids, **settings))


def _pick(value, default):
    return default if value is None else value
