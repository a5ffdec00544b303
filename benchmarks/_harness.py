"""What every benchmark script shares: a vhost and databases of its own, workers as subprocesses,
a subscriber that timestamps events, message builders, rates and the Markdown summary.

Everything a run creates (the RabbitMQ vhost, PostgreSQL databases, SQLite files, `earlyhelp serve`
processes) is removed when the `BenchEnv` context ends, also on Ctrl-C, SIGTERM or the run's time limit.
Only 127.0.0.1 is used: EARLYHELP_BENCH_AMQP (no vhost) and EARLYHELP_BENCH_POSTGRES (an admin URL to
the `postgres` database) change the addresses.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import ServeProcess  # noqa: E402 - the e2e tests' `earlyhelp serve` subprocess

AMQP = os.environ.get("EARLYHELP_BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672")
POSTGRES_ADMIN = os.environ.get("EARLYHELP_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
EVENTS_EXCHANGE = "earlyhelp.events"
NOTIFICATIONS_EXCHANGE = "earlyhelp.notifications"
COMMANDS_EXCHANGE = "earlyhelp.commands"
NOTIFICATIONS_QUEUE = "earlyhelp.engine.notifications"
COMMANDS_QUEUE = "earlyhelp.engine.commands"


class TimeLimit(Exception):
    """The run's own time limit passed: everything is cleaned up and the script exits non-zero."""


def log(*parts) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


def rabbitmqctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True,
                          timeout=120).stdout


# -- the machine ---------------------------------------------------------------------------------
def machine_info() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        rabbit = rabbitmqctl("version").strip()
    except Exception as error:  # noqa: BLE001
        rabbit = f"unknown ({type(error).__name__})"
    try:
        import psycopg

        with psycopg.connect(POSTGRES_ADMIN) as conn:
            pg = conn.execute("SHOW server_version").fetchone()[0]
    except Exception as error:  # noqa: BLE001
        pg = f"unknown ({type(error).__name__})"
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    changed = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "consumers", "producers",
                              "persistence", "workflows", "schemas", "earlyhelp"], capture_output=True,
                             text=True).stdout.splitlines()
    if changed:
        commit = f"{commit or '?'} + {len(changed)} uncommitted engine files"
    return {"nproc": str(os.cpu_count()), "CPU": cpu, "RabbitMQ": rabbit, "PostgreSQL": pg,
            "Python": platform.python_version(), "earlyhelp": commit or "?"}


def machine_markdown() -> str:
    return markdown_table(["machine", ""], list(machine_info().items()))


def markdown_table(headers: list[str], rows: list) -> str:
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# -- lifecycle -----------------------------------------------------------------------------------
class BenchEnv:
    """A vhost, databases and processes of this run; all removed on exit, within `max_seconds`."""

    def __init__(self, name: str, max_seconds: float) -> None:
        self.run_id = uuid.uuid4().hex[:8]
        self.name, self.max_seconds = name, max_seconds
        self.vhost = f"earlyhelp-bench-{name}-{self.run_id}"
        self.amqp_url = f"{AMQP}/{self.vhost}"
        self.databases: list[str] = []
        self.workers: list[Worker] = []
        self._servers: dict[str, int | None] = {}
        self.tmp = Path(tempfile.mkdtemp(prefix=f"earlyhelp-bench-{name}-"))

    def __enter__(self) -> "BenchEnv":
        def on_signal(signum, _frame):
            raise KeyboardInterrupt(f"signal {signum}")

        def on_alarm(_signum, _frame):
            raise TimeLimit(f"the run passed its limit of {self.max_seconds:.0f} s")

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(int(self.max_seconds))
        rabbitmqctl("add_vhost", self.vhost)
        rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        log(f"vhost {self.vhost}; files in {self.tmp}")
        return self

    def __exit__(self, *exc) -> None:
        signal.alarm(0)
        for worker in self.workers:
            worker.close()
        for attempt in range(6):  # the broker may be restarting (another session's fault tests)
            try:
                rabbitmqctl("delete_vhost", self.vhost)
                break
            except Exception as error:  # noqa: BLE001
                if attempt == 5:
                    log("could not delete the vhost", self.vhost, error)
                time.sleep(5)
        import psycopg

        for name in self.databases:
            try:
                with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as error:  # noqa: BLE001
                log("could not drop the database", name, error)
        shutil.rmtree(self.tmp, ignore_errors=True)
        log("cleaned up")

    def server_pids(self) -> dict[str, int | None]:
        """The pids of the RabbitMQ node's beam.smp and of the PostgreSQL postmaster this run uses.

        Asked of the servers themselves, not found by name, so another node or cluster on the machine is
        not counted; asked again when one is gone (a restart by someone else). None: not on this machine.
        """
        if not self._servers or any(pid and not Path(f"/proc/{pid}").exists() for pid in self._servers.values()):
            import psycopg

            beam = int(rabbitmqctl("eval", "os:getpid().").strip().strip('"'))
            with psycopg.connect(POSTGRES_ADMIN) as conn:
                backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
                try:
                    postmaster = _proc_stat(backend)[0]  # a backend's parent is the postmaster
                except OSError:  # EARLYHELP_BENCH_POSTGRES on another machine
                    postmaster = None
            self._servers = {"beam.smp": beam, "postgres": postmaster}
        return self._servers

    def new_postgres(self, label: str, migrate: bool = True) -> str:
        """A fresh PostgreSQL database, migrated, dropped at exit; returns its SQLAlchemy URL."""
        import psycopg

        name = f"earlyhelp_bench_{self.run_id}_{label}"
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        url = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
        if migrate:
            from earlyhelp.persistence.database import migrate as run_migrations

            run_migrations(url)
        return url

    def new_sqlite(self, label: str) -> str:
        from earlyhelp.persistence.database import migrate as run_migrations

        url = f"sqlite:///{self.tmp / (label + '.sqlite')}"
        run_migrations(url)
        return url

    def start_workers(self, count: int, database_url: str, label: str, **env) -> list["Worker"]:
        started = [Worker(self, database_url, self.tmp / f"{label}-{i}.log", env) for i in range(count)]
        for worker in started:
            worker.start()
        self.workers += started
        for worker in started:
            worker.wait_for_log('"engine started"')
        return started


