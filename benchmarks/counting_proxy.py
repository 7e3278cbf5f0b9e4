"""An HTTP proxy on 127.0.0.1 that forwards every request to an upstream S3 server and counts them.

The approach of tests/s3_helpers.py's FaultProxy (which also injects errors), reduced to counting: every request
is logged as (method, path with query) before it is relayed. Unlike FaultProxy it keeps one upstream connection
per client connection, so a benchmark of thousands of requests does not pay a TCP handshake per request to moto.
"""

from __future__ import annotations

import http.client
import http.server
import threading
import urllib.parse
from collections import Counter
from types import TracebackType

# Headers that belong to one hop; "expect" too: the proxy has already answered 100-continue itself.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer", "expect"}
)


class CountingProxy:
    """Use as a context manager or call ``close()``. ``log`` holds (method, path) of every request seen."""

    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self._upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self._lock = threading.Lock()
        self.log: list[tuple[str, str]] = []
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"

    def mark(self) -> int:
        with self._lock:
            return len(self.log)

    def since(self, mark: int) -> list[tuple[str, str]]:
        with self._lock:
            return list(self.log[mark:])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> CountingProxy:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as botocore's pool expects
            upstream: http.client.HTTPConnection | None = None

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _conn(self) -> http.client.HTTPConnection:
                if self.upstream is None:
                    self.upstream = http.client.HTTPConnection(*proxy._upstream, timeout=120)
                return self.upstream

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    proxy.log.append((self.command, self.path))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                for attempt in (1, 2):
                    conn = self._conn()
                    try:
                        conn.request(self.command, self.path, body=body, headers=headers)
                        response = conn.getresponse()
                        data = response.read()
                        break
                    except (ConnectionError, http.client.HTTPException):
                        conn.close()
                        self.upstream = None
                        if attempt == 2:
                            raise
                self.send_response(response.status, response.reason)
                for k, v in response.getheaders():
                    if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                length_header = response.getheader("Content-Length")
                if self.command == "HEAD" and length_header is not None:
                    self.send_header("Content-Length", length_header)
                else:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        return Handler


def classify(requests: list[tuple[str, str]]) -> Counter[str]:
    """Requests by kind: ``GET data``, ``LIST versions``, ``PUT index``, ``DELETE (batch)``, ..."""
    out: Counter[str] = Counter()
    for method, path in requests:
        parts = urllib.parse.urlsplit(path)
        query = urllib.parse.parse_qs(parts.query)
        segments = [s for s in parts.path.split("/") if s]
        if "list-type" in query or (method == "GET" and len(segments) <= 1 and "prefix" in query):
            prefix = (query.get("prefix", [""])[0].split("/") or [""])[0] or "(root)"
            out[f"LIST {prefix}"] += 1
        elif method == "POST" and "delete" in query:
            out["DELETE (batch)"] += 1
        else:
            kind = segments[1] if len(segments) > 1 else "(bucket)"
            out[f"{method} {kind}"] += 1
    return out
