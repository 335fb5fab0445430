"""The floor of ``fastctr bench --serve``: an app that does no work.

It reads each request's body whole and answers a fixed JSON document (a prediction's
shape for ``/predict``, ``{}`` elsewhere), so that, run under the same server command line
and load as the two services, its figures are what the HTTP stack alone (the server, the
loopback TCP) costs on the machine: no service under that stack can answer faster or with
a shorter tail. It speaks both interfaces fastctr is served over: ASGI (uvicorn) and RSGI
(granian, as ``fastctr serve --server granian`` runs)::

    uvicorn fastctr.bench.floor_app:app --port 8002 --no-access-log
    granian --interface rsgi fastctr.bench.floor_app:app --port 8002
"""
from __future__ import annotations

PREDICTION = b'{"ctr_probability":0.5,"request_id":"0","model_version":"floor"}'
HEADERS = [(b"content-type", b"application/json")]
RSGI_HEADERS = [("content-type", "application/json")]


class _Floor:
    async def __call__(self, scope, receive, send) -> None:
        """ASGI."""
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body", False):
            pass
        body = PREDICTION if scope["path"] == "/predict" else b"{}"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*HEADERS, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __rsgi__(self, scope, protocol) -> None:
        """RSGI."""
        await protocol()
        protocol.response_bytes(200, RSGI_HEADERS,
                                PREDICTION if scope.path == "/predict" else b"{}")


app = _Floor()
