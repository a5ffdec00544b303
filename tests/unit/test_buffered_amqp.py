"""earlyhelp/buffered_amqp.py: the frames py-amqp would read, from fewer system calls."""
from __future__ import annotations

import random
import socket
import struct
import threading

import pytest
from amqp.exceptions import UnexpectedFrame
from amqp.transport import TCPTransport

from earlyhelp import buffered_amqp


def frame(frame_type: int, channel: int, payload: bytes, end: int = 206) -> bytes:
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + bytes([end])


def stream_of(count: int, seed: int = 7) -> tuple[list[tuple[int, int, bytes]], bytes]:
    rng = random.Random(seed)
    frames = []
    for i in range(count):
        size = rng.choice([0, 1, 6, 7, 8, 100, 4096, 70_000, 200_000])
        frames.append((rng.choice([1, 2, 3, 8]), rng.randrange(0, 3), bytes([i % 251]) * size))
    return frames, b"".join(frame(*f) for f in frames)


class CountingSocket:
    """A socket that counts recv and settimeout calls."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.recvs, self.timeouts_set = sock, 0, 0

    def recv(self, n):
        self.recvs += 1
        return self.sock.recv(n)

    def settimeout(self, value):
        self.timeouts_set += 1
        self.sock.settimeout(value)

    def gettimeout(self):
        return self.sock.gettimeout()

    def __getattr__(self, name):  # sendall, getsockname, ...: the socket's own
        return getattr(self.sock, name)


def transport_on(sock) -> TCPTransport:
    transport = TCPTransport("127.0.0.1:5672")  # not connected: it reads the socket it is given
    transport.sock = sock
    transport._setup_transport()
    transport.connected = True
    return transport


@pytest.fixture()
def pair():
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def send_in_pieces(sock: socket.socket, data: bytes, seed: int) -> threading.Thread:
    """Write `data` in random pieces (1 byte to 100 KiB) from another thread."""
    rng = random.Random(seed)

    def write():
        i = 0
        while i < len(data):
            n = rng.choice([1, 2, 7, 50, 1000, 65536, 100_000])
            sock.sendall(data[i:i + n])
            i += n

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_frames_come_out_as_py_amqp_reads_them_however_the_bytes_arrive(pair, seed):
    ours, theirs = pair
    frames, data = stream_of(60, seed)
    writer = send_in_pieces(theirs, data, seed)
    transport = transport_on(ours)
    got = [buffered_amqp.read_frame(transport) for _ in frames]
    writer.join()
    assert got == frames

    # py-amqp's own reader on the same bytes gives the same frames: the two are interchangeable.
    a, b = socket.socketpair()
    try:
        writer = send_in_pieces(b, data, seed)
        original = transport_on(a)
        assert [buffered_amqp._original_read_frame(original) for _ in frames] == frames
        writer.join()
    finally:
        a.close()
        b.close()


def test_one_recv_serves_many_small_frames(pair):
    ours, theirs = pair
    frames = [(1, 1, b"x" * 40)] * 300  # 12 KiB in all: one recv, where py-amqp made 900
    theirs.sendall(b"".join(frame(*f) for f in frames))
    counting = CountingSocket(ours)
    transport = transport_on(counting)
    assert [buffered_amqp.read_frame(transport) for _ in frames] == frames
    assert counting.recvs <= 3  # the kernel may hand the bytes over in more than one piece


def test_a_timeout_part_way_through_a_frame_keeps_what_came(pair):
    ours, theirs = pair
    whole = frame(3, 1, b"y" * 5000)
    theirs.sendall(whole[:2000])
    ours.settimeout(0.05)
    transport = transport_on(ours)
    with pytest.raises(socket.timeout):
        buffered_amqp.read_frame(transport)
    assert buffered_amqp.buffered_bytes(transport) == 2000
    theirs.sendall(whole[2000:] + frame(1, 0, b"next"))
    assert buffered_amqp.read_frame(transport) == (3, 1, b"y" * 5000)
    assert buffered_amqp.read_frame(transport) == (1, 0, b"next")
    assert buffered_amqp.buffered_bytes(transport) == 0


def test_a_wrong_frame_end_is_refused_as_py_amqp_refuses_it(pair):
    ours, theirs = pair
    theirs.sendall(frame(1, 0, b"abc", end=0x00))
    with pytest.raises(UnexpectedFrame, match="frame_end 0x00"):
        buffered_amqp.read_frame(transport_on(ours))


def test_a_closed_connection_is_an_error_and_marks_the_transport_disconnected(pair):
    ours, theirs = pair
    theirs.sendall(frame(1, 0, b"abc")[:5])
    theirs.close()
    transport = transport_on(ours)
    with pytest.raises(OSError, match="unexpectedly closed"):
        buffered_amqp.read_frame(transport)
    assert transport.connected is False


def test_the_socket_timeout_is_left_alone_while_a_whole_frame_is_buffered(pair):
    ours, theirs = pair
    theirs.sendall(frame(1, 0, b"a") + frame(1, 0, b"b") + frame(1, 0, b"c")[:4])
    counting = CountingSocket(ours)
    transport = transport_on(counting)
    with buffered_amqp.having_timeout(transport, 0.05):
        assert buffered_amqp.read_frame(transport) == (1, 0, b"a")  # nothing buffered yet: set and reset
    assert counting.timeouts_set == 2
    with buffered_amqp.having_timeout(transport, 0.05):
        assert buffered_amqp.read_frame(transport) == (1, 0, b"b")  # buffered by the first recv
    assert counting.timeouts_set == 2
    with pytest.raises(socket.timeout):  # only part of the third: the timeout applies again
        with buffered_amqp.having_timeout(transport, 0.05):
            buffered_amqp.read_frame(transport)
    assert counting.timeouts_set == 4
    assert ours.gettimeout() is None  # put back as it was


def test_a_connection_reads_a_buffered_frame_without_the_timeout_context_and_waits_as_before_otherwise(
        pair, monkeypatch):
    ours, theirs = pair
    theirs.sendall(frame(1, 0, b"a") + frame(1, 0, b"b"))
    transport = transport_on(ours)
    contexts = []
    monkeypatch.setattr(TCPTransport, "read_frame", buffered_amqp.read_frame)  # as installed
    monkeypatch.setattr(TCPTransport, "having_timeout", lambda t, timeout: contexts.append(timeout)
                        or buffered_amqp.having_timeout(t, timeout))

    class Connection:  # what Connection.blocking_read uses of py-amqp's Connection
        def __init__(self):
            self.transport, self.frames = transport, []

        def on_inbound_frame(self, frame_):
            self.frames.append(frame_)
            return True

    connection = Connection()
    assert buffered_amqp.blocking_read(connection, timeout=0.05)  # nothing buffered: py-amqp's way, timeout
    assert contexts == [0.05]
    assert buffered_amqp.blocking_read(connection, timeout=0.05)  # came with the first recv: read straight
    assert contexts == [0.05] and connection.frames == [(1, 0, b"a"), (1, 0, b"b")]
    with pytest.raises(socket.timeout):  # nothing more: the timeout applies
        buffered_amqp.blocking_read(connection, timeout=0.05)
    assert contexts == [0.05, 0.05]


def test_install_is_what_the_engine_runs_and_uninstall_puts_py_amqps_back():
    from amqp.connection import Connection

    import earlyhelp.consumers.runtime  # noqa: F401 - installs on import

    assert TCPTransport.read_frame is buffered_amqp.read_frame
    assert Connection.blocking_read is buffered_amqp.blocking_read
    try:
        buffered_amqp.uninstall()
        assert TCPTransport.read_frame is buffered_amqp._original_read_frame
        assert Connection.blocking_read is buffered_amqp._original_blocking_read
    finally:
        buffered_amqp.install()


def test_a_non_blocking_read_before_a_whole_header_is_a_timeout_and_keeps_the_bytes(pair):
    ours, theirs = pair
    whole = frame(1, 0, b"abc")
    theirs.sendall(whole[:3])
    ours.setblocking(False)  # drain_events(timeout=0): recv raises EAGAIN once the socket is empty
    transport = transport_on(ours)
    with pytest.raises(socket.timeout):
        buffered_amqp.read_frame(transport)
    assert buffered_amqp.buffered_bytes(transport) == 3
    theirs.sendall(whole[3:])
    assert buffered_amqp.read_frame(transport) == (1, 0, b"abc")
