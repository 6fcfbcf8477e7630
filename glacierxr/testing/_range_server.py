"""The HTTP range server behind :func:`glacierxr.testing.http.serve_files` (standard library only).

It runs in its own process, started as ``python -I _range_server.py CONFIG_JSON``: GDAL may hold
the GIL while it waits for a network answer (e.g. probing sidecar files from a metadata call),
and a server thread in the reading process would then never answer. On start it prints the port
it listens on (127.0.0.1, chosen by the OS) and serves until terminated.

Besides the files under ``root`` it answers two control paths, never faulted nor counted:
``GET /__control__/stats`` (the counters as JSON) and ``PUT /__control__/faults`` (new faults,
a JSON object with the fields of ``glacierxr.testing.http.Faults``).
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CONTROL = "/__control__/"

_COUNTERS = ("requests", "heads", "range_gets", "served", "errors", "resets", "slow", "unreachable", "not_found",
             "faulted", "recovered", "bytes_sent")


def draw(seed: int, key: str, occurrence: int) -> float:
    """The deterministic number in ``[0, 1)`` of the ``occurrence``-th request ``key``."""
    digest = hashlib.blake2b(f"{seed}\0{key}\0{occurrence}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """``(start, end)`` (inclusive) of a single ``bytes=`` range; None to serve the whole file
    (a multi-range or malformed header, which RFC 9110 lets a server ignore); ``"unsatisfiable"``."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, sep, last = spec.strip().partition("-")
    if not sep:
        return None
    try:
        if not first:  # suffix range: the last N bytes
            n = int(last)
            if n <= 0:
                return "unsatisfiable"
            return max(size - n, 0), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return "unsatisfiable"
    return start, min(end, size - 1)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, root: Path, faults: dict[str, Any]) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.root = root
        self.faults = faults
        self.lock = threading.Lock()
        self.stats: dict[str, Any] = {name: 0 for name in _COUNTERS} | {"paths": {}}
        self.seen: dict[str, int] = {}
        self.failures: dict[str, int] = {}
        self.faulted_keys: set[str] = set()
        self.recovered_keys: set[str] = set()
        self.to_reset: set[socket.socket] = set()

    def shutdown_request(self, request) -> None:  # noqa: ANN001
        with self.lock:
            reset = request in self.to_reset
            self.to_reset.discard(request)
        if reset:  # SO_LINGER 0 and no FIN first: the client sees a connection reset
            request.close()
        else:
            super().shutdown_request(request)

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001
        pass  # clients hang up mid-answer (GDAL does on purpose); nothing to report


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_GET(self) -> None:
        if self.path.startswith(CONTROL):
            with self.server.lock:
                body = json.dumps(self.server.stats).encode()
            self._send(200, body, [("Content-Type", "application/json")])
            return
        self._answer(head=False)

    def do_PUT(self) -> None:
        if self.path == CONTROL + "faults":
            faults = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            with self.server.lock:
                self.server.faults = faults
            self._send(204, b"")
            return
        self._send(405, b"")

    # -- helpers

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]] | None = None, *, head: bool = False) -> None:
        self.send_response(status)
        for k, v in headers or []:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and not head:
            self.wfile.write(body)

    def _fault(self, key: str, rel: str, head: bool, ranged: bool) -> str | None:
        """Decide (and count) this request's fault: ``"unreachable"``, ``"error"``, ``"reset"``, ``"slow"`` or None."""
        srv = self.server
        with srv.lock:
            faults, stats = srv.faults, srv.stats
            stats["requests"] += 1
            stats["heads"] += head
            stats["range_gets"] += (not head) and ranged
            stats["paths"][rel] = stats["paths"].get(rel, 0) + 1
            unreachable = faults.get("unreachable", [])
            if rel in unreachable or Path(rel).name in unreachable:
                stats["unreachable"] += 1
                return "unreachable"
            n = srv.seen.get(key, 0)
            srv.seen[key] = n + 1
            if faults.get("ranges_only", True) and (head or not ranged):
                return None
            u = draw(faults.get("seed", 0), key, n)
            error, reset, slow = (faults.get(k, 0.0) for k in ("error_rate", "reset_rate", "slow_rate"))
            if u < error + reset:
                if srv.failures.get(key, 0) >= faults.get("max_faults", 2):
                    return None  # this request has failed often enough: transient faults end
                srv.failures[key] = srv.failures.get(key, 0) + 1
                srv.faulted_keys.add(key)
                stats["faulted"] = len(srv.faulted_keys)
                kind = "error" if u < error else "reset"
                stats["errors" if kind == "error" else "resets"] += 1
                return kind
            if u < error + reset + slow:
                stats["slow"] += 1
                return "slow"
            return None

    def _reset(self) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        with self.server.lock:
            self.server.to_reset.add(self.connection)

    def _answer(self, *, head: bool) -> None:
        srv = self.server
        rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        path: Path | None = (srv.root / rel).resolve()
        if not path.is_relative_to(srv.root) or not path.is_file():
            path = None
        range_header = self.headers.get("Range")
        key = f"{self.command} {rel} {range_header or ''}"
        fault = self._fault(key, rel, head, range_header is not None)
        if fault == "unreachable":
            self._send(int(srv.faults.get("unreachable_status", 404)), b"")
            return
        if fault == "error":
            self._send(500, b"")
            return
        if fault == "reset":
            self._reset()
            return
        if fault == "slow":
            time.sleep(float(srv.faults.get("delay", 0.2)))
        if path is None:
            with srv.lock:
                srv.stats["not_found"] += 1
            self._send(404, b"")
            return
        size = path.stat().st_size
        span = parse_range(range_header, size) if range_header else None
        if span == "unsatisfiable":
            self._send(416, b"", [("Content-Range", f"bytes */{size}")])
            return
        start, end = span if isinstance(span, tuple) else (0, size - 1)
        length = max(end - start + 1, 0)
        body = b""
        if not head and length:
            with path.open("rb") as f:
                f.seek(start)
                body = f.read(length)
        headers = [("Content-Type", "image/tiff" if path.suffix.lower() in (".tif", ".tiff") else "application/octet-stream"),
                   ("Accept-Ranges", "bytes")]
        if isinstance(span, tuple):
            headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
        with srv.lock:  # count before answering: a client that has its bytes sees consistent counters
            srv.stats["served"] += 1
            srv.stats["bytes_sent"] += len(body)
            if key in srv.faulted_keys:
                srv.recovered_keys.add(key)
                srv.stats["recovered"] = len(srv.recovered_keys)
        self.send_response(206 if isinstance(span, tuple) else 200)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if body:
            self.wfile.write(body)


def main(argv: list[str]) -> None:
    config = json.loads(argv[1])
    server = Server(Path(config["root"]).resolve(), config.get("faults", {}))
    print(server.server_address[1], flush=True)
    server.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main(sys.argv)
