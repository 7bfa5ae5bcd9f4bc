import os
import shutil
import tempfile

import pytest

pytest_plugins = ["pytester"]

_CACHE_ENV = "CONFORMANCE_CACHE_DIR"
_cache_key = pytest.StashKey[str | None]()  # the variable's value before the tests


def pytest_configure(config: pytest.Config) -> None:
    """The kit's own tests (and the commands they start) remember validated specs in a
    folder of their own, never in the user's cache; the cache itself is tested in
    tests/test_validated.py."""
    config.stash[_cache_key] = os.environ.get(_CACHE_ENV)
    os.environ[_CACHE_ENV] = tempfile.mkdtemp(prefix="conformance-test-cache-")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(os.environ[_CACHE_ENV], ignore_errors=True)
    before = config.stash.get(_cache_key, None)
    if before is None:
        os.environ.pop(_CACHE_ENV, None)
    else:
        os.environ[_CACHE_ENV] = before

