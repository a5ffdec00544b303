"""TLS end to end with the authority's own CA: amqps:// to RabbitMQ and PostgreSQL with sslmode=verify-full.

The module makes a CA and a server certificate for localhost / 127.0.0.1 (the `openssl` CLI), starts a
RabbitMQ node of its own with a TLS listener and a PostgreSQL instance of its own with ssl=on and only
`hostssl` entries in pg_hba.conf (docs/engineering.md, "Three RabbitMQ nodes on one machine"), and stops
both at the end whatever happens. The machine's default node (5672) and cluster (5432) are never touched.

It shows: the engine takes a notification over amqps, stores it over verify-full and publishes its
event; `earlyhelp submit` (pika) works over amqps with EARLYHELP_BROKER_CA_FILE; a client given the wrong
CA, no CA (system CAs only) or the wrong host name is refused, by kombu, pika and psycopg alike, and
nothing falls back to plaintext. A missing binary skips the module, except under CI=true, where it fails.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import RunningEngine, free_port
from tests.factories import encode, notification_body

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"TLS test cannot run under CI: {reason}")
    pytest.skip(reason)


def _run(*args: str, timeout: float = 60, **kwargs) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kwargs)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}")
    return done.stdout


def _as(user: str, *args: str, **kwargs) -> str:
    return _run("runuser", "-u", user, "--", *args, **kwargs)


# -- certificates -----------------------------------------------------------------------------------
def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    stem = name.lower().replace(" ", "-")
    key, cert = folder / f"{stem}.key", folder / f"{stem}.pem"
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "3", "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return key, cert


def make_server_cert(folder: Path, ca_key: Path, ca_cert: Path) -> tuple[Path, Path]:
    key, csr, cert, ext = (folder / n for n in ("server.key", "server.csr", "server.pem", "server.ext"))
    ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
                   "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
         "-subj", "/CN=localhost")
    _run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
         "-CAcreateserial", "-out", str(cert), "-days", "3", "-extfile", str(ext))
    return key, cert


def owned_copy(source: Path, target: Path, user: str, mode: int) -> Path:
    shutil.copyfile(source, target)
    shutil.chown(target, user, user)
    target.chmod(mode)
    return target


# -- a RabbitMQ node of our own with a TLS listener ------------------------------------------------
class TlsRabbit:
    def __init__(self, base: Path, ca: Path, cert: Path, key: Path) -> None:
        self.folder = base / "rmq"
        self.folder.mkdir()
        self.node = f"eh-tls-{RUN}@{socket.gethostname().split('.')[0]}"
        self.port, self.dist_port, self.tls_port = free_port(), free_port(), free_port()
        files = {n: owned_copy(p, self.folder / n, "rabbitmq", 0o600)
                 for n, p in (("ca.pem", ca), ("server.pem", cert), ("server.key", key))}
        (self.folder / "enabled_plugins").write_text("[].\n")
        (self.folder / "advanced.config").write_text("[].\n")
        (self.folder / "rabbitmq.conf").write_text(
            "loopback_users = none\n"
            f"listeners.ssl.default = {self.tls_port}\n"
            f"ssl_options.cacertfile = {files['ca.pem']}\n"
            f"ssl_options.certfile = {files['server.pem']}\n"
            f"ssl_options.keyfile = {files['server.key']}\n"
            "ssl_options.verify = verify_none\n"
            "ssl_options.fail_if_no_peer_cert = false\n")
        _run("chown", "-R", "rabbitmq:rabbitmq", str(self.folder))
        self.env = dict(os.environ, RABBITMQ_NODENAME=self.node, RABBITMQ_NODE_PORT=str(self.port),
                        RABBITMQ_DIST_PORT=str(self.dist_port), RABBITMQ_MNESIA_BASE=str(self.folder / "mnesia"),
                        RABBITMQ_LOG_BASE=str(self.folder / "log"), RABBITMQ_PID_FILE=str(self.folder / "pid"),
                        RABBITMQ_ENABLED_PLUGINS_FILE=str(self.folder / "enabled_plugins"),
                        RABBITMQ_CONFIG_FILE=str(self.folder / "rabbitmq"),
                        RABBITMQ_ADVANCED_CONFIG_FILE=str(self.folder / "advanced.config"))
        self.started = False

    def start(self) -> None:
        _run("rabbitmq-server", "-detached", env=self.env)
        self.started = True

    def await_startup(self, timeout: float = 120) -> None:
        """Wait until the node has booted; if it never does, fail with the node's own log.

        `rabbitmq-server -detached` returns before the node registers with epmd, and until it has,
        `rabbitmqctl await_startup` fails at once ("not running at all") instead of waiting. The module
        used to cover that gap by making PostgreSQL in between; once in CI that was quicker than the
        node, and all four tests errored. So: ask again until the node answers or the time is up.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.ctl("await_startup", "--timeout", "60", timeout=90)
                return
            except AssertionError as error:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{error}\n--- node {self.node} log ---\n{self.log_tail()}") from None
            time.sleep(0.5)

    def log_tail(self, chars: int = 3000) -> str:
        logs = sorted((self.folder / "log").glob("*.log")) if (self.folder / "log").exists() else []
        text = "".join(f"[{p.name}]\n{p.read_text(errors='replace')[-chars:]}\n" for p in logs)
        return text or f"(no log under {self.folder / 'log'})"

    def ctl(self, *args: str, timeout: float = 60) -> str:
        return _run("rabbitmqctl", "-q", "-n", self.node, *args, timeout=timeout)

    def stop(self) -> None:
        if not self.started:
            return
        try:
            self.ctl("stop", timeout=60)
        except Exception:  # noqa: BLE001 - then by its own pid, never by name
            pid_file = self.folder / "pid"
            if pid_file.exists():
                subprocess.run(["kill", "-9", pid_file.read_text().strip()], check=False)
        self.started = False


