"""The service's errors: a client's mistake (a 4xx naming the field) and the impression
stores' refusals (404 unknown or expired, 409 already labelled or already stored)."""
from __future__ import annotations


class ClientError(Exception):
    """A request the service refuses: HTTP ``status`` (4xx), the ``field`` at fault as a
    path into the JSON body (``rows[3].features.C5``; empty for the whole body) and what is
    wrong with it and the fix.

    Examples
    --------
    >>> e = ClientError(422, "rows[3].click", "must be 0 or 1; got 2")
    >>> str(e), e.status
    ('rows[3].click: must be 0 or 1; got 2', 422)
    """

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.status = status
        self.field = field


class BodyNotRead(ClientError):
    """A request refused before its body's end (too large, or the client went away): its
    answer closes the connection (``Connection: close``), since what is left of the body
    cannot be taken for the next request."""


class UnknownImpression(LookupError):
    """No impression is stored under this request id: never predicted, expired (TTL) or
    evicted (the store is full). HTTP 404."""


class AlreadyLabelled(LookupError):
    """The impression under this request id was labelled already; each impression is learned
    at most once. HTTP 409."""


class ScoredByFallback(LookupError):
    """The answer under this request id was scored by the fallback, which never learns: its
    click is refused, not learned. HTTP 409."""


class Conflict(LookupError):
    """An impression is stored under this request id already (ids must be unique). HTTP 409."""

    @classmethod
    def of(cls, request_id: str) -> Conflict:
        return cls(f"request id {request_id!r} is in use: request ids must be unique")
