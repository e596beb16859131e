"""2D -> 3D weight inflation (docs/official-behaviour.md#inflation), as the official
`vqgan_train_lib.inflate_2d_to_3d`.

A 3D model (VQVAE or StyleGANDiscriminator, dims=3) is initialised from its per-frame
2D twin (dims=2), whose state_dict has the same keys. Leaf by leaf:
  * same shape                      -> copied (GroupNorm, biases, codebook, Dense layers);
  * 2D kernel (cout, cin, kh, kw) vs
    3D kernel (cout, cin, kt, kh, kw) -> 'central': zeros with the 2D kernel at temporal
                                         index kt // 2 (the official default);
                                         'average': the 2D kernel at every index, / kt;
  * anything else                   -> the 3D init is kept, with a warning.
With 'central', every inflated conv acts frame by frame, so the inflated model starts out
as the 2D model applied per frame (exactly so on a static video).
"""
from __future__ import annotations

import warnings
from typing import Mapping

import torch
import torch.nn as nn


def inflate_2d_to_3d(state_2d: Mapping[str, torch.Tensor], model_3d: nn.Module,
                     mode: str = "central", load: bool = True) -> dict[str, torch.Tensor]:
    """Returns the inflated 3D state dict; also loads it into `model_3d` when `load`."""
    if mode not in ("central", "average"):
        raise ValueError(f"unknown inflation mode {mode!r}: use 'central' or 'average'")
    inflated = {}
    for key, init_3d in model_3d.state_dict().items():
        source = state_2d.get(key)
        if source is not None and source.shape == init_3d.shape:
            inflated[key] = source.detach().clone()
        elif source is not None and init_3d.dim() == 5 and source.shape == init_3d.shape[:2] + init_3d.shape[3:]:
            kt = init_3d.shape[2]
            if mode == "central":
                kernel = torch.zeros_like(init_3d)
                kernel[:, :, kt // 2] = source
            else:
                kernel = source.unsqueeze(2).expand_as(init_3d) / kt
            inflated[key] = kernel.contiguous()
        else:
            found = "missing" if source is None else tuple(source.shape)
            warnings.warn(f"cannot inflate {key}: 2D {found} vs 3D {tuple(init_3d.shape)}; keeping the 3D init")
            inflated[key] = init_3d
    if load:
        model_3d.load_state_dict(inflated)
    return inflated
