"""Weights on disk: safetensors files of named modules, with the config in the metadata.

Keys are `<module>.<parameter>` (e.g. `vq.encoder.conv_in.weight`,
`transformer.layers.0.attention.query.weight`); the model config travels as JSON in the
metadata (`magvit_config`), so a file alone says what it holds. No pickle. A tokenizer
checkpoint holds `vq` only; a model checkpoint holds `vq` and `transformer`.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from magvit_onnx.models.config import MagvitConfig
from magvit_onnx.models.transformer import Transformer
from magvit_onnx.models.vqvae import VQVAE


def save_weights(path: str | Path, config: MagvitConfig, modules: dict[str, torch.nn.Module],
                 metadata: dict[str, str] | None = None, dtype: torch.dtype | None = None) -> None:
    """Write `{name}.{key}` for every module's state dict, atomically (temp file + rename).
    `dtype` (e.g. torch.float16) stores the floating-point tensors in it; loading casts back
    to the modules' own dtype."""
    tensors = {f"{name}.{k}": v.detach().cpu().contiguous()
               for name, module in modules.items() for k, v in module.state_dict().items()}
    if dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    meta = {"magvit_config": json.dumps(config.to_dict()), **(metadata or {})}
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def read_metadata(path: str | Path) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except SafetensorError as e:
        raise ValueError(f"{path}: not a safetensors file ({e})") from None


def read_config(path: str | Path) -> MagvitConfig:
    meta = read_metadata(path)
    if "magvit_config" not in meta:
        raise ValueError(f"{path} has no 'magvit_config' metadata: not a magvit-onnx checkpoint")
    return MagvitConfig.from_dict(json.loads(meta["magvit_config"]))


def load_weights(path: str | Path, modules: dict[str, torch.nn.Module]) -> None:
    """Load `{name}.*` tensors of the file into each named module (strict)."""
    tensors = load_file(str(path))
    for name, module in modules.items():
        state = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}
        if not state:
            raise ValueError(f"{path} holds no '{name}' weights (it has: "
                             f"{sorted({k.split('.')[0] for k in tensors})})")
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as e:  # names or shapes of another model
            raise ValueError(f"{path}: its '{name}' weights do not fit the model its config describes "
                             f"({str(e).splitlines()[0]})") from None


def load_tokenizer(path: str | Path, device: str | torch.device = "cpu") -> VQVAE:
    """The tokenizer (eval mode) of a tokenizer or model checkpoint."""
    vq = VQVAE(read_config(path).vq)
    load_weights(path, {"vq": vq})
    return vq.to(device).eval()


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[MagvitConfig, VQVAE, Transformer]:
    """Config, tokenizer and transformer (eval mode) of a model checkpoint."""
    config = read_config(path)
    vq, transformer = VQVAE(config.vq), Transformer(config)
    load_weights(path, {"vq": vq, "transformer": transformer})
    return config, vq.to(device).eval(), transformer.to(device).eval()
