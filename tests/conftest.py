import pytest

from helpers import small_config


@pytest.fixture
def config():
    return small_config()
