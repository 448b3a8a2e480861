"""Request bodies as the HTTP server receives them: sized (Content-Length) or chunked, read once, bounded.

Every way of reading a body has a limit (``limits.py``): a body that announces a larger size is
refused before a byte is read, one that grows past the limit is refused as soon as it does, and a
commit body is split into lines without ever holding more than one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.message import Message

from reasoner_hub.errors import HubError
from reasoner_hub.limits import MAX_JSON_BODY, parse_json, too_large


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

    @property
    def declared(self) -> int | None:
        """The Content-Length still to come (None for a chunked body)."""
        return self._remaining

    def refuse_if_declared_over(self, limit: int, what: str = "Request body") -> None:
        """413 before reading a byte when the client already said the body is too large."""
        if self._remaining is not None and self._remaining > limit:
            raise too_large(what, limit, "send less per request")

    def read_all(self, limit: int = MAX_JSON_BODY) -> bytes:
        self.refuse_if_declared_over(limit)
        parts, total = [], 0
        for chunk in self.chunks(min(limit + 1, 1024 * 1024)):
            total += len(chunk)
            if total > limit:
                raise too_large("Request body", limit, "send less per request")
            parts.append(chunk)
        return b"".join(parts)

    def json(self, limit: int = MAX_JSON_BODY) -> object:
        return parse_json(self.read_all(limit) or b"{}")

    def lines(self, max_line: int, max_total: int) -> Iterator[bytes]:
        """Lines of an x-ndjson body, streamed; 413 once a line or the whole body passes its limit."""
        self.refuse_if_declared_over(max_total, "Commit body")
        buffer = bytearray()
        for chunk in self.chunks():
            if self.received > max_total:
                raise too_large("Commit body", max_total, "split the upload into several commits")
            start = len(buffer)
            buffer += chunk
            cut = buffer.rfind(b"\n", start)
            if cut < 0:
                if len(buffer) > max_line:
                    raise too_large("A line of the commit body", max_line, "upload large files through LFS")
                continue
            complete, buffer = bytes(buffer[:cut]), buffer[cut + 1 :]
            for line in complete.split(b"\n"):
                if len(line) > max_line:
                    raise too_large("A line of the commit body", max_line, "upload large files through LFS")
                if line.strip():
                    yield line
            if len(buffer) > max_line:
                raise too_large("A line of the commit body", max_line, "upload large files through LFS")
        if buffer.strip():
            yield bytes(buffer)
