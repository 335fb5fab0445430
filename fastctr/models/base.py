"""OnlineClassifier: parameters, input conversion and the partial_fit/predict plumbing.

Subclasses declare their parameters in ``__init__`` (stored as given, by
``_store_params(locals())``), their valid values in ``_parameter_constraints``, their learned state as a
NamedTuple class ``State`` (each field ``f`` kept as the attribute ``f_``), and implement the
abstract hooks: ``_hyper``, ``_allocate``, ``_learn``, ``_margins`` and ``_make_scorer``. The
estimator owns every state array; kernels are pure functions of
``(rows, state, hyper, out)``. The numba kernels are imported by the hooks that call them, so
that ``import fastctr`` and a process that only predicts (FTRL, Scorers) never load numba.
"""
from __future__ import annotations

import abc
import copy
import inspect
import numbers
import operator
import threading
from numbers import Integral, Real
from typing import Any

import numpy as np

from fastctr._ext._rows import entries_are_valid
from fastctr._ext._score import probabilities
from fastctr._kernels.tuples import NO_FIELDS, NO_TARGETS, Rows
from fastctr._pool import thread_pool
from fastctr._validation import Interval, Options, validate_params
from fastctr.exceptions import NotFittedError
from fastctr.io.hashing import (
    HASHING_CONSTRAINTS,
    POLICY_PARAMS,
    FeatureHasher,
    check_hashing_together,
)
from fastctr.io.rows import MAX_WEIGHT, HashedRows
from fastctr.models._sklearn import (
    ClassifierCompat,
    as_numeric_array,
    hash_array,
    is_array_like,
    not_fitted_error,
    warn_column_vector,
)
from fastctr.models.scale import LINEAR_PARAMS, scaled_params, value_scale
from fastctr.serving.files import save
from fastctr.serving.registry import register

HASHER_PARAMS = ("fields", "numeric", "bits", "hash_seed", "numeric_transform", "crosses",
                 "unknown")
#: the hashing parameters a fitted model's state depends on (the policies change no hash)
HASHING_PARAMS = tuple(name for name in HASHER_PARAMS if name not in POLICY_PARAMS)


#: Constraints the models share (see fastctr._validation), e.g. a learning rate > 0.
POSITIVE = [Interval(Real, 0, None, closed="neither")]
NON_NEGATIVE = [Interval(Real, 0, None, closed="left")]
COUNT = [Interval(Integral, 1, None, closed="left")]


