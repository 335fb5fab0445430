"""Factorization machine kernels (Rendle 2010) with an FTRL-Proximal linear part.

:class:`~fastctr._kernels.tuples.FMState` (float64 arrays, owned by the estimator):

* ``zn`` of shape (2**bits, 2): FTRL-Proximal's z and n of the linear weights, learned by
  :mod:`fastctr._kernels.ftrl`'s own ``linear_margin`` and ``linear_update``;
* ``vg`` of shape (2**bits, 2k): a bucket's latent vector ``V[i] = vg[i, :k]`` and its
  AdaGrad accumulators ``G[i] = vg[i, k:]`` side by side, so one update touches one bucket's
  contiguous 16k bytes;
* ``seed``: the seed of the initial latent values.

Latent vectors are initialised lazily: a bucket whose ``G[i, 0]`` is 0 has never been
updated, and its vector is :func:`init_value` of (seed, bucket, coordinate), a uniform draw
with standard deviation ``init_std``, computed on the fly wherever it is read. Its first
update writes that vector and sets ``G`` to 1 (the AdaGrad accumulators start at 1, as in
libFFM, which bounds the first steps by ``eta``), so a prediction never depends on whether a
bucket was materialised, and a row that is not learned (divergence) writes nothing. Every call
costs O(k x non-zeros); the table is never scanned.

The pairwise term of a row uses the sum-of-squares identity
``sum_{j<l} <v_j, v_l> x_j x_l = 1/2 sum_c ((sum_j v_jc x_j)^2 - sum_j v_jc^2 x_j^2)``, over the
entries whose field id is not 0 (the bias). Gradients of an entry are taken at the row's
pre-update state (kept in a small buffer), then applied in entry order; a bucket that appears
twice in one row (a hash collision) gets both updates, like Vowpal Wabbit.
"""
import numpy as np
from numba import njit

from fastctr._kernels.ftrl import clip_grad, linear_margin, linear_update, sigmoid
from fastctr._kernels.prefetch import prefetch_ahead
from fastctr._kernels.rows import longest_row
from fastctr._kernels.tuples import DIVERGE_LIMIT, ROW_FIELDS, FMHyper, FMState, Rows

G0 = 1.0  # initial AdaGrad accumulator (libFFM's); 0 marks an untouched latent vector
INIT_SCALE_PER_STD = np.sqrt(3.0)  # a uniform draw on [-s, s) has standard deviation s / sqrt(3)

# splitmix64's constants (the Cython scorers' are pinned to these by a test)
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
def _prefetch_state(rows, zn, vg, r, k):
    """The linear state and both halves (V, then G) of the latent rows, a few rows ahead."""
    prefetch_ahead(rows.indptr, rows.indices, zn, r)
    prefetch_ahead(rows.indptr, rows.indices, vg, r)
    prefetch_ahead(rows.indptr, rows.indices, vg, r, k)


@njit(cache=True, inline="always")
def _forward(rows, a, b, state, hyper, s, w, vold, keep):
    """Margin and latent energy ``q = sum (v x)^2`` of the entries ``a:b``; ``s`` gets
    ``sum_j v_j x_j``. With ``keep`` (a constant) the linear weights go to ``w`` and the
    latent vectors read to ``vold``, the pre-update state the gradients are taken at."""
    vg = state.vg
    k = vg.shape[1] // 2
    seed, scale = np.uint64(state.seed), hyper.init_std * INIT_SCALE_PER_STD
    lin = linear_margin(rows, a, b, state.zn, hyper, w, keep)
    q = 0.0
    for c in range(k):
        s[c] = 0.0
    for j in range(a, b):
        if rows.fields[j] != 0:
            i = rows.indices[j]
            x = np.float64(rows.values[j])
            fresh = vg[i, k] == 0.0  # untouched: the seeded initial vector
            for c in range(k):
                v = init_value(seed, i * k + c, scale) if fresh else vg[i, c]
                if keep:
                    vold[j - a, c] = v
                t = v * x
                s[c] += t
                q += t * t
    ss = 0.0
    for c in range(k):
        ss += s[c] * s[c]
    return lin + 0.5 * (ss - q), q


@njit(cache=True, nogil=True)
def fm_fit(rows, state, hyper, p_out):
    """One sequential pass of FTRL (linear) + AdaGrad (latent) over the rows.

    ``p_out[r]`` gets the probability of row r before it was learned. Returns -1, or the
    index of the first row whose margin or latent energy is non-finite or beyond
    ``DIVERGE_LIMIT`` (that row and the following ones are left unlearned).
    """
    zn, vg = state.zn, state.vg
    k = vg.shape[1] // 2
    longest = longest_row(rows.indptr)
    w = np.empty(longest)  # the row's linear weights before its update
    vold = np.empty((longest, k))  # the row's latent vectors before its update
    s = np.empty(k)
    inv_alpha = 1.0 / hyper.alpha
    for r in range(rows.indptr.shape[0] - 1):
        _prefetch_state(rows, zn, vg, r, k)
        a, b = rows.indptr[r], rows.indptr[r + 1]
        m, q = _forward(rows, a, b, state, hyper, s, w, vold, True)
        if not (abs(m) < DIVERGE_LIMIT and q < DIVERGE_LIMIT):
            return r
        p = sigmoid(m)
        p_out[r] = p
        wt = np.float64(rows.weights[r])
        g_row = (p - rows.labels[r]) * wt
        linear_update(rows, a, b, zn, g_row, w, inv_alpha, True)
        for j in range(a, b):
            if rows.fields[j] != 0:
                i = rows.indices[j]
                x = np.float64(rows.values[j])
                if vg[i, k] == 0.0:  # first update: materialise the initial vector
                    for c in range(k):
                        vg[i, c] = vold[j - a, c]
                        vg[i, k + c] = G0
                _adagrad_step(vg[i], vold[j - a], s, g_row * x, x, wt * hyper.l2_v, hyper.eta)
    return -1


@njit(cache=True, nogil=True)
def fm_margin(rows, state, hyper, out):
    """Margins (log-odds) of every row, without changing the state."""
    k = state.vg.shape[1] // 2
    s = np.empty(k)
    for r in range(rows.indptr.shape[0] - 1):
        _prefetch_state(rows, state.zn, state.vg, r, k)
        out[r] = _forward(rows, rows.indptr[r], rows.indptr[r + 1], state, hyper, s, s, state.vg,
                          False)[0]


# Entry points for Python callers: ``name_splat(*rows, *state, *hyper, out)`` (see
# fastctr._kernels.tuples.ROW_FIELDS).
_STATE_END = ROW_FIELDS + len(FMState._fields)
_HYPER_END = _STATE_END + len(FMHyper._fields)


@njit(cache=True, nogil=True)
def fm_fit_splat(*a):
    return fm_fit(Rows(*a[:ROW_FIELDS]), FMState(*a[ROW_FIELDS:_STATE_END]),
        FMHyper(*a[_STATE_END:_HYPER_END]), a[_HYPER_END])


@njit(cache=True, nogil=True)
def fm_margin_splat(*a):
    return fm_margin(Rows(*a[:ROW_FIELDS]), FMState(*a[ROW_FIELDS:_STATE_END]),
        FMHyper(*a[_STATE_END:_HYPER_END]), a[_HYPER_END])
