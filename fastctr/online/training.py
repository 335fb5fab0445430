"""Streaming training with progressive validation and progress reporting."""
from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral
from typing import Any, TextIO

import numpy as np

from fastctr._validation import Booleans, InstanceOf, Interval, validate_params
from fastctr.io.ahead import read_ahead
from fastctr.io.reader import BlockReader, Chunk
from fastctr.io.rows import HashedRows
from fastctr.models.base import OnlineClassifier
from fastctr.online.holdout import HoldOut
from fastctr.online.metrics import ProgressiveValidation
from fastctr.online.tune import tuned_stream

log = logging.getLogger(__name__)


class Progress:
    """A one-line progress display (rows, rows/s, progressive log loss) on a terminal.

    Redrawn at most every ``interval`` seconds; silent when ``stream`` is not a terminal,
    where the periodic report lines go to ``logging`` instead. Once ``stop`` is set, the
    next batch's update raises KeyboardInterrupt (how the command line makes sure a Ctrl-C
    ends training even when Python's own KeyboardInterrupt landed where it is dropped).
    """

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None,
                 interval: float = 0.2, stop: threading.Event | None = None) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.interval = interval
        self.stop = stop
        self.start = self._last = time.perf_counter()

    def update(self, rows: int, log_loss: float) -> None:
        if self.stop is not None and self.stop.is_set():
            raise KeyboardInterrupt
        now = time.perf_counter()
        if self.enabled and now - self._last >= self.interval:
            self._last = now
            rate = rows / max(now - self.start, 1e-9)
            self.stream.write(f"\r\x1b[K{rows:>12,} rows  {rate:>11,.0f} rows/s  "
                              f"progressive log loss {log_loss:.5f}")
            self.stream.flush()

    def clear(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


#: train()'s parameters (the command line checks its options with the same constraints)
TRAIN_CONSTRAINTS = {
    "model": [InstanceOf(OnlineClassifier)],
    "report_every": [Interval(Integral, 1, None, closed="left")],
    "progress": [None, InstanceOf(Progress)],
    "prefetch": [Booleans()],
    "threads": [Interval(Integral, 1, None, closed="left")],
    "holdout": [None, InstanceOf(HoldOut)],
}


def parsed_in_parallel(items: Iterable[HashedRows | Chunk], threads: int) -> Iterator[HashedRows]:
    """The batches of ``items`` in order, the :class:`~fastctr.io.reader.Chunk` s among them
    parsed by ``threads`` threads at once: ``threads - 1`` workers, and this thread whenever
    the batch it needs next is not parsed yet (so no thread waits while there is work).

    Parsing releases the GIL; the items are read ahead by :func:`~fastctr.io.ahead.read_ahead`; at most
    ``2 * threads`` chunks are parsed ahead, so memory stays bounded. A parse error is raised
    when its chunk's turn comes, after every earlier batch, as the sequential reader would.
    """
    pool = ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="fastctr-parse")
    window: deque[_Parse] = deque()
    items = read_ahead(items)
    try:
        while True:
            while len(window) < 2 * threads and (item := next(items, None)) is not None:
                window.append(_Parse(item, pool))
            if not window:
                return
            for entry in window:  # help while the next batch is not ready
                if window[0].ready():
                    break
                entry.steal()
            yield from window.popleft().batches()
    finally:
        pool.shutdown(cancel_futures=True)
        items.close()  # stops the reading thread if the consumer stopped early


class _Parse:
    """One item of :func:`parsed_in_parallel`: a chunk handed to the pool, or rows as they are."""

    def __init__(self, item: HashedRows | Chunk, pool: ThreadPoolExecutor) -> None:
        self.item = item
        self.future = pool.submit(item.parse) if isinstance(item, Chunk) else None
        self.parsed: list[HashedRows] | None = None

    def ready(self) -> bool:
        return self.future is None or self.parsed is not None or self.future.done()

    def steal(self) -> None:
        """Parse here if no worker has started it."""
        if self.future is not None and self.future.cancel():
            self.parsed = self.item.parse()

    def batches(self) -> list[HashedRows]:
        if self.future is None:
            return [self.item]
        batches = self.parsed if self.parsed is not None else self.future.result()
        self.item.done()
        return batches


