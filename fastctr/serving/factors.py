"""FactorScorer: the compact, read-only serving artifact of an FM or FFM model.

A factorization machine's state is float64 FTRL ``z, n`` and latent vectors with their
AdaGrad accumulators for every bucket (576 MiB at bits=22, k=8). Serving needs only the
linear weight ``w`` and the latent vector ``V`` of the buckets that learning touched: those
are materialised once and stored as float32, float16 or int8 (one scale for ``w``, one for
``V``), in the two layouts of :class:`fastctr.serving.scorer.Scorer`:

* ``"sparse"``: the rows of the touched buckets only, found through an open-addressing
  table keyed by bucket (4 bytes of key and 4 of row number per slot, the wide rows stored
  once, not at the table's half occupancy); a bucket that is not there has ``w = 0`` and
  its seeded initial latent vector, computed on the fly exactly as the model computes it,
  so the scorer agrees with its model on every bucket.
* ``"dense"``: one row per bucket (the initial vectors of untouched buckets materialised),
  indexed directly.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from fastctr._ext._score import DTYPES, INIT_SCALE, FactorTable, RowHasher, fill_initial
from fastctr.io.hashing import FeatureHasher
from fastctr.io.rows import HashedRows
from fastctr.serving.registry import register
from fastctr.serving.scorer import (
    _STORAGE,
    LAYOUTS,
    ServingScorer,
    _check_choice,
    _quantise,
    bucket_table,
    step,
)

_SEED_LIMIT = 1 << 53  # the models' seeds (fastctr.models.fm)
_CHUNK = 1 << 16  # buckets materialised at a time (bounds the float64 temporaries)


class FactorScorerState(NamedTuple):
    """A FactorScorer's stored tables (``FactorScorer.state``, what its model file holds).

    Attributes
    ----------
    weights : ndarray of shape (n,)
        The linear weight of each stored bucket, in the stored type.
    factors : ndarray of shape (n, k), or (n, n_fields, k) for FFM
        The latent vectors of each stored bucket, in the stored type.
    scale, factor_scale : float
        The int8 steps of ``weights`` and ``factors`` (1 for float32 and float16).
    seed : int
        The model's seed of the initial latent values (for buckets not stored).
    keys, rows : ndarray of uint32, or None
        The bucket of each table slot, 0xFFFFFFFF when empty, and its row in ``weights``
        and ``factors`` (sparse layout); None for dense, where row = bucket.
    """

    weights: np.ndarray
    factors: np.ndarray
    scale: float
    factor_scale: float
    seed: int
    keys: np.ndarray | None = None
    rows: np.ndarray | None = None


class FactorScorer(ServingScorer):
    """Hash a raw request and score it with FM or FFM in one compiled call; read-only and
    thread-safe.

    Build one with ``model.to_scorer(dtype, layout)`` on an :class:`fastctr.FMClassifier` or
    :class:`fastctr.FFMClassifier`; save it with :meth:`save` and read it back (optionally
    memory-mapped) with :func:`fastctr.load`. It scores like :class:`Scorer`:
    ``predict_one(row)`` for a dict or a raw tab-separated line, ``predict_proba(rows)`` and
    ``decision_function(rows)`` for a batch of :class:`fastctr.HashedRows` (FFM needs their
    field ids).

    Examples
    --------
    >>> from fastctr import FMClassifier
    >>> rows = [{"C1": "a", "C2": "x"}, {"C1": "a", "C2": "y"},
    ...         {"C1": "b", "C2": "x"}, {"C1": "b", "C2": "y"}] * 100
    >>> model = FMClassifier(k=4, eta=0.2, init_std=0.1, bits=18).fit(rows, [1, 0, 0, 1] * 100)
    >>> scorer = model.to_scorer("float32")
    >>> abs(scorer.predict_one(rows[0]) - model.predict_one(rows[0])) < 1e-6
    True
    >>> scorer.n_buckets, model.to_scorer("int8").nbytes < scorer.nbytes
    (4, True)
    """

    State = FactorScorerState

    def __init__(self, hasher: FeatureHasher, keys: np.ndarray | None, rows: np.ndarray | None,
                 weights: np.ndarray, factors: np.ndarray, dtype: str, scale: float = 1.0,
                 factor_scale: float = 1.0, *, seed: int, init_std: float,
                 normalize: bool = False) -> None:
        _check_choice("dtype", dtype, DTYPES)
        if not (isinstance(seed, (int, np.integer)) and 0 <= seed < _SEED_LIMIT):
            raise ValueError(f"seed must be an int in [0, 2**53); got {seed!r}")
        if not (isinstance(normalize, (bool, np.bool_))
                and isinstance(init_std, (int, float)) and not isinstance(init_std, bool)
                and 0 <= init_std < float("inf")):
            raise ValueError(f"normalize must be a bool and init_std a finite number >= 0; got "
                             f"{normalize!r}, {init_std!r}")
        if getattr(factors, "ndim", 0) == 3 and factors.shape[1] != hasher.n_fields:
            raise ValueError(f"an FFM scorer has a latent vector per field: {hasher.n_fields} "
                             f"for its hasher, not {factors.shape[1]}")
        if getattr(factors, "ndim", 0) not in (2, 3):
            raise ValueError("factors are (slots, k) for FM or (slots, n_fields, k) for FFM")
        if keys is not None and np.any((keys >= 1 << hasher.bits) & (keys != _EMPTY)):
            raise ValueError(f"the table holds buckets >= 2**{hasher.bits}")
        if dtype != "int8" and not (_finite(weights, dtype) and _finite(factors, dtype)):
            raise ValueError(f"the stored weights or factors are not all finite (as {dtype}, "
                             "which holds magnitudes up to 65504 as float16: use float32 or int8)")
        self.hasher, self.keys, self.rows = hasher, keys, rows
        self.weights, self.factors = weights, factors
        self.dtype, self.scale, self.factor_scale = dtype, float(scale), float(factor_scale)
        self.seed, self.init_std, self.normalize = int(seed), float(init_std), bool(normalize)
        self._table = FactorTable(RowHasher(hasher._spec, hasher.fields), keys, rows, weights,
                                  factors,
                                  DTYPES.index(dtype), self.scale, self.factor_scale,
                                  hasher.bits, self.seed, self.init_std * INIT_SCALE,
                                  self.normalize)
        self.predict_one = self._table.predict_one  # the compiled call itself: no Python frame

    @classmethod
    def from_factors(cls, hasher: FeatureHasher, coef: np.ndarray, vg: np.ndarray, seed: int,
                     init_std: float, normalize: bool = False, dtype: str = "float32",
                     layout: str = "sparse") -> FactorScorer:
        """Build from a model's linear weight per bucket (``coef``, 2**bits) and its latent
        table ``vg`` (V | G per bucket, or per bucket and field for FFM: a vector is touched
        when its first accumulator is not 0, else it is its seeded initial value)."""
        _check_choice("dtype", dtype, DTYPES)
        _check_choice("layout", layout, LAYOUTS)
        k = vg.shape[-1] // 2
        touched = vg[..., k] != 0.0  # (buckets,) for FM, (buckets, n_fields) for FFM
        init_scale = init_std * INIT_SCALE
        if layout == "dense":
            buckets = np.arange(coef.shape[0], dtype=np.uint32)
            top = init_scale if not touched.all() else 0.0
        else:
            stored = coef != 0.0
            stored |= touched.any(axis=1) if touched.ndim == 2 else touched
            buckets = np.flatnonzero(stored).astype(np.uint32)
            if not buckets.size:  # a table has a row: bucket 0, as unlearned (w = 0, initial V)
                buckets = np.zeros(1, np.uint32)
            top = init_scale if not touched[buckets].all() else 0.0
        scale = step(coef[buckets], dtype)
        if dtype == "int8":  # the learned values' largest magnitude; initial ones within top
            top = max([top] + [float(np.abs(vg[buckets[a:a + _CHUNK], ..., :k]).max())
                               for a in range(0, buckets.shape[0], _CHUNK)])
        factor_scale = step(np.empty(0), dtype, top)
        factors = np.empty((buckets.shape[0], *vg.shape[1:-1], k), _STORAGE[dtype])
        for a in range(0, buckets.shape[0], _CHUNK):
            part = buckets[a:a + _CHUNK]
            factors[a:a + _CHUNK] = _quantise(_materialise(vg[part], part, touched[part], seed,
                                                           init_scale), dtype, factor_scale)
        weights = _quantise(coef[buckets], dtype, scale)
        keys = rows = None
        if layout == "sparse":
            keys, slots = bucket_table(buckets)
            rows = np.zeros(keys.shape[0], np.uint32)
            rows[slots] = np.arange(buckets.shape[0], dtype=np.uint32)
        return cls(hasher, keys, rows, weights, factors, dtype, scale, factor_scale, seed=seed,
                   init_std=init_std, normalize=normalize)

    @property
    def k(self) -> int:
        """The latent dimension."""
        return self.factors.shape[-1]

    @property
    def n_buckets(self) -> int:
        """Buckets stored: the touched ones (sparse), every bucket (dense)."""
        return self.weights.shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes of the tables (keys, weights and factors)."""
        table = 0 if self.keys is None else self.keys.nbytes + self.rows.nbytes
        return table + self.weights.nbytes + self.factors.nbytes

    def _batch_arrays(self, rows: HashedRows) -> tuple:
        return rows.indptr, rows.indices, rows.values, rows.fields

    # -- model-file protocol --------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "layout": self.layout, "init_std": self.init_std,
                "normalize": self.normalize}

    @property
    def state(self) -> FactorScorerState:
        """The stored tables, as model files hold them (see :meth:`from_state`)."""
        return FactorScorerState(self.weights, self.factors, self.scale, self.factor_scale,
                                 self.seed, self.keys, self.rows)

    @classmethod
    def from_state(cls, params: dict, hasher: FeatureHasher | dict, state) -> FactorScorer:
        """A FactorScorer from ``get_params()``, its hasher (or the hasher's parameters) and a
        :class:`FactorScorerState` (or a mapping of its fields), as model files rebuild it;
        every table size and value range is checked (ValueError)."""
        if isinstance(hasher, dict):
            hasher = FeatureHasher(**hasher)
        if not isinstance(state, FactorScorerState):
            state = FactorScorerState(**state)
        if (params.get("layout") not in LAYOUTS
                or (params["layout"] == "sparse") != (state.keys is not None)):
            raise ValueError(f"a FactorScorer of layout {params.get('layout')!r} "
                             f"{'without' if state.keys is None else 'with'} a table of keys")
        return cls(hasher, state.keys, state.rows, state.weights, state.factors,
                   params.get("dtype"),
                   state.scale, state.factor_scale, seed=state.seed,
                   init_std=params.get("init_std"), normalize=params.get("normalize"))

    def __reduce__(self):
        return (_rebuild, (self.get_params(), self.hasher, self.state))


def _rebuild(params: dict, hasher: FeatureHasher, state: FactorScorerState) -> FactorScorer:
    return FactorScorer.from_state(params, hasher, state)


_EMPTY = np.uint32(0xFFFFFFFF)


def _finite(stored: np.ndarray, dtype: str) -> bool:
    values = stored.view(np.float16) if dtype == "float16" else stored
    return bool(np.isfinite(values).all())


def _materialise(vg: np.ndarray, buckets: np.ndarray, touched: np.ndarray, seed: int,
                 init_scale: float) -> np.ndarray:
    """The latent vectors of ``buckets`` (their rows ``vg`` of V | G) as float64: the learned
    ones, and the seeded initial values of the untouched (computed in C as the models do)."""
    k = vg.shape[-1] // 2
    v = np.array(vg[..., :k])
    if not touched.all():
        fresh = (~touched).reshape(len(buckets), -1).view(np.uint8)
        fill_initial(buckets, fresh, v.reshape(len(buckets), fresh.shape[1], k), seed, init_scale)
    return v


register(FactorScorer)
