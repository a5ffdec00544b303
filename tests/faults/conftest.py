"""Fault-suite fixtures: break the local RabbitMQ or PostgreSQL on purpose, and always put them back.

Every fault is undone in a `finally` (start_app, the memory watermark and disk limit read before the
test, PostgreSQL started) and the fixture waits until the service answers again before returning, so
the next test, and anyone else on this machine, finds the services as they were.
"""
from __future__ import annotations

import uuid

import pytest

from tests.conftest import RunningEngine
from tests.faults import services
from tests.faults.ledger import Collector


@pytest.fixture(autouse=True)
def _services_answer_before_and_after():
    """A fault test starts only on running services and leaves them running, whatever happened."""
    services.ensure_running()
    yield
    services.ensure_running()


@pytest.fixture
def collector(clean_broker):
    """A durable queue bound to every event: it outlives connection closes and broker restarts."""
    c = Collector(clean_broker, f"faults.collector.{uuid.uuid4().hex[:8]}")
    yield c
    c.delete()


@pytest.fixture
def start_engine(settings):
    """Start in-process engines (the test may monkeypatch first); every one is stopped afterwards."""
    engines: list[RunningEngine] = []

    def start(**overrides) -> RunningEngine:
        running = RunningEngine(settings.model_copy(update=overrides) if overrides else settings).start()
        engines.append(running)
        return running

    yield start
    services.ensure_running()  # an engine can only finish what it holds once the services answer
    for running in engines:
        running.stop()
