"""A loopback stand-in for an OpenAI-compatible inference server (it stands in for vLLM or
`transformers serve`, never for a model's judgement): `/v1/models`, `/v1/chat/completions` and
`/v1/completions`, answering with text a test chooses. It can ignore `n` (as transformers serve does),
fail the first requests with 500, drop connections, or stall; every request body is recorded. While it
stalls it watches the connection, as vLLM does (`with_cancellation`), and counts the requests whose
client went away (`aborted`). Leaving
the `with` block closes every connection, kept-alive ones too, as a server that dies does."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Callable

from loopback_server import LoopbackServer


class OpenAIStub(LoopbackServer):
    def __init__(self, model: str = "stub-model", answer: Callable[[dict, int], str] | None = None, *,
                 honour_n: bool = True, fail_first: int = 0, fail_status: int = 500, delay: float = 0.0,
                 fail_after: int | None = None, garbage: bool = False, version: str | None = None,
                 finish_reason: str = "stop") -> None:
        self.model = model
        self.version = version  # answered at GET /version, as vLLM does (None: 404, as transformers serve)
        self.finish_reason = finish_reason
        self.answer = answer or (lambda body, i: f"answer {i}")
        self.honour_n = honour_n
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.delay = delay
        self.fail_after = fail_after  # requests after this many answer fail_status
        self.garbage = garbage  # answer a truncated JSON body
        self.aborted = 0  # requests whose client disconnected while they were being answered
        self.bodies: list[dict] = []
        self._lock = threading.Lock()
        self._connections: set = set()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with stub._lock:
                    stub._connections.add(self.connection)

            def log_message(self, *args):
                pass

            def _send(self, status: int, data: dict) -> None:
                raw = json.dumps(data).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client cancelled the request (early stop)

            def _client_left_within(self, seconds: float) -> bool:
                """Wait `seconds`, or less if the client closes the connection (True then)."""
                import select
                import socket

                deadline = time.monotonic() + seconds
                while (left := deadline - time.monotonic()) > 0:
                    readable, _, _ = select.select([self.connection], [], [], left)
                    if readable:
                        try:
                            if self.connection.recv(1, socket.MSG_PEEK) == b"":
                                return True
                        except OSError:
                            return True
                        time.sleep(min(0.01, left))  # a pipelined request: keep waiting
                return False

            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":
                    return self._send(200, {"object": "list", "data": [{"id": stub.model, "object": "model"}]})
                if self.path.rstrip("/") == "/version" and stub.version:
                    return self._send(200, {"version": stub.version})
                self._send(404, {"error": "not found"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with stub._lock:
                    stub.bodies.append(body)
                    index = len(stub.bodies)
                    failing = stub.fail_first > 0 or (stub.fail_after is not None and index > stub.fail_after)
                    if stub.fail_first > 0:
                        stub.fail_first -= 1
                if failing:
                    return self._send(stub.fail_status, {"error": "injected failure"})
                if stub.delay and self._client_left_within(stub.delay):
                    with stub._lock:
                        stub.aborted += 1
                    self.close_connection = True
                    return
                if stub.garbage:
                    raw = b'{"choices": [{"message": {"content": "trunc'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                    return
                chat = self.path.endswith("/chat/completions")
                n = body.get("n", 1) if stub.honour_n else 1
                choices = []
                for i in range(n):
                    answer = stub.answer(body, index * 100 + i)
                    # An answer is the text, or a dict with what vLLM sends beside it: content, finish_reason,
                    # stop_reason (the stop string that ended it, or None) and tool_calls.
                    if isinstance(answer, dict):
                        text, finish = answer.get("content"), answer.get("finish_reason", stub.finish_reason)
                        extra = {"stop_reason": answer.get("stop_reason")}
                        message = {"role": "assistant", "content": text, "tool_calls": answer.get("tool_calls") or []}
                    else:
                        text, finish, extra = answer, stub.finish_reason, {}
                        message = {"role": "assistant", "content": text}
                    choices.append({"index": i, "finish_reason": finish, **extra,
                                    **({"message": message} if chat else {"text": text})})
                self._send(200, {"object": "chat.completion" if chat else "text_completion", "model": body.get("model"),
                                 "choices": choices, "usage": {"prompt_tokens": 11, "completion_tokens": 5 * n, "total_tokens": 11 + 5 * n}})

        self._serve(Handler)

    def __exit__(self, *exc) -> None:
        import socket

        super().__exit__(*exc)
        # A server that is gone answers nothing, kept-alive connections included.
        with self._lock:
            for connection in self._connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
