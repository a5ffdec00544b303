"""What the relay process reports crosses to the engine's metrics and readiness (producers/relay_process.py).
Here the child's side is played by this process writing the shared values; the integration tests
(tests/integration/test_relay_process.py) run the real child."""
from __future__ import annotations

from prometheus_client import REGISTRY

from earlyhelp.config import Settings
from earlyhelp.producers.relay_process import RelayProcess


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_published_counts_blocked_and_database_reports_are_forwarded_once_each() -> None:
    states: list[bool] = []
    relay = RelayProcess(Settings(database_url="postgresql+psycopg://postgres@127.0.0.1/x"), states.append)
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
