"""The part every test HTTP server shares: a ThreadingHTTPServer on a free loopback port, served by a
thread of its own, as a context manager. The hub, the OpenAI-compatible stub, the kimina stand-in and
the proxy of test_inference subclass it with their request handlers."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackServer:
    """`LoopbackServer(handler)` serves a handler class as it is; subclasses with state of their own call
    `_serve(handler)` from their __init__."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._serve(handler)

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        """Bind `handler` to 127.0.0.1 on a free port (`self.port`, `self.url`); it serves from `__enter__`."""
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
