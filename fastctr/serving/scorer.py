"""Scorer: a compact, read-only serving artifact of a trained linear model.

The weights are materialised once (FTRL weights from z and n) and stored as float32, float16
or int8 (times one scale), in one of two layouts:

* ``"sparse"``: the L1 zeros dropped and the non-zero weights kept in a small open-addressing
  table keyed by bucket (4 bytes of key per slot). A model with 12K non-zero weights in
  2**22 buckets serves from a 256 KB table instead of the 64 MB training state.
* ``"dense"``: one weight per bucket, indexed directly: no keys, so int8 is 4x smaller than
  float32, and batch scoring is a plain gather (the fastest layout for throughput).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from fastctr._ext._score import DTYPES, TABLE_EMPTY, DenseScorer, RowHasher, TableScorer
from fastctr._pool import thread_pool
from fastctr.io.hashing import FeatureHasher
from fastctr.io.rows import HashedRows
from fastctr.serving.files import save
from fastctr.serving.registry import register

EMPTY = np.uint32(TABLE_EMPTY)  # the key of an empty slot of the sparse table
_STORAGE = {"float32": np.float32, "float16": np.uint16, "int8": np.int8}
LAYOUTS = ("sparse", "dense")


class ScorerState(NamedTuple):
    """A Scorer's weights (``Scorer.state``): stored weights, their scale, and the sparse
    layout's table keys (None for the dense layout)."""

    weights: np.ndarray
    scale: float
    keys: np.ndarray | None = None


class ServingScorer:
    """What the compact serving artifacts share (:class:`Scorer`, and
    :class:`fastctr.serving.factors.FactorScorer` for FM and FFM): a compiled table
    (``_table``) with ``predict_one(row)`` and ``score(...)`` over a CSR batch, the hasher
    of raw rows, the layout, batch scoring on threads and the model-file protocol."""

    hasher: FeatureHasher
    keys: np.ndarray | None
    _table: Any

    @property
    def layout(self) -> str:
        return "dense" if self.keys is None else "sparse"

    def predict_one(self, row: dict | str | bytes) -> float:
        """Click probability of one raw row: a dict ``{field: value}``, or one line (str or
        bytes) of the fields' values in schema order separated by tabs, as in Criteo's test
        set (no label; an empty value is missing; a final newline is ignored)."""
        return self._table.predict_one(row)

    def decision_function(self, rows: HashedRows, n_jobs: int = 1) -> np.ndarray:
        """Margins of a batch of hashed rows, scored by ``n_jobs`` threads (GIL released)."""
        out = np.empty(rows.n_rows)
        self._score(rows, out, False, n_jobs)
        return out

    def predict_proba(self, rows: HashedRows, n_jobs: int = 1) -> np.ndarray:
        """Probabilities of no click and click for a batch of hashed rows, shape (n, 2)."""
        out = np.empty((rows.n_rows, 2))
        self._score(rows, out.reshape(-1), True, n_jobs)
        return out

    def _score(self, rows: HashedRows, out: np.ndarray, proba: bool, n_jobs: int) -> None:
        """Rows split into ``n_jobs`` contiguous ranges, each scored in one compiled call."""
        if not np.isfinite(rows.values).all():  # as the models' batch and single-row paths
            raise ValueError("X has NaN or infinite feature values; drop them or impute first")
        bounds = np.linspace(0, rows.n_rows, max(1, n_jobs) + 1).astype(int)
        args = [(*self._batch_arrays(rows), out, a, b, proba)
                for a, b in zip(bounds[:-1], bounds[1:])]
        if len(args) == 1:
            self._table.score(*args[0])
        else:
            for future in [thread_pool(len(args)).submit(self._table.score, *a) for a in args]:
                future.result()

    def _batch_arrays(self, rows: HashedRows) -> tuple:
        """The arrays of a batch that the compiled ``score`` reads before ``out``."""
        return rows.indptr, rows.indices, rows.values

    def save(self, path) -> None:
        """Write the scorer with the model-file rules (see :func:`fastctr.serving.files.save`)."""
        save(self, path)

    hasher_ = property(lambda self: self.hasher)

    def _check_fitted(self) -> None:
        """A scorer always holds weights."""


