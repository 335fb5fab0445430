"""Live model quality over a sliding window of labelled impressions.

:class:`QualityMonitor` is fed ``(p, click)`` as clicks come back and keeps, over the last
``window`` labelled impressions: observed CTR, mean predicted CTR, their ratio
(calibration), log loss, normalized entropy, ROC AUC, calibration by predicted-CTR bucket,
and the drift of the score distribution against a reference window (population stability
index). :meth:`QualityMonitor.check` turns thresholds into warnings.

**Cost.** An update of ``k`` items costs O(k), whatever the window: items go into a ring
buffer, and what the window needs is kept as running totals that an item adds to when it
enters and subtracts from when it leaves. Those totals are integers, so adding and removing
cancel exactly and nothing drifts over billions of updates: probabilities and log losses
are kept in fixed point (units of 2**-32; an item's rounding error is <= 2**-33), clicks
and non-clicks are counted per score bin (:mod:`fastctr.online.score_bins`). Reading the
figures (:meth:`~QualityMonitor.snapshot`) costs O(n_bins), not O(window).

**Formulas** (over the ``n`` items of the window, ``l_i`` the clipped log loss):
``ctr = sum y / n``, ``mean_prediction = sum p / n``, ``calibration = sum p / sum y``,
``log_loss = sum l_i / n``, ``normalized_entropy = log_loss / H(ctr)`` with
``H(c) = -c ln c - (1 - c) ln(1 - c)``; AUC from the score bins, with its exact error bound
``auc_max_error``. Calibration buckets split the window's score bins into ``n_buckets``
groups of about equal count. The PSI compares the window's scores with the reference's, in
``n_buckets`` groups of about equal reference count:
``PSI = sum_g (a_g - e_g) ln(a_g / e_g)`` where ``a_g`` and ``e_g`` are the window's and
the reference's shares of group ``g``, each floored at 1e-4 so an empty group stays finite.
The reference is the first ``reference_window`` impressions fed (or
:meth:`~QualityMonitor.set_reference`); it stays fixed until
:meth:`~QualityMonitor.reset_reference`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from fastctr.online.score_bins import (
    ScoreBins,
    binned_auc,
    check_labelled,
    check_one,
    item_log_loss,
    one_log_loss,
)

__all__ = ["QualityMonitor"]

# Fixed point for the running sums: exact integer add/remove (see the module docstring).
SCALE = 2.0**32
# Window bound so a batch's fixed-point sum (<= window * 36.04 * 2**32) fits an int64.
MAX_WINDOW = 2**25
# Shares below this count as this in the PSI, so an empty group stays finite.
PSI_FLOOR = 1e-4


def _entropy(ctr: float) -> float:
    """Binary entropy in nats; 0 at ctr 0 or 1."""
    if ctr <= 0.0 or ctr >= 1.0:
        return 0.0
    return -(ctr * math.log(ctr) + (1.0 - ctr) * math.log1p(-ctr))


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def _equal_count_groups(counts: np.ndarray, n_groups: int) -> np.ndarray:
    """Start bins of at most ``n_groups`` runs of bins holding about equal counts."""
    cum = np.cumsum(counts)
    targets = cum[-1] * np.arange(1, n_groups) / n_groups
    cuts = np.searchsorted(cum, targets, side="left") + 1
    return np.unique(np.concatenate(([0], cuts[cuts < counts.size])))


def _fixed(values: np.ndarray) -> np.ndarray:
    return np.rint(values * SCALE).astype(np.int64)


class QualityMonitor:
    """Windowed CTR-model quality from labelled impressions, updated in O(1) per item.

    Parameters
    ----------
    window : int, default 100_000
        Labelled impressions the figures are computed over (the most recent ones).
    reference_window : int, optional
        Impressions that make the drift reference (the first ones fed); default ``window``.
    n_buckets : int, default 10
        Calibration buckets and PSI groups.
    n_bins : int, default 8192
        Score bins (AUC resolution; see :mod:`fastctr.online.score_bins`).
    calibration_range : (float, float), default (0.9, 1.1)
        :meth:`check` warns when the calibration ratio is outside it.
    psi_threshold : float, default 0.2
        :meth:`check` warns when the PSI is above it.
    min_rows : int, default 1000
        :meth:`check` stays silent while the window holds fewer impressions (noise).

    Examples
    --------
    >>> monitor = QualityMonitor(window=4)
    >>> monitor.update([0.1, 0.2, 0.8, 0.9, 0.3], [0, 0, 1, 1, 0])
    >>> stats = monitor.snapshot()
    >>> stats["rows"], stats["ctr"], round(stats["calibration"], 3), stats["auc"]
    (4, 0.5, 1.1, 1.0)
    """

    def __init__(
        self,
        window: int = 100_000,
        reference_window: int | None = None,
        n_buckets: int = 10,
        n_bins: int = 8192,
        calibration_range: Sequence[float] = (0.9, 1.1),
        psi_threshold: float = 0.2,
        min_rows: int = 1000,
    ) -> None:
        reference_window = window if reference_window is None else reference_window
        for name, value, low, high in (("window", window, 1, MAX_WINDOW),
                                       ("reference_window", reference_window, 1, MAX_WINDOW),
                                       ("n_buckets", n_buckets, 1, 1000),
                                       ("min_rows", min_rows, 0, MAX_WINDOW)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                    or not low <= value <= high:
                raise ValueError(f"{name} must be an int in [{low}, {high}], got {value}")
        low, high = calibration_range
        if not 0.0 <= low < high:
            raise ValueError(f"calibration_range must be (low, high), 0 <= low < high, "
                             f"got {calibration_range}")
        self.window = int(window)
        self.reference_window = int(reference_window)
        self.n_buckets = int(n_buckets)
        self.calibration_range = (float(low), float(high))
        self.psi_threshold = float(psi_threshold)
        self.min_rows = int(min_rows)
        self.bins = ScoreBins(n_bins)
        self._lock = threading.Lock()
        # The ring: what each item in the window added, to subtract when it leaves.
        self._bin = np.zeros(window, dtype=np.uint16)
        self._click = np.zeros(window, dtype=np.uint8)
        self._p_fixed = np.zeros(window, dtype=np.int64)
        self._loss_fixed = np.zeros(window, dtype=np.int64)
        self._head = 0  # next slot written
        self._rows = 0  # items in the window
        self.rows_seen = 0
        # Running totals of the window; Python ints (exact, unbounded).
        self._clicks = 0
        self._sum_p = 0
        self._sum_loss = 0
        self._counts = np.zeros((self.bins.n_bins, 2), dtype=np.int64)  # [bin, click]
        self._bin_p = np.zeros(self.bins.n_bins, dtype=np.int64)  # fixed-point sum p per bin
        self._reference = np.zeros(self.bins.n_bins, dtype=np.int64)
        self._reference_rows = 0
        # add() reads and writes single items through memoryviews: ~3x faster than numpy's
        # scalar indexing. They share the arrays' memory, which is never reallocated.
        self._one = tuple(memoryview(a) for a in (
            self._bin, self._click, self._p_fixed, self._loss_fixed,
            self._counts.reshape(-1), self._bin_p, self._reference))

    def update(self, p: ArrayLike, y: ArrayLike) -> None:
        """Add labelled impressions, oldest first.

        Parameters
        ----------
        p : array_like of shape (k,)
            Click probabilities the model predicted for them, in [0, 1].
        y : array_like of shape (k,)
            Their clicks, 0 or 1 (bool accepted).

        Raises
        ------
        ValueError
            If lengths differ, a ``p`` is outside [0, 1] or NaN, or a ``y`` is not 0/1.
        """
        p, y = check_labelled(p, y)
        with self._lock:
            self.rows_seen += p.size
            self._feed_reference(p)
            if p.size > self.window:  # only the last `window` items stay
                p, y = p[-self.window:], y[-self.window:]
            self._insert(p, y)

    def add(self, p: float, click: int | bool) -> None:
        """Add one labelled impression (see :meth:`update`); a few microseconds, no numpy call.

        Stores exactly what :meth:`update` would store for the same item.
        """
        p, c = check_one(p, click)
        b = self.bins.index_one(p)
        p_fixed = round(p * SCALE)
        loss_fixed = round(one_log_loss(p, c) * SCALE)
        bins, clicks, p_fixeds, loss_fixeds, _, _, reference = self._one
        with self._lock:
            self.rows_seen += 1
            if self._reference_rows < self.reference_window:
                reference[b] += 1
                self._reference_rows += 1
            slot = self._head
            if self._rows == self.window:
                self._account_one(slot, -1)
            else:
                self._rows += 1
            bins[slot], clicks[slot] = b, c
            p_fixeds[slot], loss_fixeds[slot] = p_fixed, loss_fixed
            self._account_one(slot, 1)
            self._head = (slot + 1) % self.window

    def set_reference(self, p: ArrayLike) -> None:
        """Make these scores the drift reference (e.g. a validation set's predictions)."""
        p, _ = check_labelled(p, np.zeros(np.size(p), dtype=np.uint8))
        if not p.size:
            raise ValueError("set_reference needs at least one score")
        with self._lock:
            self._reference[:] = np.bincount(self.bins.index(p), minlength=self.bins.n_bins)
            self._reference_rows = self.reference_window = int(p.size)

    def reset_reference(self) -> None:
        """Start a new reference from the next ``reference_window`` impressions fed."""
        with self._lock:
            self._reference[:] = 0
            self._reference_rows = 0

    def snapshot(self) -> dict[str, Any]:
        """The figures over the window, JSON-ready (None where undefined, never NaN).

        Returns
        -------
        dict
            ``window``, ``rows`` (in the window), ``rows_seen``, ``clicks``, ``ctr``,
            ``mean_prediction``, ``calibration``, ``log_loss``, ``normalized_entropy``,
            ``auc``, ``auc_max_error``, ``buckets`` (list of ``p_low``, ``p_high``, ``rows``,
            ``clicks``, ``mean_prediction``, ``ctr``), ``drift`` (``psi``,
            ``reference_rows``, ``reference_complete``, ``groups``: ``p_low``, ``p_high``,
            ``reference_share``, ``window_share``) and ``warnings`` (:meth:`check`).
        """
        with self._lock:
            n = self._rows
            sum_p, sum_loss = self._sum_p / SCALE, self._sum_loss / SCALE
            counts = self._counts.copy()
            bin_p = self._bin_p.copy()
            reference = self._reference.copy()
            reference_rows = self._reference_rows
            stats: dict[str, Any] = {"window": self.window, "rows": n,
                                     "rows_seen": self.rows_seen, "clicks": self._clicks}
        ctr = _ratio(stats["clicks"], n)
        log_loss = _ratio(sum_loss, n)
        auc, auc_error = binned_auc(counts[:, 1], counts[:, 0])
        rows = counts.sum(axis=1)
        stats.update(
            ctr=ctr,
            mean_prediction=_ratio(sum_p, n),
            calibration=_ratio(sum_p, stats["clicks"]),
            log_loss=log_loss,
            normalized_entropy=(None if log_loss is None
                                else _ratio(log_loss, _entropy(ctr))),
            auc=auc,
            auc_max_error=auc_error,
            buckets=self._buckets(rows, counts[:, 1], bin_p) if n else [],
            drift=self._drift(rows, reference, reference_rows),
        )
        stats["warnings"] = self._warnings(stats)
        return stats

    def check(self) -> list[str]:
        """Warnings for the thresholds crossed now (empty when all is well).

        Examples
        --------
        >>> monitor = QualityMonitor(window=1000, min_rows=10)
        >>> monitor.update(np.full(100, 0.2), np.arange(100) % 10 == 0)
        >>> monitor.check()
        ['calibration 2.000 outside [0.9, 1.1] over the last 100 labelled impressions']
        """
        return self.snapshot()["warnings"]

    def _insert(self, p: np.ndarray, y: np.ndarray) -> None:
        k = p.size
        slots = (self._head + np.arange(k)) % self.window
        # Slots are taken in order, empty ones first: the last `evicted` hold the oldest items.
        evicted = max(0, self._rows + k - self.window)
        if evicted:
            self._account(slots[k - evicted:], -1)
        self._bin[slots] = self.bins.index(p)
        self._click[slots] = y
        self._p_fixed[slots] = _fixed(p)
        self._loss_fixed[slots] = _fixed(item_log_loss(p, y))
        self._account(slots, 1)
        self._head = (self._head + k) % self.window
        self._rows = min(self.window, self._rows + k)

    def _account(self, slots: np.ndarray, sign: int) -> None:
        """Add (sign 1) or remove (sign -1) the ring items in ``slots`` from the totals."""
        bins, clicks, p_fixed = self._bin[slots], self._click[slots], self._p_fixed[slots]
        np.add.at(self._counts.reshape(-1), 2 * bins.astype(np.intp) + clicks, sign)
        np.add.at(self._bin_p, bins, sign * p_fixed)
        self._clicks += sign * int(clicks.sum())
        self._sum_p += sign * int(p_fixed.sum())
        self._sum_loss += sign * int(self._loss_fixed[slots].sum())

    def _account_one(self, slot: int, sign: int) -> None:
        """:meth:`_account` of one slot, through the memoryviews."""
        bins, clicks, p_fixeds, loss_fixeds, counts, bin_p, _ = self._one
        b, c, p_fixed = bins[slot], clicks[slot], p_fixeds[slot]
        counts[2 * b + c] += sign
        bin_p[b] += sign * p_fixed
        self._clicks += sign * c
        self._sum_p += sign * p_fixed
        self._sum_loss += sign * loss_fixeds[slot]

    def _feed_reference(self, p: np.ndarray) -> None:
        take = min(p.size, self.reference_window - self._reference_rows)
        if take > 0:
            np.add.at(self._reference, self.bins.index(p[:take]), 1)
            self._reference_rows += take

    def _buckets(self, rows: np.ndarray, clicks: np.ndarray,
                 bin_p: np.ndarray) -> list[dict[str, Any]]:
        """Per-bin rows, clicks and fixed-point sum of p, grouped in about equal counts."""
        starts = _equal_count_groups(rows, self.n_buckets)
        rows, clicks, sum_p = (np.add.reduceat(a, starts) for a in (rows, clicks, bin_p))
        ends = np.append(starts[1:], self.bins.n_bins) - 1
        buckets = []
        for first, last, n, c, s in zip(starts, ends, rows, clicks, sum_p):
            if n:
                low, high = self.bins.bounds(int(first), int(last))
                buckets.append({"p_low": low, "p_high": high, "rows": int(n),
                                "clicks": int(c), "mean_prediction": float(s / SCALE / n),
                                "ctr": float(c / n)})
        return buckets

    def _drift(self, window_counts: np.ndarray, reference: np.ndarray,
               reference_rows: int) -> dict[str, Any]:
        drift: dict[str, Any] = {"psi": None, "reference_rows": reference_rows,
                                 "reference_complete": reference_rows >= self.reference_window,
                                 "groups": []}
        n = int(window_counts.sum())
        if not (reference_rows and n):
            return drift
        starts = _equal_count_groups(reference, self.n_buckets)
        expected = np.add.reduceat(reference, starts) / reference_rows
        actual = np.add.reduceat(window_counts, starts) / n
        ends = np.append(starts[1:], self.bins.n_bins) - 1
        e, a = np.maximum(expected, PSI_FLOOR), np.maximum(actual, PSI_FLOOR)
        drift["psi"] = float(np.sum((a - e) * np.log(a / e)))
        drift["groups"] = [
            dict(zip(("p_low", "p_high"), self.bins.bounds(int(f), int(t))),
                 reference_share=float(x), window_share=float(w))
            for f, t, x, w in zip(starts, ends, expected, actual)]
        return drift

    def _warnings(self, stats: dict[str, Any]) -> list[str]:
        if stats["rows"] < self.min_rows:
            return []
        warnings = []
        low, high = self.calibration_range
        ratio = stats["calibration"]
        if ratio is not None and not low <= ratio <= high:
            warnings.append(f"calibration {ratio:.3f} outside [{low}, {high}] over the last "
                            f"{stats['rows']} labelled impressions")
        psi = stats["drift"]["psi"]
        if psi is not None and stats["drift"]["reference_complete"] and psi > self.psi_threshold:
            warnings.append(f"score drift: PSI {psi:.3f} > {self.psi_threshold} against the "
                            f"reference of {stats['drift']['reference_rows']} impressions")
        return warnings
