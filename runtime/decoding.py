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


def by_task_problem(by_task: object, manifest: dict) -> tuple[str, str] | None:
    """What is wrong with `by_task` as the `decoding_by_task` of `manifest` (which needs only
    `tasks`, `decoding`, `latent_shape` and `vocab.codebook_size`), as (key, what it must be),
    or None: tasks the model serves (those the manifest lists, and the mask task where it serves
    it), by their own names, only the settings in TUNED, and values that, over `decoding`, every
    call of that task can use (top_k and top_p not both)."""
    from magvit_onnx.limits import check_decoding  # numpy only
    from magvit_onnx.runtime.tasks import served

    if not isinstance(by_task, dict):
        return "decoding_by_task", "an object of task name -> {setting: value}"
    names = list(served(dict.fromkeys(manifest["tasks"])))
    for task, entry in by_task.items():
        if task not in names:
            return f"decoding_by_task key {task[:80]!r}", f"a task of this model ({', '.join(names)})"
        if not isinstance(entry, dict) or set(entry) - set(TUNED):
            return f"decoding_by_task.{task}", f"an object of some of {', '.join(TUNED)}"
        settings = {**manifest["decoding"], **entry}  # top_p 0 means off in `decoding` only
        try:
            check_decoding(latent_shape=manifest["latent_shape"], codebook_size=manifest["vocab"]["codebook_size"],
                           sampling_temperature=settings["sampling_temperature"],
                           mask_temperature=settings["mask_temperature"], top_k=settings["top_k"],
                           top_p=settings["top_p"] if "top_p" in entry else settings["top_p"] or None)
        except ValueError as e:
            return f"decoding_by_task.{task}", f"settings every call can use ({e})"
    return None
