"""HashedRows: the one type that crosses between readers, hashers and kernels."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The largest importance weight a row may carry (finite, >= 0, at most this). A row of weight
#: w takes one gradient step scaled by w; far beyond this one row overwrites everything learned
#: and, at float32's overflow (1e39 is inf), turns the state to NaN. The VW reader and the
#: estimators refuse larger weights, naming the line or row.
MAX_WEIGHT = 1e6


@dataclass(frozen=True)
class HashedRows:
    """A batch of hashed sparse rows in CSR layout, with optional labels and weights.

    Parameters
    ----------
    indptr : int64 array of length n_rows + 1
        Row ``r`` holds entries ``indptr[r]:indptr[r + 1]``.
    indices : int32 array of length nnz
        Hashed bucket of each entry, in ``[0, 2**bits)``.
    values : float32 array of length nnz
        Feature value of each entry.
    fields : uint16 array of length nnz, optional
        Field id of each entry (0 is the bias), used by field-aware models.
    labels : float32 array of length n_rows, optional
        Click labels in {0, 1}.
    weights : float32 array of length n_rows, optional
        Importance weight of each row: finite, in ``[0, MAX_WEIGHT]`` (1e6) to be learned.

    Examples
    --------
    >>> import numpy as np
    >>> rows = HashedRows(np.array([0, 2, 3]), np.array([5, 9, 5]), np.ones(3))
    >>> rows.n_rows, rows.nnz
    (2, 3)
    >>> rows[1:].indices
    array([5], dtype=int32)
    """

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    fields: np.ndarray | None = None
    labels: np.ndarray | None = None
    weights: np.ndarray | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise dtypes once, here
        set_(self, "indptr", np.ascontiguousarray(self.indptr, np.int64))
        set_(self, "indices", as_indices(self.indices))
        set_(self, "values", np.ascontiguousarray(self.values, np.float32))
        if self.fields is not None:
            set_(self, "fields", np.ascontiguousarray(self.fields, np.uint16))
        if self.labels is not None:
            set_(self, "labels", np.ascontiguousarray(self.labels, np.float32))
        if self.weights is not None:
            set_(self, "weights", np.ascontiguousarray(self.weights, np.float32))
        self._check()

    def _check(self) -> None:
        n, nnz = self.indptr.shape[0] - 1, self.indices.shape[0]
        if self.indptr.ndim != 1 or n < 0:
            raise ValueError("HashedRows.indptr must be a 1-D array of length n_rows + 1")
        if self.values.shape[0] != nnz:
            raise ValueError(f"HashedRows: {nnz} indices but {self.values.shape[0]} values")
        if self.fields is not None and self.fields.shape[0] != nnz:
            raise ValueError(f"HashedRows: {nnz} indices but {self.fields.shape[0]} fields")
        if self.indptr[0] != 0 or self.indptr[-1] != nnz or np.any(np.diff(self.indptr) < 0):
            raise ValueError("HashedRows.indptr must rise from 0 to nnz")
        for name in ("labels", "weights"):
            arr = getattr(self, name)
            if arr is not None and arr.shape[0] != n:
                raise ValueError(f"HashedRows: {n} rows but {arr.shape[0]} {name}")

    @property
    def n_rows(self) -> int:
        return self.indptr.shape[0] - 1

    @property
    def nnz(self) -> int:
        return self.indices.shape[0]

    def __len__(self) -> int:
        return self.n_rows

    def __getitem__(self, rows: slice) -> HashedRows:
        """Rows ``start:stop`` (step 1) as a new HashedRows sharing memory where it can."""
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError("HashedRows supports contiguous slices only, e.g. rows[100:200]")
        start, stop, _ = rows.indices(self.n_rows)
        stop = max(start, stop)
        a, b = self.indptr[start], self.indptr[stop]
        cut = lambda arr: None if arr is None else arr[start:stop]  # noqa: E731
        return HashedRows(
            self.indptr[start : stop + 1] - a,
            self.indices[a:b],
            self.values[a:b],
            None if self.fields is None else self.fields[a:b],
            cut(self.labels),
            cut(self.weights),
        )

    @classmethod
    def from_csr(cls, X, labels=None, weights=None) -> HashedRows:
        """Wrap a scipy CSR matrix whose column indices are already hashed buckets."""
        X = X.tocsr()
        return cls(X.indptr, X.indices, X.data, None, labels, weights)

    def to_csr(self, n_features: int):
        """The rows as a scipy CSR matrix of shape (n_rows, n_features)."""
        from scipy.sparse import csr_matrix

        return csr_matrix((self.values, self.indices, self.indptr), shape=(self.n_rows, n_features))

    def with_targets(self, labels=None, weights=None) -> HashedRows:
        """The same rows with labels and/or weights replaced."""
        return HashedRows(
            self.indptr,
            self.indices,
            self.values,
            self.fields,
            self.labels if labels is None else labels,
            self.weights if weights is None else weights,
        )


_INT32 = np.iinfo(np.int32)


def as_indices(indices) -> np.ndarray:
    """``indices`` as a contiguous int32 array, exactly: integers only (a float index is a
    TypeError, never truncated) and every value representable (an int64 index of 2**32 + 5
    is a ValueError, never wrapped to 5). The buckets' range is the model's to check."""
    arr = np.asarray(indices)
    if arr.dtype == np.int32:
        return np.ascontiguousarray(arr)
    if arr.size == 0:
        return np.ascontiguousarray(arr, np.int32)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"indices must be integers (hashed buckets); got dtype {arr.dtype}")
    low, high = int(arr.min()), int(arr.max())
    if low < _INT32.min or high > _INT32.max:
        raise ValueError(f"indices must fit in int32 (buckets are < 2**30); got "
                         f"{low if low < _INT32.min else high}")
    return np.ascontiguousarray(arr, np.int32)