# -- workers ---------------------------------------------------------------------------------------
class Worker(ServeProcess):
    """`earlyhelp serve` as a subprocess (EARLYHELP_METRICS_PORT=0), its JSON logs in a file (tests' ServeProcess)."""

    def __init__(self, bench: BenchEnv, database_url: str, log_path: Path, extra_env: dict) -> None:
        super().__init__({**os.environ, "EARLYHELP_BROKER_URL": bench.amqp_url,
                          "EARLYHELP_DATABASE_URL": database_url, "EARLYHELP_METRICS_PORT": "0",
                          "EARLYHELP_SLA_SCAN_INTERVAL": "30", **{k: str(v) for k, v in extra_env.items()}},
                         log_path)
        self.log = None

    def start(self, wait_ready: bool = False) -> "Worker":
        return super().start(wait_ready)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def memory(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak RSS) in KiB, from /proc/<pid>/status."""
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
        return out

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.stop(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        if self.log is not None:
            super().close()  # kills what is still running, closes the log file
            self.log = None

    def count_handled(self) -> dict[str, int]:
        outcomes: dict[str, int] = {}
        for line in self.log_path.read_text(errors="replace").splitlines():
            if '"message handled"' in line:
                outcome = json.loads(line).get("outcome", "?")
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
        return outcomes


# -- broker --------------------------------------------------------------------------------------
def pika_connection(amqp_url: str):
    import pika

    from earlyhelp.producers.upstream_client import _pika_url

    return pika.BlockingConnection(pika.URLParameters(_pika_url(amqp_url)))


def declare_engine_topology(amqp_url: str) -> None:
    """The engine's exchanges and queues, as `serve` declares them, so messages can be preloaded."""
    from kombu import Connection

    from earlyhelp.consumers.topology import declare_topology

    with Connection(amqp_url) as conn:
        declare_topology(conn.channel())


def purge(amqp_url: str, *queues: str) -> None:
    connection = pika_connection(amqp_url)
    try:
        channel = connection.channel()
        for queue in queues:
            channel.queue_purge(queue)
    finally:
        connection.close()


def queue_depth(amqp_url: str, queue: str) -> int:
    connection = pika_connection(amqp_url)
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()


def preload(amqp_url: str, exchange: str, messages, expect_queue: str, expect: int, timeout: float = 300) -> float:
    """Publish (routing_key, body) pairs without confirms, then wait until `expect_queue` holds `expect`.

    Returns the publishing rate. The queue's depth is the check that every message arrived.
    """
    import pika

    connection = pika_connection(amqp_url)
    started = time.perf_counter()
    try:
        channel = connection.channel()
        properties = pika.BasicProperties(content_type="application/json", delivery_mode=2)
        sent = 0
        for routing_key, body in messages:
            channel.basic_publish(exchange, routing_key, body, properties)
            sent += 1
            if sent % 2000 == 0:
                connection.process_data_events(0)
    finally:
        connection.close()
    deadline = time.monotonic() + timeout
    while (depth := queue_depth(amqp_url, expect_queue)) < expect:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{expect_queue} holds {depth} of {expect} preloaded messages")
        time.sleep(0.2)
    return sent / (time.perf_counter() - started)


