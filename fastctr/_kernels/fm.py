"""Factorization machine kernels (Rendle 2010) with an FTRL-Proximal linear part.

State (float64, owned by the estimator):

* ``zn`` of shape (2**bits, 2): FTRL-Proximal's z and n of the linear weights, exactly as in
  :mod:`fastctr._kernels.ftrl` (whose ``weight`` and ``sigmoid`` are reused, not copied);
* ``vg`` of shape (2**bits, 2k): a bucket's latent vector ``V[i] = vg[i, :k]`` and its
  AdaGrad accumulators ``G[i] = vg[i, k:]`` side by side, so one update touches one bucket's
  contiguous 16k bytes.

Latent vectors are initialised lazily: a bucket whose ``G[i, 0]`` is 0 has never been
updated, and its vector is :func:`init_value` of (seed, bucket, coordinate), a uniform draw
with standard deviation ``init_std``, computed on the fly wherever it is read. Its first
update writes that vector and sets ``G`` to 1 (the AdaGrad accumulators start at 1, as in
libFFM, which bounds the first steps by ``eta``), so a prediction never depends on whether a
bucket was materialised, and a row that is not learned (divergence) writes nothing. Every call costs O(k x non-zeros); the table is never scanned.

``hp`` is float64 ``[alpha, beta, l1, l2, eta, l2_v, init_scale, seed]`` with
``init_scale = init_std * sqrt(3)`` and ``seed < 2**53``.

The pairwise term of a row uses the sum-of-squares identity
``sum_{j<l} <v_j, v_l> x_j x_l = 1/2 sum_c ((sum_j v_jc x_j)^2 - sum_j v_jc^2 x_j^2)``, over the
entries whose field id is not 0 (the bias). Gradients of an entry are taken at the row's
pre-update state (kept in a small buffer), then applied in entry order; a bucket that appears
twice in one row (a hash collision) gets both updates, like Vowpal Wabbit.
"""
import numpy as np
from numba import njit

from fastctr._kernels.ftrl import sigmoid, update, weight
from fastctr._kernels.prefetch import prefetch_ahead

GRAD_CLIP = 1e4  # per-coordinate gradient clip: bounds every step and keeps g*g finite
DIVERGE_LIMIT = 1e8  # |margin| or a row's latent energy sum (v x)^2 beyond this = diverged
G0 = 1.0  # initial AdaGrad accumulator (libFFM's); 0 marks an untouched latent vector

ETA, L2V, INIT_SCALE, SEED = 4, 5, 6, 7

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, inline="always")
def init_value(seed, key, scale):
    """Deterministic initial latent value: splitmix64(seed + key * golden) -> uniform.

    ``key`` is ``bucket * k + c`` for FM and ``(bucket * n_fields + field) * k + c`` for FFM;
    the result is uniform on ``[-scale, scale)``. The Cython scorers compute the same bits.
    """
    x = np.uint64(seed) + np.uint64(key) * _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    x = x ^ (x >> np.uint64(31))
    u = np.float64(x >> np.uint64(11)) * (1.0 / 9007199254740992.0)
    return scale * (2.0 * u - 1.0)


@njit(cache=True, inline="always")
def clip_grad(g):
    return min(max(g, -GRAD_CLIP), GRAD_CLIP)


@njit(cache=True)
def _longest(indptr):
    longest = 0
    for r in range(indptr.shape[0] - 1):
        longest = max(longest, indptr[r + 1] - indptr[r])
    return longest


@njit(cache=True, inline="always")
def _adagrad_step(vi, vold, s, gx, x, reg, eta):
    """AdaGrad step of one entry's latent vector ``vi[:k]`` (accumulators ``vi[k:]``)."""
    k = vold.shape[0]
    for c in range(k):
        v = vold[c]
        g = clip_grad(gx * (s[c] - v * x) + reg * v)
        acc = vi[k + c] + g * g
        vi[k + c] = acc
        vi[c] -= eta * g / np.sqrt(acc)


@njit(cache=True, inline="always")
def _prefetch_state(indptr, indices, zn, vg, r, k):
    """The linear state and both halves (V, then G) of the latent rows, a few rows ahead."""
    prefetch_ahead(indptr, indices, zn, r)
    prefetch_ahead(indptr, indices, vg, r)
    prefetch_ahead(indptr, indices, vg, r, k)


