"""The engine's side of the relay process (producers/relay_process.py): what the child reports reaches the
metrics and readiness, and a child that cannot be started does not end the supervising thread. Here the
child is played by this process; tests/integration/test_relay_process.py runs the real one."""
from __future__ import annotations

import threading
import time

from prometheus_client import REGISTRY

from earlyhelp.config import Settings
from earlyhelp.producers import relay_process
from earlyhelp.producers.relay_process import RelayProcess

SETTINGS = Settings(database_url="postgresql+psycopg://postgres@127.0.0.1/x")


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_published_counts_blocked_and_database_reports_are_forwarded_once_each() -> None:
    states: list[bool] = []
    relay = RelayProcess(SETTINGS, states.append)
    reports = relay._reports  # the child's handle on the shared values
    published = sample("earlyhelp_outbox_published_total")

    relay._forward()
    assert states == [] and sample("earlyhelp_outbox_published_total") == published  # nothing reported yet

    reports.add_published(3)
    reports.add_published(4)
    reports.set_blocked(True)
    reports.database_state(False)
    relay._forward()
    relay._forward()  # read twice, counted once
    assert sample("earlyhelp_outbox_published_total") == published + 7
    assert sample("earlyhelp_broker_blocked") == 1
    assert states == [False]

    reports.set_blocked(False)
    reports.database_state(True)
    relay._forward()
    assert sample("earlyhelp_broker_blocked") == 0
    assert states == [False, True]

    # Every read is a report: an "up" like the last one still reaches /readyz, which the batch processor
    # may have set down meanwhile (the relay's idle reads are what notice the database is back).
    reports.database_state(True)
    relay._forward()
    assert states == [False, True, True]


class _Unstartable:
    """A child process whose first start fails (as when the machine is out of processes), then runs."""
    starts = 0

    def __init__(self, **_kwargs) -> None:
        self.pid, self.exitcode = None, None

    def start(self) -> None:
        _Unstartable.starts += 1
        if _Unstartable.starts == 1:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        self.pid = 4242

    def is_alive(self) -> bool:
        return True


def test_a_child_that_cannot_be_started_is_tried_again_and_the_supervisor_goes_on(monkeypatch) -> None:
    monkeypatch.setattr(relay_process, "FORWARD_EVERY_S", 0.01)
    relay = RelayProcess(SETTINGS, lambda up: None)
    monkeypatch.setattr(relay._context, "Process", _Unstartable)
    stop = threading.Event()
    supervisor = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    supervisor.start()
    deadline = time.monotonic() + 5  # the first retry comes after a second's backoff
    while relay.pid is None and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    supervisor.join(2)
    assert _Unstartable.starts == 2 and relay.pid == 4242, "started again after the failed start"
    assert not supervisor.is_alive() and relay._stop.value == 1, "stopped in order, the child told to stop"
    assert relay.restarts == 0, "a start that failed is not a child that ended"
