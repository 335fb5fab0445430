"""numba kernels for evaluation metrics.

Pure functions over contiguous float64 arrays. Labels are already 0.0/1.0.
A weight array of length 0 means "every row has weight 1", so each kernel
compiles once instead of once per weighted/unweighted variant.
"""

import numpy as np
from numba import njit


@njit(cache=True)
def label_counts(y: np.ndarray) -> tuple[int, int, int, int]:
    """Count labels equal to 0, 1, -1 and anything else (NaN included), in one pass."""
    n0 = 0
    n1 = 0
    n_minus1 = 0
    n_other = 0
    for v in y:
        if v == 0.0:
            n0 += 1
        elif v == 1.0:
            n1 += 1
        elif v == -1.0:
            n_minus1 += 1
        else:
            n_other += 1
    return n0, n1, n_minus1, n_other


@njit(cache=True)
def auc_sorted(pos: np.ndarray, neg: np.ndarray) -> float:
    """Exact ROC AUC from ascending-sorted positive and negative scores.

    Every positive scores 1 per negative strictly below it and 1/2 per tied
    negative (sklearn's trapezoid over tie groups). The doubled total is kept
    as an int64 so the numerator is exact: 2*P*N fits for up to ~4e9 rows.
    """
    n_pos = pos.size
    n_neg = neg.size
    below = 0  # negatives with score < current positive group
    twice_wins = 0
    i = 0
    while i < n_pos:
        s = pos[i]
        while below < n_neg and neg[below] < s:
            below += 1
        tied = below
        while tied < n_neg and neg[tied] == s:
            tied += 1
        group_end = i
        while group_end < n_pos and pos[group_end] == s:
            group_end += 1
        twice_wins += (group_end - i) * (2 * below + (tied - below))
        i = group_end
    return twice_wins / (2.0 * n_pos * n_neg)


@njit(cache=True)
def auc_weighted_ordered(
    p: np.ndarray, y: np.ndarray, w: np.ndarray, order: np.ndarray
) -> float:
    """Exact weighted ROC AUC, visiting rows in ascending score ``order``.

    Rows with equal scores form one group; a group adds
    ``pos_w * (neg_w_below + neg_w_in_group / 2)``, the trapezoid sklearn
    integrates over its weighted ROC curve. Returns NaN when either class has
    zero total weight.
    """
    n = order.size
    area = 0.0
    neg_below = 0.0
    pos_total = 0.0
    i = 0
    while i < n:
        s = p[order[i]]
        pos_group = 0.0
        neg_group = 0.0
        while i < n and p[order[i]] == s:
            r = order[i]
            if y[r] == 1.0:
                pos_group += w[r]
            else:
                neg_group += w[r]
            i += 1
        area += pos_group * (neg_below + 0.5 * neg_group)
        neg_below += neg_group
        pos_total += pos_group
    if pos_total == 0.0 or neg_below == 0.0:
        return np.nan
    return area / (pos_total * neg_below)


@njit(cache=True)
def batch_sums(
    y: np.ndarray, p: np.ndarray, w: np.ndarray, eps: float
) -> tuple[float, float, float, float]:
    """Weighted sums ``(sum w, sum w*y, sum w*p, sum w*logloss)`` in one pass.

    The log loss of a row matches sklearn: the probability given to the true
    class (``p`` or ``1 - p``) is clipped to ``[eps, 1 - eps]`` before the log.
    Sums are Kahan-compensated so ten million rows still agree with numpy's
    pairwise summation to ~1e-15 relative.
    """
    weighted = w.size > 0
    sums = np.zeros(4)
    comp = np.zeros(4)
    terms = np.empty(4)
    for i in range(y.size):
        wi = w[i] if weighted else 1.0
        q = p[i] if y[i] == 1.0 else 1.0 - p[i]
        q = min(max(q, eps), 1.0 - eps)
        terms[0] = wi
        terms[1] = wi * y[i]
        terms[2] = wi * p[i]
        terms[3] = -wi * np.log(q)
        for k in range(4):
            t = terms[k] - comp[k]
            s = sums[k] + t
            comp[k] = (s - sums[k]) - t
            sums[k] = s
    return sums[0], sums[1], sums[2], sums[3]
