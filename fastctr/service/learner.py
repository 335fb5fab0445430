"""One learner for many serving workers (``fastctr serve --workers N --redis URL --learn``).

Every worker serves the model *file* and reloads it when it changes; none learns in place.
A click fed back to any worker is moved, in one atomic Redis script, from the impression
store to a feedback queue (a Redis list), so it is queued at most once whichever worker got
it. Exactly one process learns: the one holding an exclusive ``flock`` on ``MODEL.lock``
(released by the kernel if that process dies, so another worker takes over). It pops the
queue in order, ``partial_fit``s its own copy of the model and writes an atomic snapshot
(temp file, fsync, rename) every ``snapshot_every`` seconds; the workers then reload it.

In an A/B test (``--ab``) the learner holds every arm's model, learns each click with the arm
that scored it (the impression names it) and snapshots each arm's file.

Guarantees: each impression is learned at most once, and exactly once while the learner
lives (a learner that dies loses the clicks it popped since its last snapshot; a learner
stopped cleanly drains the queue and snapshots first). Every worker sees a click within
``snapshot_every`` plus its reload poll interval.
"""
from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from fastctr.service.breaker import Unavailable
from fastctr.service.errors import AlreadyLabelled, UnknownImpression
from fastctr.service.redis_store import RedisImpressionStore
from fastctr.service.served import ServedModel, _file_id
from fastctr.service.stores import FALLBACK_ARM, Impression, refused

log = logging.getLogger("fastctr.service")


class QueueFull(Unavailable):
    """The feedback queue holds its maximum: the learner is behind or gone (HTTP 503)."""


# KEYS: the impressions' keys, then the queue. ARGV: the queue's bound and TTL (ms), then one
# click ("0"/"1") per impression. Each live impression becomes a tombstone and its record
# (the click's byte then the impression's bytes) goes to the queue, both or neither.
# Returns per impression: 0 unknown, 1 labelled already, 3 queue full, else the impression.
_LABEL = """
local n = #KEYS - 1
local queue = KEYS[n + 1]
local room = tonumber(ARGV[1]) - redis.call('LLEN', queue)
local out = {}
for i = 1, n do
  local v = redis.call('GET', KEYS[i])
  if not v then out[i] = 0
  elseif v == 'L' then out[i] = 1
  elseif room <= 0 then out[i] = 3
  else
    redis.call('SET', KEYS[i], 'L', 'KEEPTTL')
    redis.call('RPUSH', queue, ARGV[i + 2] .. string.sub(v, 2))
    room = room - 1
    out[i] = v
  end
end
redis.call('PEXPIRE', queue, ARGV[2])
return out
"""


