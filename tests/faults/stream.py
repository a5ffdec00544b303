"""A steady upstream sender that keeps going through faults, as a well-behaved upstream system would.

Each message is published with confirms (the pika UpstreamClient); a message whose fate is unknown
(connection lost before the confirm, a nack, the broker away) is sent again with the same id after a
pause: the engine recognises the repeat, so retrying is always safe.
"""
from __future__ import annotations

import threading
import time

from earlyhelp.producers.upstream_client import UpstreamClient


class Sender:
    def __init__(self, broker_url: str, messages: list[tuple[str, str, bytes, str]], pause_s: float = 0.0):
        """`messages`: (exchange, routing key, body, id) in the order to send them."""
        self.broker_url, self.messages, self.pause_s = broker_url, messages, pause_s
        self.confirmed: list[str] = []
        self.attempts = 0
        self.failures = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="fault-sender", daemon=True)

    def start(self) -> "Sender":
        self.thread.start()
        return self

    def join(self, timeout: float = 120) -> "Sender":
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError(f"sender still running after {timeout} s: {len(self.confirmed)} confirmed")
        return self

    def _run(self) -> None:
        client = None
        index = 0
        while index < len(self.messages) and not self.stop.is_set():
            exchange, key, body, ident = self.messages[index]
            try:
                if client is None:
                    client = UpstreamClient(self.broker_url)
                self.attempts += 1
                if client.publish(exchange, key, body, message_id=ident).ok:
                    self.confirmed.append(ident)
                    index += 1
                    if self.pause_s:
                        time.sleep(self.pause_s)
                    continue
            except Exception:  # noqa: BLE001 - connection lost, broker away: reconnect and resend
                client = _close(client)
            self.failures += 1
            time.sleep(0.2)
        _close(client)


def _close(client):
    if client is not None:
        try:
            client.close()
        except Exception:  # noqa: BLE001
            pass
    return None