# -- a PostgreSQL instance of our own with ssl=on and hostssl only -------------------------------------
class TlsPostgres:
    def __init__(self, base: Path, bin_dir: Path, cert: Path, key: Path) -> None:
        self.folder, self.bin = base / "pg", bin_dir
        self.folder.mkdir()
        shutil.chown(self.folder, "postgres", "postgres")
        self.data, self.port = self.folder / "data", free_port()
        self.cert, self.key = (owned_copy(p, self.folder / n, "postgres", 0o600)
                               for n, p in (("server.pem", cert), ("server.key", key)))
        self.started = False

    def start(self) -> None:
        _as("postgres", str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "--no-sync", "-E", "UTF8")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nport = {self.port}\nlisten_addresses = 'localhost,127.0.0.2'\n"
                       f"unix_socket_directories = '{self.folder}'\nssl = on\n"
                       f"ssl_cert_file = '{self.cert}'\nssl_key_file = '{self.key}'\nfsync = off\n")
        # No `host` or `hostnossl` line: a connection without TLS is refused by the server itself.
        (self.data / "pg_hba.conf").write_text("local all all trust\n"
                                               "hostssl all all 127.0.0.1/32 trust\nhostssl all all 127.0.0.2/32 trust\n"
                                               "hostssl all all ::1/128 trust\n")
        self.started = True
        _as("postgres", str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "log"),
            "-w", "-t", "30", "start")

    def stop(self) -> None:
        if self.started:
            subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / "pg_ctl"), "-D", str(self.data),
                            "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def tls_services():
    for binary in ("openssl", "rabbitmq-server", "rabbitmqctl", "runuser"):
        if shutil.which(binary) is None:
            _unavailable(f"{binary} is not on PATH")
    initdbs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not initdbs:
        _unavailable("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin")
    if os.geteuid() != 0:
        _unavailable("starting a RabbitMQ node and a PostgreSQL instance as their users needs root")

    base = Path(tempfile.mkdtemp(prefix=f"earlyhelp-tls-{RUN}-", dir="/tmp"))
    base.chmod(0o755)
    rabbit = postgres = None
    try:
        certs = base / "certs"
        certs.mkdir()
        ca_key, ca = make_ca(certs, "Test Council CA")
        _, wrong_ca = make_ca(certs, "Somebody Else CA")
        key, cert = make_server_cert(certs, ca_key, ca)
        rabbit = TlsRabbit(base, ca, cert, key)
        postgres = TlsPostgres(base, Path(initdbs[-1]).parent, cert, key)
        started = time.monotonic()
        rabbit.start()  # boots while PostgreSQL is made
        postgres.start()
        rabbit.await_startup()
        print(f"\nown RabbitMQ node {rabbit.node} (amqps on {rabbit.tls_port}) and PostgreSQL "
              f"(ssl=on, port {postgres.port}) up in {time.monotonic() - started:.1f} s")
        import psycopg

        with psycopg.connect(f"host=localhost port={postgres.port} user=postgres dbname=postgres "
                             f"sslmode=verify-full sslrootcert={ca}", autocommit=True) as conn:
            conn.execute("CREATE DATABASE earlyhelp")
        yield {"ca": ca, "wrong_ca": wrong_ca, "rabbit": rabbit, "postgres": postgres,
               "amqps": f"amqps://guest:guest@localhost:{rabbit.tls_port}//",
               "pg": f"postgresql+psycopg://postgres@localhost:{postgres.port}/earlyhelp",
               "pg_port": postgres.port}
    finally:
        for service in (postgres, rabbit):
            if service is not None:
                service.stop()
        shutil.rmtree(base, ignore_errors=True)


