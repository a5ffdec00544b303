"""bootstrap (earlyhelp/bootstrap.py): settings in, a wired engine out; the runtime builds nothing itself."""
from __future__ import annotations

import pytest

from earlyhelp.bootstrap import bootstrap
from earlyhelp.config import Settings
from earlyhelp.workflows.commands import COMMANDS
from earlyhelp.workflows.sla_policy import PolicyError


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(broker_url="memory://", database_url=f"sqlite:///{tmp_path / 'e.sqlite'}", metrics_port=0)


def test_the_parts_share_one_database_flow_tracker_and_status(settings) -> None:
    runtime = bootstrap(settings)
    try:
        processor, relay, scanner = runtime.processor, runtime.relay, runtime.scanner
        assert processor.engine is relay.engine is scanner.engine is runtime.db
        assert processor.flow.sla is scanner.tracker and processor.flow.senders is runtime.senders
        assert processor.flow.commands is COMMANDS and set(processor.command_models) == set(COMMANDS)
        assert processor.should_stop == runtime.stopping.is_set
        processor.on_database_state(True)
        assert runtime.database_up and runtime.ready()[1] == "broker=down database=up"
        relay.on_database_state(False)
        assert not runtime.database_up
        assert [t.__name__ for t in runtime.extra_threads] == ["sla-scanner"]
        assert [t.__name__ for t in bootstrap(settings, case_gauges=True).extra_threads] == ["sla-scanner",
                                                                                               "case-gauges"]
    finally:
        runtime.db.dispose()


def test_a_bad_sla_policy_stops_the_engine_before_anything_connects(settings, tmp_path) -> None:
    bad = tmp_path / "policy.toml"
    bad.write_text("[stages.triage]\nallowance = 'soon'\n")
    with pytest.raises(PolicyError):
        bootstrap(settings.model_copy(update={"sla_policy": bad}))


def test_the_relay_runs_in_a_process_of_its_own_only_on_postgresql_with_a_real_broker(settings) -> None:
    from earlyhelp.producers.outbox_relay import OutboxRelay
    from earlyhelp.producers.relay_process import RelayProcess

    postgres = "postgresql+psycopg://postgres@127.0.0.1/earlyhelp"  # not connected to: bootstrap builds only
    amqp = "amqp://guest:guest@127.0.0.1:5672//"
    cases = [(settings, OutboxRelay),  # SQLite, memory://
             (settings.model_copy(update={"database_url": postgres}), OutboxRelay),  # memory://
             (Settings(database_url=postgres, broker_url=amqp, metrics_port=0), RelayProcess),
             (Settings(database_url=postgres, broker_url=amqp, metrics_port=0, relay="thread"), OutboxRelay)]
    for case_settings, kind in cases:
        runtime = bootstrap(case_settings)
        try:
            assert type(runtime.relay) is kind, case_settings.relay
        finally:
            runtime.db.dispose()


@pytest.mark.parametrize("database_url, broker_url, needs", [
    ("sqlite:///e.sqlite", "amqp://guest:guest@127.0.0.1:5672//", "needs PostgreSQL"),
    ("postgresql+psycopg://postgres@127.0.0.1/e", "memory://", "needs a real broker")])
def test_a_relay_process_where_it_cannot_work_is_a_configuration_error_naming_why(database_url, broker_url,
                                                                                  needs) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=needs):
        Settings(database_url=database_url, broker_url=broker_url, relay="process")
