"""Where the shipped default model lives inside the package."""
from pathlib import Path

DEFAULT_MODEL = Path(__file__).resolve().parent / "default_model"
DEFAULT_WEIGHTS = DEFAULT_MODEL / "weights.safetensors"
DEFAULT_ARTIFACTS = DEFAULT_MODEL / "artifacts"