def verify_full(services, ca=None) -> str:
    return f"{services['pg']}?sslmode=verify-full&sslrootcert={ca or services['ca']}"


def _chain(error: BaseException) -> str:
    """The error and its causes, as text: pika and kombu wrap the ssl module's error."""
    parts, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        parts.append(f"{type(error).__name__}: {error!r}")
        error = error.__cause__ or error.__context__
    return " <- ".join(parts)


def test_the_engine_and_submit_work_over_amqps_and_verify_full_with_the_authoritys_ca(tls_services):
    import pika
    from click.testing import CliRunner
    from sqlalchemy import select, text

    from earlyhelp.cli.main import cli
    from earlyhelp.config import Settings
    from earlyhelp.persistence.database import make_engine
    from earlyhelp.persistence.tables import cases
    from earlyhelp.producers.upstream_client import pika_parameters

    s = tls_services
    settings = Settings(broker_url=s["amqps"], broker_ca_file=s["ca"], database_url=verify_full(s),
                        metrics_port=0, sla_scan_interval=1)
    engine = RunningEngine(settings).start()  # migrates over verify-full, declares the topology over amqps
    try:
        tap_conn = pika.BlockingConnection(pika_parameters(s["amqps"], s["ca"]))
        channel = tap_conn.channel()
        tap = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(tap, "earlyhelp.events", routing_key="#")

        body = notification_body(notification_id=f"tls-{RUN}-000001")
        result = CliRunner().invoke(cli, ["--log-level", "WARNING", "submit", "-"], input=encode(body),
                                    env={"EARLYHELP_BROKER_URL": s["amqps"], "EARLYHELP_BROKER_CA_FILE": str(s["ca"])})
        assert result.exit_code == 0, result.output
        print(f"earlyhelp submit over amqps with EARLYHELP_BROKER_CA_FILE: {result.output.strip().splitlines()[-2:]}")

        received, seen, deadline = None, [], time.monotonic() + 20
        while received is None and time.monotonic() < deadline:
            method, _, raw = channel.basic_get(tap, auto_ack=True)
            if method is None:
                tap_conn.sleep(0.05)
                continue
            seen.append((method.routing_key, raw[:300]))
            if method.routing_key.startswith("case.received."):
                received = json.loads(raw)
        assert received is not None and received["notification_id"] == body["notification_id"], seen
        print(f"engine published case.received for {received['notification_id']} over amqps")

        # The connections on the node are all TLS; so are the engine's sessions in PostgreSQL.
        broker_side = s["rabbit"].ctl("list_connections", "user", "ssl", "ssl_protocol").split("\n")
        rows = [line.split("\t") for line in broker_side if line.strip() and not line.startswith("user")]
        assert rows and all(row[1] == "true" for row in rows), broker_side
        print(f"broker connections (user, ssl, protocol): {rows}")
        db = make_engine(verify_full(s))
        with db.connect() as conn:
            stored = conn.execute(select(cases.c.case_id)).scalars().all()
            plain = conn.execute(text("SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) "
                                      "WHERE datname = 'earlyhelp' AND NOT ssl")).scalar_one()
            tls = conn.execute(text("SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) "
                                    "WHERE datname = 'earlyhelp' AND ssl")).scalar_one()
        db.dispose()
        assert received["case_id"] in stored
        assert plain == 0 and tls >= 2  # the engine's pool and this one
        print(f"case {received['case_id']} stored in PostgreSQL; sessions with TLS {tls}, without {plain}")
        tap_conn.close()
    finally:
        engine.stop()


