"""What the manifest says about the model beyond its graphs: class names and a model card.

Both come from the checkpoint's metadata (`train_transformer.py` records `data`, the step,
the task weights; `ship_default_model.py` adds its notes), so every tool that reads the
manifest (`magvit-onnx info`, `Generator.classes`, the batch jobs) can print them.
"""
from __future__ import annotations

import json

from magvit_onnx import synthetic
from magvit_onnx.models.config import MagvitConfig

DATA = {
    "synthetic": "magvit_onnx.synthetic: 16x64x64 clips of one circle or triangle moving right, left, up or "
                 "down (bouncing off the walls) or standing still, over soft backgrounds; class = shape x motion",
}
"""Descriptions of the training data by the `data` value the training scripts record."""
LIMITS = {
    "synthetic": "trained only on synthetic shapes at 64x64; it has not learned real video",
}


def class_entries(config: MagvitConfig, metadata: dict[str, str]) -> list[dict]:
    """[{'id': 0, 'name': ...}, ...]; names where the training data is known (else None)."""
    names: tuple[str | None, ...] = (None,) * config.num_classes
    recorded = json.loads(metadata["class_names"]) if "class_names" in metadata else None
    if recorded is not None and len(recorded) == config.num_classes:
        names = tuple(recorded)  # train_transformer.py records the names of its labelled data
    elif metadata.get("data") == "synthetic" and config.num_classes == synthetic.NUM_CLASSES:
        names = synthetic.CLASS_NAMES
    return [{"id": i, "name": name} for i, name in enumerate(names)]


def model_card(config: MagvitConfig, weights: dict, metadata: dict[str, str]) -> dict:
    """A short card: what the weights are, what they were trained on, and the limits known."""
    if weights.get("random_init"):
        return {"summary": f"a random init (seed {weights.get('seed')}) of preset {config.name!r}: it generates "
                           "noise; for tests and benchmarks only",
                "data": None, "training": None, "limits": "untrained"}
    data = metadata.get("data")
    return {"summary": f"MAGVIT preset {config.name!r} ({config.num_classes} classes, "
                       f"{'x'.join(map(str, config.vq.video_shape))} clips) trained on "
                       f"{'our synthetic video set' if data == 'synthetic' else data or 'data not recorded'}",
            "data": DATA.get(data, data),
            "training": {key: metadata[key] for key in sorted(metadata) if key not in ("magvit_config", "class_names")},
            "limits": LIMITS.get(data)}