class OnlineClassifier(ClassifierCompat, abc.ABC):
    """Base of fastctr's online binary classifiers (scikit-learn conventions)."""

    #: parameter name -> its valid values (checked at fit/partial_fit/predict, not in
    #: __init__, as scikit-learn does); the hashing parameters are the FeatureHasher's
    _parameter_constraints: dict[str, list] = {
        "alpha": POSITIVE,
        "beta": POSITIVE,
        "l1": NON_NEGATIVE,
        "l2": NON_NEGATIVE,
        "epochs": COUNT,
        "n_jobs": COUNT,
        "value_scale": [Options(str, {"auto"}), Interval(Real, 0, None, closed="neither")],
        **HASHING_CONSTRAINTS,
    }
    _scorer_cache = None  # the compiled single-row scorer, built on first predict_one
    #: the learned state's NamedTuple; field ``f`` lives in the attribute ``f_``
    State: type = tuple
    #: attributes the single-row scorer reads (set per class): assigning one drops it
    _scorer_inputs: frozenset[str] = frozenset()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        register(cls)  # model files name their class; no pickle on load
        fields = getattr(cls.State, "_fields", ())
        arrays = {f"{name}_" for name in fields if name != "n_rows_seen"}
        cls._scorer_inputs = frozenset(cls._param_names()) | arrays
        if len(fields) > 1:  # a tuple of the state attributes in one C call (kernel calls)
            cls._state_values = staticmethod(operator.attrgetter(*(f"{n}_" for n in fields)))

    def __setattr__(self, name: str, value: Any) -> None:
        # The scorer copies the hyperparameters and points at the state arrays: any new
        # value of either (model.l1 = 0.0, as scikit-learn allows) makes the next predict_one
        # build a fresh one. Nothing runs on predict_one's own path.
        if name in self._scorer_inputs:
            self.__dict__.pop("_scorer_cache", None)
        object.__setattr__(self, name, value)

    def _store_params(self, args: dict[str, Any]) -> None:
        """Store the constructor's arguments (``locals()`` of ``__init__``) under their names,
        unchanged, as scikit-learn requires."""
        for name in self._param_names():
            setattr(self, name, args[name])

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
            if name in HASHING_PARAMS and self.is_fitted:
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
        """Check every constructor parameter, the hashing ones together too (this model owns
        a hasher built from them); InvalidParameterError in scikit-learn's words."""
        name = type(self).__name__
        params = {p: getattr(self, p) for p in self._parameter_constraints}
        validate_params(self._parameter_constraints, params, name)
        check_hashing_together(params, name)

    # -- hooks (each model implements them) ------------------------------------------------
    @abc.abstractmethod
    def _hyper(self) -> tuple:
        """The kernels' hyperparameter NamedTuple, built from the current attributes."""

    @abc.abstractmethod
    def _allocate(self) -> None:
        """Create a fresh state (every ``State`` attribute but ``n_rows_seen_``)."""

    @abc.abstractmethod
    def _learn(self, rows: HashedRows, p_out: np.ndarray) -> None:
        """Learn ``rows`` (labels and weights attached) in order; ``p_out[r]`` gets row r's
        probability before it was learned. (Import the numba kernel here, not at the top of
        the module: numba loads with the first call that learns.)"""

    @abc.abstractmethod
    def _margins(self, rows: HashedRows, out: np.ndarray) -> None:
        """Write the margin of every row to ``out``, changing nothing."""

    @abc.abstractmethod
    def _make_scorer(self):
        """The compiled single-row scorer (``fastctr._ext._score``) over the live state."""

    def _linear_hyper(self) -> dict[str, float]:
        """alpha, beta, l1 and l2 as the kernels take them: the parameters (meant for values
        of size 1) carried to the learned ``value_scale_`` (see :mod:`fastctr.models.scale`)."""
        params = {name: getattr(self, name) for name in LINEAR_PARAMS}
        scale = getattr(self, "value_scale_", None) or 1.0
        return params if scale == 1.0 else scaled_params(params, scale)

    def _fields_of(self, rows: HashedRows) -> np.ndarray:
        """The field ids the kernels read (none by default)."""
        return NO_FIELDS

    def _call(self, kernel, rows: HashedRows, out: np.ndarray):
        """``kernel(rows, state, hyper, out)`` through its ``*_splat`` entry (flat arguments:
        numba types them several microseconds faster than NamedTuples)."""
        return kernel(*self._kernel_rows(rows), *self._state_values(self), *self._hyper(), out)

    def _kernel_rows(self, rows: HashedRows) -> Rows:
        """``rows`` as the kernels take them: every field an array, so each kernel compiles
        once (missing labels and weights are empty)."""
        return Rows(rows.indptr, rows.indices, rows.values, self._fields_of(rows),
                    NO_TARGETS if rows.labels is None else rows.labels,
                    NO_TARGETS if rows.weights is None else rows.weights)

    # -- state --------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return getattr(self, "n_rows_seen_", 0) > 0

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise not_fitted_error(
                NotFittedError,
                f"This {type(self).__name__} has not learned any row yet: call partial_fit or "
                "fit before predicting.",
            )

    @property
    def hasher_(self) -> FeatureHasher:
        """The FeatureHasher built from this model's hashing parameters."""
        # Keyed by the parameters' values (sequences frozen), so an assignment or an in-place
        # change of a list is seen, without building a hasher on every access.
        key = tuple(_frozen(getattr(self, k)) for k in HASHER_PARAMS)
        cached = self.__dict__.get("_hasher_cache")
        if cached is None or cached[0] != key:
            params = {k: getattr(self, k) for k in HASHER_PARAMS}
            cached = self._hasher_cache = (key, FeatureHasher(**params))
        return cached[1]

    @property
    def state(self):
        """Everything the model learned, as its ``State`` NamedTuple (the live arrays, not
        copies): what model files store and :meth:`from_state` takes back.

        Examples
        --------
        >>> from fastctr import FTRLClassifier
        >>> rows = [{"C1": "a"}, {"C1": "b"}] * 10
        >>> model = FTRLClassifier(bits=18).fit(rows, [1, 0] * 10)
        >>> state = model.state
        >>> state.zn.shape, state.n_rows_seen
        ((262144, 2), 20)
        >>> twin = FTRLClassifier.from_state(model.get_params(), model.hasher_, state)
        >>> twin.predict_one({"C1": "a"}) == model.predict_one({"C1": "a"})
        True
        """
        self._check_fitted()
        return self._live_state()

    def _live_state(self):
        """The ``State`` of the current arrays, fitted or not (what the kernels take)."""
        return self.State(*self._state_values(self))

    @classmethod
    def from_state(cls, params: dict[str, Any], hasher, state) -> OnlineClassifier:
        """A model with parameters ``params`` that has learned ``state``.

        Parameters
        ----------
        params : dict
            Constructor parameters, as ``get_params()`` returns them (lists for tuples,
            as after a JSON round trip, are accepted).
        hasher : FeatureHasher or dict
            The hasher the state was learned with, or its ``get_params()``; it must be the one
            ``params`` build (a check that state and hashing belong together).
        state : ``cls.State`` or mapping of its fields
            As :attr:`state` returns it. The arrays are used as they are, not copied (a
            read-only memmap can predict, not learn).

        Returns
        -------
        model : cls
            Predicts and, with writable arrays, continues learning exactly as the model the
            state came from.

        Raises
        ------
        ValueError
            The hasher does not match ``params``, or an array's dtype or shape does not fit
            the parameters (names the array and what it must be).

        Examples
        --------
        >>> from fastctr import FMClassifier
        >>> rows = [{"C1": "a", "C2": "x"}, {"C1": "b", "C2": "y"}] * 10
        >>> model = FMClassifier(k=4, bits=18).fit(rows, [1, 0] * 10)
        >>> twin = FMClassifier.from_state(model.get_params(), model.hasher_, model.state)
        >>> twin.partial_fit(rows, [1, 0] * 10).state.n_rows_seen
        40
        """
        params = dict(params)  # JSON made lists of the tuples
        params["crosses"] = tuple(tuple(pair) for pair in params["crosses"])
        for name in ("fields", "numeric"):
            if params[name] is not None:
                params[name] = tuple(params[name])
        model = cls(**params)
        if not isinstance(hasher, dict):
            hasher = hasher.get_params()
        # the policies hash nothing (and files written before a policy existed lack it)
        hasher = {k: v for k, v in hasher.items() if k not in POLICY_PARAMS}
        ours = {k: v for k, v in model.hasher_.get_params().items() if k not in POLICY_PARAMS}
        if ours != hasher:
            raise ValueError(f"{cls.__name__}.from_state: the hasher does not match the "
                             "parameters' hashing (fields, bits, hash_seed, ...); pass the "
                             "hasher the state was learned with and the model's own parameters")
        if not isinstance(state, cls.State):
            state = _as_state(cls, state)
        model._check_state(state)
        for name, value in zip(cls.State._fields, state):
            setattr(model, f"{name}_", value)
        model._prepare()
        return model

    def _prepare(self) -> None:
        """Ready what the first predictions call, so that they cost what the next ones do.

        The compiled scorer of ``predict_one`` (dicts, lines) is built; it is also FTRL's
        batch path, so an FTRL model then predicts without numba. A model whose batch path is
        a numba kernel (FM, FFM) would pay for it on its first call: the import of numba
        (~0.5 s), then the dispatcher types the arguments, finds the signature in numba's cache
        and loads its machine code (~10-20 ms). Here the batch path ``predict_proba`` takes is
        called on zero rows with this model's own state arrays and hyperparameters (writable
        or read-only memmaps, float or int values type differently), which loads exactly the
        signatures the real calls will use.
        """
        self._scorer_cache = self._make_scorer()
        rows = HashedRows(np.zeros(1, np.int64), np.empty(0, np.int32), np.empty(0, np.float32),
                          np.empty(0, np.uint16))
        self._margins(self._rows(rows), np.empty(0))

    def _state_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape every state array must have under the current parameters."""
        return {"zn": (1 << self.bits, 2)}

    def _check_state(self, state) -> None:
        name = type(self).__name__
        for field, shape in self._state_shapes().items():
            arr = getattr(state, field)
            if not (isinstance(arr, np.ndarray) and arr.dtype == np.float64
                    and arr.shape == shape and arr.flags.c_contiguous):
                got = (f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray)
                       else type(arr).__name__)
                raise ValueError(f"{name} state {field!r} must be a C-contiguous float64 array "
                                 f"of shape {shape} for these parameters; got {got}")
        n = state.n_rows_seen
        if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 0:
            raise ValueError(f"{name} state 'n_rows_seen' must be an int >= 0; got {n!r}")
        s = state.value_scale
        if not (isinstance(s, Real) and not isinstance(s, bool) and 0 < s < float("inf")):
            raise ValueError(f"{name} state 'value_scale' must be a finite number > 0; "
                             f"got {s!r}")

    def _start(self, rows: HashedRows) -> None:
        """A fresh state before the first rows learned; ``rows`` (the first batch) set
        ``value_scale_`` when the parameter ``value_scale`` is "auto"."""
        if not self.is_fitted or getattr(self, "zn_", None) is None:
            self._validate_params()
            self._allocate()
            self.value_scale_ = (value_scale(rows) if self.value_scale == "auto"
                                 else float(self.value_scale))
            self._scorer_cache = None  # it pointed at the old arrays
            self.n_rows_seen_ = 0

    @property
    def _learn_lock(self) -> threading.Lock:
        """This model's lock: held while it learns (``_start``, the kernels, ``n_rows_seen_``)
        and while a snapshot of its state is copied, so that two threads never learn into,
        or save, a half-updated state. Created on first use; never pickled or copied."""
        lock = self.__dict__.get("_lock")
        if lock is None:  # dict.setdefault is atomic: two first users get the same lock
            lock = self.__dict__.setdefault("_lock", threading.Lock())
        return lock

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_scorer_cache", None)  # a compiled object, rebuilt on demand
        state.pop("_hasher_cache", None)
        state.pop("_lock", None)  # a copy gets its own lock (a Lock cannot be pickled)
        return state

    # -- input conversion -----------------------------------------------------------------
    def _rows(self, X, y=None, sample_weight=None, need_labels: bool = False) -> HashedRows:
        """X as HashedRows (labels/weights attached), with clear errors for bad input."""
        if isinstance(X, HashedRows):
            rows = X
        elif hasattr(X, "tocsr") and hasattr(X, "nnz"):  # any scipy sparse matrix or array
            rows = HashedRows.from_csr(X.tocsr())
        elif isinstance(X, dict):
            raise TypeError("X is a single dict row: use predict_one(row), or pass [row]")
        elif is_array_like(X):
            rows = self._array_rows(X, learning=need_labels)
        elif hasattr(X, "to_dict") or isinstance(X, (list, tuple)) or inspect.isgenerator(X):
            rows = self.hasher_.transform(X)
        else:
            raise TypeError(
                f"X must be HashedRows, a scipy CSR matrix of hashed columns, a list of dict "
                f"rows, a pandas DataFrame or a 2-D numeric array. Got {type(X).__name__}."
            )
        size = 1 << self.bits
        if not entries_are_valid(rows.indices, rows.values, size):  # one pass; details below
            if rows.indices.min() < 0 or rows.indices.max() >= size:
                raise ValueError(
                    f"column indices must lie in [0, 2**bits) = [0, {size}); got "
                    f"[{rows.indices.min()}, {rows.indices.max()}]. Hash with bits={self.bits}."
                )
            raise ValueError("X has NaN or infinite feature values; drop them or impute first")
        if need_labels and y is None and rows.labels is not None:  # a reader's, or by hand
            _check_carried_labels(rows.labels)
        if need_labels and sample_weight is None and rows.weights is not None:
            _check_weights(rows.weights, "HashedRows weights")
        labels = rows.labels if y is None else _labels(y, rows.n_rows)
        if need_labels and labels is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y "
                             "is None: pass labels, or HashedRows that carry labels")
        weights = rows.weights if sample_weight is None else _weights(sample_weight, rows.n_rows)
        return rows.with_targets(labels, weights)

    def _array_rows(self, X, learning: bool) -> HashedRows:
        """A 2-D numeric array's rows hashed as ``{"x0": X[i, 0], ...}`` (see the estimators'
        docstrings); learning from the first one sets ``n_features_in_``, which later
        arrays must match, as scikit-learn expects."""
        arr = as_numeric_array(X)
        if learning and not self.is_fitted:
            self.n_features_in_ = arr.shape[1]
        expected = getattr(self, "n_features_in_", None)
        if expected is not None and arr.shape[1] != expected:
            raise ValueError(f"X has {arr.shape[1]} features, but {type(self).__name__} is "
                             f"expecting {expected} features as input (the columns it learned).")
        return hash_array(arr, self.hasher_)

    # -- learning -------------------------------------------------------------------------
    def partial_fit(self, X, y=None, sample_weight=None, classes=None) -> OnlineClassifier:
        """Learn from one batch of rows, in order (one online pass).

        Parameters
        ----------
        X : HashedRows, scipy sparse of hashed columns, list of dict rows, DataFrame or 2-D array
            A 2-D numeric array (or list of lists, or DataFrame whose column labels are not
            str) is rows of numeric fields: column ``j`` is the field ``"x{j}"``, hashed with
            this model's bits, hash_seed and numeric_transform (NaN is missing). The first
            array learned sets ``n_features_in_``; later arrays must have that many columns.
        y : array-like of {0, 1}, {-1, 1} or bool, optional if X carries labels
        sample_weight : array-like of float in [0, 1e6], optional
            Importance weight of each row: its gradient is scaled by it. Weights outside
            ``[0, fastctr.io.rows.MAX_WEIGHT]`` (NaN, inf) are refused, naming the row; so are
            labels other than 0/1 and such weights carried by HashedRows.
        classes : ignored, accepted for scikit-learn compatibility.
        """
        self.partial_fit_predict(X, y, sample_weight)
        return self

    def partial_fit_predict(self, X, y=None, sample_weight=None) -> np.ndarray:
        """Learn from a batch and return the probability each row got *before* it was learned.

        These are progressive-validation predictions (Vowpal Wabbit's habit): every row is
        scored by a model that has not seen it, so their log loss estimates test loss.
        """
        self._validate_params()
        rows = self._rows(X, y, sample_weight, need_labels=True)
        if rows.weights is None:
            rows = rows.with_targets(weights=np.ones(rows.n_rows, np.float32))
        p = np.empty(rows.n_rows)
        # Calls from several threads learn one after the other: without the lock a second
        # call's _start could allocate a fresh state under the first (its updates lost).
        # Parallel learning within one call is n_jobs (Hogwild).
        with self._learn_lock:
            self._start(rows)
            if self.n_jobs == 1 or rows.n_rows < 2 * self.n_jobs:
                self._learn(rows, p)
            else:
                self._learn_hogwild(rows, p)
            self.n_rows_seen_ += rows.n_rows
            if self._scorer_cache is None:  # once per state: predicting then changes nothing
                self._scorer_cache = self._make_scorer()
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
        with self._learn_lock:  # not while another thread learns or copies the state
            for name in self.State._fields:
                setattr(self, f"{name}_", None)
            self.n_rows_seen_ = 0
        self.__dict__.pop("n_features_in_", None)  # learned again from these rows
        self._validate_params()
        rows = self._rows(X, y, sample_weight, need_labels=True)
        if rows.weights is not None and rows.n_rows and not rows.weights.any():
            raise ValueError("sample_weight is zero for every row: fit would learn nothing")
        for _ in range(self.epochs):
            self.partial_fit(rows)
        return self

    # -- prediction -----------------------------------------------------------------------
    def decision_function(self, X) -> np.ndarray:
        """The margin (log-odds of a click) of each row."""
        self._check_fitted()
        self._validate_params()  # a parameter may have been set since fit
        rows = self._rows(X)
        out = np.empty(rows.n_rows)
        self._margins(rows, out)
        return out

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities of no click and click, shape (n_rows, 2)."""
        return probabilities(np.ascontiguousarray(self.decision_function(X), np.float64))

    def predict(self, X) -> np.ndarray:
        """Predicted class, 1 where the click probability exceeds 0.5."""
        return (self.decision_function(X) > 0).astype(np.int64)

    def predict_one(self, row) -> float:
        """Click probability of one row, hashed and scored in one compiled call.

        ``row`` is a raw dict ``{"C1": "68fd1e64", "I1": 3, ...}``, one raw line (str or
        bytes) holding the fields' values in schema order separated by tabs (a Criteo
        test-set line: no label), a pre-hashed ``(indices, values)`` pair, or an
        ``(indices, values, fields)`` triple (field ids: FM and FFM read them; FFM needs them,
        and FM without them lets every entry interact).
        """
        scorer = self._scorer_cache or self._scorer()
        if isinstance(row, tuple):
            if len(row) in (2, 3):
                return scorer.predict_hashed(*row)
            raise TypeError("a pre-hashed row is an (indices, values) pair or an (indices, "
                            f"values, fields) triple; got {len(row)} items")
        return scorer.predict_one(row)  # a dict or a line; TypeError for anything else

    def _scorer(self):
        """The compiled scorer over the live state, built on first use (and again after a
        parameter or state array is assigned: see ``__setattr__``)."""
        scorer = self._scorer_cache
        if scorer is None:
            self._check_fitted()
            scorer = self._scorer_cache = self._make_scorer()
        return scorer

    @property
    def classes_(self) -> np.ndarray:
        return np.array([0, 1])

    def save(self, path) -> None:
        """Write the model to ``path`` atomically (see :func:`fastctr.load`)."""
        save(self, path)

    def __sklearn_clone__(self):
        return type(self)(**copy.deepcopy(self.get_params()))


def _as_state(cls: type, fields) -> tuple:
    """``cls.State`` from a mapping of its fields, naming any missing or unknown one."""
    names = cls.State._fields
    missing = [name for name in names if name not in fields
               and name not in cls.State._field_defaults]  # e.g. value_scale: older files
    unknown = [name for name in fields if name not in names]
    if missing or unknown:
        raise ValueError(f"{cls.__name__} state has the fields {list(names)}; missing "
                         f"{missing}, unknown {unknown}")
    return cls.State(**fields)


def _frozen(value: Any) -> Any:
    """A hashable, comparable copy of a parameter value (lists of fields, pairs of crosses)."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def _labels(y, n_rows: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        warn_column_vector()
        y = y.ravel()
    if y.ndim != 1 or y.shape[0] != n_rows:
        raise ValueError(f"y must be 1-D with one label per row: {n_rows} rows, y has shape {y.shape}")
    if y.dtype == bool:
        return y.astype(np.float32)
    if y.dtype == object:  # e.g. numbers in a list with None: numbers if they all are
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError):
            pass
    if not np.issubdtype(y.dtype, np.number):
        raise TypeError(f"Unknown label type: labels must be clicks, numbers in {{0, 1}} or "
                        f"{{-1, 1}} or bools; got dtype {y.dtype}")
    bad = ~((y == 0) | (y == 1) | (y == -1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = f"labels must be in {{0, 1}}, {{-1, 1}} or bool; y[{i}] = {y[i]!r}"
        if np.isfinite(y).all() and (y == np.round(y)).all() and np.unique(y).size > 2:
            raise ValueError("Only binary classification is supported. The type of the target "
                             f"is multiclass: {what}")
        raise ValueError(f"Unknown label type: {what}")
    return (y == 1).astype(np.float32)


def _weights(w, n_rows: int) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)  # checked before float32 could overflow to inf
    if w.shape != (n_rows,):
        raise ValueError(f"sample_weight must have one weight per row ({n_rows}); got shape {w.shape}")
    _check_weights(w, "sample_weight")
    return w.astype(np.float32)


def _check_weights(w: np.ndarray, what: str) -> None:
    """Importance weights must be finite, >= 0 and <= MAX_WEIGHT: one weight of 1e39 (inf in
    float32) turns the whole state to NaN. The error names the first bad row."""
    bad = ~((w >= 0) & (w <= MAX_WEIGHT))  # NaN fails both comparisons
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{what}[{i}] = {float(w[i])!r}: importance weights must be finite, "
                         f">= 0 and <= {MAX_WEIGHT:g} (fastctr.io.rows.MAX_WEIGHT); fix or "
                         f"drop row {i}")


def _check_carried_labels(labels: np.ndarray) -> None:
    """Labels carried by HashedRows are clicks already converted: exactly 0 or 1."""
    bad = ~((labels == 0) | (labels == 1))  # NaN included
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"HashedRows labels[{i}] = {float(labels[i])!r}: labels carried by "
                         f"HashedRows must be 0 or 1 (clicks); fix row {i} or pass y")
