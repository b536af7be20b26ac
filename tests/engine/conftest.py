from __future__ import annotations

import pytest

from tests.engine.helpers import register_input_trigger


@pytest.fixture(autouse=True)
def _input_trigger() -> None:
    # Registered before every test: the plugin tests reload the registry, which forgets it.
    register_input_trigger()
