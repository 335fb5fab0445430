"""OnlineClassifier: parameters, input conversion and the partial_fit/predict plumbing.

Subclasses declare their parameters in ``__init__`` (stored as given), their rules in
``_param_rules``, and implement four hooks over HashedRows: ``_allocate``, ``_learn``,
``_margins`` and ``_make_scorer``. The estimator owns every state array; kernels are pure.
"""
from __future__ import annotations

import copy
import inspect
import numbers
from typing import Any, Callable

import numpy as np

from fastctr._kernels.rows import entries_are_valid
from fastctr.io.rows import HashedRows
from fastctr._pool import thread_pool
from fastctr.exceptions import NotFittedError
from fastctr.io.hashing import FeatureHasher
from fastctr.serving.files import save
from fastctr.serving.registry import register

HASHER_PARAMS = ("fields", "numeric", "bits", "hash_seed", "numeric_transform", "crosses")


def positive(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and np.isfinite(x) and x > 0


def non_negative(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and np.isfinite(x) and x >= 0


def positive_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool) and x >= 1


class OnlineClassifier:
    """Base of fastctr's online binary classifiers (scikit-learn conventions)."""

    #: parameter name -> (predicate, what it must be)
    _param_rules: dict[str, tuple[Callable[[Any], bool], str]] = {}
    _scorer_cache = None  # the compiled single-row scorer, built on first predict_one

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        register(cls)  # model files name their class; no pickle on load

    # -- parameters ---------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters, as in scikit-learn."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> OnlineClassifier:
        """Set constructor parameters; hashing parameters cannot change once fitted."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for {type(self).__name__}. Valid: {valid}."
                )
            if name in HASHER_PARAMS and self.is_fitted:
                raise ValueError(f"cannot change {name!r} of a fitted model: it changes the hashing")
            setattr(self, name, value)
        self._scorer_cache = None
        return self

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
        }
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if v != defaults.get(k)]
        return f"{type(self).__name__}({', '.join(changed)})"

    def _validate_params(self) -> None:
        name = type(self).__name__
        for param, (ok, what) in self._param_rules.items():
            value = getattr(self, param)
            if not ok(value):
                raise ValueError(f"The {param!r} parameter of {name} must be {what}. Got {value!r} instead.")

    def _hyper(self) -> np.ndarray:
        """Hyperparameters packed for the kernels (subclasses define the layout)."""
        raise NotImplementedError

    # -- state --------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return getattr(self, "n_rows_seen_", 0) > 0

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"This {type(self).__name__} has not learned any row yet: call partial_fit or "
                "fit before predicting."
            )

    @property
    def hasher_(self) -> FeatureHasher:
        """The FeatureHasher built from this model's hashing parameters."""
        params = {k: getattr(self, k) for k in HASHER_PARAMS}
        cached = getattr(self, "_hasher_cache", None)
        if cached is None or cached.get_params() != FeatureHasher(**params).get_params():
            self._hasher_cache = FeatureHasher(**params)
        return self._hasher_cache

    def _state(self) -> dict[str, Any]:
        """Everything learned: arrays and scalars (model files store exactly this)."""
        return {name: getattr(self, name) for name in self._state_names}

    def _set_state(self, state: dict[str, Any]) -> None:
        for name in self._state_names:
            setattr(self, name, state[name])
        self._scorer_cache = None

    @classmethod
    def _from_file(cls, params: dict, hasher: dict, state: dict) -> OnlineClassifier:
        """Rebuild from a model file's parameters and state (fastctr.serving.files.load)."""
        params = dict(params)  # JSON made lists of the tuples
        params["crosses"] = tuple(tuple(pair) for pair in params["crosses"])
        for name in ("fields", "numeric"):
            if params[name] is not None:
                params[name] = tuple(params[name])
        model = cls(**params)
        if model.hasher_.get_params() != hasher:
            raise ValueError("the model file's hasher does not match its parameters")
        model._set_state(state)
        return model

    def _start(self) -> None:
        if not self.is_fitted or getattr(self, self._state_names[0], None) is None:
            self._validate_params()
            self._allocate()
            self._scorer_cache = None  # it pointed at the old arrays
            self.n_rows_seen_ = 0

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_scorer_cache", None)  # a compiled object, rebuilt on demand
        state.pop("_hasher_cache", None)
        return state

    # -- input conversion -----------------------------------------------------------------
    def _rows(self, X, y=None, sample_weight=None, need_labels: bool = False) -> HashedRows:
        """X as HashedRows (labels/weights attached), with clear errors for bad input."""
        if isinstance(X, HashedRows):
            rows = X
        elif hasattr(X, "tocsr") and hasattr(X, "indptr"):
            rows = HashedRows.from_csr(X)
        elif isinstance(X, dict):
            raise TypeError("X is a single dict row: use predict_one(row), or pass [row]")
        elif hasattr(X, "to_dict") or isinstance(X, (list, tuple)) or inspect.isgenerator(X):
            rows = self.hasher_.transform(X)
        else:
            raise TypeError(
                f"X must be HashedRows, a scipy CSR matrix of hashed columns, a list of dict "
                f"rows or a pandas DataFrame. Got {type(X).__name__}."
            )
        size = 1 << self.bits
        if not entries_are_valid(rows.indices, rows.values, size):  # one pass; details below
            if rows.indices.min() < 0 or rows.indices.max() >= size:
                raise ValueError(
                    f"column indices must lie in [0, 2**bits) = [0, {size}); got "
                    f"[{rows.indices.min()}, {rows.indices.max()}]. Hash with bits={self.bits}."
                )
            raise ValueError("X has NaN or infinite feature values; drop them or impute first")
        labels = rows.labels if y is None else _labels(y, rows.n_rows)
        if need_labels and labels is None:
            raise ValueError("y is required: pass labels, or HashedRows that carry labels")
        weights = rows.weights if sample_weight is None else _weights(sample_weight, rows.n_rows)
        return rows.with_targets(labels, weights)

    # -- learning -------------------------------------------------------------------------
    def partial_fit(self, X, y=None, sample_weight=None, classes=None) -> OnlineClassifier:
        """Learn from one batch of rows, in order (one online pass).

        Parameters
        ----------
        X : HashedRows, scipy CSR of hashed columns, list of dict rows or DataFrame
        y : array-like of {0, 1}, {-1, 1} or bool, optional if X carries labels
        sample_weight : array-like of float >= 0, optional
            Importance weight of each row: its gradient is scaled by it.
        classes : ignored, accepted for scikit-learn compatibility.
        """
        self.partial_fit_predict(X, y, sample_weight)
        return self

    def partial_fit_predict(self, X, y=None, sample_weight=None) -> np.ndarray:
        """Learn from a batch and return the probability each row got *before* it was learned.

        These are progressive-validation predictions (Vowpal Wabbit's habit): every row is
        scored by a model that has not seen it, so their log loss estimates test loss.
        """
        rows = self._rows(X, y, sample_weight, need_labels=True)
        self._start()
        if rows.weights is None:
            rows = rows.with_targets(weights=np.ones(rows.n_rows, np.float32))
        p = np.empty(rows.n_rows)
        if self.n_jobs == 1 or rows.n_rows < 2 * self.n_jobs:
            self._learn(rows, p)
        else:
            self._learn_hogwild(rows, p)
        self.n_rows_seen_ += rows.n_rows
        return p

    def _learn_hogwild(self, rows: HashedRows, p: np.ndarray) -> None:
        """Learn contiguous slices of the batch in n_jobs threads at once, lock-free.

        The kernels release the GIL, so the threads run in parallel on one shared state
        (Hogwild, Niu et al. 2011): updates can interleave, the result depends on timing and is
        not reproducible, and rows of one slice are learned without the others' updates.
        """
        bounds = np.linspace(0, rows.n_rows, self.n_jobs + 1).astype(int)
        parts = [(rows[a:b], p[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        for future in [thread_pool(self.n_jobs).submit(self._learn, *part) for part in parts]:
            future.result()

    def fit(self, X, y=None, sample_weight=None) -> OnlineClassifier:
        """Forget what was learned, then make ``epochs`` passes over the rows in order."""
        for name in self._state_names:
            setattr(self, name, None)
        self.n_rows_seen_ = 0
        rows = self._rows(X, y, sample_weight, need_labels=True)
        self._validate_params()
        for _ in range(self.epochs):
            self.partial_fit(rows)
        return self

    # -- prediction -----------------------------------------------------------------------
    def decision_function(self, X) -> np.ndarray:
        """The margin (log-odds of a click) of each row."""
        self._check_fitted()
        rows = self._rows(X)
        out = np.empty(rows.n_rows)
        self._margins(rows, out)
        return out

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities of no click and click, shape (n_rows, 2)."""
        p = _sigmoid(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        """Predicted class, 1 where the click probability exceeds 0.5."""
        return (self.decision_function(X) > 0).astype(np.int64)

    def predict_one(self, row) -> float:
        """Click probability of one row, hashed and scored in one compiled call.

        ``row`` is a raw dict ``{"C1": "68fd1e64", "I1": 3, ...}``, one raw line (str or
        bytes) holding the fields' values in schema order separated by tabs (a Criteo
        test-set line: no label), or a pre-hashed ``(indices, values)`` pair.
        """
        scorer = self._scorer_cache
        if scorer is None:
            self._check_fitted()
            scorer = self._scorer_cache = self._make_scorer()
        if isinstance(row, tuple):
            if len(row) == 2:
                return scorer.predict_hashed(row[0], row[1])
            raise TypeError(f"a pre-hashed row is an (indices, values) pair; got {len(row)} items")
        return scorer.predict_one(row)  # a dict or a line; TypeError for anything else

    @property
    def classes_(self) -> np.ndarray:
        return np.array([0, 1])

    def save(self, path) -> None:
        """Write the model to ``path`` atomically (see :func:`fastctr.load`)."""
        save(self, path)

    def __sklearn_clone__(self):
        return type(self)(**copy.deepcopy(self.get_params()))


def _sigmoid(m: np.ndarray) -> np.ndarray:
    from fastctr._kernels.ftrl import MARGIN_CLIP

    return 1.0 / (1.0 + np.exp(-np.clip(m, -MARGIN_CLIP, MARGIN_CLIP)))


def _labels(y, n_rows: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n_rows:
        raise ValueError(f"y must be 1-D with one label per row: {n_rows} rows, y has shape {y.shape}")
    if y.dtype == bool:
        return y.astype(np.float32)
    if not np.issubdtype(y.dtype, np.number):
        raise TypeError(f"labels must be numbers or bools; got dtype {y.dtype}")
    bad = ~((y == 0) | (y == 1) | (y == -1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"labels must be in {{0, 1}}, {{-1, 1}} or bool; y[{i}] = {y[i]!r}")
    return (y == 1).astype(np.float32)


def _weights(w, n_rows: int) -> np.ndarray:
    w = np.asarray(w, dtype=np.float32)
    if w.shape != (n_rows,):
        raise ValueError(f"sample_weight must have one weight per row ({n_rows}); got shape {w.shape}")
    if not np.all(np.isfinite(w)) or (w < 0).any():
        raise ValueError("sample_weight must be finite and >= 0")
    return w
