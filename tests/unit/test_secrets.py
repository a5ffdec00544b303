"""Passwords never printed: URLs (several joined by ';' too), settings, configuration errors, logs."""
from __future__ import annotations

import io
import json
import logging

import pytest
import sqlalchemy as sa

from earlyhelp.config import Settings
from earlyhelp.logs import configure_logging, describe_error, get_logger
from earlyhelp.secrets import SecretUrl, mask_secrets

FAILOVER = "amqp://alice:pw-one@h1:5672//;amqp://bob:pw-two@h2:5672//;amqps://carol:pw%3Bthree@h3/vh"


@pytest.mark.parametrize("text, expected", [
    ("amqp://guest:guest@localhost:5672//", "amqp://guest:***@localhost:5672//"),
    (FAILOVER, "amqp://alice:***@h1:5672//;amqp://bob:***@h2:5672//;amqps://carol:***@h3/vh"),
    ("postgresql+psycopg://eh:s3cret@db:5432/earlyhelp", "postgresql+psycopg://eh:***@db:5432/earlyhelp"),
    # A raw '@' or '/' in a password (not percent-encoded) is masked whole, not cut at the first '@'.
    ("amqp://eng:p@ss/w0rd@rabbit/vh", "amqp://eng:***@rabbit/vh"),
    ("connect to 'amqp://a:x1@h' failed, then amqp://b:x2@h2", "connect to 'amqp://a:***@h' failed, then amqp://b:***@h2"),
    ("postgresql://db/earlyhelp?sslmode=verify-full&password=s3cret", "postgresql://db/earlyhelp?sslmode=verify-full&password=***"),
    ("host=db user=eh password='a b c' dbname=x", "host=db user=eh password=*** dbname=x"),
    ("amqp://localhost//", "amqp://localhost//"),  # no credentials: nothing to mask
    ("amqp://token@localhost//", "amqp://token@localhost//"),
    ("memory://", "memory://"),
])
def test_every_password_in_every_url_is_masked(text, expected):
    assert mask_secrets(text) == expected


def test_settings_keep_plain_urls_for_the_code_and_never_show_passwords():
    settings = Settings(broker_url=FAILOVER, database_url="postgresql://eh:db-secret@db/earlyhelp")
    # The code connects with the real strings ...
    assert str(settings.broker_url) == FAILOVER and settings.broker_url.startswith("amqp://alice:pw-one@")
    assert settings.database_url == "postgresql+psycopg://eh:db-secret@db/earlyhelp"
    # ... while repr, str and a copy with new values show none of the passwords.
    copied = settings.model_copy(update={"broker_url": "amqp://x:copied-secret@h//"})
    for shown in (repr(settings), str(settings), repr(copied), f"{settings.broker_url!r}", repr([settings.database_url])):
        assert not any(p in shown for p in ("pw-one", "pw-two", "three", "db-secret", "copied-secret")), shown
    assert isinstance(settings.broker_url, SecretUrl) and settings.broker_url.masked.count("***") == 3


def test_a_bad_database_url_is_refused_without_echoing_it(monkeypatch):
    monkeypatch.setenv("EARLYHELP_DATABASE_URL", "mysql://eh:db-secret@db/earlyhelp")
    with pytest.raises(Exception) as refused:
        Settings()
    assert "EARLYHELP_DATABASE_URL must be" in str(refused.value)
    assert "db-secret" not in str(refused.value) and "db-secret" not in repr(refused.value)


def test_the_cli_configuration_error_shows_no_password():
    from click.testing import CliRunner

    from earlyhelp.cli.main import cli

    result = CliRunner().invoke(cli, ["cases"], env={"EARLYHELP_DATABASE_URL": "mysql://eh:db-secret@db/x",
                                                     "EARLYHELP_METRICS_PORT": "amqp://a:port-secret@h"})
    assert result.exit_code == 1 and "configuration error" in result.output
    assert "db-secret" not in result.output and "port-secret" not in result.output


def test_help_never_shows_a_password_from_the_environment():
    from click.testing import CliRunner

    from earlyhelp.cli.main import cli

    env = {"EARLYHELP_BROKER_URL": FAILOVER, "EARLYHELP_DATABASE_URL": "postgresql://eh:db-secret@db/x",
           "EARLYHELP_MANAGEMENT_URL": "http://ops:mgmt-secret@h:15672"}
    commands = [[]] + [[name] for name in cli.commands] + [["dead-letters", sub] for sub in
                                                            cli.commands["dead-letters"].commands]
    for args in commands:
        result = CliRunner().invoke(cli, [*args, "--help"], env=env)
        assert result.exit_code == 0, (args, result.output)
        assert not any(p in result.output for p in ("pw-one", "pw-two", "db-secret", "mgmt-secret")), args


# Kept off the line that runs the query: a traceback quotes source lines (code, not data), and the
# test looks for these strings in the log.
QUERY, PARAMETERS = sa.text("SELECT * FROM no_such_table " + "WHERE given_name = :name"), {"name": "Sam " + "Taylor"}


def _database_error() -> Exception:
    engine = sa.create_engine("sqlite://")
    try:
        with engine.connect() as conn:
            conn.execute(QUERY, PARAMETERS)
    except sa.exc.DBAPIError as error:
        return error
    raise AssertionError("the query should have failed")


def test_database_errors_are_described_by_type_and_sqlstate_never_sql_or_parameters():
    error = _database_error()
    assert "Sam Taylor" in str(error)  # what SQLAlchemy's own message would have leaked
    described = describe_error(error)
    assert described == "OperationalError from sqlite3.OperationalError (SQLSTATE SQLITE_ERROR)"
    assert describe_error(ValueError("bad amqp://a:pw-x@h")) == "ValueError: bad amqp://a:***@h"


def test_logs_carry_the_type_and_sqlstate_and_mask_urls_in_every_field():
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    try:
        error = _database_error()
        # What consumers/batch.py does when it dead-letters, and what runtime.py logs as `detail`.
        get_logger("test").error("dead-lettering a message that kept failing", exc_info=error,
                                 detail=str(error)[:200], broker=FAILOVER, nested={"urls": [FAILOVER]})
        # A library's own record through the standard logging module, with a traceback.
        try:
            raise RuntimeError(f"cannot connect to {FAILOVER}") from error
        except RuntimeError:
            logging.getLogger("kombu.test").exception("connection lost to %s", FAILOVER)
    finally:
        configure_logging("INFO")
    text = stream.getvalue()
    for leaked in ("Sam Taylor", "no_such_table WHERE", "pw-one", "pw-two", "three"):
        assert leaked not in text, leaked
    line = json.loads(text.splitlines()[0])
    assert line["exception_type"] == "OperationalError" and line["sqlstate"] == "SQLITE_ERROR"
    assert "SQLSTATE SQLITE_ERROR" in line["exception"] and "Traceback" in line["exception"]
    assert line["broker"].count("***") == 3 and line["nested"]["urls"][0].count("***") == 3
    assert "connection lost to amqp://alice:***@h1" in text and "RuntimeError: cannot connect to" in text


def test_several_broker_urls_are_all_masked_by_the_engines_helper():
    from earlyhelp.consumers.runtime import url_without_password

    assert url_without_password(FAILOVER).count("***") == 3
    assert "pw-" not in url_without_password(FAILOVER)
