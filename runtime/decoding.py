"""Decoding defaults of a model, per task: the official values, or the ones chosen for this model.

A manifest's `decoding` holds the official defaults (12 steps, cosine, mask temperature 4.5,
sampling temperature 1, no guidance, no top-k / top-p; docs/official-behaviour.md#decoding).
A manifest may add `decoding_by_task`: per task, values of the settings in `TUNED` chosen for
this model on validation data (scripts/choose_decoding.py; never on the evaluation set). Callers
pick with `choice`: "model" (the default) applies them, "official" ignores them.
"""
from __future__ import annotations

CHOICES = ("model", "official")
# The settings a model's per-task defaults may set (steps, schedule and guidance stay global).
TUNED = ("sampling_temperature", "mask_temperature", "top_k", "top_p")


def check_choice(choice: object) -> str:
    if choice not in CHOICES:
        raise ValueError(f"decoding must be one of {', '.join(map(repr, CHOICES))}, got {choice!r}")
    return choice


def by_task(manifest: dict, task: str, choice: str = "model") -> dict:
    """The settings `choice` takes from the manifest's per-task defaults for canonical task
    `task` (none for "official", or where the manifest has none)."""
    return manifest.get("decoding_by_task", {}).get(task, {}) if check_choice(choice) == "model" else {}


def defaults(manifest: dict, task: str, choice: str = "model") -> dict:
    """All decoding defaults of canonical task `task` (keys as in the manifest's `decoding`)."""
    return {**manifest["decoding"], **by_task(manifest, task, choice)}
