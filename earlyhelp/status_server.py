"""The engine's small HTTP port: Prometheus metrics at /metrics, liveness at /livez, readiness at /readyz."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


class PortTaken(Exception):
    pass


def start_status_server(port: int, ready: Callable[[], tuple[bool, str]], host: str = "0.0.0.0"):
    """Serve in a daemon thread; raises PortTaken with a clear message if the port is in use."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
            elif path == "/livez":
                self._send(200, b"ok\n")
            elif path == "/readyz":
                ok, detail = ready()
                self._send(200 if ok else 503, (detail + "\n").encode())
            else:
                self._send(404, b"not found: try /metrics, /livez or /readyz\n")

        def _send(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8"):
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # keep the engine's logs JSON-only
            pass

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as error:
        raise PortTaken(f"port {port} is already in use: set EARLYHELP_METRICS_PORT to a free port, "
                        f"or 0 to turn the metrics port off ({error.strerror})") from error
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="status-server", daemon=True)
    thread.start()
    return server
