"""Weights on disk: one safetensors file with the tokenizer and the transformer.

Keys are `vq.<name>` and `transformer.<name>`; the model config travels as JSON in the
safetensors metadata (`magvit_config`), so a file alone says what it holds. No pickle.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file

from magvit_onnx.models.config import MagvitConfig
from magvit_onnx.models.transformer import Transformer
from magvit_onnx.models.vqvae import VQVAE


def save_checkpoint(path: str | Path, config: MagvitConfig, vq: VQVAE, transformer: Transformer,
                    metadata: dict[str, str] | None = None) -> None:
    tensors = {f"vq.{k}": v for k, v in vq.state_dict().items()}
    tensors |= {f"transformer.{k}": v for k, v in transformer.state_dict().items()}
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {"magvit_config": json.dumps(config.to_dict()), **(metadata or {})}
    save_file(tensors, str(path), metadata=meta)


def read_config(path: str | Path) -> MagvitConfig:
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "magvit_config" not in meta:
        raise ValueError(f"{path} has no 'magvit_config' metadata: not a magvit-onnx checkpoint")
    return MagvitConfig.from_dict(json.loads(meta["magvit_config"]))


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[MagvitConfig, VQVAE, Transformer]:
    """Config and models (eval mode) from a checkpoint written by `save_checkpoint`."""
    config = read_config(path)
    tensors = load_file(str(path), device=str(device))
    vq, transformer = VQVAE(config.vq).to(device), Transformer(config).to(device)
    for prefix, module in (("vq.", vq), ("transformer.", transformer)):
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        module.load_state_dict(state, strict=True)
    return config, vq.eval(), transformer.eval()
