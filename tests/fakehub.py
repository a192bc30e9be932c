"""A small Hugging Face Hub on 127.0.0.1 that serves LFS files the way huggingface_hub 2.x reads
them, selected by clients through `HF_ENDPOINT`.

The endpoints are the ones huggingface_hub calls for what `models pull` uses (read from its source:
`file_download.get_hf_file_metadata`, `hf_api.HfApi.get_paths_info`, `file_download.http_get`):

- `HEAD|GET /{repo}/resolve/{revision}/{file}` answers like the Hub for an LFS file: a 302 to the
  CDN with `X-Repo-Commit`, `X-Linked-Etag: "<sha256>"`, `X-Linked-Size` and `ETag` (the git blob
  id of the LFS pointer); unknown repos, revisions and files get a 404 with `X-Error-Code`.
- `POST /api/models/{repo}/paths-info/{revision}` (form fields `paths`, `expand`) answers the JSON
  list the Hub gives: `{type, path, size, oid, lfs: {oid, size, pointerSize}}`.
- `HEAD|GET /cdn/{sha256}` is the CDN: it serves the bytes and honours `Range: bytes=N-` (206).
  The CDN is reached as `localhost` while the Hub is `127.0.0.1`: another origin, as a real CDN
  is, so huggingface_hub stops at the 302 for the metadata and follows it for the download.

Faults to inject: `drop_after` (close the next CDN response after that many body bytes),
`fail_gets` (answer that many CDN GETs with 503, after the drop if both are set), and per-file
`advertised_sha256`/`advertised_size` (metadata that lies about the bytes). Every request is
recorded in `requests`.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

COMMIT = "3f1c2b7a9d8e4f5061728394a5b6c7d8e9f0a1b2"


@dataclass
class HubFile:
    repo: str
    path: str
    content: bytes
    advertised_sha256: str | None = None
    advertised_size: int | None = None

    @property
    def sha256(self) -> str:
        return self.advertised_sha256 or hashlib.sha256(self.content).hexdigest()

    @property
    def size(self) -> int:
        return self.advertised_size if self.advertised_size is not None else len(self.content)

    @property
    def pointer(self) -> bytes:
        return (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\n"
            f"size {self.size}\n"
        ).encode()

    @property
    def pointer_oid(self) -> str:
        """The git blob id of the LFS pointer file (what the Hub puts in `ETag`)."""
        data = self.pointer
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Recorded:
    method: str
    path: str
    range: str | None
    status: int = 0


@dataclass
class FakeHub:
    files: dict[tuple[str, str], HubFile] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    drop_after: int | None = None
    fail_gets: int = 0
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, repo: str, path: str, content: bytes, **lies: object) -> HubFile:
        hub_file = HubFile(repo, path, content, **lies)  # type: ignore[arg-type]
        self.files[(repo, path)] = hub_file
        return hub_file

    def gets(self) -> list[Recorded]:
        """The CDN GETs: the actual transfers."""
        return [r for r in self.requests if r.method == "GET" and r.path.startswith("/cdn/")]

    def by_sha(self, sha256: str) -> HubFile | None:
        return next((f for f in self.files.values() if f.sha256 == sha256), None)


def serve(hub: FakeHub) -> tuple[ThreadingHTTPServer, threading.Thread]:
    handler = type("Handler", (_Handler,), {"hub": hub})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    hub.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_PATHS_INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/paths-info/(?P<rev>[^/]+)$")
_CDN = re.compile(r"^/cdn/(?P<sha>[0-9a-f]{64})$")


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._dispatch(send_body=False)

    def do_GET(self) -> None:
        self._dispatch(send_body=True)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        record = self._record()
        match = _PATHS_INFO.match(unquote(urlsplit(self.path).path))
        if match is None or not self._known_repo(match["repo"], match["rev"], record):
            if match is None:
                self._status(record, 404, {"X-Error-Code": "EntryNotFound"})
            return
        entries = []
        for path in form.get("paths", []):
            hub_file = self.hub.files.get((match["repo"], path))
            if hub_file is not None:
                entries.append(
                    {
                        "type": "file",
                        "path": path,
                        "size": hub_file.size,
                        "oid": hub_file.pointer_oid,
                        "lfs": {
                            "oid": hub_file.sha256,
                            "size": hub_file.size,
                            "pointerSize": len(hub_file.pointer),
                        },
                    }
                )
        body = json.dumps(entries).encode()
        record.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _dispatch(self, send_body: bool) -> None:
        record = self._record()
        path = unquote(urlsplit(self.path).path)
        if match := _RESOLVE.match(path):
            self._resolve(match["repo"], match["rev"], match["file"], record)
        elif match := _CDN.match(path):
            self._cdn(match["sha"], send_body, record)
        else:
            self._status(record, 404, {})

    def _resolve(self, repo: str, revision: str, path: str, record: Recorded) -> None:
        if not self._known_repo(repo, revision, record):
            return
        hub_file = self.hub.files.get((repo, path))
        if hub_file is None:
            self._status(record, 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT})
            return
        cdn = f"http://localhost:{self.hub.port}/cdn/{hub_file.sha256}"
        self._status(
            record,
            302,
            {
                "Location": cdn,
                "X-Repo-Commit": COMMIT,
                "X-Linked-Etag": f'"{hub_file.sha256}"',
                "X-Linked-Size": str(hub_file.size),
                "ETag": f'"{hub_file.pointer_oid}"',
            },
        )

    def _cdn(self, sha256: str, send_body: bool, record: Recorded) -> None:
        hub_file = self.hub.by_sha(sha256)
        if hub_file is None:
            self._status(record, 404, {})
            return
        if send_body and self.hub.fail_gets > 0 and self.hub.drop_after is None:
            self.hub.fail_gets -= 1
            self._status(record, 503, {})
            return
        content = hub_file.content
        start = 0
        if record.range and (match := re.fullmatch(r"bytes=(\d+)-", record.range)):
            start = int(match[1])
        body = content[start:]
        record.status = 206 if start else 200
        self.send_response(record.status)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
        self.end_headers()
        if not send_body:
            return
        drop_after, self.hub.drop_after = self.hub.drop_after, None
        if drop_after is None:
            self.wfile.write(body)
            return
        self.wfile.write(body[:drop_after])
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def _known_repo(self, repo: str, revision: str, record: Recorded) -> bool:
        if not any(r == repo for r, _ in self.hub.files):
            self._status(record, 404, {"X-Error-Code": "RepoNotFound"})
            return False
        if revision not in ("main", COMMIT):
            self._status(record, 404, {"X-Error-Code": "RevisionNotFound"})
            return False
        return True

    def _record(self) -> Recorded:
        record = Recorded(self.command, unquote(urlsplit(self.path).path), self.headers["Range"])
        self.hub.requests.append(record)
        return record

    def _status(self, record: Recorded, status: int, headers: dict[str, str]) -> None:
        record.status = status
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()
