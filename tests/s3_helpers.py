"""Run S3 tests against a real moto server on 127.0.0.1, reusable by storage and CLI tests.

The server is moto's ``ThreadedMotoServer`` (a werkzeug HTTP server in a daemon thread), so boto3 goes
through real HTTP, signing and XML parsing, exactly as against AWS or MinIO; nothing is patched
in-process. :class:`FaultProxy` sits in front of it to answer chosen requests with errors (503 SlowDown,
403 AccessDenied, ...), which moto itself can't be told to do.

Usage::

    server, endpoint = start_moto_server()
    env = s3_environment(endpoint)          # for os.environ / monkeypatch / a subprocess
    ...
    server.stop()
"""

from __future__ import annotations

import http.client
import http.server
import os
import secrets
import socket
import threading
import urllib.parse
from collections.abc import Callable
from types import TracebackType

from moto.server import ThreadedMotoServer

__all__ = [
    "ENV_TO_CLEAR",
    "FaultProxy",
    "closed_port",
    "fresh_bucket_name",
    "s3_environment",
    "start_moto_server",
]

# Settings from a developer's shell or ~/.aws that would steer boto3 away from the test server.
ENV_TO_CLEAR = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_REGION",
    "AWS_ENDPOINT_URL_S3",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_CA_BUNDLE",
)


def start_moto_server() -> tuple[ThreadedMotoServer, str]:
    """Start moto on 127.0.0.1 on a free port (port 0: the OS picks). Returns the server (call
    ``stop()`` when done) and its endpoint URL, e.g. ``http://127.0.0.1:40123``."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def s3_environment(endpoint_url: str, region: str = "us-east-1") -> dict[str, str]:
    """Environment variables that point boto3 at ``endpoint_url`` with dummy credentials and no config
    files. Also remove the variables in :data:`ENV_TO_CLEAR`."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def fresh_bucket_name() -> str:
    """A bucket name no other test uses (the moto server lives for the whole session)."""
    return f"vault-test-{secrets.token_hex(6)}"


def closed_port() -> int:
    """A TCP port on 127.0.0.1 where nothing listens (bound, then closed): connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# Headers that belong to one hop; "expect" too: the proxy has already answered 100-continue itself.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "te",
        "trailer",
        "expect",
    },
)

Rule = Callable[[str, str], bool]
"""Decides from (method, path) whether a request is answered with the configured error."""


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of ``upstream`` that answers with an S3 error instead of
    forwarding, for the next ``n`` requests given to :meth:`fail_next` (optionally only those matching a
    rule). Counts ``requests`` seen and ``failures`` sent. Use as a context manager or call ``close()``."""

    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self._upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self._lock = threading.Lock()
        self._remaining = 0
        self._status = 503
        self._code = "SlowDown"
        self._message = "Please reduce your request rate."
        self._rule: Rule | None = None
        self.requests = 0
        self.failures = 0
        self.log: list[tuple[str, str]] = []  # (method, path) of every request seen
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail_next(
        self,
        n: int,
        status: int = 503,
        code: str = "SlowDown",
        message: str = "Please reduce your request rate.",
        rule: Rule | None = None,
    ) -> None:
        """Answer the next ``n`` requests (matching ``rule``, when given) with this error; ``n < 0``: all."""
        with self._lock:
            self._remaining = n
            self._status, self._code, self._message, self._rule = status, code, message, rule

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _take_fault(self, method: str, path: str) -> tuple[int, str, str] | None:
        with self._lock:
            self.requests += 1
            self.log.append((method, path))
            if self._remaining == 0 or (self._rule is not None and not self._rule(method, path)):
                return None
            if self._remaining > 0:
                self._remaining -= 1
            self.failures += 1
            return self._status, self._code, self._message

    def _handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as botocore's pool expects

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy._take_fault(self.command, self.path)
                if fault is not None:
                    self._send_error(*fault)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                conn = http.client.HTTPConnection(*proxy._upstream, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                    self.send_response(response.status, response.reason)
                    for k, v in response.getheaders():
                        if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length":
                            self.send_header(k, v)
                    # HEAD answers carry the object's length but no body; relay it as it came.
                    length_header = response.getheader("Content-Length")
                    if self.command == "HEAD" and length_header is not None:
                        self.send_header("Content-Length", length_header)
                    else:
                        self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            def _send_error(self, status: int, code: str, message: str) -> None:
                xml = (
                    '<?xml version="1.0" encoding="UTF-8"?>\n'
                    f"<Error><Code>{code}</Code><Message>{message}</Message>"
                    f"<RequestId>{secrets.token_hex(8)}</RequestId></Error>"
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(xml)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(xml)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        return Handler
