"""An artifacts folder: three ONNX graphs + `manifest.json`, verified before use.

    artifacts/
      manifest.json           format version, model config, token layout, tasks, decoding
                              defaults, graph I/O, provenance, sha256 of every file
      vq_encoder.onnx         video [B, T, H, W, 3] float32 in [0, 1] -> tokens [B, t, h, w] int64
      transformer_step.onnx   one COMMIT step with sampling inside the graph
      vq_decoder.onnx         tokens [B, t, h, w] int64 -> video [B, T, H, W, 3] float32

`load_manifest(folder)` refuses a folder whose format version is not ours, or any file
whose sha256 differs from the manifest (tampered or truncated), before a session exists.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

FORMAT_VERSION = 1
GRAPHS = ("vq_encoder", "transformer_step", "vq_decoder")


class ArtifactError(ValueError):
    """An artifacts folder that cannot be used (missing, tampered, wrong format)."""


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_manifest(folder: str | Path, verify: bool = True) -> dict:
    """Read `folder/manifest.json`; with `verify`, check format version and every sha256."""
    folder = Path(folder)
    path = folder / "manifest.json"
    if not folder.is_dir():
        problem = "no such folder" if not folder.exists() else "not a folder"
        raise ArtifactError(f"{folder}: {problem}; give an artifacts folder (made by `python export/export_all.py "
                            "--out DIR`), or none for the shipped default model")
    if not path.is_file():
        raise ArtifactError(f"{folder} is not an artifacts folder: {path.name} is missing "
                            "(make one with `python export/export_all.py --out DIR`)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path} is not valid JSON: {e}") from None
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(f"{path}: format_version {version!r} is not supported (this magvit-onnx reads "
                            f"format_version {FORMAT_VERSION}); re-export the artifacts with this version")
    if verify:
        for name, entry in manifest["files"].items():
            file = folder / name
            if not file.is_file():
                raise ArtifactError(f"{file} is missing (listed in {path.name})")
            actual = sha256(file)
            if actual != entry["sha256"]:
                raise ArtifactError(f"{file} does not match its manifest: sha256 {actual[:16]}… expected "
                                    f"{entry['sha256'][:16]}… (tampered or truncated; re-export or re-download)")
    return manifest
