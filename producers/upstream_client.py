"""The small upstream client (pika): what a school portal or a staff tool needs to send to earlyhelp.

It publishes persistent JSON with publisher confirms and `mandatory`, and reports each message's
fate: confirmed by the broker, refused by it (a full input queue nacks: back off and retry), or
unroutable (no queue bound: the engine has never been started on this broker), or blocked (the
broker is short of memory or disk and has stopped reading from publishers: without a limit a pika
publish would wait for the alarm to clear, however long). Built on pika rather than kombu on purpose,
so the contract is proven by a second client.
"""
from __future__ import annotations

import ssl
from dataclasses import dataclass

import pika
from pika.exceptions import ConnectionBlockedTimeout, NackError, UnroutableError

CONFIRMED, NACKED, UNROUTABLE, BLOCKED = "confirmed", "nacked", "unroutable", "blocked"
CONNECTION_USER = object()  # publish's default user_id: the broker user of the connection
BLOCKED_TIMEOUT_S = 30.0

EXPLANATIONS = {
    CONFIRMED: "the broker has it",
    NACKED: "the broker refused it (an input queue is full): try again later",
    UNROUTABLE: "no queue is bound for it: start `earlyhelp serve` once on this broker",
    BLOCKED: "the broker is short of memory or disk and blocks publishers (a resource alarm): "
             "not confirmed, send it again later",
}


@dataclass
class Sent:
    outcome: str

    @property
    def ok(self) -> bool:
        return self.outcome == CONFIRMED

    @property
    def explanation(self) -> str:
        return EXPLANATIONS[self.outcome]


class UpstreamClient:
    def __init__(self, broker_url: str, blocked_timeout: float | None = None, ca_file: str | None = None) -> None:
        params = pika_parameters(broker_url, ca_file)
        params.connection_attempts, params.retry_delay, params.socket_timeout = 3, 1, 5
        params.blocked_connection_timeout = blocked_timeout or BLOCKED_TIMEOUT_S  # pika then closes the connection and raises
        # The broker user this client connects as: every message carries it as `user_id`, which RabbitMQ
        # checks against the connection, so the engine knows the sender for certain (docs/contract.md, "Senders").
        # (None with certificate authentication, where the broker names the user from the certificate.)
        self.user_id: str | None = getattr(params.credentials, "username", None)
        self.connection = pika.BlockingConnection(params)
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()

    def publish(self, exchange: str, routing_key: str, body: bytes, message_id: str | None = None,
                headers: dict | None = None, user_id: str | None | object = CONNECTION_USER) -> Sent:
        """Publish with confirms; `user_id` is the connection's user unless given (None sends none)."""
        sender = self.user_id if user_id is CONNECTION_USER else user_id
        properties = pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                          message_id=message_id, headers=headers, user_id=sender)
        try:
            self.channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)
        except UnroutableError:
            return Sent(UNROUTABLE)
        except NackError:
            return Sent(NACKED)
        except ConnectionBlockedTimeout:
            return Sent(BLOCKED)  # the connection is closed: a new client is needed to try again
        return Sent(CONFIRMED)

    def close(self) -> None:
        if self.connection.is_open:
            try:
                self.connection.close()
            except Exception:  # noqa: BLE001 - the broker closed it first, or it is still blocked
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def pika_parameters(broker_url: str, ca_file: str | None = None) -> pika.URLParameters:
    """pika's parameters for a broker URL. amqps://: the server certificate must chain to ca_file
    (EARLYHELP_BROKER_CA_FILE) or a system CA and name the URL's host (pika alone gives TLS no host name);
    a CA file with a plain amqp:// URL is an error, never plaintext."""
    params = pika.URLParameters(_pika_url(broker_url))
    if params.ssl_options is not None:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        params.ssl_options = pika.SSLOptions(context, params.host)
    elif ca_file:
        raise ValueError("EARLYHELP_BROKER_CA_FILE is set but the broker URL is not amqps://")
    return params


def _pika_url(url: str) -> str:
    """kombu writes the default vhost as a trailing '//'; pika wants it percent-encoded."""
    scheme, rest = url.split("://", 1)
    if scheme in ("amqp", "pyamqp"):
        scheme = "amqp"
    host, _, vhost = rest.partition("/")
    if vhost in ("", "/"):
        return f"{scheme}://{host}/%2F"
    return f"{scheme}://{host}/{vhost}"
