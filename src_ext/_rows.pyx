# cython: language_level=3
"""Checks over a batch's entries in one C pass, for every path (learning and prediction),
so that a process that only predicts never loads numba."""
from libc.stdint cimport int32_t, uint32_t


def entries_are_valid(const int32_t[::1] indices, const float[::1] values, Py_ssize_t size):
    """Whether every index lies in [0, size) and every value is finite.

    Branch-free so that it vectorises: a negative index wraps to >= size as uint32, and
    v - v is 0 only for a finite v (NaN for NaN and +-inf). ValueError when the two arrays
    differ in length.

    >>> import numpy as np
    >>> entries_are_valid(np.array([0, 3], np.int32), np.array([1, 2], np.float32), 4)
    True
    >>> entries_are_valid(np.array([-1], np.int32), np.array([1], np.float32), 4)
    False
    """
    cdef Py_ssize_t j, n = indices.shape[0]
    if values.shape[0] != n:
        raise ValueError(f"indices and values differ in length: {n} != {values.shape[0]}")
    if not 0 <= size <= 1 << 31:
        raise ValueError(f"size must be in [0, 2**31]; got {size}")
    cdef const uint32_t* idx = <const uint32_t*>&indices[0] if n else NULL
    cdef const float* val = &values[0] if n else NULL
    cdef uint32_t limit = <uint32_t>size
    cdef int bad = 0
    with nogil:
        for j in range(n):
            bad |= (idx[j] >= limit) | (val[j] - val[j] != 0)
    return not bad
