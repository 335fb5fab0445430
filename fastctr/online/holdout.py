"""A held-out fraction of a training stream: rows chosen by a hash of their features, not
learned, and scored by the final model.

A row is held out when a hash of its hashed features (bucket and value of every entry, in
any order) falls below ``fraction``: the choice needs no row count (stdin and gzip streams
work), is the same in every run and every epoch whatever the order of the rows, and sends
duplicate rows to the same side, so a row learned in training is never scored as held out.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from fastctr.io.rows import HashedRows
from fastctr.models.base import OnlineClassifier
from fastctr.online import metrics

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, element-wise on uint64 (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def held_out(rows: HashedRows, fraction: float) -> np.ndarray:
    """Which rows of ``rows`` are held out: a boolean mask, about ``fraction`` of them true.

    Each entry's (bucket, value bits) is mixed to 64 bits, a row's hashes are summed (so the
    order of its entries does not matter) and mixed again; a row is held out when that
    falls below ``fraction * 2**64``. Vectorised: no Python loop per row.

    Examples
    --------
    >>> import numpy as np
    >>> rows = HashedRows(np.arange(0, 20_001), np.arange(20_000), np.ones(20_000))
    >>> mask = held_out(rows, 0.1)
    >>> bool(0.09 < mask.mean() < 0.11)
    True
    >>> bool(np.array_equal(held_out(rows[::1], 0.1), mask))
    True
    """
    with np.errstate(over="ignore"):
        entry = (rows.indices.astype(np.uint64) << np.uint64(32)) | \
            rows.values.view(np.uint32).astype(np.uint64)
        sums = np.concatenate([[np.uint64(0)], np.cumsum(_mix(entry + _GOLDEN), dtype=np.uint64)])
        row_hash = _mix(sums[rows.indptr[1:]] - sums[rows.indptr[:-1]] + _GOLDEN)
    return row_hash < np.uint64(min(fraction, 1.0) * 2.0**64 - 1)


def take(rows: HashedRows, mask: np.ndarray) -> HashedRows:
    """The rows where ``mask`` is true, in order (labels, weights and field ids kept)."""
    lengths = np.diff(rows.indptr)
    entries = np.repeat(mask, lengths)
    pick = lambda arr, m: None if arr is None else arr[m]  # noqa: E731
    return HashedRows(np.concatenate([[0], np.cumsum(lengths[mask])]), rows.indices[entries],
                      rows.values[entries], pick(rows.fields, entries), pick(rows.labels, mask),
                      pick(rows.weights, mask))


class HoldOut:
    """Splits labelled batches into the rows to learn and a held-out fraction, kept (their
    hashed entries only) to be scored by the final model.

    Parameters
    ----------
    fraction : float in (0, 1)
        The share of rows held out (by :func:`held_out`).

    Examples
    --------
    >>> from fastctr import FTRLClassifier, read_criteo
    >>> from fastctr.io.datasets import make_criteo
    >>> model = FTRLClassifier(bits=18)
    >>> split = HoldOut(0.2)
    >>> for batch in split.split(read_criteo(make_criteo(5_000, seed=1), model.hasher_)):
    ...     _ = model.partial_fit(batch)
    >>> report = split.report(model)
    >>> bool(800 < report["rows"] < 1_200), model.n_rows_seen_ + report["rows"]
    (True, 5000)
    """

    def __init__(self, fraction: float) -> None:
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"the held-out fraction must be in (0, 1); got {fraction!r}")
        self.fraction = fraction
        self.rows: list[HashedRows] = []

    def split(self, batches: Iterable[HashedRows]) -> Iterator[HashedRows]:
        """The rows of ``batches`` to learn; the held-out ones are kept for :meth:`report`.
        Split one pass over the data only: a second would keep its held-out rows again."""
        for batch in batches:
            mask = held_out(batch, self.fraction)
            if not mask.any():
                yield batch
                continue
            self.rows.append(take(batch, mask))
            if not mask.all():
                yield take(batch, ~mask)

    def report(self, model: OnlineClassifier) -> dict:
        """The final model's AUC, log loss, normalized entropy, calibration and CTR on the
        held-out rows (see :func:`fastctr.online.metrics.evaluation_report`)."""
        if not self.rows:
            return {"rows": 0, "fraction": self.fraction,
                    "notes": ["no row was held out: too few rows for this fraction"]}
        y = np.concatenate([rows.labels for rows in self.rows])
        p = np.concatenate([model.predict_proba(rows)[:, 1] for rows in self.rows])
        return {**metrics.evaluation_report(y, p), "fraction": self.fraction}
