"""FTRL-Proximal logistic regression kernels (McMahan et al. 2013, Algorithm 1).

State ``zn`` is float64 of shape (2**bits, 2): a bucket's z and sqrt(n) side by side, so one
update touches one cache line, and keeping the square root of n (rather than n) saves two
of the three square roots per feature. ``hp`` is float64 [alpha, beta, l1, l2]. Training and
prediction release the GIL, so threads can learn (Hogwild) and score at the same time.
"""
import numpy as np
from numba import njit

from fastctr._kernels.prefetch import prefetch_ahead

MARGIN_CLIP = 35.0  # |margin| beyond this changes p by < 1e-15; keeps exp finite


@njit(cache=True, inline="always")
def sigmoid(m):
    m = min(max(m, -MARGIN_CLIP), MARGIN_CLIP)
    return 1.0 / (1.0 + np.exp(-m))


@njit(cache=True, inline="always")
def weight(zn, i, hp):
    """The per-coordinate weight w_i of Algorithm 1: exactly 0 when |z_i| <= l1.

    -(z - sign(z) l1) / ((beta + sqrt(n)) / alpha + l2), multiplied through by alpha: one
    division instead of two (divisions bound the learning loop).
    """
    z = zn[i, 0]
    if abs(z) <= hp[2]:
        return 0.0
    return -hp[0] * (z - np.sign(z) * hp[2]) / (hp[1] + zn[i, 1] + hp[0] * hp[3])


@njit(cache=True, inline="always")
def update(zn, i, g, w_old, inv_alpha):
    """Algorithm 1's update of coordinate i for gradient g, given its weight before the row."""
    sqrt_n = zn[i, 1]
    sqrt_n_new = np.sqrt(sqrt_n * sqrt_n + g * g)
    sigma = (sqrt_n_new - sqrt_n) * inv_alpha
    zn[i, 0] += g - sigma * w_old
    zn[i, 1] = sqrt_n_new


@njit(cache=True, nogil=True)
def ftrl_fit(indptr, indices, values, labels, weights, zn, hp, p_out):
    """One sequential pass; p_out[r] gets the probability row r had before it was learned."""
    longest = 0
    for r in range(indptr.shape[0] - 1):
        longest = max(longest, indptr[r + 1] - indptr[r])
    w = np.empty(longest)  # the row's weights before its update (Algorithm 1's w_t)
    inv_alpha = 1.0 / hp[0]
    for r in range(indptr.shape[0] - 1):
        prefetch_ahead(indptr, indices, zn, r)
        a, b = indptr[r], indptr[r + 1]
        m = 0.0
        for j in range(a, b):
            w[j - a] = weight(zn, indices[j], hp)
            m += w[j - a] * values[j]
        p = sigmoid(m)
        p_out[r] = p
        g_row = (p - labels[r]) * weights[r]
        if g_row == 0.0:
            continue  # a zero-weight row (or a perfect prediction) changes nothing
        for j in range(a, b):
            update(zn, indices[j], g_row * values[j], w[j - a], inv_alpha)


@njit(cache=True, nogil=True)
def ftrl_margin(indptr, indices, values, zn, hp, out):
    """Margins w . x of every row, without changing the state."""
    for r in range(indptr.shape[0] - 1):
        prefetch_ahead(indptr, indices, zn, r)
        m = 0.0
        for j in range(indptr[r], indptr[r + 1]):
            m += weight(zn, indices[j], hp) * values[j]
        out[r] = m


@njit(cache=True)
def ftrl_weights(zn, hp, out):
    """Materialised weights of every bucket (for coef_ and serving exports)."""
    for i in range(zn.shape[0]):
        out[i] = weight(zn, i, hp)
