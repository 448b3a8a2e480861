"""HTTP plumbing on the standard library: request bodies (sized or chunked), streamed answers, metrics.

Kept apart from the routes so that the hub logic sees plain ``Request``/``Response`` objects.
HTTP/1.1 keep-alive is on (the clients pool connections); a request whose body was not read to
its end closes the connection, so leftover bytes can never be taken for the next request.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import Message
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from reasoner.localhub.errors import HubError
from reasoner.localhub.metrics import Metrics, RequestRecord, client_of, pid_of

log = logging.getLogger(__name__)


class BodyReader:
    """The request body, read once, from a Content-Length or a chunked transfer encoding."""

    def __init__(self, stream, headers: Message) -> None:
        self._stream = stream
        self.received = 0
        self.chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        length = headers.get("Content-Length")
        try:
            self._remaining = int(length) if length is not None and not self.chunked else None
        except ValueError:
            raise HubError(400, "Invalid Content-Length") from None
        if self._remaining is not None and self._remaining < 0:
            raise HubError(400, "Invalid Content-Length")
        self._chunk_left = 0
        self.done = not self.chunked and not self._remaining

    def chunks(self, size: int = 1024 * 1024) -> Iterator[bytes]:
        while not self.done:
            data = self._read_some(size)
            if data:
                yield data

    def _read_some(self, size: int) -> bytes:
        if not self.chunked:
            data = self._stream.read(min(size, self._remaining))
            if not data:
                raise HubError(400, "Request body ended early")
            self._remaining -= len(data)
            self.received += len(data)
            self.done = self._remaining == 0
            return data
        if self._chunk_left == 0:
            line = self._stream.readline(1024)
            try:
                self._chunk_left = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise HubError(400, "Invalid chunked body") from None
            if self._chunk_left == 0:
                while self._stream.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                self.done = True
                return b""
        data = self._stream.read(min(size, self._chunk_left))
        if not data:
            raise HubError(400, "Request body ended early")
        self._chunk_left -= len(data)
        self.received += len(data)
        if self._chunk_left == 0:
            self._stream.readline(16)  # CRLF after each chunk
        return data

    def read_all(self, limit: int = 64 * 1024 * 1024) -> bytes:
        parts, total = [], 0
        for chunk in self.chunks():
            total += len(chunk)
            if total > limit:
                raise HubError(413, f"Request body larger than {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    def json(self) -> object:
        raw = self.read_all()
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            raise HubError(400, "Request body is not valid JSON") from None

    def lines(self) -> Iterator[bytes]:
        """Lines of an x-ndjson body, streamed."""
        buffer = b""
        for chunk in self.chunks():
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            yield from (line for line in complete if line.strip())
        if buffer.strip():
            yield buffer


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


def make_handler(app: Callable[[Request], Response], metrics: Metrics, track: Callable | None = None):
    """A BaseHTTPRequestHandler class bound to ``app`` (Request -> Response) and ``metrics``."""

    class HubRequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "reasoner-localhub"
        timeout = 120  # idle keep-alive connections are dropped after this

        def setup(self) -> None:
            super().setup()
            if track is not None:
                track(self.connection, True)

        def finish(self) -> None:
            try:
                super().finish()
            finally:
                if track is not None:
                    track(self.connection, False)

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
                    response = app(request)
                except HubError as error:
                    response = error_response(error)
            except HubError as error:  # the body could not even be framed
                response = error_response(error)
                self.close_connection = True
            except Exception as error:  # a bug or a storage failure: answer 500, keep serving
                log.exception("error while serving %s %s", self.command, split.path)
                response = error_response(HubError(500, f"Internal error: {type(error).__name__}: {error}"))
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
            self.end_headers()
            sent = 0
            if self.command == "HEAD":
                if not isinstance(body, bytes):
                    getattr(body, "close", lambda: None)()
                return 0
            if isinstance(body, bytes):
                self.wfile.write(body)
                return len(body)
            try:
                for chunk in body:
                    self.wfile.write(chunk)
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            except Exception:
                # Headers are gone already: closing the connection early is how the client learns.
                self.close_connection = True
                log.exception("stream of %s broke after %d bytes", self.path.split("?")[0], sent)
            finally:
                getattr(body, "close", lambda: None)()
            return sent

        def _record(self, request: Request | None, path: str, status: int, sent: int, started: float) -> None:
            headers = self.headers
            metrics.record(
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

    return HubRequestHandler