class FeedbackQueue:
    """Clicks waiting for the learner, in a bounded Redis list next to the impressions.

    Parameters
    ----------
    impressions : RedisImpressionStore
        Where the impressions are; the queue uses its connection and breaker.
    max_items : int
        The most clicks the queue holds; labelling beyond it raises :class:`QueueFull`.
    ttl : float
        The queue expires when nothing was pushed for this long (no learner to drain it).
    """

    def __init__(self, impressions: RedisImpressionStore, *, max_items: int = 1_000_000,
                 ttl: float = 86_400.0) -> None:
        if max_items < 1 or not ttl > 0:
            raise ValueError(f"FeedbackQueue needs max_items >= 1 and ttl > 0; got {max_items} and {ttl}")
        self.impressions, self.link = impressions, impressions.link
        self.max_items, self.ttl = int(max_items), float(ttl)
        self.key = f"{self.link.prefix}feedback"
        self._label = self.link.client.register_script(_LABEL)

    def label(self, request_ids: list[str], clicks: list[int]) -> list[Impression | LookupError | QueueFull]:
        """Queue each impression with its click, atomically taking it from the store.

        Returns, per request id, the :class:`Impression` queued or the error for that id
        (:class:`UnknownImpression` 404, :class:`AlreadyLabelled` or
        :class:`~fastctr.service.errors.ScoredByFallback` 409, :class:`QueueFull` 503).
        Raises :class:`Unavailable` when Redis is down (nothing was queued).
        """
        keys = [self.impressions._key(rid) for rid in request_ids] + [self.key]
        args = [self.max_items, max(1, int(self.ttl * 1000))] + [b"1" if c else b"0" for c in clicks]
        answers = self.link.call(self._label, keys=keys, args=args)
        return [self._outcome(rid, answer) for rid, answer in zip(request_ids, answers)]

    def _outcome(self, request_id: str, answer) -> Impression | LookupError | QueueFull:
        # a fallback's marker went to the queue too (the script does not decode it): the
        # learner skips it, the client is told the truth
        if answer == 0:
            return UnknownImpression(f"no impression under request id {request_id!r}: never predicted, "
                                     f"expired (kept {self.impressions.ttl:g} s) or evicted")
        if answer == 1:
            return AlreadyLabelled(f"request id {request_id!r} was labelled already: each impression "
                                   "is learned once")
        if answer == 3:
            return QueueFull(f"the feedback queue holds {self.max_items} clicks: the learner is behind "
                             "or not running; retry later")
        impression = Impression.from_bytes(answer[1:])
        return refused(request_id, impression) or impression

    def pop(self, max_items: int) -> tuple[list[Impression], list[int]]:
        """Up to ``max_items`` clicks, oldest first, removed from the queue."""
        records = self.link.call(self.link.client.lpop, self.key, max_items) or []
        return [Impression.from_bytes(r[1:]) for r in records], [r[0] - ord("0") for r in records]

    def __len__(self) -> int:
        return self.link.call(self.link.client.llen, self.key)


class LearnerLock:
    """An exclusive, non-blocking ``flock`` on ``MODEL.lock``: who holds it is the learner.

    The kernel releases it when the holder's process ends, however it ends.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "model.fctr")
    >>> first, second = LearnerLock(path), LearnerLock(path)
    >>> first.acquire(), second.acquire()
    (True, False)
    >>> first.release(); second.acquire()
    True
    """

    def __init__(self, model_path: Path) -> None:
        self.path = Path(f"{model_path}.lock")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        if self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None


