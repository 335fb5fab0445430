"""How requests reach the service: :class:`ServiceApp`, a FastAPI app whose hot routes
(``/predict``, ``/feedback``) skip FastAPI's routing, under either interface a server speaks.

* ASGI (uvicorn; what any ASGI server or an app mounted under another one uses): the hot
  routes are answered from ``__call__``, the others go through FastAPI.
* RSGI (granian's own interface, what ``fastctr serve --server granian`` runs): the body
  comes as one ``bytes`` and the answer leaves in one call, without ASGI's message dicts
  and awaited sends (at 100 connections on one core: 1.3-1.4x the requests/s of the same
  app over ASGI under granian, see the README's load test). The other routes go through
  FastAPI by way of ASGI messages translated here; the lifespan runs in
  ``__rsgi_init__``/``__rsgi_del__``.

A hot route's handler is a plain function ``handler(body, content_type) -> Response`` (the
body whole, at most ``max_body`` bytes; the Content-Type header lower-cased, ``b""`` when
absent). Its errors go to the app's exception handlers, as FastAPI's would.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from fastctr.service.errors import BodyNotRead
from fastctr.service.telemetry import Telemetry, endpoint_of

#: a hot route's handler: (the body, its Content-Type lower-cased) -> the answer
Handler = Callable[[bytes, bytes], Response]


class JSONBytes(Response):
    """A JSON answer already encoded, with its two headers built directly (a Response's
    own header building costs more than scoring the row)."""

    media_type = "application/json"

    def __init__(self, body: bytes, status_code: int = 200) -> None:
        self.status_code, self.body, self.background = status_code, body, None
        self.raw_headers = [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]


def json_answer(obj: Any, status: int = 200) -> Response:
    """``obj`` as a JSON answer (numpy scalars and arrays too)."""
    return JSONBytes(orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY), status)


def header(scope: dict, name: bytes) -> bytes:
    """An ASGI request header's value (lower case), or b"" when absent."""
    for key, value in scope["headers"]:
        if key == name:
            return value.lower()
    return b""


def _too_large(size: int, limit: int, declared: bool) -> BodyNotRead:
    if declared:
        return BodyNotRead(413, "", f"the body is {size} bytes; at most {limit} are read "
                                    "(split the batch)")
    return BodyNotRead(413, "", f"the body is over {limit} bytes; split the batch")


def _declared_length(value: str | bytes | None, limit: int) -> None:
    """Refuse (413) a declared Content-Length over ``limit`` before the body is read."""
    if value is not None and value.isdigit() and int(value) > limit:
        raise _too_large(int(value), limit, True)


