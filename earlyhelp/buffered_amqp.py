"""py-amqp's socket reads made one recv per burst of frames, not three per frame.

py-amqp reads each frame with three exact-size recv calls (the 7-byte header, the payload, the end
octet), and wraps each read in a socket timeout set and reset (two settimeout calls, each a pair of fcntl
system calls). A delivery is three frames, so draining a prefetched batch cost about nine recv and a
dozen fcntl calls per message: half of the consuming thread's samples under py-spy (amqp/transport.py's
`_read` and `having_timeout`), about a fifth of the worker's CPU.

`install()` gives plain-TCP transports a `read_frame` that receives up to READ_SIZE bytes at a time
into a buffer and cuts the frames from it, and a `having_timeout` that leaves the socket alone while a
whole frame is already buffered. The frames, their order and the errors are py-amqp's: a frame whose
end octet is wrong raises UnexpectedFrame, a closed socket raises OSError, and a timeout part-way
through a frame keeps what came, so the next read goes on from it. TLS transports keep py-amqp's own
reads: the SSL object reads whole records into a buffer of its own already.

Anything that asks whether there is more to read without reading (ConfirmingPublisher.poll) must look
at `buffered_bytes(transport)` as well as the socket: frames can be waiting here with the socket empty.
"""
from __future__ import annotations

import errno
import socket
from contextlib import contextmanager
from struct import unpack_from

from amqp.connection import Connection
from amqp.exceptions import UnexpectedFrame
from amqp.transport import _UNAVAIL, TCPTransport

HEADER = 7  # a frame's type (1 byte), channel (2) and payload size (4); the end octet follows the payload
READ_SIZE = 64 * 1024  # a recv's most; a larger frame is read whole, however large (up to frame_max)
FRAME_END = 206

_original_having_timeout = TCPTransport.having_timeout
_original_read_frame = TCPTransport.read_frame
_original_blocking_read = Connection.blocking_read


def _buffer(transport) -> bytearray:
    state = transport.__dict__
    if "_eh_buffer" not in state:
        state["_eh_buffer"], state["_eh_pos"] = bytearray(), 0
    return state["_eh_buffer"]


def buffered_bytes(transport) -> int:
    """Bytes received and not yet cut into frames: this module's buffer, or py-amqp's own."""
    state = getattr(transport, "__dict__", {})
    if "_eh_buffer" in state:
        return len(state["_eh_buffer"]) - state["_eh_pos"]
    return len(getattr(transport, "_read_buffer", b"") or b"")


def _whole_frame_buffered(transport) -> bool:
    state = transport.__dict__
    buffer = state.get("_eh_buffer")
    if buffer is None:
        return False
    pos = state["_eh_pos"]
    if len(buffer) - pos < HEADER:
        return False
    size, = unpack_from(">I", buffer, pos + 3)
    return len(buffer) - pos >= HEADER + size + 1


def _fill(transport, buffer: bytearray, pos: int, needed: int) -> int:
    """Receive once more into `buffer`; returns the new position of the first unread byte (0: what was
    read before it is dropped first, so the buffer holds at most one partial frame and one recv)."""
    if pos:
        del buffer[:pos]
        transport._eh_pos = pos = 0
    while True:
        try:
            data = transport.sock.recv(max(READ_SIZE, needed - len(buffer)))
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EINTR):
                # As py-amqp's _read: while reading a frame's header, a raise_on_initial_eintr transport
                # reports a timeout (what came stays buffered); part-way through its payload, it reads on.
                if len(buffer) < HEADER and transport.raise_on_initial_eintr:
                    raise socket.timeout() from exc
                continue
            raise
        if not data:
            raise OSError("Server unexpectedly closed connection")
        buffer += data
        return pos


def read_frame(self, unpack=None):  # noqa: ARG001 - py-amqp's signature
    """(frame_type, channel, payload), as py-amqp's read_frame returns it."""
    buffer = _buffer(self)
    pos = self._eh_pos
    try:
        while len(buffer) - pos < HEADER:
            pos = _fill(self, buffer, pos, HEADER)
        frame_type, channel, size = unpack_from(">BHI", buffer, pos)
        while len(buffer) - pos < HEADER + size + 1:
            pos = _fill(self, buffer, pos, HEADER + size + 1)
    except socket.timeout:
        raise  # nothing was taken from the buffer: the next read goes on from what came
    except OSError as exc:
        if exc.errno not in _UNAVAIL:
            self.connected = False
        raise
    end = pos + HEADER + size
    with memoryview(buffer) as view:
        payload = bytes(view[pos + HEADER:end])
    frame_end = buffer[end]
    self._eh_pos = end + 1
    if frame_end != FRAME_END:
        raise UnexpectedFrame(f"Received frame_end {frame_end:#04x} while expecting 0xce")
    return frame_type, channel, payload


@contextmanager
def having_timeout(self, timeout):
    """py-amqp's, except that a read a buffered frame will answer does not touch the socket's timeout."""
    if timeout is None or _whole_frame_buffered(self):
        yield self.sock
        return
    with _original_having_timeout(self, timeout) as sock:
        yield sock


def blocking_read(self, timeout=None):
    """py-amqp's Connection.blocking_read, straight to the frame when a whole one is buffered: its `with
    having_timeout(...)` is a generator-based context manager per frame, a fifth of the CPU of consuming a
    delivery (three frames) and of reading a confirm (one). Otherwise py-amqp's own, timeout and all."""
    transport = self.transport
    if _whole_frame_buffered(transport):
        return self.on_inbound_frame(transport.read_frame())
    return _original_blocking_read(self, timeout)


def install() -> None:
    """Idempotent; affects every plain-TCP py-amqp connection in the process (the engine's and the relay's)."""
    TCPTransport.read_frame = read_frame
    TCPTransport.having_timeout = having_timeout
    Connection.blocking_read = blocking_read


def uninstall() -> None:
    """py-amqp's own reads again (for tests that compare the two)."""
    TCPTransport.read_frame = _original_read_frame
    TCPTransport.having_timeout = _original_having_timeout
    Connection.blocking_read = _original_blocking_read
