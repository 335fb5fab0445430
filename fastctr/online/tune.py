"""Hyperparameters chosen by progressive validation on a prefix of the stream.

:func:`tune` learns every candidate of a small grid over the same rows in one compiled pass
(:func:`fastctr._kernels.tune.ftrl_candidates_fit`), scores each by its progressive log loss
(every row predicted before it is learned) and sets the best on the model. The grid is centred
on the model's hyperparameters, which are meant for values of size 1; every candidate learns
them carried to the prefix's value scale (:func:`fastctr.models.scale.value_scale`,
:func:`~fastctr.models.scale.scaled_params`), as the estimators themselves do, and the model
keeps that scale (``value_scale``): the same grid serves one-hot click logs (scale 1) and
real-valued text such as L2-normalised TF-IDF rows (scale ~0.1).

Two stages, each one pass over the prefix: alpha x l1, then l2 at the best of those. FM and
FFM also choose their latent learning rate ``eta`` (a third stage: one compiled pass of the
model's own kernel per candidate, since their latent state is too large to run side by side).
"""
from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from numbers import Integral
from typing import Any

import numpy as np

from fastctr._kernels.tuples import NO_FIELDS, Rows
from fastctr.io.rows import HashedRows
from fastctr.models.base import OnlineClassifier
from fastctr.models.scale import LINEAR_PARAMS, scaled_params, value_scale
from fastctr.online.metrics import log_loss

log = logging.getLogger(__name__)

FTRL_PARAMS = LINEAR_PARAMS
#: multipliers of the centre's value tried by each stage (0 switches a penalty off)
ALPHA_STEPS = (0.25, 0.5, 1.0, 2.0, 4.0)
L1_STEPS = (0.0, 0.2, 1.0)
L2_STEPS = (0.0, 0.1, 1.0, 10.0)
ETA_STEPS = (0.25, 1.0, 4.0)