def test_an_untrusted_certificate_is_refused_by_every_client_never_plaintext(tls_services):
    import psycopg
    from click.testing import CliRunner

    from earlyhelp.cli.main import cli
    from earlyhelp.consumers.runtime import broker_connection
    from earlyhelp.producers.upstream_client import UpstreamClient

    s = tls_services
    wrong_host = s["amqps"].replace("localhost", "127.0.0.2")  # the node answers there; the certificate does not name it
    cases = [("wrong CA", s["amqps"], s["wrong_ca"]), ("no CA (system CAs)", s["amqps"], None),
             ("right CA, wrong host name", wrong_host, s["ca"])]
    for label, url, ca in cases:
        with pytest.raises(Exception) as kombu_error:
            conn = broker_connection(url, ca)
            try:
                conn.connect()
            finally:
                conn.release()
        assert "CERTIFICATE_VERIFY_FAILED" in _chain(kombu_error.value), _chain(kombu_error.value)
        with pytest.raises(Exception) as pika_error:
            UpstreamClient(url, ca_file=ca).close()
        assert "CERTIFICATE_VERIFY_FAILED" in _chain(pika_error.value) or "certificate verify failed" in str(
            pika_error.value.args), _chain(pika_error.value)
        print(f"{label}: kombu refused ({type(kombu_error.value).__name__}), pika refused "
              f"({type(pika_error.value).__name__}), both certificate verify failed")

    env = {"EARLYHELP_BROKER_URL": s["amqps"], "EARLYHELP_BROKER_CA_FILE": str(s["wrong_ca"])}
    result = CliRunner().invoke(cli, ["--log-level", "WARNING", "submit", "-"], input=encode(notification_body()), env=env)
    assert result.exit_code != 0 and "cannot reach RabbitMQ" in result.output, result.output
    print(f"earlyhelp submit with the wrong CA: exit {result.exit_code}: {result.output.strip().splitlines()[-1]}")

    # A CA file with a plain amqp:// URL is a configuration error, not a quiet plaintext connection.
    result = CliRunner().invoke(cli, ["--log-level", "WARNING", "submit", "-"], input=encode(notification_body()),
                                env={"EARLYHELP_BROKER_URL": f"amqp://guest:guest@localhost:{s['rabbit'].port}//",
                                     "EARLYHELP_BROKER_CA_FILE": str(s["ca"])})
    assert result.exit_code != 0 and "not amqps" in result.output, result.output
    with pytest.raises(ValueError, match="not amqps"):
        broker_connection(f"amqp://guest:guest@localhost:{s['rabbit'].port}//", s["ca"])
    print(f"CA file with an amqp:// URL: exit {result.exit_code}: {result.output.strip()[:160]}")

    base = f"host=localhost port={s['pg_port']} user=postgres dbname=earlyhelp connect_timeout=5"
    for label, extra, expected in [("wrong CA", f"sslmode=verify-full sslrootcert={s['wrong_ca']}", "certificate verify failed"),
                                   ("wrong host name", f"host=127.0.0.2 sslmode=verify-full sslrootcert={s['ca']}", "does not match"),
                                   ("no TLS", "sslmode=disable", "no encryption")]:
        with pytest.raises(psycopg.OperationalError) as pg_error:
            psycopg.connect(f"{base} {extra}").close()
        assert expected in str(pg_error.value), str(pg_error.value)
        print(f"PostgreSQL, {label}: refused: {str(pg_error.value).strip().splitlines()[-1][:140]}")


def test_failover_checks_each_broker_against_its_own_host_name(tls_services):
    """kombu writes the first broker's name into the TLS options in place; the next one is checked by its own."""
    from earlyhelp.consumers.runtime import broker_connection

    s = tls_services
    # The first broker is down (nothing listens there) and its name is not the second one's.
    urls = f"amqps://guest:guest@127.0.0.2:{free_port()}//;{s['amqps']}"
    conn = broker_connection(urls, s["ca"])
    try:
        conn.ensure_connection(max_retries=3, interval_start=0, interval_step=0.1)
        assert conn.connected and conn.ssl["server_hostname"] == "127.0.0.1"  # kombu connects to localhost as 127.0.0.1
        print(f"failover to the second broker over amqps: connected, checked as {conn.ssl['server_hostname']}")
    finally:
        conn.release()


def test_the_operators_commands_reach_an_amqps_broker_through_the_authoritys_ca(tls_services):
    from click.testing import CliRunner

    from earlyhelp.cli.main import cli
    from earlyhelp.consumers.runtime import broker_connection
    from earlyhelp.consumers.topology import declare_topology

    s = tls_services
    conn = broker_connection(s["amqps"], s["ca"])
    try:
        declare_topology(conn.channel())  # what serve declares: the queues the operators look at
    finally:
        conn.release()
    env = {"EARLYHELP_BROKER_URL": s["amqps"], "EARLYHELP_BROKER_CA_FILE": str(s["ca"])}
    queues = CliRunner().invoke(cli, ["--log-level", "WARNING", "queues"], env=env)
    assert queues.exit_code == 0 and "earlyhelp.dead-letter" in queues.output, queues.output
    listed = CliRunner().invoke(cli, ["--log-level", "WARNING", "dead-letters", "list", "--json"], env=env)
    assert listed.exit_code == 0 and json.loads(listed.stdout) == [], listed.output
    print("earlyhelp queues and dead-letters list over amqps with EARLYHELP_BROKER_CA_FILE: exit 0")
    wrong = {**env, "EARLYHELP_BROKER_CA_FILE": str(s["wrong_ca"])}
    for args in (["queues"], ["dead-letters", "list"]):
        refused = CliRunner().invoke(cli, ["--log-level", "WARNING", *args], env=wrong)
        assert refused.exit_code != 0 and "Traceback" not in refused.output, refused.output
        print(f"earlyhelp {' '.join(args)} with the wrong CA: exit {refused.exit_code}: "
              f"{refused.output.strip().splitlines()[-1][:120]}")
