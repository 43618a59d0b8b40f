"""Shared fixtures. Emulator-backed tests carry the ``emulator`` marker; their emulators are started
here on free ports (once per session) and stopped afterwards.

On a machine without the emulator binaries those tests are skipped (and .ci/run prints a loud line);
with ``REQUIRE_EMULATORS=1`` they fail instead."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from devstack import emulators

PROJECT = "test-hashtags"
INSTANCE = "test-instance"
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "artifacts"))


def pytest_collection_modifyitems(config, items):
    ok, why = emulators.emulators_available()
    if ok:
        return
    if os.environ.get("REQUIRE_EMULATORS") == "1":
        raise pytest.UsageError(f"emulators required but missing: {why}")
    skip = pytest.mark.skip(reason=f"EMULATORS MISSING: {why}")
    for item in items:
        if "emulator" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def bigtable_emulator(tmp_path_factory):
    em = emulators.start_bigtable(log_dir=tmp_path_factory.mktemp("bigtable"))
    old = os.environ.get("BIGTABLE_EMULATOR_HOST")
    os.environ["BIGTABLE_EMULATOR_HOST"] = em.address
    yield em
    em.stop()
    if old is None:
        os.environ.pop("BIGTABLE_EMULATOR_HOST", None)
    else:
        os.environ["BIGTABLE_EMULATOR_HOST"] = old


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory):
    em = emulators.start_pubsub(log_dir=tmp_path_factory.mktemp("pubsub"))
    old = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = em.address
    yield em
    em.stop()
    if old is None:
        os.environ.pop("PUBSUB_EMULATOR_HOST", None)
    else:
        os.environ["PUBSUB_EMULATOR_HOST"] = old


@pytest.fixture
def table_name() -> str:
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def store(bigtable_emulator, table_name):
    """A fresh table (created by the same code the local stack uses) and an adapter over it."""
    from hashtag_store import BigtableStore, create_table

    create_table(PROJECT, INSTANCE, table_name)
    return BigtableStore(PROJECT, INSTANCE, table_name)


# ---- the web app over an in-memory store (tests of the code above the store) -----------------
class Clock:
    """Monotonic seconds under the test's control (the page cache and the circuit breaker)."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake_store():
    from tests.unit.serving_fakes import FakeStore, doc

    return FakeStore({"love": doc()})


@pytest.fixture
def app(fake_store, clock):
    from hashtags.settings import Settings
    from serving import create_app

    return create_app(Settings(), fake_store, clock=clock)


@pytest.fixture
def client(app):
    return app.test_client()
