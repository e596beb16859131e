"""Where the shipped default model lives inside the package."""
from pathlib import Path

DEFAULT_MODEL = Path(__file__).resolve().parent / "default_model"
DEFAULT_WEIGHTS = DEFAULT_MODEL / "weights.safetensors"
DEFAULT_ARTIFACTS = DEFAULT_MODEL / "artifacts"


def default_artifacts() -> Path:
    """The shipped default model's artifacts folder; ArtifactError if this installation has none."""
    from magvit_onnx.runtime.artifacts import ArtifactError

    if not (DEFAULT_ARTIFACTS / "manifest.json").is_file():
        raise ArtifactError(f"no default model is shipped in this installation ({DEFAULT_ARTIFACTS} is missing); "
                            "pass an artifacts folder (--artifacts DIR) made by `python export/export_all.py --out DIR`")
    return DEFAULT_ARTIFACTS
