"""HTTP plumbing on the standard library: requests, streamed answers, metrics.

Kept apart from the routes so that the hub logic sees plain ``Request``/``Response`` objects.
HTTP/1.1 keep-alive is on (the clients pool connections); a request whose body was not read to
its end closes the connection, so leftover bytes can never be taken for the next request.

Latency on kept-alive connections: an answer's headers and the start of its body leave in one
``send`` on a socket with ``TCP_NODELAY``. Written separately with Nagle's algorithm on, the body
waited for the client's delayed ACK of the headers: ~40 ms per request on Linux, paid by every
call of a pooled client (huggingface_hub pools). ``legacy_send`` restores the old behaviour, only
so that ``bench/hub_latency.py`` can measure both in one run.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import Message
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from reasoner_hub.body import BodyReader
from reasoner_hub.errors import HubError
from reasoner_hub.metrics import Metrics, RequestRecord, client_of, pid_of

log = logging.getLogger(__name__)


@dataclass
class Request:
    method: str
    path: str  # raw (still percent-encoded), no query
    query: dict[str, list[str]]
    headers: Message
    body: BodyReader
    base_url: str
    remote: str
    # filled in by the routes, for the metrics and the request log
    kind: str = "api"
    repo: str | None = None
    revision: str | None = None
    principal: object = None
    client: str | None = None  # who to count this request for, when not in the headers (LFS PUT)
    pid: str | None = None

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def flag(self, name: str) -> bool:
        return (self.arg(name) or "").lower() in ("1", "true", "yes")


@dataclass
class Response:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | Iterator[bytes] = b""
    length: int | None = None


def json_response(data: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data).encode()
    return Response(status, {"Content-Type": "application/json", **(headers or {})}, body)


def _header_safe(text: str) -> str:
    return " ".join(text.encode("latin-1", "replace").decode("latin-1").split())[:1000]


def error_response(error: HubError) -> Response:
    headers = dict(error.headers)
    headers["X-Error-Message"] = _header_safe(error.message)
    if error.code:
        headers["X-Error-Code"] = error.code
    return json_response({"error": error.message}, error.status, headers)


COALESCE_LIMIT = 256 * 1024  # bodies up to this size leave in the same write as the headers


@dataclass(frozen=True)
class Wiring:
    """What a handler serves with: the app, where to count requests, who tracks connections."""

    app: Callable[[Request], Response]
    metrics: Metrics
    track: Callable | None = None
    legacy_send: bool = False


class HubRequestHandler(BaseHTTPRequestHandler):
    """One connection: parse requests, hand them to ``wiring.app``, send and count the answers."""

    wiring: Wiring  # set on the subclass make_handler builds
    protocol_version = "HTTP/1.1"
    server_version = "reasoner-localhub"
    timeout = 120  # idle keep-alive connections are dropped after this

    def setup(self) -> None:
        super().setup()
        if not self.wiring.legacy_send:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.wiring.track is not None:
            self.wiring.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self.wiring.track is not None:
                self.wiring.track(self.connection, False)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        # Query strings may hold signed upload URLs: never log them.
        log.debug("%s %s", self.address_string(), re.sub(r"\?\S*", "", format % args))

    def _handle(self) -> None:
        started = time.monotonic()
        split = urlsplit(self.path)
        host = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        sent = 0
        request = None
        try:
            body = BodyReader(self.rfile, self.headers)
            request = Request(
                method=self.command,
                path=split.path,
                query=parse_qs(split.query, keep_blank_values=True),
                headers=self.headers,
                body=body,
                base_url=f"http://{host}",
                remote=self.client_address[0],
            )
            try:
                response = self.wiring.app(request)
            except HubError as error:
                response = error_response(error)
        except HubError as error:  # the body could not even be framed
            response = error_response(error)
            self.close_connection = True
        except Exception:  # a bug or a storage failure: answer 500 (no internals), keep serving
            reference = uuid.uuid4().hex[:12]
            log.exception("error %s while serving %s %s", reference, self.command, split.path)
            response = error_response(HubError(500, f"Internal error (reference {reference} in the hub's log)"))
        if request is not None and not request.body.done:
            self.close_connection = True  # unread body bytes must not become the next request
        try:
            sent = self._send(response)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self._record(request, split.path, response.status, sent, started)

    def _send(self, response: Response) -> int:
        body = response.body
        length = response.length if response.length is not None else (len(body) if isinstance(body, bytes) else None)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if length is not None:
            self.send_header("Content-Length", str(length))
        else:
            self.close_connection = True
        if self.close_connection:
            self.send_header("Connection", "close")
        if self.wiring.legacy_send:
            self.end_headers()
            head = b""
        else:
            self._headers_buffer.append(b"\r\n")
            head, self._headers_buffer = b"".join(self._headers_buffer), []
        if self.command == "HEAD" or (isinstance(body, bytes) and (not body or len(body) <= COALESCE_LIMIT)):
            data = b"" if self.command == "HEAD" else body
            if head or data:
                self.wfile.write(head + data)
            if not isinstance(body, bytes):
                getattr(body, "close", lambda: None)()
            return len(data)
        return self._stream(head, [body] if isinstance(body, bytes) else body)

    def _stream(self, head: bytes, body) -> int:
        """Write ``head`` with the first chunk of ``body``, then the rest; returns the body bytes sent."""
        sent = 0
        try:
            for chunk in body:
                if head and len(chunk) <= COALESCE_LIMIT:
                    chunk_out = head + chunk
                else:
                    if head:
                        self.wfile.write(head)
                    chunk_out = chunk
                self.wfile.write(chunk_out)
                head = b""
                sent += len(chunk)
            if head:
                self.wfile.write(head)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            # Headers may be gone already: closing the connection early is how the client learns.
            self.close_connection = True
            log.exception("stream of %s broke after %d bytes", self.path.split("?")[0], sent)
        finally:
            getattr(body, "close", lambda: None)()
        return sent

    def _record(self, request: Request | None, path: str, status: int, sent: int, started: float) -> None:
        headers = self.headers
        self.wiring.metrics.record(
            RequestRecord(
                time=datetime.now(timezone.utc).isoformat(),
                method=self.command,
                path=path,
                kind=request.kind if request else "api",
                repo=request.repo if request else None,
                revision=request.revision if request else None,
                status=status,
                bytes_sent=sent,
                bytes_received=request.body.received if request else 0,
                client=(request.client if request else None) or client_of(headers, self.client_address[0]),
                user_agent=headers.get("User-Agent") or "",
                pid=(request.pid if request else None) or pid_of(headers),
                duration_ms=round((time.monotonic() - started) * 1000, 3),
            )
        )

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _handle  # noqa: N815


def make_handler(
    app: Callable[[Request], Response], metrics: Metrics, track: Callable | None = None, legacy_send: bool = False
) -> type[HubRequestHandler]:
    """A handler class bound to ``app`` (Request -> Response) and ``metrics``."""
    return type("BoundHubRequestHandler", (HubRequestHandler,), {"wiring": Wiring(app, metrics, track, legacy_send)})
