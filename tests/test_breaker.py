"""The circuit breaker's transitions (closed -> open -> half-open -> closed or open again).

Here with a controlled clock and a callable that fails on demand; tests/test_redis_store.py
drives the same transitions with a real redis-server that is stopped, paused and restarted.
"""
import threading

import pytest

from fastctr.service.breaker import CircuitBreaker, CircuitOpen


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Dependency:
    def __init__(self):
        self.up, self.calls = True, 0

    def __call__(self):
        self.calls += 1
        if not self.up:
            raise OSError("connection refused")
        return "ok"


@pytest.fixture
def setup():
    clock, dep = Clock(), Dependency()
    return CircuitBreaker("redis", failures=3, cooldown=2.0, clock=clock), clock, dep


def fail(breaker, dep, times):
    for _ in range(times):
        with pytest.raises(OSError):
            breaker.call(dep)


def test_opens_after_k_consecutive_failures_only(setup):
    breaker, _, dep = setup
    dep.up = False
    fail(breaker, dep, 2)
    dep.up = True
    assert breaker.call(dep) == "ok"  # a success resets the count
    dep.up = False
    fail(breaker, dep, 2)
    assert breaker.state == "closed"
    fail(breaker, dep, 1)
    assert breaker.state == "open"
    snap = breaker.snapshot()
    assert snap["opened"] == 1 and snap["failures"] == 5 and "connection refused" in snap["last_error"]


def test_open_rejects_without_calling(setup):
    breaker, clock, dep = setup
    dep.up = False
    fail(breaker, dep, 3)
    calls = dep.calls
    with pytest.raises(CircuitOpen, match="redis is unavailable.*next probe in 2.0 s"):
        breaker.call(dep)
    clock.now = 1.5
    with pytest.raises(CircuitOpen, match="next probe in 0.5 s"):
        breaker.call(dep)
    assert dep.calls == calls and breaker.snapshot()["rejected"] == 2


def test_half_open_probe_success_closes(setup):
    breaker, clock, dep = setup
    dep.up = False
    fail(breaker, dep, 3)
    clock.now = 2.0
    assert breaker.state == "half-open"
    dep.up = True
    assert breaker.call(dep) == "ok"
    assert breaker.state == "closed" and breaker.snapshot()["closed"] == 1


def test_half_open_probe_failure_reopens_for_a_new_cooldown(setup):
    breaker, clock, dep = setup
    dep.up = False
    fail(breaker, dep, 3)
    clock.now = 2.0
    fail(breaker, dep, 1)  # the probe: one failure is enough to re-open
    assert breaker.state == "open" and breaker.snapshot()["opened"] == 2
    clock.now = 3.9
    assert breaker.state == "open"
    clock.now = 4.0
    assert breaker.state == "half-open"


def test_half_open_lets_one_probe_through_at_a_time(setup):
    breaker, clock, dep = setup
    dep.up = False
    fail(breaker, dep, 3)
    clock.now = 2.0
    entered, release = threading.Event(), threading.Event()

    def slow_probe():
        entered.set()
        release.wait(5)
        return "ok"

    worker = threading.Thread(target=breaker.call, args=(slow_probe,))
    worker.start()
    entered.wait(5)
    with pytest.raises(CircuitOpen):  # a second caller while the probe is in flight
        breaker.call(dep)
    release.set()
    worker.join(5)
    assert breaker.state == "closed"


def test_other_exceptions_are_not_outages(setup):
    breaker, clock, _ = setup

    def bad_argument():
        raise KeyError("x")

    for _ in range(5):
        with pytest.raises(KeyError):
            breaker.call(bad_argument)
    assert breaker.state == "closed" and breaker.snapshot()["failures"] == 0


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="failures must be >= 1 and cooldown > 0"):
        CircuitBreaker("redis", failures=0)