async def read_body(scope: dict, receive, limit: int) -> bytes:
    """An ASGI request's body, refused (413) beyond ``limit`` bytes before it is all read
    (read from the ASGI messages themselves: starlette's stream costs more than a small
    body)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            _declared_length(value, limit)
            break
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise BodyNotRead(400, "", "the client went away before the body's end")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit, False)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _rsgi_body(scope, protocol, limit: int) -> bytes:
    """An RSGI request's body, refused (413) beyond ``limit`` bytes: a declared length is
    checked first (the server reads no more than it), a chunked body as it streams."""
    try:
        length = scope.headers.get("content-length")
        if length is not None:
            _declared_length(length, limit)
            return await protocol()
        chunks, size = [], 0
        async for chunk in protocol:
            size += len(chunk)
            if size > limit:
                raise _too_large(size, limit, False)
            chunks.append(chunk)
        return b"".join(chunks)
    except RuntimeError:  # granian's ProtocolClosed/ProtocolError
        raise BodyNotRead(400, "", "the client went away before the body's end") from None


def _asgi_scope(scope) -> dict:
    """The ASGI scope of an RSGI request."""
    host, _, port = scope.server.rpartition(":")
    client, _, client_port = scope.client.rpartition(":")
    path = scope.path
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": scope.http_version, "method": scope.method,
            "scheme": scope.scheme, "path": path, "raw_path": path.encode(),
            "query_string": scope.query_string.encode("latin-1"), "root_path": "",
            "headers": [(k.encode("latin-1"), v.encode("latin-1"))
                        for k, v in scope.headers.items()],
            "client": (client, int(client_port or 0)), "server": (host, int(port or 0))}


def _str_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]


class ServiceApp(FastAPI):
    """FastAPI, with the hot routes (see :meth:`hot`) answered straight from the server's
    call, over ASGI or RSGI: their handler gets the body and its errors go to the app's
    exception handlers, while FastAPI's routing, dependency solving and middleware stack
    (most of a request's cost: ~100 us a call against ~20 us for the handler itself, see
    benches/bench_service.py) are skipped. The routes stay declared, for /docs and for an
    app mounted under another one (a path of its own), which takes FastAPI's way. Middleware
    added with ``add_middleware`` does not see the hot routes.

    Parameters
    ----------
    max_body : the most bytes of a hot route's body read (413 beyond)
    **kwargs : FastAPI's

    Examples
    --------
    >>> from fastapi.testclient import TestClient
    >>> app = ServiceApp(max_body=1000)
    >>> @app.hot("/echo", summary="How long the body is")
    ... def echo(body: bytes, content_type: bytes) -> Response:
    ...     return json_answer({"bytes": len(body), "type": content_type.decode()})
    >>> TestClient(app).post("/echo", content=b"abc", headers={"Content-Type": "Text/Plain"}).json()
    {'bytes': 3, 'type': 'text/plain'}
    >>> app.openapi()["paths"]["/echo"]["post"]["summary"]
    'How long the body is'
    """

    def __init__(self, *, max_body: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_body = max_body
        self._hot: dict[tuple[str, str], Handler] = {}
        self.telemetry: Telemetry | None = None  # counts every HTTP request when set
        self._lifespan_running = None

    def hot(self, path: str, **route) -> Callable[[Handler], Handler]:
        """Decorator: ``handler(body, content_type)`` answers ``POST path`` on the fast
        way; FastAPI gets a route (``route``: its keywords, e.g. ``summary``) that reads
        the body and calls it."""
        def declare(handler: Handler) -> Handler:
            async def endpoint(request: Request) -> Response:
                body = await read_body(request.scope, request.receive, self.max_body)
                return handler(body, header(request.scope, b"content-type"))

            endpoint.__name__, endpoint.__doc__ = handler.__name__, handler.__doc__
            self.post(path, **route)(endpoint)
            self._hot[("POST", path)] = handler
            return handler
        return declare

    async def _answer(self, error: Exception, request: Callable[[], Request]) -> Response:
        """The app's exception handler's answer to ``error`` (raised again when none)."""
        handler = next((self.exception_handlers[t] for t in type(error).__mro__
                        if t in self.exception_handlers and t is not Exception), None)
        if handler is None:
            raise error
        return await handler(request(), error)

    def _observe(self, path: str, status: int, start: float) -> None:
        if self.telemetry is not None:  # the request counted and timed
            self.telemetry.observe(path, status, time.perf_counter() - start)

    # -- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        handler = self._hot.get((scope.get("method"), scope.get("path"))) \
            if scope["type"] == "http" and not scope.get("root_path") else None
        if handler is None:
            await self._slow(scope, receive, send)
            return
        start, status = time.perf_counter(), 500
        scope["app"] = self
        try:
            try:
                body = await read_body(scope, receive, self.max_body)
                response = handler(body, header(scope, b"content-type"))
            except Exception as e:
                response = await self._answer(e, lambda: Request(scope, receive))
            status = response.status_code
            await response(scope, receive, send)
        finally:
            self._observe(scope["path"], status, start)

    async def _slow(self, scope, receive, send) -> None:
        """FastAPI's way, the request counted and timed (its status read from what is sent)."""
        telemetry = self.telemetry
        if telemetry is None or scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        start, status = time.perf_counter(), [500]

        async def sent(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await super().__call__(scope, receive, sent)
        finally:
            self._observe(endpoint_of(scope["path"]), status[0], start)

    # -- RSGI --------------------------------------------------------------------------------

    async def __rsgi__(self, scope, protocol) -> None:
        handler = self._hot.get((scope.method, scope.path)) if scope.proto == "http" else None
        if handler is None:
            await self._rsgi_slow(scope, protocol)
            return
        start, status = time.perf_counter(), 500
        try:
            try:
                body = await _rsgi_body(scope, protocol, self.max_body)
                response = handler(body, scope.headers.get("content-type", "").lower().encode())
            except Exception as e:
                response = await self._answer(e, lambda: Request(_asgi_scope(scope)))
            status = response.status_code
            protocol.response_bytes(status, _str_headers(response.raw_headers), response.body)
        finally:
            self._observe(scope.path, status, start)

    async def _rsgi_slow(self, scope, protocol) -> None:
        """FastAPI's way for an RSGI request: its body streamed in ASGI messages, the answer
        gathered from them and sent whole (no route of the service streams)."""
        if scope.proto != "http":  # (websockets are not served)
            protocol.close(1000)
            return
        chunks, ended = protocol.__aiter__(), False

        async def receive() -> dict:
            nonlocal ended
            if not ended:
                try:
                    return {"type": "http.request", "body": await chunks.__anext__(),
                            "more_body": True}
                except StopAsyncIteration:
                    ended = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            await protocol.client_disconnect()
            return {"type": "http.disconnect"}

        answer: dict = {}
        body: list[bytes] = []

        async def send(message) -> None:
            if message["type"] == "http.response.start":
                answer.update(message)
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))

        try:
            await self._slow(_asgi_scope(scope), receive, send)
        finally:  # (an error FastAPI answered with a 500 is sent, then raised to the server)
            if "status" in answer:
                protocol.response_bytes(answer["status"], _str_headers(answer.get("headers", [])),
                                        b"".join(body))

    def __rsgi_init__(self, loop) -> None:
        """The lifespan's start (RSGI), run on the worker's loop before it serves."""
        self._lifespan_running = self.router.lifespan_context(self)
        loop.run_until_complete(self._lifespan_running.__aenter__())

    def __rsgi_del__(self, loop) -> None:
        """The lifespan's end (RSGI): background tasks stopped, the last snapshot written."""
        if self._lifespan_running is not None:
            loop.run_until_complete(self._lifespan_running.__aexit__(None, None, None))
            self._lifespan_running = None
