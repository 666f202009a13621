"""A minimal HTTP/1.1 server on asyncio streams, the base of the local fakes (FCM, Web Push
service, SMS provider) used by tests and staging. Not for production traffic.

It understands what the clients we test send: a request line, headers, and a body framed by
Content-Length (or chunked), with keep-alive. One `Handler` answers every request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

_MAX_HEADER_LINES = 100
_MAX_BODY = 16 * 1024 * 1024


@dataclass(frozen=True)
class Request:
    """A received request; header names are lower-case."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        """The body parsed as application/x-www-form-urlencoded (first value of each field)."""
        return {k: v[0] for k, v in parse_qs(self.body.decode("latin-1")).items()}


@dataclass(frozen=True)
class Response:
    """An answer to send back."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(
        cls, status: int, payload: object, headers: Mapping[str, str] | None = None
    ) -> Response:
        """A JSON response."""
        return cls(
            status,
            json.dumps(payload).encode(),
            {"Content-Type": "application/json; charset=UTF-8", **(headers or {})},
        )


Handler = Callable[[Request], Awaitable[Response]]


class _BadRequest(Exception):
    pass


class FakeHTTPServer:
    """Serves `handler` on host:port (port 0 picks a free one); use as `async with`."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0) -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:43117 (no trailing slash)."""
        if self._server is None:
            raise RuntimeError("server not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def start(self) -> None:
        """Start listening."""
        # A deep backlog: firebase-admin opens one connection per message of a batch at once.
        self._server = await asyncio.start_server(self._serve, self._host, self._port, backlog=1024)

    async def stop(self) -> None:
        """Stop listening and drop kept-alive connections."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._tasks:
            # Closing a connection ends its reader with EOF, so its task returns soon.
            _done, pending = await asyncio.wait(set(self._tasks), timeout=2)
            for task in pending:
                task.cancel()
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> FakeHTTPServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        try:
            while True:
                try:
                    request = await _read_request(reader)
                except _BadRequest:
                    await _write_response(writer, Response(400), close=True)
                    return
                if request is None:
                    return
                response = await self._handler(request)
                close = request.headers.get("connection", "").lower() == "close"
                await _write_response(writer, response, close=close)
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            # asyncio's stream callback logs a cancelled connection task as an error; a fake
            # being shut down has nothing to report.
            return
        finally:
            if task is not None:
                self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    line = await reader.readline()
    if not line:
        return None
    try:
        method, target, _version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    except ValueError as exc:
        raise _BadRequest from exc
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEADER_LINES):
        raw = await reader.readline()
        text = raw.decode("latin-1").rstrip("\r\n")
        if not text:
            break
        name, sep, value = text.partition(":")
        if not sep:
            raise _BadRequest
        headers[name.strip().lower()] = value.strip()
    else:
        raise _BadRequest
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    else:
        length = int(headers.get("content-length", "0") or "0")
        if not 0 <= length <= _MAX_BODY:
            raise _BadRequest
        body = await reader.readexactly(length)
    parts = urlsplit(target)
    return Request(method.upper(), parts.path, parts.query, headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            # Trailers, if any, end with an empty line.
            while (await reader.readline()).strip():
                pass
            return b"".join(chunks)
        total += size
        if total > _MAX_BODY:
            raise _BadRequest
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def _write_response(writer: asyncio.StreamWriter, response: Response, close: bool) -> None:
    try:
        reason = HTTPStatus(response.status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {response.status} {reason}"]
    headers = {k.lower(): (k, v) for k, v in response.headers.items()}
    headers["content-length"] = ("Content-Length", str(len(response.body)))
    if close:
        headers["connection"] = ("Connection", "close")
    lines += [f"{name}: {value}" for name, value in headers.values()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body)
    await writer.drain()
