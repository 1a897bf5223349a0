"""Quality checks on real corpora (the demo tweets, the forum posts): slower than unit tests, marked
``quality`` (``pytest -m "not quality"`` leaves them out); ``make test`` runs them."""

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "/tests/quality/" in str(item.path):
            item.add_marker(pytest.mark.quality)
