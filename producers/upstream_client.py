"""The small upstream client (pika): what a school portal or a staff tool needs to send to earlyhelp.

It publishes persistent JSON with publisher confirms and `mandatory`, and reports each message's
fate: confirmed by the broker, refused by it (a full input queue nacks: back off and retry), or
unroutable (no queue bound: the engine has never been started on this broker). Built on pika
rather than kombu on purpose, so the contract is proven by a second client.
"""
from __future__ import annotations

from dataclasses import dataclass

import pika
from pika.exceptions import NackError, UnroutableError

CONFIRMED, NACKED, UNROUTABLE = "confirmed", "nacked", "unroutable"

EXPLANATIONS = {
    CONFIRMED: "the broker has it",
    NACKED: "the broker refused it (an input queue is full): try again later",
    UNROUTABLE: "no queue is bound for it: start `earlyhelp serve` once on this broker",
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
    def __init__(self, broker_url: str) -> None:
        params = pika.URLParameters(_pika_url(broker_url))
        params.connection_attempts, params.retry_delay, params.socket_timeout = 3, 1, 5
        self.connection = pika.BlockingConnection(params)
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()

    def publish(self, exchange: str, routing_key: str, body: bytes, message_id: str | None = None,
                headers: dict | None = None) -> Sent:
        properties = pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                          message_id=message_id, headers=headers)
        try:
            self.channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)
        except UnroutableError:
            return Sent(UNROUTABLE)
        except NackError:
            return Sent(NACKED)
        return Sent(CONFIRMED)

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _pika_url(url: str) -> str:
    """kombu writes the default vhost as a trailing '//'; pika wants it percent-encoded."""
    scheme, rest = url.split("://", 1)
    if scheme in ("amqp", "pyamqp"):
        scheme = "amqp"
    host, _, vhost = rest.partition("/")
    if vhost in ("", "/"):
        return f"{scheme}://{host}/%2F"
    return f"{scheme}://{host}/{vhost}"