@njit(cache=True, nogil=True)
def fm_fit(indptr, indices, values, fields, labels, weights, zn, vg, hp, p_out):
    """One sequential pass of FTRL (linear) + AdaGrad (latent) over the rows.

    ``p_out[r]`` gets the probability of row r before it was learned. Returns -1, or the
    index of the first row whose margin or latent energy is non-finite or beyond
    ``DIVERGE_LIMIT`` (that row and the following ones are left unlearned).
    """
    k = vg.shape[1] // 2
    longest = _longest(indptr)
    w = np.empty(longest)  # the row's linear weights before its update
    vold = np.empty((longest, k))  # the row's latent vectors before its update
    s = np.empty(k)
    inv_alpha, eta, l2v = 1.0 / hp[0], hp[ETA], hp[L2V]
    scale, seed = hp[INIT_SCALE], np.uint64(hp[SEED])
    for r in range(indptr.shape[0] - 1):
        _prefetch_state(indptr, indices, zn, vg, r, k)
        a, b = indptr[r], indptr[r + 1]
        lin = 0.0
        q = 0.0
        for c in range(k):
            s[c] = 0.0
        for j in range(a, b):
            i = indices[j]
            x = np.float64(values[j])
            w[j - a] = weight(zn, i, hp)
            lin += w[j - a] * x
            if fields[j] != 0:
                fresh = vg[i, k] == 0.0  # untouched: the seeded initial vector
                for c in range(k):
                    v = init_value(seed, i * k + c, scale) if fresh else vg[i, c]
                    vold[j - a, c] = v
                    t = v * x
                    s[c] += t
                    q += t * t
        ss = 0.0
        for c in range(k):
            ss += s[c] * s[c]
        m = lin + 0.5 * (ss - q)
        if not (abs(m) < DIVERGE_LIMIT and q < DIVERGE_LIMIT):
            return r
        p = sigmoid(m)
        p_out[r] = p
        wt = np.float64(weights[r])
        g_row = (p - labels[r]) * wt
        for j in range(a, b):
            i = indices[j]
            x = np.float64(values[j])
            g = clip_grad(g_row * x)
            update(zn, i, g, w[j - a], inv_alpha)
            if fields[j] != 0:
                if vg[i, k] == 0.0:  # first update: materialise the initial vector
                    for c in range(k):
                        vg[i, c] = vold[j - a, c]
                        vg[i, k + c] = G0
                _adagrad_step(vg[i], vold[j - a], s, g_row * x, x, wt * l2v, eta)
    return -1


@njit(cache=True, nogil=True)
def fm_margin(indptr, indices, values, fields, zn, vg, hp, out):
    """Margins (log-odds) of every row, without changing the state."""
    k = vg.shape[1] // 2
    s = np.empty(k)
    scale, seed = hp[INIT_SCALE], np.uint64(hp[SEED])
    for r in range(indptr.shape[0] - 1):
        _prefetch_state(indptr, indices, zn, vg, r, k)
        lin = 0.0
        q = 0.0
        for c in range(k):
            s[c] = 0.0
        for j in range(indptr[r], indptr[r + 1]):
            i = indices[j]
            x = np.float64(values[j])
            lin += weight(zn, i, hp) * x
            if fields[j] != 0:
                fresh = vg[i, k] == 0.0
                for c in range(k):
                    v = init_value(seed, i * k + c, scale) if fresh else vg[i, c]
                    t = v * x
                    s[c] += t
                    q += t * t
        ss = 0.0
        for c in range(k):
            ss += s[c] * s[c]
        out[r] = lin + 0.5 * (ss - q)


@njit(cache=True)
def fm_init_vectors(buckets, k, hp, out):
    """The seeded initial latent vectors of ``buckets`` (for inspection and the scorers)."""
    scale, seed = hp[INIT_SCALE], np.uint64(hp[SEED])
    for j in range(buckets.shape[0]):
        for c in range(k):
            out[j, c] = init_value(seed, buckets[j] * k + c, scale)
