"""Fixtures for the model tests: Keras itself and a config location to report at."""

from __future__ import annotations

import pytest

from cnncli.errors import Location
from cnncli.runtime import import_keras

#: Where a lookup reports in tests that call the model code without a config file.
WHERE = Location(file="c.yaml", key="model.layers[0]", line=3, column=5)


@pytest.fixture(scope="session")
def keras():
    return import_keras()
