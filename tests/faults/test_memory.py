"""A gzip bomb and a 200,000-deep JSON document leave `earlyhelp serve`'s memory bounded; the next message is handled."""
from __future__ import annotations

import os
import zlib

import pytest

from tests.e2e.conftest import ServeProcess
from tests.faults.test_hostile_input import raw_publish
from tests.factories import encode, notification_body

pytestmark = [pytest.mark.faults, pytest.mark.integration]
ON_POSTGRES = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

BOMB_EXPANDS_TO = 512 * 1024 * 1024  # 512 MiB of zeros: about 0.5 MiB compressed
ALLOWED_GROWTH = 40 * 1024 * 1024


def gzip_bomb(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip format
    chunk = bytes(1024 * 1024)
    return b"".join(packer.compress(chunk) for _ in range(size // len(chunk))) + packer.flush()


def peak_rss(pid: int) -> int:
    """VmHWM: the most resident memory the process has ever had, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@ON_POSTGRES
def test_a_gzip_bomb_and_a_200000_deep_document_leave_memory_bounded(settings, collector, upstream, tmp_path):
    env = {**os.environ, "EARLYHELP_BROKER_URL": settings.broker_url, "EARLYHELP_DATABASE_URL": settings.database_url,
           "EARLYHELP_METRICS_PORT": "0"}
    serve = ServeProcess(env, tmp_path / "serve.log").start()
    try:
        assert upstream.publish("earlyhelp.notifications", "notification.school",
                                encode(notification_body(notification_id="before-bombs"))).ok
        collector.wait_for(lambda e: e["event_type"] == "case.checked")
        before = peak_rss(serve.proc.pid)

        bomb = gzip_bomb(BOMB_EXPANDS_TO)
        assert len(bomb) < 1024 * 1024
        raw_publish(settings.broker_url, bomb, message_id="gzip-bomb", content_type="application/json",
                    content_encoding="gzip")
        deep = b"[" * 200_000 + b"]" * 200_000
        raw_publish(settings.broker_url, deep, message_id="deep-200000", content_type="application/json")
        deep_object = b'{"a":' * 200_000 + b"1" + b"}" * 200_000  # 1.2 MB: refused for its size first
        raw_publish(settings.broker_url, deep_object[:1024 * 1024 - 1], message_id="deep-object",
                    content_type="application/json")
        assert upstream.publish("earlyhelp.notifications", "notification.school",
                                encode(notification_body(notification_id="after-bombs"))).ok

        rejected = collector.wait_for(lambda e: e["event_type"] == "notification.rejected", count=3)
        assert {e["message_id"] for e in rejected} == {"gzip-bomb", "deep-200000", "deep-object"}
        collector.wait_for(lambda e: e["event_type"] == "case.checked" and e["notification_id"] == "after-bombs")
        after = peak_rss(serve.proc.pid)
        assert after - before < ALLOWED_GROWTH, f"peak RSS grew by {(after - before) / 2**20:.1f} MiB"
        assert serve.proc.poll() is None, "the engine is still running"
    finally:
        assert serve.terminate() == 0
        serve.close()
