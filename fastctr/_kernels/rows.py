"""Rows as the kernels read them, and input checks over a batch's entries in one pass."""
from typing import NamedTuple

import numpy as np
from numba import njit


class Rows(NamedTuple):
    """A CSR batch passed whole to a kernel: ``rows.indices[rows.indptr[r]:rows.indptr[r + 1]]``
    are row r's buckets. Every field is always an array, so each kernel compiles once:
    ``fields`` (uint16, one per entry) is empty for a model that reads none, and ``labels``
    and ``weights`` (float32, one per row) are empty for prediction."""

    indptr: np.ndarray  # int64, n_rows + 1
    indices: np.ndarray  # int32, nnz
    values: np.ndarray  # float32, nnz
    fields: np.ndarray  # uint16, nnz or 0
    labels: np.ndarray  # float32, n_rows or 0
    weights: np.ndarray  # float32, n_rows or 0


# Kernels are called from Python as ``kernel_splat(*rows, *state, *hyper, out)``: numba types a
# flat argument list in ~2 us, NamedTuples of arrays in ~5-10 us more per call (measured), and
# the ``*_splat`` entry rebuilds the tuples inside (free) by the field counts below.
ROW_FIELDS = len(Rows._fields)

NO_FIELDS = np.empty(0, np.uint16)
NO_TARGETS = np.empty(0, np.float32)


@njit(cache=True)
def longest_row(indptr):
    """The most entries of any row (the size of a kernel's per-row buffers)."""
    longest = 0
    for r in range(indptr.shape[0] - 1):
        longest = max(longest, indptr[r + 1] - indptr[r])
    return longest


@njit(cache=True, nogil=True)
def entries_are_valid(indices, values, size):
    """Whether every index lies in [0, size) and every value is finite.

    Branch-free so that it vectorises: a negative index wraps to >= size as uint32, and
    v - v is 0 only for a finite v (NaN for NaN and +-inf).
    """
    bad = False
    limit = np.uint32(size)
    for j in range(indices.shape[0]):
        bad |= (np.uint32(indices[j]) >= limit) | (values[j] - values[j] != 0)
    return not bad
