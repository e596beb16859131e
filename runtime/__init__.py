"""Torch-free core of magvit-onnx: numpy (+ onnxruntime for sessions) only.

Modules: `vocab` (token layout), `tasks` (the ten task conditions), `schedule`
(mask-ratio schedules), `masking` (COMMIT masking), `commit` (the decoding loop).
"""
