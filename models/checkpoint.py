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


def half_copy(source: str | Path, target: str | Path) -> None:
    """`source` with its floating-point tensors in float16 (how a model ships), same keys and metadata."""
    tensors = {k: v.half() if v.is_floating_point() else v for k, v in load_file(str(source)).items()}
    target = Path(target)
    tmp = target.with_name(target.name + ".tmp")
    save_file(tensors, str(tmp), metadata=read_metadata(source))
    tmp.replace(target)


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
    try:
        return MagvitConfig.from_dict(json.loads(meta["magvit_config"]))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: its 'magvit_config' metadata is not JSON ({error})") from None
    except ValueError as error:  # ConfigError: names the field
        raise ValueError(f"{path}: {error}") from None


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


def check_shapes(path: str | Path, config: MagvitConfig, names: tuple[str, ...]) -> None:
    """Refuse a file whose tensors are not the ones its config describes, before the modules
    are built: they are built on the meta device (no memory), so an edited config cannot make
    the loader allocate more than the file holds."""
    with torch.device("meta"):
        built = {"vq": lambda: VQVAE(config.vq), "transformer": lambda: Transformer(config)}
        wanted = {f"{name}.{key}": tuple(value.shape) for name in names
                  for key, value in built[name]().state_dict().items()}
    with safe_open(str(path), framework="pt") as f:
        held = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys() if key.split(".")[0] in names}
    for name in names:
        if not any(key.startswith(name + ".") for key in held):
            raise ValueError(f"{path} holds no '{name}' weights")
    wrong = sorted(key for key in wanted if held.get(key) != wanted[key]) + sorted(set(held) - set(wanted))
    if wrong:
        key = wrong[0]
        raise ValueError(f"{path}: its weights do not fit the model its config describes ({len(wrong)} tensors "
                         f"differ, e.g. {key}: {list(held[key]) if key in held else 'missing'} in the file, "
                         f"{list(wanted[key]) if key in wanted else 'none'} in the model)")


def load_tokenizer(path: str | Path, device: str | torch.device = "cpu") -> VQVAE:
    """The tokenizer (eval mode) of a tokenizer or model checkpoint."""
    config = read_config(path)
    check_shapes(path, config, ("vq",))
    vq = VQVAE(config.vq)
    load_weights(path, {"vq": vq})
    return vq.to(device).eval()


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[MagvitConfig, VQVAE, Transformer]:
    """Config, tokenizer and transformer (eval mode) of a model checkpoint."""
    config = read_config(path)
    check_shapes(path, config, ("vq", "transformer"))
    vq, transformer = VQVAE(config.vq), Transformer(config)
    load_weights(path, {"vq": vq, "transformer": transformer})
    return config, vq.to(device).eval(), transformer.to(device).eval()
