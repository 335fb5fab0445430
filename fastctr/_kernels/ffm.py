"""Field-aware factorization machine kernels (Juan et al., RecSys 2016) with an FTRL linear part.

State (float64, owned by the estimator):

* ``zn`` of shape (2**bits, 2): the linear part's FTRL-Proximal z and n (bias included), as in
  :mod:`fastctr._kernels.ftrl`;
* ``vg`` of shape (2**bits, n_fields, 2k): the latent vector of bucket i towards field f,
  ``vg[i, f, :k]``, next to its AdaGrad accumulators ``vg[i, f, k:]`` (one cache line per
  (bucket, field) at k=4).

The pairwise term of a row is ``r * sum_{j<l} <V[i_j, f_l], V[i_l, f_j]> x_j x_l`` over the
entries whose field id is not 0 (the bias), with ``r = 1 / sum_j x_j^2`` (over those entries)
when instance normalisation is on (libFFM's default) and 1 otherwise. Cost: O(k x nnz^2) per
row, for prediction and for learning.

Updates follow libFFM's Algorithm: for each pair (j, l) in row order, both vectors get one
AdaGrad step from the pair's gradient ``kappa * x_j * x_l * r * other + l2_v * self`` where
``kappa = (p - y) * sample_weight``, the l2 term scaled by the sample weight too. Lazy seeded
initialisation, the accumulator start at 1 and gradient clipping are as in
:mod:`fastctr._kernels.fm` (key ``(bucket * n_fields + field) * k + c``).

The hyperparameters are :class:`~fastctr._kernels.tuples.FFMHyper`; the state is
:class:`~fastctr._kernels.tuples.FMState` with a 3-D ``vg``.
"""
import numpy as np
from numba import njit

from fastctr._kernels.fm import G0, INIT_SCALE_PER_STD, init_value
from fastctr._kernels.ftrl import clip_grad, linear_margin, linear_update, sigmoid
from fastctr._kernels.prefetch import prefetch_ahead
from fastctr._kernels.rows import longest_row
from fastctr._kernels.tuples import DIVERGE_LIMIT, ROW_FIELDS, FFMHyper, FMState, Rows


@njit(cache=True, inline="always")
def _touch(vg, i, f, k, nf, seed, scale):
    if vg[i, f, k] == 0.0:  # first touch: materialise the seeded initial vector
        for c in range(k):
            vg[i, f, c] = init_value(seed, (i * nf + f) * k + c, scale)
            vg[i, f, k + c] = G0


@njit(cache=True, inline="always")
def _row_scale(rows, a, b, normalize):
    if not normalize:
        return 1.0
    norm = 0.0
    for j in range(a, b):
        if rows.fields[j] != 0:
            norm += np.float64(rows.values[j]) ** 2
    return 1.0 / norm if norm > 0.0 else 1.0


@njit(cache=True, inline="always")
def _vec(vg, i, f, c, k, nf, seed, scale):
    if vg[i, f, k] == 0.0:
        return init_value(seed, (i * nf + f) * k + c, scale)
    return vg[i, f, c]


@njit(cache=True, inline="always")
def _pairwise(rows, a, b, vg, seed, scale):
    """Sum over pairs j < l of the row (bias left out) of <v_{j, f_l}, v_{l, f_j}> x_j x_l."""
    indices, values, fields = rows.indices, rows.values, rows.fields
    nf, k = vg.shape[1], vg.shape[2] // 2
    pair = 0.0
    for j in range(a, b):
        fj = fields[j]
        if fj == 0:
            continue
        ij, xj = indices[j], np.float64(values[j])
        for l in range(j + 1, b):
            fl = fields[l]
            if fl == 0:
                continue
            il = indices[l]
            d = 0.0
            for c in range(k):
                d += _vec(vg, ij, fl, c, k, nf, seed, scale) * _vec(vg, il, fj, c, k, nf, seed, scale)
            pair += d * xj * values[l]
    return pair