class Subscriber:
    """A pika consumer in a thread on its own exclusive queue: records (perf_counter, body) per message."""

    def __init__(self, amqp_url: str, exchange: str, bindings: list[str], parse: bool = False) -> None:
        self.amqp_url, self.exchange, self.bindings, self.parse = amqp_url, exchange, bindings, parse
        self.received: list[tuple[float, object]] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="subscriber", daemon=True)

    def start(self) -> "Subscriber":
        self.thread.start()
        if not self._ready.wait(30):
            raise RuntimeError(f"subscriber not ready: {self._error!r}")
        return self

    def _run(self) -> None:
        try:
            connection = pika_connection(self.amqp_url)
            channel = connection.channel()
            channel.basic_qos(prefetch_count=1000)
            queue = channel.queue_declare("", exclusive=True).method.queue
            for binding in self.bindings:
                channel.queue_bind(queue, self.exchange, routing_key=binding)
            received, clock, parse = self.received, time.perf_counter, self.parse

            def on_message(_ch, _method, _props, body):
                received.append((clock(), json.loads(body) if parse else body))

            channel.basic_consume(queue, on_message, auto_ack=True)
            self._ready.set()
            while not self._stop.is_set():
                connection.process_data_events(time_limit=0.05)
            connection.close()
        except BaseException as error:  # noqa: BLE001
            self._error = error
            self._ready.set()

    def reset(self) -> None:
        self.received.clear()

    def wait_count(self, count: int, timeout: float, stall: float = 60.0) -> None:
        """Wait until `count` messages came; fail after `timeout`, or after `stall` s with nothing new."""
        deadline, last_n, last_change = time.monotonic() + timeout, -1, time.monotonic()
        while len(self.received) < count:
            if self._error is not None:
                raise RuntimeError(f"subscriber failed: {self._error!r}")
            now = time.monotonic()
            if len(self.received) != last_n:
                last_n, last_change = len(self.received), now
            if now > deadline or now - last_change > stall:
                raise RuntimeError(f"received {len(self.received)} of {count} expected messages")
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=10)


# -- figures -------------------------------------------------------------------------------------
def steady_window(count: int) -> tuple[int, int]:
    """Indexes of the first and last of `count` arrivals in the steady 10 %→90 % window."""
    return int(count * 0.1), int(count * 0.9) - 1


def rates(times: list[float], count: int) -> dict[str, float]:
    """Rates from the arrival times of `count` messages: first→last, and the steady 10 %→90 % window."""
    times = sorted(times)[:count]
    whole = (count - 1) / (times[-1] - times[0]) if count > 1 else 0.0
    lo, hi = steady_window(count)
    steady = (hi - lo) / (times[hi] - times[lo]) if hi > lo else whole
    return {"rate": whole, "steady": steady, "seconds": times[-1] - times[0]}


# -- CPU share -----------------------------------------------------------------------------------
CPU_GROUPS = ("workers", "beam.smp", "postgres", "benchmark")


