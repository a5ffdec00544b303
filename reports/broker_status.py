"""What `earlyhelp queues` shows: each queue's depth and consumers over AMQP, rates from the management API.

AMQP alone (a passive queue.declare) gives the messages ready and the consumer count; it cannot see
messages delivered but not yet acknowledged, so those are "unknown" unless the management API is
reachable (EARLYHELP_MANAGEMENT_URL, e.g. http://guest:guest@localhost:15672), which also gives the
publish and deliver rates. A passive declare of a missing queue closes the channel (404): that queue
is reported missing, and the next one gets a fresh channel.

The operators' commands connect with pika through `connect` (below): each URL of a kombu failover list
(`amqp://a@h1;amqp://b@h2`) in turn, and a refusal by the broker (login, vhost, or a queue or exchange
this broker user may not use) surfaces as `AccessRefused` with the broker's own words, so the command
can say it in one line instead of a traceback.
"""
from __future__ import annotations

import base64
import json
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

import amqp.exceptions
import pika
import pika.exceptions
from pika.exceptions import ChannelClosedByBroker

from earlyhelp.consumers.topology import COMMANDS_QUEUE, NOTIFICATIONS_QUEUE
from earlyhelp.printing import escape
from earlyhelp.producers.upstream_client import _pika_url, pika_parameters
from earlyhelp.schemas import DEAD_LETTER_QUEUE
from earlyhelp.secrets import mask_secrets

# (queue, role): the engine consumes its input queues; nobody consumes the dead-letter queue.
QUEUES: tuple[tuple[str, str], ...] = (
    (NOTIFICATIONS_QUEUE, "engine input"),
    (COMMANDS_QUEUE, "engine input"),
    (DEAD_LETTER_QUEUE, "dead letters"),
)


@dataclass
class QueueStatus:
    name: str
    role: str
    exists: bool = True
    ready: int | None = None
    unacked: int | None = None     # None: unknown without the management API
    consumers: int | None = None
    publish_rate: float | None = None
    deliver_rate: float | None = None
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("name", "role", "exists", "ready", "unacked", "consumers",
                                              "publish_rate", "deliver_rate", "problems")}


class AccessRefused(Exception):
    """The broker refused this broker user: the login, the vhost, or a queue, exchange or routing key."""


_REFUSAL_CODES = (403, 530)  # ACCESS_REFUSED, NOT_ALLOWED (a vhost the user has no permissions in)


def access_refused(error: BaseException) -> str | None:
    """The broker's words if `error` (or what caused it) is a permission refusal, else None."""
    seen, current = set(), error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, AccessRefused):
            return str(current)
        if isinstance(current, (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError)):
            return "login refused (wrong user name or password)"
        if isinstance(current, pika.exceptions.ProbableAccessDeniedError):
            return _words(current.args[0] if current.args else current)
        if isinstance(current, (ChannelClosedByBroker, pika.exceptions.ConnectionClosedByBroker)):
            if current.reply_code in _REFUSAL_CODES:
                return _words(current.reply_text)
        if isinstance(current, (amqp.exceptions.AccessRefused, amqp.exceptions.NotAllowed)):
            return _words(getattr(current, "reply_text", "") or current)
        current = current.__cause__ or current.__context__
    return None


def _words(text) -> str:
    return escape(mask_secrets(str(text)))[:300]


def broker_urls(broker_url: str) -> list[str]:
    """The URLs of a kombu failover list (`;`-joined), or the one URL."""
    return [u.strip() for u in str(broker_url).split(";") if u.strip()]


