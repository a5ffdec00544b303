"""Broker users of their own for this test run, a senders file naming them, and an engine held to it.

RabbitMQ refuses a `user_id` property that differs from the connection's user, so a test that sends
as `unit-maidstone` needs a real broker user of that name: made once per run in the run's vhost and
deleted afterwards. Names carry the run's id, so runs beside each other never share a user.
"""
from __future__ import annotations

import pytest

from tests.conftest import AMQP, RUN_ID, RunningEngine, rabbitmqctl

# Entry name -> what the senders file lets it do (the contract's example, with a health user).
SENDER_ENTRIES = {
    "school-portal": {"notifications": ["school"]},
    "health-referrals": {"notifications": ["health"]},
    "triage-team": {"commands": ["check", "request_information", "provide_information", "triage", "close",
                                 "record_consent"],
                    "roles": ["triage", "manager"], "districts": ["*"]},
    "unit-maidstone": {"commands": ["allocate", "assess", "step_down", "close", "request_information",
                                    "provide_information", "record_consent"],
                       "roles": ["unit_worker", "manager"], "districts": ["Maidstone"]},
}


class BrokerUsers:
    """name ("unit-maidstone") -> its broker user for this run and an AMQP URL that logs in as it."""

    def __init__(self, vhost: str) -> None:
        self.vhost = vhost
        self.users = {name: f"{name}-{RUN_ID}" for name in SENDER_ENTRIES}

    def user(self, name: str) -> str:
        return self.users[name]

    def url(self, name: str) -> str:
        user = self.users[name]
        host = AMQP.split("@", 1)[1]
        return f"amqp://{user}:pw-{RUN_ID}@{host}/{self.vhost}"

    def senders_toml(self) -> str:
        lines = []
        for name, entry in SENDER_ENTRIES.items():
            lines.append(f'[senders."{self.users[name]}"]')
            lines += [f"{key} = {list(value)!r}".replace("'", '"') for key, value in entry.items()]
        return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def broker_users(vhost):
    users = BrokerUsers(vhost)
    for user in users.users.values():
        rabbitmqctl("add_user", user, f"pw-{RUN_ID}")
        rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    yield users
    for user in users.users.values():
        rabbitmqctl("delete_user", user)


@pytest.fixture
def senders_file(broker_users, tmp_path):
    path = tmp_path / "senders.toml"
    path.write_text(broker_users.senders_toml())
    return path


@pytest.fixture
def guarded_engine(settings, senders_file):
    """The engine with EARLYHELP_SENDERS set: every message held to its sender's entry."""
    running = RunningEngine(settings.model_copy(update={"senders": senders_file})).start()
    yield running
    running.stop()


@pytest.fixture
def senders(broker_users, clean_broker):
    """An UpstreamClient per sender, connected as its own broker user: senders["unit-maidstone"]."""
    from earlyhelp.producers.upstream_client import UpstreamClient

    clients: dict[str, UpstreamClient] = {}

    class Clients(dict):
        def __missing__(self, name):
            clients[name] = UpstreamClient(broker_users.url(name))
            return clients[name]

    yield Clients()
    for client in clients.values():
        client.close()
