"""Evaluation metrics for click-through-rate models.

Labels are clicks (``{0, 1}``, ``{-1, 1}`` or bool), predictions are click
probabilities, and every metric accepts optional non-negative sample weights.
:class:`ProgressiveValidation` tracks the same metrics online, VW style, over
predictions made before each row is learned.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

# The numba kernels (fastctr._kernels.metrics) are imported by the functions that call them:
# they load with the first metric computed, not with fastctr (a process that only predicts
# never loads numba).

__all__ = [
    "roc_auc",
    "log_loss",
    "normalized_entropy",
    "calibration",
    "evaluation_report",
    "ProgressiveValidation",
]

# sklearn.metrics.log_loss clips to the machine epsilon of the prediction dtype.
_EPS = float(np.finfo(np.float64).eps)

# Empty weights mean unit weights in the kernels (see fastctr._kernels.metrics).
_UNIT_WEIGHTS = np.empty(0, dtype=np.float64)


def _as_1d_float(values: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric or bool, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float64)


def _as_labels(y: ArrayLike) -> np.ndarray:
    """Labels as a float64 array of 0.0/1.0; {-1, 1} labels are mapped to {0, 1}."""
    from fastctr._kernels.metrics import label_counts

    labels = _as_1d_float(y, "y")
    n0, n1, n_minus1, n_other = label_counts(labels)
    if n_other or (n0 and n_minus1):
        found = np.unique(labels)[:6].tolist()
        raise ValueError(f"labels must be in {{0, 1}}, {{-1, 1}} or bool; found values {found}")
    if n_minus1:
        labels = (labels == 1.0).astype(np.float64)
    return labels


def _as_scores(p: ArrayLike, n: int, probabilities: bool) -> np.ndarray:
    scores = _as_1d_float(p, "p")
    if scores.size != n:
        raise ValueError(f"y and p have different lengths: {n} != {scores.size}")
    if not np.isfinite(scores).all():
        kind = "NaN" if np.isnan(scores).any() else "infinite values"
        raise ValueError(f"p contains {kind}")
    if probabilities and scores.size and (scores.min() < 0.0 or scores.max() > 1.0):
        raise ValueError(
            f"p must be probabilities in [0, 1], found range [{scores.min()}, {scores.max()}]"
        )
    return scores


def _as_weights(sample_weight: ArrayLike | None, n: int) -> np.ndarray:
    if sample_weight is None:
        return _UNIT_WEIGHTS
    w = _as_1d_float(sample_weight, "sample_weight")
    if w.size != n:
        raise ValueError(f"y and sample_weight have different lengths: {n} != {w.size}")
    if not np.isfinite(w).all() or (w < 0.0).any():
        raise ValueError("sample_weight must be finite and non-negative")
    return w


def _prepare(
    y: ArrayLike, p: ArrayLike, sample_weight: ArrayLike | None, probabilities: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate and convert inputs to contiguous float64 ``(y, p, w)``."""
    labels = _as_labels(y)
    return (
        labels,
        _as_scores(p, labels.size, probabilities),
        _as_weights(sample_weight, labels.size),
    )


