# cython: language_level=3
"""MurmurHash3 for Python callers and batch hashing of dict rows into CSR arrays."""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize

from rowspec cimport Spec, make_spec, murmur3_32 as _murmur3_32, hash_dict, unknown_keys_message

cnp.import_array()


def murmur3_32(data, uint32_t seed=0):
    """MurmurHash3 x86_32 of ``data`` (str as UTF-8, or bytes) as an unsigned int.

    Equal to ``mmh3.hash(data, seed, signed=False)``.

    >>> murmur3_32("hello", 0) == 613153351
    True
    """
    cdef Py_ssize_t n
    cdef const char* p
    if isinstance(data, str):
        p = PyUnicode_AsUTF8AndSize(data, &n)
    elif isinstance(data, bytes):
        p = PyBytes_AS_STRING(data)
        n = PyBytes_GET_SIZE(data)
    else:
        raise TypeError(f"murmur3_32 hashes str or bytes, got {type(data).__name__}")
    return _murmur3_32(<const uint8_t*>p, n, seed)


def hash_dict_rows(list rows, tuple spec, tuple keys, bint scalars_only=False):
    """Hash dict rows into (indptr, indices, values, fields) CSR arrays; with
    ``scalars_only`` a value other than str, int, float or None is a TypeError."""
    # A tuple of the rows: a value's __str__ may empty the caller's list while it is walked
    cdef tuple items = tuple(rows)
    cdef Spec s = make_spec(spec)
    cdef Py_ssize_t width = 1 + s.n_fields + s.n_crosses, i, k = 0, n_rows = len(items)
    indptr_a = np.zeros(n_rows + 1, np.int64)
    indices_a = np.empty(n_rows * width, np.int32)
    values_a = np.empty(n_rows * width, np.float32)
    fields_a = np.empty(n_rows * width, np.uint16)
    cdef int64_t[::1] indptr = indptr_a
    cdef int32_t[::1] indices = indices_a
    cdef float[::1] values = values_a
    cdef uint16_t[::1] fields = fields_a
    cdef uint32_t[::1] h = np.empty(s.n_fields, np.uint32)
    cdef float[::1] v = np.empty(s.n_fields, np.float32)
    cdef uint8_t[::1] present = np.empty(s.n_fields, np.uint8)
    cdef dict index = {name: i for i, name in enumerate(keys)}
    for i in range(n_rows):
        row = items[i]
        if type(row) is not dict:
            row = dict(row)
        try:
            k += hash_dict(&s, row, keys, index, &h[0], &v[0], &present[0],
                           &indices[0] + k, &values[0] + k, &fields[0] + k, NULL, 0,
                           scalars_only)
        except ValueError as e:
            raise ValueError(f"row {i}: {e}") from None
        except TypeError as e:
            raise TypeError(f"row {i}: {e}") from None
        indptr[i + 1] = k
    return indptr_a, indices_a[:k].copy(), values_a[:k].copy(), fields_a[:k].copy()


def check_keys(keys, tuple fields):
    """Raise the ValueError of unknown="strict" when a key of ``keys`` (a DataFrame's
    columns, checked once per frame) is not one of ``fields``, worded as for a dict row."""
    cdef list owned = list(keys)
    cdef dict index = dict.fromkeys(fields)
    for key in owned:
        if key not in index:
            raise ValueError(unknown_keys_message(owned, fields, index, "column"))