def connect(broker_url: str, ca_file: str | None = None) -> pika.BlockingConnection:
    """A pika connection to the first URL of the list that answers; AccessRefused if the broker refuses.
    Its broker user is `connection.broker_user` (what RabbitMQ accepts as user_id on its publishes).
    amqps:// URLs are verified against `ca_file` (EARLYHELP_BROKER_CA_FILE) or the system's CAs."""
    last: Exception | None = None
    for url in broker_urls(broker_url):
        params = pika_parameters(url, ca_file)
        params.connection_attempts, params.socket_timeout = 1, 5
        try:
            connection = pika.BlockingConnection(params)
            connection.broker_user = getattr(params.credentials, "username", None)
            return connection
        except Exception as error:  # noqa: BLE001 - sorted: a refusal is final, anything else tries the next URL
            refused = access_refused(error)
            if refused:
                raise AccessRefused(refused) from None
            last = error
    raise last or ValueError("EARLYHELP_BROKER_URL names no broker")


def vhost_of(broker_url: str) -> str:
    """The vhost a broker URL names ('/' by default), decoded."""
    path = _pika_url(broker_urls(broker_url)[0]).split("://", 1)[1].partition("/")[2]
    return urllib.parse.unquote(path or "%2F")


def read_amqp(broker_url: str, ca_file: str | None = None) -> list[QueueStatus]:
    connection = connect(broker_url, ca_file)
    statuses = []
    try:
        channel = connection.channel()
        for name, role in QUEUES:
            try:
                ok = channel.queue_declare(name, passive=True).method
                statuses.append(QueueStatus(name, role, ready=ok.message_count, consumers=ok.consumer_count))
            except ChannelClosedByBroker:
                statuses.append(QueueStatus(name, role, exists=False))
                channel = connection.channel()
    finally:
        connection.close()
    return statuses


def read_management(management_url: str, vhost: str, statuses: list[QueueStatus], timeout: float = 3.0) -> str | None:
    """Fill unacked and rates from the management API; returns why not, or None when it worked."""
    parts = urllib.parse.urlsplit(management_url)
    base = urllib.parse.urlunsplit((parts.scheme, parts.hostname + (f":{parts.port}" if parts.port else ""),
                                    parts.path.rstrip("/"), "", ""))
    headers = {}
    if parts.username:
        token = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
    for status in statuses:
        if not status.exists:
            continue
        url = f"{base}/api/queues/{urllib.parse.quote(vhost, safe='')}/{urllib.parse.quote(status.name, safe='')}"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as reply:
                data = json.load(reply)
        except Exception as error:  # noqa: BLE001 - unreachable, refused, 401: all mean "no rates"
            return f"management API not reachable ({type(error).__name__}: {mask_secrets(error)[:80]})"
        status.unacked = data.get("messages_unacknowledged")
        status.ready = data.get("messages_ready", status.ready)
        status.consumers = data.get("consumers", status.consumers)
        stats = data.get("message_stats") or {}
        status.publish_rate = (stats.get("publish_details") or {}).get("rate", 0.0)
        status.deliver_rate = (stats.get("deliver_get_details") or {}).get("rate", 0.0)
    return None


def check(statuses: list[QueueStatus]) -> list[str]:
    """The problems a monitoring script should page on: dead letters waiting, an input with no consumer."""
    problems = []
    for status in statuses:
        if not status.exists:
            status.problems.append("missing: has `earlyhelp serve` run on this broker?")
        elif status.role == "dead letters" and (status.ready or 0) + (status.unacked or 0) > 0:
            status.problems.append(f"{(status.ready or 0) + (status.unacked or 0)} refused message(s) waiting: "
                                   "earlyhelp dead-letters list")
        elif status.role == "engine input" and not status.consumers:
            status.problems.append("no consumer: no engine is running")
        problems += [f"{status.name}: {p}" for p in status.problems]
    return problems


def queue_status(broker_url: str, management_url: str | None,
                 ca_file: str | None = None) -> tuple[list[QueueStatus], str | None]:
    """Every queue's status, and a note on what could not be read (None when everything was)."""
    statuses = read_amqp(broker_url, ca_file)
    if not management_url:
        return statuses, "unacked and rates unknown: set EARLYHELP_MANAGEMENT_URL to read the management API"
    return statuses, read_management(management_url, vhost_of(broker_url), statuses)
