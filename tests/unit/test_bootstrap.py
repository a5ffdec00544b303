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