@njit(cache=True, inline="always")
def _forward(rows, a, b, state, hyper, w, keep):
    """Margin of the entries ``a:b`` and the row's pairwise scale r; with ``keep`` (a
    constant) the linear weights go to ``w``."""
    lin = linear_margin(rows, a, b, state.zn, hyper, w, keep)
    rs = _row_scale(rows, a, b, hyper.normalize)
    pair = _pairwise(rows, a, b, state.vg, np.uint64(state.seed), hyper.init_std * INIT_SCALE_PER_STD)
    return lin + pair * rs, rs


@njit(cache=True, nogil=True)
def ffm_fit(rows, state, hyper, p_out):
    """One sequential pass; ``p_out[r]`` gets row r's probability before it was learned.

    Returns -1, or the index of the first row whose margin is non-finite or beyond
    ``DIVERGE_LIMIT`` (that row and the following ones are left unlearned).
    """
    zn, vg = state.zn, state.vg
    nf, k = vg.shape[1], vg.shape[2] // 2
    w = np.empty(longest_row(rows.indptr))
    inv_alpha, eta = 1.0 / hyper.alpha, hyper.eta
    scale, seed = hyper.init_std * INIT_SCALE_PER_STD, np.uint64(state.seed)
    indices, values, fields = rows.indices, rows.values, rows.fields
    for r in range(rows.indptr.shape[0] - 1):
        prefetch_ahead(rows.indptr, indices, zn, r)  # latent rows: one per pair, not prefetched
        a, b = rows.indptr[r], rows.indptr[r + 1]
        m, rs = _forward(rows, a, b, state, hyper, w, True)
        if not abs(m) < DIVERGE_LIMIT:
            return r
        p = sigmoid(m)
        p_out[r] = p
        wt = np.float64(rows.weights[r])
        g_row = (p - rows.labels[r]) * wt
        linear_update(rows, a, b, zn, g_row, w, inv_alpha, True)
        reg = wt * hyper.l2_v
        for j in range(a, b):
            fj = fields[j]
            if fj == 0:
                continue
            ij, xj = indices[j], np.float64(values[j])
            for l in range(j + 1, b):
                fl = fields[l]
                if fl == 0:
                    continue
                il = indices[l]
                kappa = g_row * xj * values[l] * rs
                _touch(vg, ij, fl, k, nf, seed, scale)
                _touch(vg, il, fj, k, nf, seed, scale)
                for c in range(k):
                    v1 = vg[ij, fl, c]
                    v2 = vg[il, fj, c]
                    g1 = clip_grad(kappa * v2 + reg * v1)
                    g2 = clip_grad(kappa * v1 + reg * v2)
                    acc = vg[ij, fl, k + c] + g1 * g1
                    vg[ij, fl, k + c] = acc
                    vg[ij, fl, c] -= eta * g1 / np.sqrt(acc)
                    acc = vg[il, fj, k + c] + g2 * g2
                    vg[il, fj, k + c] = acc
                    vg[il, fj, c] -= eta * g2 / np.sqrt(acc)
    return -1


@njit(cache=True, nogil=True)
def ffm_margin(rows, state, hyper, out):
    """Margins (log-odds) of every row, without changing the state."""
    for r in range(rows.indptr.shape[0] - 1):
        prefetch_ahead(rows.indptr, rows.indices, state.zn, r)  # latent rows: not prefetched
        out[r] = _forward(rows, rows.indptr[r], rows.indptr[r + 1], state, hyper, out, False)[0]


# Entry points for Python callers: ``name_splat(*rows, *state, *hyper, out)`` (see
# fastctr._kernels.rows.ROW_FIELDS).
_STATE_END = ROW_FIELDS + len(FMState._fields)
_HYPER_END = _STATE_END + len(FFMHyper._fields)


@njit(cache=True, nogil=True)
def ffm_fit_splat(*a):
    return ffm_fit(Rows(*a[:ROW_FIELDS]), FMState(*a[ROW_FIELDS:_STATE_END]),
        FFMHyper(*a[_STATE_END:_HYPER_END]), a[_HYPER_END])


@njit(cache=True, nogil=True)
def ffm_margin_splat(*a):
    return ffm_margin(Rows(*a[:ROW_FIELDS]), FMState(*a[ROW_FIELDS:_STATE_END]),
        FFMHyper(*a[_STATE_END:_HYPER_END]), a[_HYPER_END])
