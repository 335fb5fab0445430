"""Fixed score bins: the structure behind the live AUC, calibration buckets and drift.

Predicted click probabilities are placed in ``n_bins`` bins of equal width in logit space
(``logit(p) = log(p / (1 - p))``), over ``[-logit_range, logit_range]``; scores beyond the
range fall in the end bins. Counting clicks and non-clicks per bin lets a sliding window add
and remove one item in O(1), and gives the ROC AUC in O(n_bins) at any time.

**AUC error bound.** The bin of a score is a non-decreasing function of the score, so two
items in different bins are ordered as their scores are; only pairs that share a bin are
counted as ties (1/2) whatever their scores. Each such pair is off by at most 1/2, so

    |AUC_binned - AUC_exact| <= sum_b pos_b * neg_b / (2 * P * N)

(``pos_b``, ``neg_b``: clicks and non-clicks in bin ``b``; ``P``, ``N``: their totals).
:func:`binned_auc` returns this bound with the AUC; it is exact, not a statistical estimate.
With the defaults (8192 bins over logits in [-12, 12]) a bin is 0.0029 wide in logit, i.e.
scores within ~0.3% of each other (relative, for CTR-sized p) may share a bin.
"""

from __future__ import annotations

import math
from bisect import bisect_right

import numpy as np

__all__ = ["ScoreBins", "binned_auc", "item_log_loss", "one_log_loss", "check_labelled",
           "check_one"]

# sklearn.metrics.log_loss (and fastctr.online.metrics) clip the true class's probability
# to [eps, 1 - eps] so a confident mistake costs a finite -log(eps) ~ 36.04.
EPS = float(np.finfo(np.float64).eps)


class ScoreBins:
    """Equal-width logit bins over click probabilities.

    Parameters
    ----------
    n_bins : int, default 8192
        Number of bins, in [2, 65536] (bin indices fit a uint16).
    logit_range : float, default 12.0
        Bins cover logits in ``[-logit_range, logit_range]`` (p in ~[6e-6, 0.999994]).

    Examples
    --------
    >>> bins = ScoreBins(n_bins=4, logit_range=2.0)
    >>> bins.index(np.array([0.0, 0.3, 0.6, 1.0])).tolist()
    [0, 1, 2, 3]
    >>> [round(x, 3) for x in bins.bounds(1, 2)]
    [0.269, 0.731]
    """

    def __init__(self, n_bins: int = 8192, logit_range: float = 12.0) -> None:
        if not 2 <= n_bins <= 65536:
            raise ValueError(f"n_bins must be in [2, 65536], got {n_bins}")
        if not 0.0 < logit_range <= 36.0:
            raise ValueError(f"logit_range must be in (0, 36], got {logit_range}")
        self.n_bins = int(n_bins)
        self.logit_range = float(logit_range)
        logits = np.linspace(-logit_range, logit_range, self.n_bins + 1)[1:-1]
        #: the inner edges: bin k holds edges[k-1] <= p < edges[k]
        self.edges = 1.0 / (1.0 + np.exp(-logits))
        self._edge_list = self.edges.tolist()  # bisect on a list beats numpy for one item

    def index(self, p: np.ndarray) -> np.ndarray:
        """Bin of each probability, as uint16 (exact comparisons with the stored edges)."""
        return np.searchsorted(self.edges, p, side="right").astype(np.uint16)

    def index_one(self, p: float) -> int:
        """Bin of one probability, the same as :meth:`index` gives."""
        return bisect_right(self._edge_list, p)

    def bounds(self, first: int, last: int) -> tuple[float, float]:
        """The probabilities ``[low, high)`` covered by bins ``first`` to ``last`` (inclusive)."""
        low = float(self.edges[first - 1]) if first > 0 else 0.0
        high = float(self.edges[last]) if last < self.n_bins - 1 else 1.0
        return low, high


def binned_auc(pos: np.ndarray, neg: np.ndarray) -> tuple[float | None, float | None]:
    """ROC AUC of per-bin click and non-click counts, and its bound against the exact AUC.

    Items in one bin count as ties (1/2 a pair); see the module docstring for the bound.

    Parameters
    ----------
    pos, neg : ndarray of shape (n_bins,)
        Clicks and non-clicks per bin, bins in ascending score order.

    Returns
    -------
    (auc, max_error) : tuple of float, or (None, None) when a class is missing

    Examples
    --------
    >>> binned_auc(np.array([0, 1, 1]), np.array([1, 1, 0]))
    (0.875, 0.125)
    """
    n_pos = float(pos.sum())
    n_neg = float(neg.sum())
    if n_pos == 0.0 or n_neg == 0.0:
        return None, None
    pos = pos.astype(np.float64)
    neg = neg.astype(np.float64)
    neg_below = np.cumsum(neg) - neg
    pairs = n_pos * n_neg
    tied = float(pos @ neg)
    return float(pos @ neg_below + 0.5 * tied) / pairs, tied / (2.0 * pairs)


def item_log_loss(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Log loss of each item, the true class's probability clipped to ``[eps, 1 - eps]``.

    Examples
    --------
    >>> item_log_loss(np.array([0.5, 0.0]), np.array([1, 0])).round(4).tolist()
    [0.6931, 0.0]
    """
    q = np.where(y == 1, p, 1.0 - p)
    return -np.log(np.clip(q, EPS, 1.0 - EPS))


def one_log_loss(p: float, click: int) -> float:
    """:func:`item_log_loss` of one item, without numpy's per-call cost."""
    q = p if click else 1.0 - p
    return -math.log(min(max(q, EPS), 1.0 - EPS))


def check_one(p: float, click: int | bool) -> tuple[float, int]:
    """One ``(p, click)`` as a float probability and an int click; ValueError naming it."""
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p}")
    if click not in (0, 1):
        raise ValueError(f"click must be 0 or 1, got {click!r}")
    return p, int(click)


def check_labelled(p: object, y: object) -> tuple[np.ndarray, np.ndarray]:
    """``(p, y)`` as 1-D float64 probabilities and uint8 clicks; ValueError naming the field.

    Examples
    --------
    >>> p, y = check_labelled([0.1, 0.9], [False, True])
    >>> p.dtype.name, y.tolist()
    ('float64', [0, 1])
    """
    p = np.ascontiguousarray(p, dtype=np.float64).reshape(-1)
    y_in = np.asarray(y).reshape(-1)
    if y_in.size != p.size:
        raise ValueError(f"p and y have different lengths: {p.size} != {y_in.size}")
    if y_in.dtype.kind not in "biuf" or not ((y_in == 0) | (y_in == 1)).all():
        raise ValueError("y must be clicks, 0 or 1")
    if not ((p >= 0.0) & (p <= 1.0)).all():  # also false for NaN
        raise ValueError("p must be probabilities in [0, 1] (no NaN)")
    return p, y_in.astype(np.uint8)
