"""A loopback stand-in for kimina-lean-server (project-numina), speaking its HTTP API as its source
gives it, with the project's stand-in REPL (tests/standin_repl.py) behind it, one REPL process per
header, reused as the server reuses them. The server package itself is not on any registry (only its
client, kimina-client), so this stands in for the server; test_kimina.py holds its answers to the real
client's models.

API generations (`api=`):
- "2": `GET /health` -> {"status": "ok"}; `GET /api/openapi.json` (title "Kimina Lean Server API",
  version "2.0.0", paths /api/check and /verify); `POST /api/check` {"snippets", "timeout", ...} ->
  {"results": [{"id", "time", "response" | "error", "diagnostics"?}]}, null fields left out; lines are
  reported relative to the code after the header (the leading blank and import lines), as later 2.x
  builds do (`shift=False` answers whole-snippet lines, as earlier ones did).
- "1": `GET /health` -> {"status": "healthy", "version": "Lean version: v4.x"}; `GET /openapi.json`
  (FastAPI's defaults, path /verify only); `POST /verify` {"codes": [{"custom_id", "proof"}]} ->
  {"results": [{"custom_id", "error", "response"}]} with "time" inside the response.
- "9": an API proverctl does not know (openapi version 9.0.0, a /api/v9/check path).

Errors as the server answers them: a REPL that does not answer within the request's timeout ->
that snippet's result {"error": "Lean REPL command timed out in 30.0 seconds"} (its REPL is killed);
`busy=N` answers the first N check requests 429 {"detail": "No available REPLs"}; a snippet matching
`crash_on` fails its whole request with 500 {"detail": "JSON decode error"} (one failing snippet fails
the batch there); `api_key` makes every route but /health answer 401 without `Authorization: Bearer KEY`.
"""

from __future__ import annotations

import json
import re
import os
import select
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from loopback_server import LoopbackServer

STANDIN = Path(__file__).with_name("standin_repl.py")
_HEADER = re.compile(r"\A(?:[ \t]*\n|import[^\n]*\n)*")


class _Repl:
    """One stand-in REPL process with its header's environment."""

    def __init__(self, header: str, args: list[str]) -> None:
        self.proc = subprocess.Popen([sys.executable, str(STANDIN), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.lock = threading.Lock()
        self.buffer = b""
        self.env = None
        if header.strip():
            answer = self.ask({"cmd": header}, 60.0)
            self.env = answer.get("env") if isinstance(answer, dict) else None

    def ask(self, request: dict, timeout: float):
        """The REPL's answer (its JSON up to the blank line that ends it), or None past `timeout`."""
        self.proc.stdin.write(json.dumps(request) + "\n\n")
        self.proc.stdin.flush()
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n\n" not in self.buffer.lstrip(b"\n"):
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise RuntimeError("the REPL exited")
            self.buffer += chunk
        text = self.buffer.lstrip(b"\n")
        answer, _, self.buffer = text.partition(b"\n\n")
        return json.loads(answer)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


class KiminaStandin(LoopbackServer):
    def __init__(self, *, api: str = "2", shift: bool = True, busy: int = 0, crash_on: str | None = None,
                 api_key: str | None = None, repl_args: list[str] | None = None) -> None:
        self.api, self.shift, self.busy, self.api_key = api, shift, busy, api_key
        self.crash_on = re.compile(crash_on) if crash_on else None
        self.repl_args = repl_args or []
        self.requests: list[dict] = []  # every check request body
        self._repls: dict[str, _Repl] = {}
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status: int, data) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _authorized(self) -> bool:
                if standin.api_key is None:
                    return True
                given = self.headers.get("Authorization")
                if not given:
                    self._send(401, {"detail": "Missing API key"})
                    return False
                if given.removeprefix("Bearer ") != standin.api_key:
                    self._send(401, {"detail": "Invalid API key"})
                    return False
                return True

            def do_GET(self):
                if self.path in ("/health", "/health/"):
                    return self._send(200, {"status": "ok"} if standin.api != "1" else
                                      {"status": "healthy", "version": "Lean version: v4.19.0"})
                if not self._authorized():
                    return
                document = standin.openapi(self.path)
                self._send(200, document) if document is not None else self._send(404, {"detail": "Not Found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                if not self._authorized():
                    return
                route = {"2": ("/api/check", "/verify"), "1": ("/verify",), "9": ("/api/v9/check",)}[standin.api]
                if self.path not in route:
                    return self._send(404, {"detail": "Not Found"})
                standin.requests.append(body)
                with standin._lock:
                    if standin.busy > 0:
                        standin.busy -= 1
                        return self._send(429, {"detail": "No available REPLs"})
                new = self.path == "/api/check"
                snippets = [(s["id"], s["code"]) for s in body["snippets"]] if new else \
                    [(c["custom_id"], c.get("proof") or c.get("code")) for c in body["codes"]]
                if standin.crash_on is not None and any(standin.crash_on.search(code) for _, code in snippets):
                    return self._send(500, {"detail": "JSON decode error"})
                results = [standin.run(ident, code, float(body.get("timeout", 30)), new) for ident, code in snippets]
                self._send(200, {"results": results})

        self._serve(Handler)
        self.address = f"kimina://127.0.0.1:{self.port}"

    def openapi(self, path: str):
        if self.api == "2" and path == "/api/openapi.json":
            return {"openapi": "3.1.0", "info": {"title": "Kimina Lean Server API", "version": "2.0.0"},
                    "paths": {"/api/check": {"post": {}}, "/verify": {"post": {}}, "/health": {"get": {}}}}
        if self.api == "1" and path == "/openapi.json":
            return {"openapi": "3.1.0", "info": {"title": "FastAPI", "version": "0.1.0"}, "paths": {"/verify": {"post": {}}}}
        if self.api == "9" and path == "/api/openapi.json":
            return {"openapi": "3.1.0", "info": {"title": "Kimina Lean Server API", "version": "9.0.0"},
                    "paths": {"/api/v9/check": {"post": {}}}}
        return None

    def run(self, ident: str, code: str, timeout: float, new: bool) -> dict:
        header = _HEADER.match(code).group(0)
        body = code[len(header):]
        with self._lock:
            repl = self._repls.get(header)
            if repl is None:
                repl = self._repls[header] = _Repl(header, self.repl_args)
        started = time.monotonic()
        with repl.lock:
            request = {"cmd": body} if repl.env is None else {"cmd": body, "env": repl.env}
            answer = repl.ask(request, timeout)
        seconds = round(time.monotonic() - started, 3)
        if answer is None:
            with self._lock:
                self._repls.pop(header, None)
            repl.kill()
            if new:
                return {"id": ident, "time": float(timeout), "error": f"Lean REPL command timed out in {float(timeout)} seconds",
                        "diagnostics": {"repl_uuid": "0" * 32}}
            return {"custom_id": ident, "error": "Lean process timed out", "response": None}
        answer.pop("env", None)
        # The REPL numbers the lines of the code after the header; a server that does not shift adds them back.
        drop = 0 if self.shift and new else -header.count("\n")
        for item in (answer.get("messages") or []) + (answer.get("sorries") or []):
            for key in ("pos", "endPos"):
                if isinstance(item.get(key), dict):
                    item[key]["line"] -= drop
        if new:
            return {"id": ident, "time": seconds, "response": answer}
        return {"custom_id": ident, "error": None, "response": {**answer, "time": seconds}}

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        for repl in list(self._repls.values()):
            repl.kill()