class Scorer(ServingScorer):
    """Hash a raw request and score it in one compiled call; read-only and thread-safe.

    Build one with ``model.to_scorer(dtype)``; save it with :meth:`save` and read it back
    (optionally memory-mapped) with :func:`fastctr.load`.

    Examples
    --------
    >>> from fastctr import FTRLClassifier
    >>> rows = [{"C1": "a", "I1": 3}, {"C1": "b"}] * 50
    >>> model = FTRLClassifier(bits=18).fit(rows, [1, 0] * 50)
    >>> scorer = model.to_scorer("float32")
    >>> abs(scorer.predict_one(rows[0]) - model.predict_one(rows[0])) < 1e-6
    True
    >>> line = "\\t".join(["3"] + [""] * 12 + ["a"])  # I1..I13, C1: a raw tab-separated line
    >>> scorer.predict_one(line) == scorer.predict_one({"I1": 3, "C1": "a"})
    True
    >>> scorer.n_weights, model.to_scorer("int8").nbytes < scorer.nbytes
    (4, True)
    """

    State = ScorerState  # the fields a model file stores, as the estimators' State

    def __init__(self, hasher: FeatureHasher, keys: np.ndarray | None, weights: np.ndarray,
                 dtype: str, scale: float = 1.0) -> None:
        _check_choice("dtype", dtype, DTYPES)
        self.hasher = hasher
        self.dtype = dtype
        self.keys = keys  # None for the dense layout
        self.weights = weights
        self.scale = float(scale)
        row_hasher = RowHasher(hasher._spec, hasher.fields)
        if keys is None:
            if weights.shape[0] != 1 << hasher.bits:
                raise ValueError(f"a dense scorer needs 2**{hasher.bits} weights, got {weights.shape[0]}")
            self._table = DenseScorer(row_hasher, weights, DTYPES.index(dtype), self.scale,
                                      hasher.bits)
        else:
            self._table = TableScorer(row_hasher, keys, weights, DTYPES.index(dtype), self.scale,
                                      hasher.bits)
        self.predict_one = self._table.predict_one  # the compiled call itself: no Python frame

    @property
    def layout(self) -> str:
        return "dense" if self.keys is None else "sparse"

    @classmethod
    def from_weights(cls, hasher: FeatureHasher, coef: np.ndarray, dtype: str = "float32",
                     layout: str = "sparse") -> Scorer:
        """Build from a dense weight per bucket (``model.coef_``)."""
        _check_choice("dtype", dtype, DTYPES)
        _check_choice("layout", layout, LAYOUTS)
        scale = step(coef, dtype)
        stored = _quantise(coef, dtype, scale)
        if layout == "dense":
            return cls(hasher, None, stored, dtype, scale)
        buckets = np.flatnonzero(stored).astype(np.uint32)  # zeros, after quantising, pruned
        keys, slots = bucket_table(buckets)
        weights = np.zeros(keys.shape[0], _STORAGE[dtype])
        weights[slots] = stored[buckets]
        return cls(hasher, keys, weights, dtype, scale)

    @property
    def n_weights(self) -> int:
        """Non-zero weights kept."""
        return int(np.count_nonzero(self.weights))

    @property
    def nbytes(self) -> int:
        """Bytes of the table (keys and weights)."""
        return self.weights.nbytes + (0 if self.keys is None else self.keys.nbytes)

    def get_params(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "layout": self.layout}

    @property
    def state(self) -> ScorerState:
        """The stored weights, as model files hold them (see :meth:`from_state`)."""
        return ScorerState(self.weights, self.scale, self.keys)

    @classmethod
    def from_state(cls, params: dict, hasher: FeatureHasher | dict, state) -> Scorer:
        """A Scorer from ``get_params()``, its hasher (or the hasher's parameters) and a
        :class:`ScorerState` (or a mapping of its fields), as model files rebuild it."""
        if isinstance(hasher, dict):
            hasher = FeatureHasher(**hasher)
        if not isinstance(state, ScorerState):
            state = ScorerState(**state)
        return cls(hasher, state.keys, state.weights, params["dtype"], state.scale)

    def __reduce__(self):
        return (Scorer, (self.hasher, self.keys, self.weights, self.dtype, self.scale))


def bucket_table(buckets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The keys of an open-addressing table holding ``buckets`` (uint32, distinct) at most
    half full (EMPTY elsewhere), and the slot of each bucket, where its values go."""
    # numba builds the table: loaded here, when a scorer is made, never to load or score one
    from fastctr._kernels.scorer import table_slots

    capacity_bits = max(4, int(np.ceil(np.log2(max(2 * buckets.size, 1)))))
    keys = np.full(1 << capacity_bits, EMPTY, np.uint32)
    slots = table_slots(buckets, capacity_bits)
    keys[slots] = buckets
    return keys, slots


def step(values: np.ndarray, dtype: str, top: float = 0.0) -> float:
    """The scale of ``values`` stored as ``dtype``: int8 steps spanning the largest
    magnitude (at least ``top``), 1 for float32 and float16."""
    if dtype != "int8":
        return 1.0
    top = max(top, float(np.abs(values).max()) if values.size else 0.0)
    return top / 127.0 if top > 0 else 1.0


def _quantise(coef: np.ndarray, dtype: str, scale: float) -> np.ndarray:
    """Weights in their stored type: float32, float16 bits (uint16) or int8 steps of scale."""
    if dtype == "int8":
        return np.rint(coef / scale).astype(np.int8)
    if dtype == "float16":
        return coef.astype(np.float16).view(np.uint16)
    return coef.astype(np.float32)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}. Got {value!r} instead.")


register(Scorer)
