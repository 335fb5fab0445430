"""scikit-learn compatibility of the estimators, without importing scikit-learn.

scikit-learn stays an optional dependency: its tag classes are imported inside
``__sklearn_tags__``, which only scikit-learn itself calls. Also here: the 2-D numeric array
input (column ``j`` is the numeric field ``x{j}``), which lets scikit-learn's tools and
``check_estimator`` feed the estimators plain arrays.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from fastctr.io.hashing import FeatureHasher
from fastctr.io.rows import HashedRows


def array_fields(n_columns: int) -> tuple[str, ...]:
    """The field names of a 2-D array's columns: ``("x0", "x1", ...)``."""
    return tuple(f"x{j}" for j in range(n_columns))


def is_array_like(X: Any) -> bool:
    """Whether X is a 2-D numeric table in array form (not dict rows): a numpy array, an
    object with ``__array__``, a list of lists of numbers, or a DataFrame whose column labels
    are not all str (they cannot name fields: its values are the array)."""
    if hasattr(X, "columns"):
        return not all(isinstance(c, str) for c in X.columns)
    if isinstance(X, np.ndarray) or hasattr(X, "__array__"):
        return True
    if isinstance(X, (list, tuple)) and X:
        first = X[0]
        return isinstance(first, (list, tuple, np.ndarray))
    return False


def as_numeric_array(X: Any) -> np.ndarray:
    """X as a float64 2-D array with scikit-learn's errors for what no model can learn from:
    complex values, infinities, another number of dimensions, no rows or no columns (NaN is a
    missing value, as in dict rows and DataFrames)."""
    arr = np.asarray(X)
    if np.iscomplexobj(arr):
        raise ValueError("Complex data not supported: X must hold real numbers.")
    if arr.ndim != 2:
        raise ValueError(
            f"Expected a 2-D array of numbers, got {arr.ndim}-D (shape {arr.shape}). Reshape "
            "your data with array.reshape(-1, 1) if it has a single column or "
            "array.reshape(1, -1) if it holds a single row.")
    if arr.dtype != np.float64:
        arr = arr.astype(np.float64)  # numpy's TypeError/ValueError names a non-number
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        what = "sample" if arr.shape[0] == 0 else "feature"
        raise ValueError(f"Found array with 0 {what}(s) (shape={arr.shape}) while a minimum of "
                         "1 is required.")
    if np.isinf(arr).any():
        raise ValueError("Input X contains infinity: a value of a numeric field must be finite "
                         "(NaN marks a missing one)")
    return arr


def hash_array(arr: np.ndarray, like: FeatureHasher) -> HashedRows:
    """Hash a 2-D float array as dict rows ``{"x0": X[i, 0], ...}``: every column a numeric
    field, with the hashing parameters (bits, hash_seed, numeric_transform) of ``like``."""
    names = array_fields(arr.shape[1])
    hasher = FeatureHasher(fields=names, numeric=names, bits=like.bits,
                           hash_seed=like.hash_seed, numeric_transform=like.numeric_transform)
    # the rows are built by map/zip in C; hashing them is the compiled dict-row path
    return hasher.transform(list(map(dict, map(zip, [names] * arr.shape[0], arr.tolist()))))


def sklearn_class(module: str, name: str) -> type | None:
    """scikit-learn's class ``module.name`` if scikit-learn is already imported (never
    imports it): errors and warnings are raised as its classes too, so that code catching
    scikit-learn's exceptions catches ours."""
    import sys

    mod = sys.modules.get(f"sklearn.{module}")
    return getattr(mod, name, None) if mod is not None else None


def not_fitted_error(base: type, message: str) -> Exception:
    """``base(message)`` (fastctr's NotFittedError), also an instance of scikit-learn's
    NotFittedError when scikit-learn is in use."""
    theirs = sklearn_class("exceptions", "NotFittedError")
    if theirs is None:
        return base(message)
    both = _BOTH.get(theirs)
    if both is None:
        both = _BOTH[theirs] = type(base.__name__, (base, theirs), {"__module__": base.__module__})
    return both(message)


_BOTH: dict[type, type] = {}


def warn_column_vector() -> None:
    """scikit-learn's warning for a column-vector y (its DataConversionWarning when in use)."""
    import warnings

    category = sklearn_class("exceptions", "DataConversionWarning") or UserWarning
    warnings.warn("A column-vector y was passed when a 1d array was expected: it is used as "
                  "its single column (y.ravel()).", category, stacklevel=4)


class ClassifierCompat:
    """What scikit-learn's tools (clone, cross_val_score, GridSearchCV, Pipeline,
    check_estimator) need of a binary classifier beyond get_params/set_params/fit/predict."""

    _estimator_type = "classifier"
    #: whether scipy sparse input (hashed columns, no field ids) can be learned
    _accepts_sparse = True

    def __sklearn_tags__(self):
        # imported here: scikit-learn is optional, and only scikit-learn calls this
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        n_jobs = getattr(self, "n_jobs", 1)
        hogwild = isinstance(n_jobs, int) and n_jobs > 1
        unseeded = "random_state" in self.get_params() and self.random_state is None
        return Tags(
            estimator_type="classifier",
            target_tags=TargetTags(required=True),
            classifier_tags=ClassifierTags(multi_class=False),
            # dict rows and DataFrames (categorical, string values), scipy CSR of hashed
            # columns, 2-D numeric arrays; NaN is a missing value
            input_tags=InputTags(two_d_array=True, sparse=self._accepts_sparse, dict=True,
                                 categorical=True, allow_nan=True),
            requires_fit=True,
            non_deterministic=hogwild or unseeded,
        )

    def __sklearn_is_fitted__(self) -> bool:
        return self.is_fitted

    def score(self, X, y, sample_weight=None) -> float:
        """Mean accuracy of :meth:`predict` on ``X`` against the clicks ``y`` (as
        scikit-learn's ClassifierMixin), weighted by ``sample_weight``."""
        rows = self._rows(X, y, sample_weight, need_labels=True)
        hit = self.predict(rows) == rows.labels
        return float(np.average(hit, weights=rows.weights))
