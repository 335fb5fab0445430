"""Several FTRL-Proximal models learned side by side in one pass: a hyperparameter search.

Candidate k has its own hyperparameters ``hypers[k] = (alpha, beta, l1, l2)`` and its own
state ``zn[:, k, :]`` (z and sqrt(n) per bucket, as :mod:`fastctr._kernels.ftrl`'s). Each row
is read once and every candidate scores it, then learns it, with FTRL's own ``linear_margin``
and ``linear_update``: candidate k's progressive predictions are bit for bit those of one
``ftrl_fit`` run with ``hypers[k]``. The candidates of a bucket sit side by side, so a row's
entries bring every candidate's state into cache together.
"""
import numpy as np
from numba import njit

from fastctr._kernels.ftrl import linear_margin, linear_update, sigmoid
from fastctr._kernels.rows import longest_row
from fastctr._kernels.tuples import FTRLHyper


@njit(cache=True, nogil=True)
def ftrl_candidates_fit(rows, zn, hypers, p_out):
    """One sequential pass of every candidate over ``rows`` (labels and weights attached).

    Parameters
    ----------
    rows : Rows
        The batch; its indices index the first axis of ``zn``.
    zn : float64 array, shape (n_buckets, K, 2)
        z and sqrt(n) of every bucket and candidate (zeros for fresh candidates).
    hypers : float64 array, shape (K, 4)
        alpha, beta, l1, l2 of every candidate.
    p_out : float64 array, shape (K, n_rows)
        ``p_out[k, r]`` gets the probability candidate k gave row r before learning it.
    """
    w = np.empty(longest_row(rows.indptr))  # one candidate's weights of the row (w_t)
    for r in range(rows.indptr.shape[0] - 1):
        a, b = rows.indptr[r], rows.indptr[r + 1]
        for k in range(hypers.shape[0]):
            hyper = FTRLHyper(hypers[k, 0], hypers[k, 1], hypers[k, 2], hypers[k, 3])
            state = zn[:, k, :]
            p = sigmoid(linear_margin(rows, a, b, state, hyper, w, True))
            p_out[k, r] = p
            g_row = (p - rows.labels[r]) * rows.weights[r]
            if g_row == 0.0:
                continue  # as ftrl_fit: a zero-weight row (or a perfect prediction) changes nothing
            linear_update(rows, a, b, state, g_row, w, 1.0 / hyper.alpha, False)



@njit(cache=True, nogil=True)
def renumber(indices, size):
    """The buckets of ``indices`` (each in [0, size)) renumbered 0..m-1 in first-seen order,
    and m: a candidate's table then needs m rows, not ``size``, with the same result."""
    ids = np.full(size, -1, np.int32)
    out = np.empty_like(indices)
    m = 0
    for j in range(indices.shape[0]):
        i = indices[j]
        if ids[i] < 0:
            ids[i] = m
            m += 1
        out[j] = ids[i]
    return out, m
