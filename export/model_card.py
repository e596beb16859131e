"""What the manifest says about the model beyond its graphs: class names and a model card.

Both come from the checkpoint's metadata (`train_transformer.py` records `data`, the step,
the task weights; `ship_default_model.py` adds its notes), so every tool that reads the
manifest (`magvit-onnx info`, `Generator.classes`, the batch jobs) can print them.
"""
from __future__ import annotations

import json

from magvit_onnx import synthetic
from magvit_onnx.models.config import MagvitConfig

SOURCES = {
    "synthetic": ("our synthetic video set",
                  "magvit_onnx.synthetic: 16x64x64 clips of one circle or triangle moving right, left, up or "
                  "down (bouncing off the walls) or standing still, over soft backgrounds; class = shape x motion"),
    "dead_leaves": ("procedural dead-leaves video",
                    "magvit_onnx.procedural.dead_leaves: many layered shapes of every colour, flat, graded or "
                    "textured, moving, rotating and scaling under camera pans, zooms and shakes"),
    "photos": ("camera moves over photographs",
               "magvit_onnx.procedural.photo_moves: pans, zooms, rotations and shakes over still photographs "
               "with brightness and colour drift and sprites moving across"),
}
"""(short name, description) of the training sources by the `data` spec's source names."""
LIMITS = {
    "synthetic": "trained only on synthetic shapes at 64x64; it has not learned real video",
    "rendered": "trained at 64x64 on rendered clips and camera moves over still photographs, no real video "
                "recording: real footage is reconstructed coarsely and generated regions are rough texture",
}


def source_names(data: str | None) -> list[str]:
    """The source names of a `data` spec ("synthetic:1,photos=DIR:2" -> ["synthetic", "photos"])."""
    return [part.split(":")[0].split("=")[0].strip() for part in (data or "").split(",") if part.strip()]


def class_entries(config: MagvitConfig, metadata: dict[str, str]) -> list[dict]:
    """[{'id': 0, 'name': ...}, ...]; names where the training data is known (else None)."""
    names: tuple[str | None, ...] = (None,) * config.num_classes
    recorded = json.loads(metadata["class_names"]) if "class_names" in metadata else None
    if recorded is not None and len(recorded) == config.num_classes:
        names = tuple(recorded)  # train_transformer.py records the names of its labelled data
    elif "synthetic" in source_names(metadata.get("data")) and config.num_classes == synthetic.NUM_CLASSES:
        names = synthetic.CLASS_NAMES
    return [{"id": i, "name": name} for i, name in enumerate(names)]


def model_card(config: MagvitConfig, weights: dict, metadata: dict[str, str]) -> dict:
    """A short card: what the weights are, what they were trained on, and the limits known."""
    if weights.get("random_init"):
        return {"summary": f"a random init (seed {weights.get('seed')}) of preset {config.name!r}: it generates "
                           "noise; for tests and benchmarks only",
                "data": None, "training": None, "limits": "untrained"}
    data = metadata.get("data")
    names = source_names(data)
    known = bool(names) and all(name in SOURCES for name in names)
    short = [SOURCES[name][0] for name in names] if known else [data or "data not recorded"]
    trained_on = ", ".join(short[:-1]) + " and " + short[-1] if len(short) > 1 else short[0]
    return {"summary": f"MAGVIT preset {config.name!r} ({config.num_classes} classes, "
                       f"{'x'.join(map(str, config.vq.video_shape))} clips) trained on {trained_on}",
            "data": "; ".join(SOURCES[name][1] for name in names) if known else data,
            "training": {key: metadata[key] for key in sorted(metadata) if key not in ("magvit_config", "class_names")},
            "limits": LIMITS["synthetic"] if names == ["synthetic"] else LIMITS["rendered"] if known else None}
