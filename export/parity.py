"""Parity of an artifacts folder against the PyTorch reference it was exported from.

Same inputs, same random numbers: encoder token ids must be equal (except exact ties, see
`encoder_mismatches`), the decoder and the step's logits close (fp32: 1e-4 max abs), sampled tokens identical, and a whole
generation token-identical between `reference_pipeline` and ONNX Runtime, also beyond one
window (long frame prediction, stop motion, panoramas).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from magvit_onnx.export.reference import reference_pipeline
from magvit_onnx.models.config import MagvitConfig
from magvit_onnx.models.transformer import Transformer
from magvit_onnx.models.vqvae import VQVAE
from magvit_onnx.runtime import extend
from magvit_onnx.runtime.pipeline import Pipeline
from magvit_onnx.runtime.tasks import TASKS


def step_feeds(config: MagvitConfig, batch: int, rng: np.random.Generator, *, guidance_scale: float = 0.0,
               top_k: int = 0, top_p: float = 0.0, temperature: float = 1.0) -> dict[str, np.ndarray]:
    """Random but valid step inputs: about half the positions masked."""
    n, rows = config.vq.num_tokens, batch * (2 if guidance_scale else 1)
    tokens = rng.integers(0, config.vq.codebook_size, (rows, n))
    tokens[rng.random((rows, n)) < 0.5] = -1
    prefix = np.tile(np.array([[-4, config.vocab.uncond_id]]), (rows, 1))
    return {"tokens": tokens, "prefix": prefix, "segment_ids": np.zeros((rows, n), np.int64),
            "seeds": rng.integers(0, 2 ** 31 - 1, (batch, n)),
            "temperature": np.array(temperature, np.float32), "top_k": np.array(top_k, np.int64),
            "top_p": np.array(top_p, np.float32), "guidance_scale": np.array(guidance_scale, np.float32)}


TIE = 1e-5
"""Relative width of a near-tie in the codebook search: two codewords whose squared distances
to a latent differ by less than TIE * (1 + |z|^2) are tied to within the float error of
|z|^2 - 2 z.e + |e|^2 (the encoder's last bits differ between backends), so either id is right."""


def encoder_mismatches(vq: VQVAE, video: np.ndarray, ids_ort: np.ndarray, ids_ref: np.ndarray) -> tuple[int, int]:
    """(ids that differ beyond a near-tie, ids that differ within one) for ONNX Runtime's `ids_ort`
    against the reference's `ids_ref` of the same `video`, judged by the reference's distances.
    A trained codebook can put two codewords within 1e-6 of a latent (measured: one id in 2,048)."""
    with torch.no_grad():
        z = vq.encode(torch.from_numpy(video).to(next(vq.parameters()).device))
        distances = vq.quantizer.distances(z).cpu().numpy()  # (B, t, h, w, K)
        z_norm = z.pow(2).sum(-1).cpu().numpy()  # (B, t, h, w)
    gap = np.abs(np.take_along_axis(distances, ids_ort[..., None], -1)
                 - np.take_along_axis(distances, ids_ref[..., None], -1))[..., 0]
    tied = gap <= TIE * (1 + z_norm)
    differ = ids_ort != ids_ref
    return int((differ & ~tied).sum()), int((differ & tied).sum())


def check_parity(folder: str | Path, config: MagvitConfig, vq: VQVAE, transformer: Transformer, *,
                 seed: int = 0, batch: int = 2, tasks: tuple[str, ...] = tuple(TASKS), steps: int = 4,
                 providers="cpu", device: str = "cpu", **engine_options) -> dict:
    """Measure every parity quantity; returns a JSON-able report (the caller judges it).
    ONNX Runtime runs on `providers` (with `engine_options`), torch on `device`."""
    rng = np.random.default_rng(seed)
    onnx_side = Pipeline.from_artifacts(folder, providers=providers, **engine_options)
    torch_side = reference_pipeline(config, vq, transformer, device)
    video = rng.random((batch, *config.vq.video_shape, 3), dtype=np.float32)
    report: dict = {}

    ids_ort, ids_ref = onnx_side.engine.encode(video), torch_side.engine.encode(video)
    report["encoder_token_mismatches"], report["encoder_tie_flips"] = encoder_mismatches(vq, video, ids_ort, ids_ref)
    report["decoder_max_abs"] = float(np.abs(onnx_side.engine.decode(ids_ref) - torch_side.engine.decode(ids_ref)).max())

    mismatches, total, prob_diff, prob_diff_equal = 0, 0, 0.0, 0.0
    for settings in ({}, {"guidance_scale": 1.5}, {"top_k": 5}, {"top_p": 0.8, "temperature": 0.7}):
        feeds = step_feeds(config, batch, rng, **settings)
        (s_ort, p_ort), (s_ref, p_ref) = onnx_side.engine.run_step(feeds), torch_side.engine.run_step(feeds)
        same = s_ort == s_ref
        mismatches, total = mismatches + int((~same).sum()), total + same.size
        prob_diff = max(prob_diff, float(np.abs(p_ort - p_ref).max()))
        prob_diff_equal = max(prob_diff_equal, float(np.abs(p_ort - p_ref)[same].max(initial=0.0)))
    report["step_sampled_mismatches"], report["step_probs_max_abs"] = mismatches, prob_diff
    # Reduced precision moves some tokens (then the probabilities are of different tokens):
    # it is judged by token agreement and by the probability error where tokens agree.
    report["step_token_agreement"] = 1 - mismatches / total
    report["step_probs_max_abs_where_equal"] = prob_diff_equal

    generation = {}
    for task in tasks:
        kwargs = {"class_ids": 1} if TASKS[task].class_conditional else {}
        kwargs |= {"video": video[:1]} if TASKS[task].needs_video else {}
        a = onnx_side.generate_tokens(task, seed=seed, steps=steps, **kwargs)
        b = torch_side.generate_tokens(task, seed=seed, steps=steps, **kwargs)
        generation[task] = int((a != b).sum())
    report["generation_token_mismatches"] = generation
    report["long_generation_token_mismatches"] = {
        name: int((call(onnx_side) != call(torch_side)).sum())
        for name, call in long_calls(config, video[:1], tasks, seed=seed, steps=steps).items()}
    return report


def long_calls(config: MagvitConfig, video: np.ndarray, tasks: tuple[str, ...], **settings) -> dict:
    """The generations beyond one window (`runtime/extend.py`) of the served `tasks`, each a
    function of a pipeline: twice the frames, stop motion between three frames, twice the
    width and the height. Every window is the short tasks' call, so they must match too."""
    frames, latent = config.vq.video_shape[0], config.vq.latent_shape
    calls = {
        "frame_prediction": ("frame_prediction_2x", lambda p: extend.frame_prediction_tokens(
            p, "frame_prediction", video, num_frames=2 * frames, **settings)),
        "frame_interpolation": ("stop_motion_3_keys", lambda p: extend.interpolation_tokens(
            p, video[:, [0, frames // 2, frames - 1]], **settings)),
        "outpainting_v": ("panorama_2x_width", lambda p: extend.panorama_tokens(
            p, "outpainting_v", video, axis=2, size=2 * latent[2], **settings)),
        "outpainting_h": ("panorama_2x_height", lambda p: extend.panorama_tokens(
            p, "outpainting_h", video, axis=1, size=2 * latent[1], **settings)),
    }
    return dict(calls[task] for task in tasks if task in calls)


@torch.inference_mode()
def step_logits_max_abs(folder: str | Path, config: MagvitConfig, transformer: Transformer, seed: int = 0) -> float:
    """Max abs difference of the step's logits (exported on the side: the shipped graph never
    outputs logits) between ONNX Runtime and torch."""
    from magvit_onnx.export.exporter import dynamic_shapes, example_inputs, export_graph
    from magvit_onnx.export.graphs import StepGraph

    class Logits(StepGraph):
        def forward(self, tokens, prefix, segment_ids, seeds, temperature, top_k, top_p, guidance_scale):
            return self.logits(tokens, prefix, seeds, guidance_scale)

    module = Logits(transformer).eval()
    path = Path(folder) / "step_logits.onnx"
    names = ["tokens", "prefix", "segment_ids", "seeds", "temperature", "top_k", "top_p", "guidance_scale"]
    export_graph(module, example_inputs(config)["transformer_step"], path, names, ["logits"],
                 dynamic_shapes("transformer_step"), 18)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = step_feeds(config, 2, np.random.default_rng(seed), guidance_scale=1.5)
    ours = session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})[0]
    ref = module(*[torch.from_numpy(np.asarray(feeds[n])) for n in names]).numpy()
    path.unlink()
    return float(np.abs(ours - ref).max())