class _ArmModel:
    """The learner's copy of one arm's model, and what it learned since its last snapshot."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.model = ServedModel.load(path, learn=True)
        self.warm_up_s = round(self.model.warm_up(), 3)  # before the first click is popped
        self.pending = 0  # rows learned since the last snapshot

    def replaced(self) -> bool:
        try:
            return _file_id(self.path) != self.model.file_id
        except OSError:  # gone for a moment (being replaced): look again next time
            return False


class Learner:
    """The learning loop of ``--redis --learn``: in each worker, a thread that becomes the
    learner when it gets the lock, then pops feedback, learns it and snapshots the model.

    Parameters
    ----------
    path : path of the model file (read when becoming the learner, rewritten by snapshots)
    queue : FeedbackQueue
    arms : dict, optional
        In an A/B test (``--ab``), every arm's model file by arm name (``control``: ``path``):
        each click is learned by the arm that scored it, and each file is snapshotted.
    snapshot_every : float
        Seconds between snapshots (only when something was learned).
    batch : int
        The most clicks learned in one ``partial_fit``.
    poll : float
        Seconds to wait when the queue is empty, or before trying the lock again.
    """

    def __init__(self, path, queue: FeedbackQueue, *, arms: dict | None = None,
                 snapshot_every: float = 1.0, batch: int = 10_000, poll: float = 0.05) -> None:
        self.path, self.queue = Path(path), queue
        self.paths = {name: Path(p) for name, p in arms.items()} if arms else {"main": self.path}
        self.snapshot_every, self.batch, self.poll = float(snapshot_every), int(batch), float(poll)
        self.lock = LearnerLock(self.path)
        self.arms: dict[str, _ArmModel] = {}  # our own copies, loaded when we got the lock
        self.warm_up_s: float | None = None  # seconds their learning kernels took to warm up
        # called with (impressions, clicks) after each batch learned (the live quality monitor)
        self.on_learn: Callable[[list[Impression], list[int]], None] | None = None
        self.learned = self.snapshots = self.errors = self.dropped = 0
        self.last_error = ""
        self._failing = False  # an error is logged when it starts, not at every retry
        self._last_snapshot = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def is_learner(self) -> bool:
        return self.lock.held

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fastctr-learner", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop; a learner drains the queue (as far as ``timeout`` allows), snapshots
        and releases the lock."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.is_learner:
            deadline = time.monotonic() + timeout
            try:
                while time.monotonic() < deadline and self.step():
                    pass
            except Unavailable as e:
                log.warning("learner: the queue could not be drained: %s", e)
            self.snapshot()
            self.lock.release()

    def become_learner(self) -> bool:
        """Take the lock if free; then load the latest snapshots to learn on."""
        if self.is_learner:
            return True
        if not self.lock.acquire():
            return False
        try:
            self.arms = {name: _ArmModel(path) for name, path in self.paths.items()}
        except BaseException:
            self.lock.release()
            raise
        self.warm_up_s = round(sum(arm.warm_up_s for arm in self.arms.values()), 3)
        log.info("learner: this process learns (pid %d, lock %s)", os.getpid(), self.lock.path)
        return True

    def step(self) -> int:
        """Learn up to ``batch`` queued clicks, in order, each by its arm's model (skipping
        the fallback's markers); the number taken from the queue."""
        popped = self.queue.pop(self.batch)
        kept = [(imp, click) for imp, click in zip(*popped) if imp.arm != FALLBACK_ARM]
        known = [(imp, click) for imp, click in kept if imp.arm in self.arms]
        # scored by an arm no longer served (the service restarted without it): dropped
        self.dropped += len(kept) - len(known)
        kept = known
        for name, arm in self.arms.items():
            mine = [(imp, click) for imp, click in kept if imp.arm == name]
            if mine:
                arm.model.learn([imp for imp, _ in mine], [click for _, click in mine])
                arm.pending += len(mine)
        if kept:
            self.learned += len(kept)
            if self.on_learn is not None:
                self.on_learn([imp for imp, _ in kept], [click for _, click in kept])
        return len(popped[0])

    def snapshot(self) -> bool:
        """Write each model that learned since its last snapshot, atomically; whether one
        was written.

        A model file replaced by someone else (a new model deployed) is not overwritten: it
        is loaded and learning goes on from it; the clicks learned since the last snapshot
        are dropped (counted), as a single worker's reload drops them."""
        self._last_snapshot = time.monotonic()
        wrote = False
        for name, arm in list(self.arms.items()):
            if arm.replaced():
                self.dropped += arm.pending
                self.arms[name] = _ArmModel(arm.path)
                log.warning("learner: %s was replaced; learning from it now", arm.path)
            elif arm.pending:
                arm.model.model.save(arm.path)
                arm.model.file_id = _file_id(arm.path)
                arm.pending = 0
                self.snapshots += 1
                wrote = True
        return wrote

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.become_learner():
                    self._stop.wait(max(self.poll, 1.0))
                    continue
                n = self.step()
                if time.monotonic() - self._last_snapshot >= self.snapshot_every:
                    self.snapshot()
            except Exception as e:  # Redis down, a disk error: report, wait, go on
                self.errors += 1
                self.last_error = f"{type(e).__name__}: {e}"
                if not self._failing:
                    log.warning("learner: %s (retrying every second)", self.last_error)
                self._failing = True
                self._stop.wait(1.0)
                continue
            if self._failing:
                log.info("learner: learning again")
                self._failing = False
            if n == 0:
                self._stop.wait(self.poll)

    def health(self) -> dict:
        """For ``/health`` and ``/metrics``."""
        return {"learner": self.is_learner, "learned": self.learned, "snapshots": self.snapshots,
                "dropped": self.dropped, "errors": self.errors, "last_error": self.last_error,
                "warm_up_s": self.warm_up_s}