def warm_up(model: OnlineClassifier) -> float:
    """Compile (on the first run) or load from numba's cache (later runs) the kernels that
    training ``model`` with progressive validation, and predicting with it, call; return the
    seconds it took.

    A throwaway clone learns two hashed rows of the model's own schema, so ``model`` is left
    untouched. Call it before timing a run, or at a service's start so that its first batch
    does not pay the compilation.

    Examples
    --------
    >>> from fastctr import FTRLClassifier
    >>> seconds = warm_up(FTRLClassifier())
    >>> seconds >= 0
    True
    """
    validate_params(TRAIN_CONSTRAINTS, {"model": model}, "warm_up")
    start = time.perf_counter()
    # the smallest table (2**18): the kernels' compiled types do not depend on its size
    learner = model.__sklearn_clone__().set_params(bits=18)
    rows = learner.hasher_.transform([{}, {}]).with_targets(np.array([0, 1], np.float32), None)
    p = learner.partial_fit_predict(rows)
    learner.decision_function(rows)
    validation = ProgressiveValidation(report_every=2)  # a window of both rows: AUC too
    validation.update(rows.labels, p)
    validation.update(rows.labels, p, np.ones(2, np.float32))  # weighted rows (VW importance)
    return time.perf_counter() - start


def train(model: OnlineClassifier, batches: Iterable[HashedRows | Chunk], *,
          report_every: int = 100_000, progress: Progress | None = None, prefetch: bool = False,
          threads: int = 1, tune: bool | str = False, tune_rows: int = 100_000,
          holdout: HoldOut | None = None) -> dict[str, Any]:
    """Learn from a stream of labelled batches, scoring every row before learning it.

    Every ``report_every`` rows a line of the progressive-validation table (log loss since
    the start and of the window, window AUC, CTR, mean prediction, rows/s) is logged at INFO
    level on the ``fastctr.online.training`` logger.

    With ``threads > 1``, that many threads parse chunks of a reader (or the chunks given,
    e.g. from :meth:`~fastctr.io.reader.BlockReader.chunks`) while this thread learns the
    parsed batches in order: the model and the report are those of one thread, faster. With
    ``prefetch=True`` one background thread iterates any other batch source ahead (see
    :func:`~fastctr.io.ahead.read_ahead`).

    With ``tune=True`` the first ``tune_rows`` rows choose alpha, l1 and l2 (and FM/FFM's
    eta) first: candidates learned side by side in one compiled pass each, scored by their
    progressive log loss, centred on the model's values, each learned at the prefix's value
    scale (see :mod:`fastctr.online.tune`). The model then learns the whole stream, prefix
    included, with the values chosen, logged and reported under ``"tune"``. Without it the
    model's own values are used, carried to the data's value scale by the model itself
    (its ``value_scale``, see :mod:`fastctr.models.scale`).

    With a ``holdout`` (:class:`~fastctr.online.holdout.HoldOut`), the rows it holds out (a
    hashed fraction) are neither learned nor tuned on nor in the progressive report; after the
    last row the final model scores them, reported under ``"holdout"``.

    Returns
    -------
    dict
        The final progressive-validation report (rows, log_loss, normalized_entropy,
        calibration, ctr, mean_prediction, auc of the last window) plus seconds and rows_per_s.

    Examples
    --------
    >>> from fastctr import FTRLClassifier, read_criteo
    >>> from fastctr.io.datasets import make_criteo
    >>> model = FTRLClassifier(bits=18)
    >>> batches = read_criteo(make_criteo(20_000, seed=1), model.hasher_)
    >>> report = train(model, batches, report_every=10_000)
    >>> report["rows"], bool(0.3 < report["log_loss"] < 0.6)
    (20000, True)
    """
    validate_params(TRAIN_CONSTRAINTS, {"model": model, "report_every": report_every,
                                        "progress": progress, "prefetch": prefetch,
                                        "threads": threads, "holdout": holdout}, "train")
    progress = Progress() if progress is None else progress
    pv = ProgressiveValidation(report_every=report_every)
    start = time.perf_counter()
    header_done = False
    loss = float("nan")
    if threads > 1:
        batches = parsed_in_parallel(
            batches.chunks() if isinstance(batches, BlockReader) else batches, threads)
    elif prefetch:
        batches = read_ahead(batches)
    if holdout is not None:
        batches = holdout.split(_labelled(batch) for batch in batches)
    tuned = None
    if tune is not False:
        batches, tuned = tuned_stream(model, batches, tune, tune_rows)
    for batch in batches:
        p = model.partial_fit_predict(_labelled(batch))
        for line in pv.update(batch.labels, p, batch.weights):
            progress.clear()
            if not header_done:
                log.info(pv.header())
                header_done = True
            log.info(pv.format_row(line))
            loss = line["log_loss"]
        progress.update(pv.rows, loss)
    progress.clear()
    report = pv.report()
    report["seconds"] = time.perf_counter() - start
    report["rows_per_s"] = report["rows"] / max(report["seconds"], 1e-9)
    if tuned is not None:
        report["tune"] = tuned
    if holdout is not None and report["rows"]:
        report["holdout"] = holdout.report(model)
    return report


def _labelled(rows: HashedRows) -> HashedRows:
    if isinstance(rows, Chunk):
        raise TypeError("chunks are parsed with threads > 1; with one thread pass the reader")
    if rows.labels is None:
        raise ValueError("training needs labelled rows; this data has no label column")
    return rows