def search_ftrl(rows: HashedRows, candidates: Sequence[dict[str, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Progressive predictions and log loss of FTRL with each of ``candidates``, learned from
    scratch over ``rows`` (labels attached) side by side in one compiled pass.

    The buckets the rows touch are renumbered 0..m-1 first, so the K tables hold m buckets,
    not 2**bits: the result is exactly that of K separate full-size models.

    Returns
    -------
    p : ndarray, shape (K, n_rows)
        Candidate k's probability of row r before learning it.
    losses : ndarray, shape (K,)
        Each candidate's weighted progressive log loss.

    Examples
    --------
    >>> import numpy as np
    >>> rows = HashedRows(np.array([0, 2, 4]), np.array([0, 7, 0, 9]), np.ones(4),
    ...                   labels=np.array([1.0, 0.0]))
    >>> p, losses = search_ftrl(rows, [{"alpha": 0.1, "beta": 1, "l1": 0, "l2": 0}] * 2)
    >>> p.shape, bool(losses[0] == losses[1])
    ((2, 2), True)
    """
    from fastctr._kernels.tune import ftrl_candidates_fit  # numba: with the first search

    if rows.labels is None:
        raise ValueError("tuning needs labelled rows")
    weights = np.ones(rows.n_rows, np.float32) if rows.weights is None else rows.weights
    compact, m = compact_indices(rows.indices)
    hypers = np.array([[c[name] for name in FTRL_PARAMS] for c in candidates], np.float64)
    zn = np.zeros((m, len(candidates), 2))
    p = np.empty((len(candidates), rows.n_rows))
    kernel_rows = Rows(rows.indptr, compact, rows.values, NO_FIELDS, rows.labels, weights)
    ftrl_candidates_fit(kernel_rows, zn, hypers, p)
    losses = np.array([log_loss(rows.labels, pk, weights) for pk in p])
    return p, losses


def compact_indices(indices: np.ndarray) -> tuple[np.ndarray, int]:
    """``indices`` renumbered 0..m-1 (int32) and m, the number of distinct buckets."""
    from fastctr._kernels.tune import renumber

    top = int(indices.max()) + 1 if indices.size else 1
    if top <= max(1 << 24, 8 * indices.size):  # a dense map of the buckets is affordable
        return renumber(indices, top)
    unique, inverse = np.unique(indices, return_inverse=True)
    return inverse.astype(np.int32).ravel(), int(unique.size)


def tune(model: OnlineClassifier, rows: HashedRows, *, scale: bool = True) -> dict[str, Any]:
    """Choose the model's FTRL hyperparameters (and FM/FFM's ``eta``) on ``rows`` and set them.

    Parameters
    ----------
    model : OnlineClassifier
        An unfitted model; its current hyperparameters are the centre of the grid.
    rows : HashedRows
        The prefix of the stream to choose on (labels attached), hashed by ``model.hasher_``.
    scale : bool
        With the model's ``value_scale="auto"``: learn the candidates at the rows'
        :func:`~fastctr.models.scale.value_scale` (False: at 1). The scale used is set on the
        model too. A model's numeric ``value_scale`` is used as it is.

    Returns
    -------
    dict
        ``chosen`` (the parameters set, meant for values of size 1 as the defaults are),
        ``rows``, ``value_scale`` (set on the model too), ``log_loss`` (the winner's
        progressive log loss on the prefix), ``candidates`` (every one tried, with its loss)
        and ``seconds``.

    Examples
    --------
    >>> from fastctr import FTRLClassifier, read_criteo
    >>> from fastctr.io.datasets import make_criteo
    >>> model = FTRLClassifier(bits=18)
    >>> rows = next(iter(read_criteo(make_criteo(5_000, seed=1), model.hasher_)))
    >>> report = tune(model, rows)
    >>> sorted(report["chosen"]) == ["alpha", "beta", "l1", "l2"] and model.alpha == report["chosen"]["alpha"]
    True
    """
    if model.is_fitted:
        raise ValueError("tune chooses the hyperparameters of a model that has learned nothing "
                         "yet; tune a fresh clone (model.__sklearn_clone__())")
    model._validate_params()
    start = time.perf_counter()
    if model.value_scale != "auto":
        s = float(model.value_scale)
    else:
        s = value_scale(rows) if scale else 1.0
    best = {name: float(getattr(model, name)) for name in FTRL_PARAMS}
    tried: list[dict[str, float]] = []
    for grid in ([{**best, "alpha": best["alpha"] * a, "l1": best["l1"] * b}
                  for a in ALPHA_STEPS for b in L1_STEPS],
                 lambda best: [{**best, "l2": best["l2"] * c} for c in L2_STEPS]):
        candidates = grid(best) if callable(grid) else grid
        _, losses = search_ftrl(rows, [scaled_params(c, s) for c in candidates])
        tried += [{**c, "log_loss": float(loss)} for c, loss in zip(candidates, losses)]
        best = candidates[int(np.argmin(losses))]
    chosen = dict(best)
    best_loss = min(t["log_loss"] for t in tried)
    if hasattr(model, "eta"):
        chosen["eta"], best_loss, etas = _tune_eta(model, rows, chosen, s)
        tried += etas
    model.set_params(**chosen, value_scale=s)
    report = {"chosen": chosen, "rows": rows.n_rows, "value_scale": s, "log_loss": best_loss,
              "candidates": tried, "seconds": time.perf_counter() - start}
    log.info("tuned on the first %s rows (value scale %.4g, %d candidates, %.2f s): %s, "
             "progressive log loss %.5f", f"{rows.n_rows:,}", s, len(tried), report["seconds"],
             " ".join(f"{k}={v:.4g}" for k, v in chosen.items()), best_loss)
    return report


def _tune_eta(model: OnlineClassifier, rows: HashedRows, linear: dict[str, float],
              s: float) -> tuple[float, float, list[dict[str, float]]]:
    """FM/FFM's ``eta`` (scaled like alpha, value scale ``s`` included) at the chosen linear
    part: each candidate is a compiled pass of the model's own kernel over the prefix, on a
    table of the touched buckets only (renumbered; its seeded initial latent values differ
    from the full table's, not their distribution)."""
    # how far the linear part's step moved, at the values' scale: eta follows
    scale = linear["alpha"] / model.alpha / s
    compact, m = compact_indices(rows.indices)
    bits = max(18, int(m - 1).bit_length())
    small = HashedRows(rows.indptr, compact, rows.values, rows.fields, rows.labels, rows.weights)
    tried = []
    for step in ETA_STEPS:
        eta = model.eta * scale * step
        clone = model.__sklearn_clone__().set_params(**linear, eta=eta, bits=bits, n_jobs=1,
                                                     value_scale=s)
        try:
            loss = log_loss(rows.labels, clone.partial_fit_predict(small), rows.weights)
        except ArithmeticError:  # DivergenceError: this eta is too large for the data
            loss = math.inf
        tried.append({**linear, "eta": eta, "log_loss": float(loss)})
    best = min(tried, key=lambda t: t["log_loss"])
    return best["eta"], best["log_loss"], tried


#: train()'s ``tune`` values: False (keep the hyperparameters), True or "search" (choose them
#: by progressive validation)
TUNE_MODES = (False, True, "search")


def tuned_stream(model: OnlineClassifier, batches: Iterable[HashedRows], how: bool | str,
                 tune_rows: int) -> tuple[Iterator[HashedRows], dict[str, Any]]:
    """Read the first ``tune_rows`` rows of ``batches``, choose the model's hyperparameters on
    them (:func:`tune`; ``how``: see :data:`TUNE_MODES`), and return every batch again (those read
    first, then the rest) with the report. The model learns nothing here: training then
    starts from the first row with the chosen values, as if they had been given.

    Examples
    --------
    >>> from fastctr import FTRLClassifier, read_criteo
    >>> from fastctr.io.datasets import make_criteo
    >>> model = FTRLClassifier(bits=18)
    >>> stream, report = tuned_stream(model, read_criteo(make_criteo(3_000), model.hasher_,
    ...                                                  batch_size=1_000), True, 2_000)
    >>> report["rows"], sum(batch.n_rows for batch in stream)
    (2000, 3000)
    """
    if how is not True and how not in TUNE_MODES[1:]:
        raise ValueError(f"tune must be one of {TUNE_MODES}; got {how!r}")
    if not isinstance(tune_rows, Integral) or isinstance(tune_rows, bool) or tune_rows < 1:
        raise ValueError(f"tune_rows must be an int >= 1; got {tune_rows!r}")
    batches = iter(batches)
    head: list[HashedRows] = []
    n = 0
    while n < tune_rows and (batch := next(batches, None)) is not None:
        if not isinstance(batch, HashedRows) or batch.labels is None:
            raise ValueError("tuning needs labelled, parsed batches (HashedRows with labels)")
        head.append(batch)
        n += batch.n_rows
    stream = itertools.chain(head, batches)
    if n == 0:
        return stream, {"chosen": {}, "rows": 0, "value_scale": 1.0}
    return stream, tune(model, concat_rows(head)[:tune_rows])


def concat_rows(parts: Sequence[HashedRows]) -> HashedRows:
    """Labelled batches as one (weights 1 where a batch has none; fields kept if all have)."""
    if len(parts) == 1:
        return parts[0]
    offsets = np.cumsum([0] + [part.nnz for part in parts])
    indptr = np.concatenate([[0]] + [part.indptr[1:] + off for part, off in zip(parts, offsets)])
    fields = (None if any(part.fields is None for part in parts)
              else np.concatenate([part.fields for part in parts]))
    weights = np.concatenate([np.ones(part.n_rows, np.float32) if part.weights is None
                              else part.weights for part in parts])
    return HashedRows(indptr, np.concatenate([part.indices for part in parts]),
                      np.concatenate([part.values for part in parts]), fields,
                      np.concatenate([part.labels for part in parts]), weights)
