"""FTRL-Proximal logistic regression kernels (McMahan et al. 2013, Algorithm 1).

``FTRLState.zn`` (:mod:`fastctr._kernels.tuples`) is float64 of shape (2**bits, 2): a bucket's
z and sqrt(n) side by side, so one update touches one cache line, and keeping the square root
of n (rather than n) saves two of the three square roots per feature. ``FTRLHyper`` holds
alpha, beta, l1 and l2. The linear part of FM and FFM is this same code
(:func:`linear_margin`, :func:`linear_update`). Learning releases the GIL, so threads can learn
(Hogwild) and score at the same time. FTRL's batch prediction is the compiled scorer over the
live state (``fastctr._ext._score.FTRLScorer.score``, the same weight and sums), so that
predicting needs no numba.
"""
import numpy as np
from numba import njit

from fastctr._kernels.prefetch import prefetch_ahead
from fastctr._kernels.rows import longest_row
from fastctr._kernels.tuples import GRAD_CLIP, MARGIN_CLIP, ROW_FIELDS, FTRLHyper, FTRLState, Rows


@njit(cache=True, inline="always")
def sigmoid(m):
    m = min(max(m, -MARGIN_CLIP), MARGIN_CLIP)
    return 1.0 / (1.0 + np.exp(-m))


@njit(cache=True, inline="always")
def clip_grad(g):
    return min(max(g, -GRAD_CLIP), GRAD_CLIP)


@njit(cache=True, inline="always")
def weight(zn, i, hyper):
    """The per-coordinate weight w_i of Algorithm 1: exactly 0 when |z_i| <= l1.

    -(z - sign(z) l1) / ((beta + sqrt(n)) / alpha + l2), multiplied through by alpha: one
    division instead of two (divisions bound the learning loop).
    """
    z = zn[i, 0]
    if abs(z) <= hyper.l1:
        return 0.0
    return -hyper.alpha * (z - np.sign(z) * hyper.l1) / (hyper.beta + zn[i, 1] + hyper.alpha * hyper.l2)


@njit(cache=True, inline="always")
def update(zn, i, g, w_old, inv_alpha):
    """Algorithm 1's update of coordinate i for gradient g, given its weight before the row."""
    sqrt_n = zn[i, 1]
    sqrt_n_new = np.sqrt(sqrt_n * sqrt_n + g * g)
    sigma = (sqrt_n_new - sqrt_n) * inv_alpha
    zn[i, 0] += g - sigma * w_old
    zn[i, 1] = sqrt_n_new


@njit(cache=True, inline="always")
def linear_margin(rows, a, b, zn, hyper, w, keep):
    """w . x of the entries ``a:b``; with ``keep`` (a constant: the branch compiles away),
    the weights are also written to ``w[0:b - a]`` for :func:`linear_update`."""
    m = 0.0
    for j in range(a, b):
        wj = weight(zn, rows.indices[j], hyper)
        if keep:
            w[j - a] = wj
        m += wj * rows.values[j]
    return m


@njit(cache=True, inline="always")
def linear_update(rows, a, b, zn, g_row, w, inv_alpha, clip):
    """Algorithm 1's update of every entry of ``a:b`` for the row's loss gradient ``g_row``,
    from the weights the row was scored with; ``clip`` (a constant) clips each coordinate's
    gradient to GRAD_CLIP, as FM and FFM do."""
    for j in range(a, b):
        g = g_row * rows.values[j]
        if clip:
            g = clip_grad(g)
        update(zn, rows.indices[j], g, w[j - a], inv_alpha)


@njit(cache=True, nogil=True)
def ftrl_fit(rows, state, hyper, p_out):
    """One sequential pass; p_out[r] gets the probability row r had before it was learned."""
    zn = state.zn
    w = np.empty(longest_row(rows.indptr))  # the row's weights before its update (w_t)
    inv_alpha = 1.0 / hyper.alpha
    for r in range(rows.indptr.shape[0] - 1):
        prefetch_ahead(rows.indptr, rows.indices, zn, r)
        a, b = rows.indptr[r], rows.indptr[r + 1]
        p = sigmoid(linear_margin(rows, a, b, zn, hyper, w, True))
        p_out[r] = p
        g_row = (p - rows.labels[r]) * rows.weights[r]
        if g_row == 0.0:
            continue  # a zero-weight row (or a perfect prediction) changes nothing
        linear_update(rows, a, b, zn, g_row, w, inv_alpha, False)


@njit(cache=True)
def ftrl_weights(state, hyper, out):
    """Materialised weights of every bucket (for coef_ and serving exports)."""
    for i in range(state.zn.shape[0]):
        out[i] = weight(state.zn, i, hyper)


# Entry points for Python callers: ``name_splat(*rows, *state, *hyper, out)`` (see
# fastctr._kernels.tuples.ROW_FIELDS).
_STATE_END = ROW_FIELDS + len(FTRLState._fields)
_HYPER_END = _STATE_END + len(FTRLHyper._fields)


@njit(cache=True, nogil=True)
def ftrl_fit_splat(*a):
    return ftrl_fit(Rows(*a[:ROW_FIELDS]), FTRLState(*a[ROW_FIELDS:_STATE_END]),
        FTRLHyper(*a[_STATE_END:_HYPER_END]), a[_HYPER_END])