def _auc_or_nan(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> float:
    """Exact ROC AUC, NaN when a class is missing (or has zero total weight)."""
    from fastctr._kernels.metrics import auc_sorted, auc_weighted_ordered

    if w.size == 0:
        # Sorting each class alone is ~3x faster than an argsort plus gathers.
        is_pos = y == 1.0
        pos, neg = np.sort(p[is_pos]), np.sort(p[~is_pos])
        return auc_sorted(pos, neg) if pos.size and neg.size else math.nan
    return auc_weighted_ordered(p, y, w, np.argsort(p))


def _entropy(ctr: float) -> float:
    """Binary entropy in nats; 0 at ctr 0 or 1."""
    if ctr <= 0.0 or ctr >= 1.0:
        return 0.0
    return -(ctr * math.log(ctr) + (1.0 - ctr) * math.log1p(-ctr))


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0.0 else math.nan


def _sums(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``[sum w, sum w*y, sum w*p, sum w*logloss]`` as an array that adds up over batches."""
    from fastctr._kernels.metrics import batch_sums

    return np.array(batch_sums(y, p, w, _EPS))


def _checked_sums(y: ArrayLike, p: ArrayLike, sample_weight: ArrayLike | None) -> np.ndarray:
    sums = _sums(*_prepare(y, p, sample_weight))
    if sums[0] <= 0.0:
        raise ValueError("no rows with positive weight: the metric is undefined")
    return sums


def roc_auc(y: ArrayLike, p: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
    """Exact area under the ROC curve, ties counted as half (as sklearn does).

    Parameters
    ----------
    y : array_like of shape (n,)
        Click labels in ``{0, 1}``, ``{-1, 1}`` or bool.
    p : array_like of shape (n,)
        Predicted probabilities, or any finite score that orders rows.
    sample_weight : array_like of shape (n,), optional
        Non-negative row weights.

    Returns
    -------
    float
        Probability that a random positive outscores a random negative.

    Raises
    ------
    ValueError
        If only one class is present (or has positive weight), lengths
        differ, ``p`` has NaN or infinite values, or labels are invalid.

    Examples
    --------
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    labels, scores, w = _prepare(y, p, sample_weight, probabilities=False)
    auc = _auc_or_nan(labels, scores, w)
    if math.isnan(auc):
        n_pos = int(labels.sum())
        raise ValueError(
            "roc_auc needs both positive and negative rows (with positive weight); "
            f"got {n_pos} positives and {labels.size - n_pos} negatives"
        )
    return auc


def log_loss(y: ArrayLike, p: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
    """Mean negative log-likelihood (natural log), matching ``sklearn.metrics.log_loss``.

    The probability of the true class is clipped to ``[eps, 1 - eps]`` with
    ``eps = np.finfo(np.float64).eps`` so confident mistakes stay finite.

    Parameters
    ----------
    y : array_like of shape (n,)
        Click labels in ``{0, 1}``, ``{-1, 1}`` or bool.
    p : array_like of shape (n,)
        Predicted click probabilities in ``[0, 1]``.
    sample_weight : array_like of shape (n,), optional
        Non-negative row weights; the loss is their weighted average.

    Returns
    -------
    float
        Weighted average log loss.

    Raises
    ------
    ValueError
        On invalid labels, mismatched lengths, non-finite or out-of-range
        ``p``, or no rows with positive weight.

    Examples
    --------
    >>> round(log_loss([0, 1, 1], [0.2, 0.7, 0.9]), 6)
    0.228393
    """
    total_w, _, _, total_loss = _checked_sums(y, p, sample_weight)
    return float(total_loss / total_w)


def normalized_entropy(
    y: ArrayLike, p: ArrayLike, sample_weight: ArrayLike | None = None
) -> float:
    """Log loss divided by the entropy of the empirical CTR (He et al., 2014).

    A model that always predicts the observed CTR scores exactly 1; lower is
    better. This is the normalized cross-entropy of "Practical lessons from
    predicting clicks on ads at Facebook".

    Parameters
    ----------
    y : array_like of shape (n,)
        Click labels in ``{0, 1}``, ``{-1, 1}`` or bool.
    p : array_like of shape (n,)
        Predicted click probabilities in ``[0, 1]``.
    sample_weight : array_like of shape (n,), optional
        Non-negative row weights, used for both the loss and the CTR.

    Returns
    -------
    float
        Normalized entropy.

    Raises
    ------
    ValueError
        If only one class is present (the CTR entropy is 0), or on invalid input.

    Examples
    --------
    >>> normalized_entropy([0, 0, 0, 1], [0.25, 0.25, 0.25, 0.25])
    1.0
    >>> round(normalized_entropy([0, 0, 0, 1], [0.1, 0.1, 0.2, 0.8]), 6)
    0.292089
    """
    total_w, total_y, _, total_loss = _checked_sums(y, p, sample_weight)
    entropy = _entropy(total_y / total_w)
    if entropy == 0.0:
        raise ValueError("normalized_entropy needs both clicks and non-clicks (CTR entropy is 0)")
    return float(total_loss / total_w / entropy)


def calibration(y: ArrayLike, p: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
    """Mean predicted CTR divided by observed CTR; 1 means well calibrated.

    Parameters
    ----------
    y : array_like of shape (n,)
        Click labels in ``{0, 1}``, ``{-1, 1}`` or bool.
    p : array_like of shape (n,)
        Predicted click probabilities in ``[0, 1]``.
    sample_weight : array_like of shape (n,), optional
        Non-negative row weights.

    Returns
    -------
    float
        ``sum(w * p) / sum(w * y)``; above 1 means over-prediction.

    Raises
    ------
    ValueError
        If there are no (positively weighted) clicks, or on invalid input.

    Examples
    --------
    >>> calibration([0, 1, 0, 0], [0.2, 0.4, 0.1, 0.1])
    0.8
    """
    _, total_y, total_p, _ = _checked_sums(y, p, sample_weight)
    if total_y <= 0.0:
        raise ValueError("calibration needs at least one click (observed CTR is 0)")
    return float(total_p / total_y)


def evaluation_report(y: ArrayLike, p: ArrayLike) -> dict[str, Any]:
    """rows, auc, log_loss, normalized_entropy, calibration and ctr of predictions ``p`` for
    labels ``y``: what can be computed, the others None with a note each (AUC, normalized
    entropy and calibration need clicks and non-clicks). What ``fastctr eval`` and the
    held-out reports print.

    Examples
    --------
    >>> report = evaluation_report([1, 0, 0, 1], [0.8, 0.3, 0.4, 0.6])
    >>> report["rows"], report["auc"], report["ctr"]
    (4, 1.0, 0.5)
    >>> evaluation_report([0, 0], [0.1, 0.2])["notes"][0]
    'auc: not defined, every label is 0 (it needs clicks and non-clicks)'
    """
    y, p = _as_labels(y), np.asarray(p, np.float64)
    report: dict[str, Any] = {"rows": int(y.shape[0])}
    for name, metric in (("auc", roc_auc), ("log_loss", log_loss),
                         ("normalized_entropy", normalized_entropy),
                         ("calibration", calibration)):
        try:
            report[name] = metric(y, p)
        except ValueError:  # one class only
            report[name] = None
            report.setdefault("notes", []).append(
                f"{name}: not defined, every label is {int(y[0])} (it needs clicks and "
                "non-clicks)")
    report["ctr"] = float(y.mean())
    return report


# (key, title, width, format) of each column of a progressive validation report line.
_COLUMNS = (
    ("rows", "rows", 12, "d"),
    ("log_loss", "avg_loss", 10, ".6f"),
    ("window_log_loss", "last_loss", 10, ".6f"),
    ("window_auc", "last_auc", 9, ".6f"),
    ("ctr", "ctr", 9, ".6f"),
    ("mean_prediction", "mean_pred", 10, ".6f"),
    ("rows_per_s", "rows/s", 12, ".0f"),
)


class ProgressiveValidation:
    """Online (VW-style progressive validation) metrics of a streaming learner.

    Feed each batch with the probabilities predicted *before* the learner saw
    those rows. Running weighted sums give the log loss, CTR and mean
    prediction since the start; AUC is exact per report window, for which
    only the rows since the last report are kept (at most ``report_every``).

    Parameters
    ----------
    report_every : int, default 100_000
        Rows between report lines.
    clock : callable, default time.perf_counter
        Seconds clock used for the rows/s throughput.

    Examples
    --------
    >>> pv = ProgressiveValidation(report_every=2)
    >>> lines = pv.update([0, 1, 1], [0.2, 0.7, 0.6])
    >>> [(line["rows"], line["window_auc"]) for line in lines]
    [(2, 1.0)]
    >>> pv.report()["rows"]
    3
    """

    def __init__(
        self, report_every: int = 100_000, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        if report_every < 1:
            raise ValueError(f"report_every must be >= 1, got {report_every}")
        self.report_every = int(report_every)
        self._clock = clock
        self._start = clock()
        self._rows = 0
        self._totals = np.zeros(4)  # since start, laid out as in _sums
        self._window_totals = np.zeros(4)  # since the last report
        self._window: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._window_rows = 0
        self._last_window_auc = math.nan

    @property
    def rows(self) -> int:
        """Rows seen so far."""
        return self._rows

    @property
    def window_rows(self) -> int:
        """Rows stored for the current report window (never more than ``report_every``)."""
        return self._window_rows

    def update(
        self, y: ArrayLike, p: ArrayLike, sample_weight: ArrayLike | None = None
    ) -> list[dict[str, Any]]:
        """Add a batch of labels and their pre-learning predictions.

        Parameters
        ----------
        y : array_like of shape (n,)
            Click labels in ``{0, 1}``, ``{-1, 1}`` or bool.
        p : array_like of shape (n,)
            Probabilities predicted before learning these rows.
        sample_weight : array_like of shape (n,), optional
            Non-negative row weights.

        Returns
        -------
        list of dict
            One report line per ``report_every`` boundary crossed by this
            batch (often none), keyed like :meth:`header`'s columns.
        """
        labels, scores, w = _prepare(y, p, sample_weight)
        now = self._clock()
        lines = []
        start = 0
        while start < labels.size:
            # Split at report boundaries so every window holds exactly report_every rows.
            stop = min(labels.size, start + self.report_every - self._window_rows)
            self._absorb(labels[start:stop], scores[start:stop], w[start:stop])
            if self._window_rows == self.report_every:
                lines.append(self._close_window(now))
            start = stop
        return lines

    def report(self) -> dict[str, Any]:
        """Summary since the start; undefined values are NaN.

        Returns
        -------
        dict
            ``rows``, ``log_loss``, ``normalized_entropy``, ``calibration``,
            ``ctr``, ``mean_prediction`` and ``auc``: the AUC of the rows
            since the last report line, or of the last full window when no
            row has arrived since.
        """
        total_w, total_y, total_p, total_loss = self._totals
        ctr = _ratio(total_y, total_w)
        log_loss_value = _ratio(total_loss, total_w)
        return {
            "rows": self._rows,
            "log_loss": log_loss_value,
            "normalized_entropy": _ratio(log_loss_value, _entropy(ctr)),
            "calibration": _ratio(total_p, total_y),
            "ctr": ctr,
            "mean_prediction": _ratio(total_p, total_w),
            "auc": self._window_auc() if self._window_rows else self._last_window_auc,
        }

    @staticmethod
    def header() -> str:
        """Column titles aligned with :meth:`format_row`."""
        return " ".join(f"{title:>{width}}" for _, title, width, _ in _COLUMNS)

    @staticmethod
    def format_row(line: dict[str, Any]) -> str:
        """Render a report line from :meth:`update` as a fixed-width text row."""
        return " ".join(f"{line[key]:>{width}{fmt}}" for key, _, width, fmt in _COLUMNS)

    def _absorb(self, y: np.ndarray, p: np.ndarray, w: np.ndarray) -> None:
        sums = _sums(y, p, w)
        self._totals += sums
        self._window_totals += sums
        # Copies: the caller may reuse its buffers before the window closes.
        self._window.append((y.copy(), p.copy(), w.copy()))
        self._window_rows += y.size
        self._rows += y.size

    def _window_auc(self) -> float:
        ys, ps, ws = zip(*self._window)
        if any(w.size for w in ws):
            # Unit weights are stored empty; spell them out to align with weighted batches.
            ws = [w if w.size == y.size else np.ones(y.size) for y, w in zip(ys, ws)]
        return _auc_or_nan(np.concatenate(ys), np.concatenate(ps), np.concatenate(ws))

    def _close_window(self, now: float) -> dict[str, Any]:
        self._last_window_auc = self._window_auc()
        total_w, total_y, total_p, total_loss = self._totals
        elapsed = now - self._start
        line = {
            "rows": self._rows,
            "log_loss": _ratio(total_loss, total_w),
            "window_log_loss": _ratio(self._window_totals[3], self._window_totals[0]),
            "window_auc": self._last_window_auc,
            "ctr": _ratio(total_y, total_w),
            "mean_prediction": _ratio(total_p, total_w),
            "rows_per_s": _ratio(self._rows, elapsed),
        }
        self._window = []
        self._window_rows = 0
        self._window_totals = np.zeros(4)
        return line
