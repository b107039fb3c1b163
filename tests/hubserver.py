"""A loopback stand-in for the Hugging Face hub's HTTP API, enough for huggingface_hub's real
download code (`snapshot_download`, `HfApi.list_repo_tree`, `verify_repo_checksums`).

It serves repos built in memory by the tests and answers the requests huggingface_hub 2.x makes:
`GET /api/models/{repo}/revision/{rev}` (sha, siblings), `GET /api/models/{repo}/tree/{rev}` (a JSON list of
{type, path, size, oid, lfs}), and `HEAD`/`GET /{repo}/resolve/{rev}/{file}` with `X-Repo-Commit`, `ETag`,
`Content-Length` and Range support. Faults are injected per file: drop the connection mid-body, or
answer 503 after a drop. Every request is recorded for assertions.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import unquote, urlparse

from loopback_server import LoopbackServer


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    repo_id: str
    files: dict[str, bytes]
    lfs: set[str] = field(default_factory=set)
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit
    gated: bool = False  # answer 401 GatedRepo unless the right token is sent
    token: str | None = None

    def __post_init__(self) -> None:
        self.branches.setdefault("main", self.commit)

    def etag(self, path: str) -> str:
        data = self.files[path]
        return hashlib.sha256(data).hexdigest() if path in self.lfs else git_blob_sha1(data)

    def tree(self) -> list[dict]:
        rows = []
        for path, data in sorted(self.files.items()):
            row = {"type": "file", "path": path, "size": len(data), "oid": git_blob_sha1(data)}
            if path in self.lfs:
                row["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                row["size"] = len(data)
            rows.append(row)
        return rows


@dataclass
class Fault:
    drop_after: int | None = None  # close the connection after this many body bytes
    times: int = 1  # how many GETs the drop applies to
    then_status: int | None = None  # after the drops, answer this status to further GETs


class HubServer(LoopbackServer):
    """Run with `with HubServer() as hub:`; `hub.url` goes into HF_ENDPOINT."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.faults: dict[str, Fault] = {}
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_HEAD(self):
                server._handle(self, head=True)

            def do_GET(self):
                server._handle(self, head=False)

        self._serve(Handler)

    def add(self, repo: Repo) -> Repo:
        self.repos[repo.repo_id] = repo
        return repo

    # -----------------------------------------------------------------------------------------
    def _send(self, handler, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
        handler.send_response(status)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if not head:
            handler.wfile.write(body)

    def _json(self, handler, data, status: int = 200, head: bool = False) -> None:
        self._send(handler, status, json.dumps(data).encode(), {"Content-Type": "application/json"}, head)

    def _error(self, handler, status: int, code: str, head: bool) -> None:
        self._send(handler, status, json.dumps({"error": code}).encode(), {"X-Error-Code": code, "Content-Type": "application/json"}, head)

    def _auth_ok(self, handler, repo: Repo) -> bool:
        if not repo.gated:
            return True
        return handler.headers.get("Authorization") == f"Bearer {repo.token}"

    def _find_repo(self, parts: list[str]) -> tuple[Repo | None, list[str]]:
        if len(parts) >= 2 and f"{parts[0]}/{parts[1]}" in self.repos:
            return self.repos[f"{parts[0]}/{parts[1]}"], parts[2:]
        return None, parts[2:]

    def _resolve_rev(self, repo: Repo, rev: str) -> str | None:
        if rev == repo.commit:
            return rev
        return repo.branches.get(rev)

    def _handle(self, handler, head: bool) -> None:
        parsed = urlparse(handler.path)
        parts = [unquote(p) for p in parsed.path.strip("/").split("/")]
        with self._lock:
            self.requests.append(
                {"method": handler.command, "path": parsed.path, "range": handler.headers.get("Range"),
                 "auth": handler.headers.get("Authorization")}
            )
        if parts[:2] == ["api", "models"]:
            repo, rest = self._find_repo(parts[2:])
            if repo is None:
                return self._error(handler, 404, "RepoNotFound", head)
            if not self._auth_ok(handler, repo):
                return self._error(handler, 401, "GatedRepo", head)
            if len(rest) >= 2 and rest[0] in ("revision", "tree"):
                commit = self._resolve_rev(repo, rest[1])
                if commit is None:
                    return self._error(handler, 404, "RevisionNotFound", head)
                if rest[0] == "revision":
                    return self._json(
                        handler,
                        {"id": repo.repo_id, "sha": commit, "siblings": [{"rfilename": p} for p in sorted(repo.files)]},
                        head=head,
                    )
                return self._json(handler, repo.tree(), head=head)
            return self._error(handler, 404, "NotFound", head)
        repo, rest = self._find_repo(parts)
        if repo is None:
            return self._error(handler, 404, "RepoNotFound", head)
        if not rest or rest[0] != "resolve" or len(rest) < 3:
            return self._error(handler, 404, "NotFound", head)
        if not self._auth_ok(handler, repo):
            return self._error(handler, 401, "GatedRepo", head)
        commit = self._resolve_rev(repo, rest[1])
        if commit is None:
            return self._error(handler, 404, "RevisionNotFound", head)
        path = "/".join(rest[2:])
        if path not in repo.files:
            return self._error(handler, 404, "EntryNotFound", head)
        data = repo.files[path]
        headers = {"X-Repo-Commit": commit, "ETag": f'"{repo.etag(path)}"', "Accept-Ranges": "bytes"}
        if path in repo.lfs:
            headers["X-Linked-Etag"] = f'"{repo.etag(path)}"'
            headers["X-Linked-Size"] = str(len(data))
        if head:
            handler.send_response(200)
            for key, value in headers.items():
                handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            return
        fault = self.faults.get(path)
        if fault is not None and fault.times <= 0 and fault.then_status:
            return self._error(handler, fault.then_status, "Unavailable", head)
        start = 0
        status = 200
        rng = handler.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[len("bytes="):].split("-")[0])
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if fault is not None and fault.times > 0 and fault.drop_after is not None:
            fault.times -= 1
            handler.wfile.write(body[: fault.drop_after])
            handler.wfile.flush()
            handler.close_connection = True
            try:
                import socket

                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        handler.wfile.write(body)
