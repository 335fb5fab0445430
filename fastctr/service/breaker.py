"""A circuit breaker: stop calling a dependency that keeps failing, probe it now and then.

A Redis that is down or stalled must not cost every request its full time budget. After
``failures`` consecutive errors (timeouts included) the breaker *opens*: calls fail at once
with :class:`CircuitOpen` and the caller degrades (local tier only, the request's own
features). After ``cooldown`` seconds it lets one call through (*half-open*); success closes
it, failure opens it for another cool-down.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class Unavailable(RuntimeError):
    """A dependency (Redis) is down or too slow; the service answers 503 or degrades."""


class CircuitOpen(Unavailable):
    """Raised instead of calling a dependency whose breaker is open."""


class CircuitBreaker:
    """Count consecutive failures of one dependency and short-circuit it while it is down.

    Parameters
    ----------
    name : str
        The dependency, for messages, ``/health`` and metrics (e.g. ``"redis"``).
    failures : int
        Consecutive failures that open the breaker.
    cooldown : float
        Seconds an open breaker waits before letting one probe call through.
    errors : tuple of exception types
        What counts as a failure of the dependency; other exceptions pass through uncounted
        (a bad argument is not an outage).
    clock : callable
        Monotonic seconds; tests may pass their own.

    Examples
    --------
    >>> breaker = CircuitBreaker("redis", failures=2, cooldown=30.0, errors=(OSError,))
    >>> def down():
    ...     raise OSError("connection refused")
    >>> for _ in range(2):
    ...     try:
    ...         breaker.call(down)
    ...     except OSError:
    ...         pass
    >>> breaker.state
    'open'
    >>> try:
    ...     breaker.call(lambda: 1)
    ... except CircuitOpen as error:
    ...     print(error)
    redis is unavailable (circuit open after 2 consecutive failures; next probe in 30.0 s)
    """

    def __init__(self, name: str, *, failures: int = 3, cooldown: float = 1.0,
                 errors: tuple[type[BaseException], ...] = (OSError,),
                 clock: Callable[[], float] = time.monotonic) -> None:
        if failures < 1 or cooldown <= 0:
            raise ValueError(f"CircuitBreaker({name!r}): failures must be >= 1 and cooldown > 0 "
                             f"seconds. Got failures={failures!r}, cooldown={cooldown!r}.")
        self.name, self.failures, self.cooldown = name, failures, cooldown
        self.errors, self._clock = errors, clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._consecutive = 0
        self._opened_at = 0.0
        self._probing = False  # half-open lets exactly one call through at a time
        self.counts = {"calls": 0, "failures": 0, "rejected": 0, "opened": 0, "closed": 0}
        self.last_error = ""

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"`` (open and its cool-down is over)."""
        with self._lock:
            return self._current()

    def _current(self) -> str:
        if self._state == OPEN and self._clock() - self._opened_at >= self.cooldown:
            return HALF_OPEN
        return self._state

    def call(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Call ``fn(*args, **kwargs)`` unless the breaker is open; count the outcome.

        Raises
        ------
        CircuitOpen
            The breaker is open (or another call is already probing); ``fn`` was not called.
        """
        self._admit()
        try:
            result = fn(*args, **kwargs)
        except self.errors as error:
            self._failed(error)
            raise
        except BaseException:
            self._release_probe()  # not an outage: the probe slot is free again
            raise
        self._succeeded()
        return result

    def _admit(self) -> None:
        with self._lock:
            self.counts["calls"] += 1
            state = self._current()
            if state == CLOSED:
                return
            if state == HALF_OPEN and not self._probing:
                self._probing = True
                return
            self.counts["rejected"] += 1
            wait = max(0.0, self.cooldown - (self._clock() - self._opened_at))
        raise CircuitOpen(f"{self.name} is unavailable (circuit open after {self._consecutive} "
                          f"consecutive failures; next probe in {wait:.1f} s)")

    def _failed(self, error: BaseException) -> None:
        with self._lock:
            self.counts["failures"] += 1
            self._consecutive += 1
            self.last_error = f"{type(error).__name__}: {error}"
            # a failed probe re-opens; a straggler failing while already open changes nothing
            if self._probing or (self._state == CLOSED and self._consecutive >= self.failures):
                self.counts["opened"] += 1
                self._state, self._opened_at, self._probing = OPEN, self._clock(), False

    def _succeeded(self) -> None:
        with self._lock:
            if self._state != CLOSED:
                self.counts["closed"] += 1
            self._state, self._consecutive, self._probing = CLOSED, 0, False

    def _release_probe(self) -> None:
        with self._lock:
            self._probing = False

    def snapshot(self) -> dict:
        """State and counters, for ``/health`` and ``/metrics``."""
        with self._lock:
            return {"state": self._current(), "consecutive_failures": self._consecutive,
                    "last_error": self.last_error, **self.counts}