def _proc_stat(pid: int) -> tuple[int, int, int]:
    """(parent pid, own CPU ticks, reaped children's CPU ticks) from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) ": comm may hold spaces and ")"
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def cpu_reading(env: BenchEnv, workers: list[int]) -> tuple[float, dict[str, dict[int, int]]]:
    """The time and the CPU ticks so far of each process in each of CPU_GROUPS, for cpu_shares.

    workers: the given pids (`earlyhelp serve` or bare relays); beam.smp: the RabbitMQ node;
    postgres: the postmaster and all its children; benchmark: this process (the subscriber thread,
    and the main thread waiting). The postmaster's count includes the time of the children it has
    reaped, so a backend that exits inside the window is counted too.
    """
    servers, me = env.server_pids(), os.getpid()
    groups: dict[str, dict[int, int]] = {name: {} for name in CPU_GROUPS}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            parent, own, reaped = _proc_stat(pid)
        except (OSError, ValueError, IndexError):  # gone between listing and reading
            continue
        if pid in workers:
            groups["workers"][pid] = own
        elif pid == servers["beam.smp"]:
            groups["beam.smp"][pid] = own
        elif pid == servers["postgres"]:
            groups["postgres"][pid] = own + reaped
        elif parent == servers["postgres"]:
            groups["postgres"][pid] = own
        elif pid == me:
            groups["benchmark"][pid] = own
    return time.monotonic(), groups


def cpu_shares(start: tuple, end: tuple) -> dict[str, float]:
    """% of one core per group between two cpu_readings (100 = one core busy; these machines have 2).

    The group's total at the end minus its total at the start: a pid only in the end reading started
    inside the window, so all its time counts; a backend gone by the end is in the postmaster's
    reaped time. A group with no process found (a server on another machine) is left out.
    """
    (t0, before), (t1, after) = start, end
    ticks_per_second = os.sysconf("SC_CLK_TCK")
    return {name: 100 * (sum(after[name].values()) - sum(before[name].values())) / ticks_per_second / (t1 - t0)
            for name in CPU_GROUPS if after[name]}


def wait_measuring_cpu(env: BenchEnv, subscriber: "Subscriber", count: int, workers: list[int],
                       timeout: float) -> dict[str, float]:
    """Subscriber.wait_count(count), returning the CPU shares over the window the steady rate uses.

    Read when the 10 % and the 90 % arrival have come (within the 50 ms wait_count polls at); the
    shares are over the readings' own times, so that lag shifts the window a little but does not skew it.
    """
    lo, hi = steady_window(count)
    subscriber.wait_count(lo + 1, timeout)
    start = cpu_reading(env, workers)
    subscriber.wait_count(hi + 1, timeout)
    end = cpu_reading(env, workers)
    subscriber.wait_count(count, timeout)
    return cpu_shares(start, end)


def cpu_text(shares: dict[str, float], workers: str = "workers") -> str:
    """'serve 85 %, beam.smp 40 %, …' for the progress log; `workers` names the first group."""
    return ", ".join(f"{workers if name == 'workers' else name} {share:.0f} %" for name, share in shares.items())


def cpu_cell(shares: dict[str, float], group: str) -> str:
    """A group's share for a table cell; "–" when cpu_shares left it out."""
    return f"{shares[group]:.0f}" if group in shares else "–"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    f = int(k)
    c = min(f + 1, len(ordered) - 1)
    return ordered[f] + (ordered[c] - ordered[f]) * (k - f)


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


# -- messages ------------------------------------------------------------------------------------
def notification_messages(prefix: str, count: int, start: int = 0):
    """(routing_key, body) for `count` complete notifications (each becomes a `checked` case)."""
    from tests.factories import encode, notification_body

    # Received minutes ago, not on the tests' fixed date: the engine runs on the real clock here, and cases
    # received on a fixed day have their triage warnings fall due some days later, from when on every
    # worker's first SLA scan raised thousands of warnings in the middle of the measurement (seen on
    # 1 December: a stall of 1-2 s thirty seconds into every latency run, and the same load under the
    # command phase of throughput.py).
    template = notification_body(received_at=_minutes_ago(10))
    for i in range(start, start + count):
        body = dict(template)
        body["notification_id"] = f"{prefix}-{i:07d}"
        # Each its own child (a family name per i), so each opens a case rather than joining the first.
        body["child"] = {**template["child"], "family_name": "Taylor " + _letters(i)}
        yield "notification.school", encode(body)


def _minutes_ago(minutes: int) -> str:
    from datetime import timedelta

    from earlyhelp.clock import utc_now

    return (utc_now() - timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _letters(number: int) -> str:
    """0 -> "A", 25 -> "Z", 26 -> "BA": a name part per number (names take letters, not digits)."""
    word = ""
    while True:
        number, digit = divmod(number, 26)
        word = chr(ord("A") + digit) + word
        if not number:
            return word.capitalize()


def case_ids_for(prefix: str, count: int, start: int = 0) -> list[str]:
    from earlyhelp.consumers.recording import case_id_for

    return [case_id_for("school", f"{prefix}-{i:07d}") for i in range(start, start + count)]


def triage_messages(prefix: str, case_ids: list[str]):
    """(routing_key, body) for one triage command per case (each case must be `checked`)."""
    from tests.factories import command_body, encode

    template = command_body("triage", "x", issued_at=_minutes_ago(5))
    for i, case_id in enumerate(case_ids):
        body = dict(template, command_id=f"{prefix}-{i:07d}", case_id=case_id)
        yield "case.triage", encode(body)
