from pathlib import Path

import pytest

from helpers import small_config


@pytest.fixture
def config():
    return small_config()


@pytest.fixture(scope="session")
def small_artifacts(tmp_path_factory):
    """`small_artifacts(seed)`: the small config exported with random weights drawn from
    `seed`, once per seed per test session (tests copy the folder before changing it)."""
    from magvit_onnx.export.exporter import export_all, seeded_random_models

    folders: dict[int, Path] = {}

    def get(seed: int) -> Path:
        if seed not in folders:
            config = small_config()
            folder = tmp_path_factory.mktemp(f"artifacts-seed{seed}")
            export_all(config, *seeded_random_models(config, seed=seed), folder)
            folders[seed] = folder
        return folders[seed]

    return get
