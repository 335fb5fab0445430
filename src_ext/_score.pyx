# cython: language_level=3
"""Single-row serving: hash a raw dict row and score it in one C call.

The batch path lives in numba (fastctr._kernels); this is the latency path for one request,
where a numba dispatch per call would cost more than the work. A parity test pins the two.
"""
import numpy as np

from libc.math cimport exp, sqrt, fabs
from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t

from rowspec cimport Spec, make_spec, hash_dict


cdef inline double sigmoid(double m) noexcept nogil:
    # Clip the margin so exp never overflows; the probability is 1e-15 away from 0 or 1.
    if m > 35.0:
        m = 35.0
    elif m < -35.0:
        m = -35.0
    return 1.0 / (1.0 + exp(-m))


cdef class RowHasher:
    """Hashes one dict row into reusable buffers with the FeatureHasher's spec."""
    cdef Spec spec
    cdef tuple spec_arrays, keys
    cdef uint32_t[::1] h
    cdef float[::1] v
    cdef uint8_t[::1] present
    cdef int32_t[::1] idx
    cdef float[::1] val
    cdef uint16_t[::1] fld

    def __init__(self, tuple spec_arrays, tuple keys):
        self.spec_arrays = spec_arrays  # keeps the arrays alive behind the Spec pointers
        self.keys = keys
        self.spec = make_spec(spec_arrays)
        n = max(self.spec.n_fields, 1)
        width = 1 + self.spec.n_fields + self.spec.n_crosses
        self.h = np.empty(n, np.uint32)
        self.v = np.empty(n, np.float32)
        self.present = np.empty(n, np.uint8)
        self.idx = np.empty(width, np.int32)
        self.val = np.empty(width, np.float32)
        self.fld = np.empty(width, np.uint16)

    cdef Py_ssize_t hash(self, dict row) except -1:
        return hash_dict(&self.spec, row, self.keys, &self.h[0], &self.v[0], &self.present[0],
                         &self.idx[0], &self.val[0], &self.fld[0])

    def hash_row(self, dict row):
        """(indices, values, fields) of one row, as new arrays."""
        n = self.hash(row)
        return (np.asarray(self.idx)[:n].copy(), np.asarray(self.val)[:n].copy(),
                np.asarray(self.fld)[:n].copy())


cdef class FTRLScorer:
    """Scores rows against live FTRL state ``zn`` (z and n interleaved per bucket).

    Weights are computed on the fly from z and n exactly as FTRL-Proximal's prediction step,
    so the scorer always sees the model's current state without a copy.
    """
    cdef RowHasher hasher
    cdef const double[:, ::1] zn
    cdef double alpha, beta, l1, l2

    def __init__(self, RowHasher hasher, const double[:, ::1] zn, double alpha, double beta,
                 double l1, double l2):
        self.hasher = hasher
        self.zn = zn
        self.alpha = alpha
        self.beta = beta
        self.l1 = l1
        self.l2 = l2

    cdef double margin(self, const int32_t* idx, const float* val, Py_ssize_t n) noexcept nogil:
        cdef double m = 0.0, z, w
        cdef Py_ssize_t j
        for j in range(n):
            z = self.zn[idx[j], 0]
            if fabs(z) > self.l1:
                w = -(z - (self.l1 if z > 0 else -self.l1)) / (
                    (self.beta + sqrt(self.zn[idx[j], 1])) / self.alpha + self.l2)
                m += w * val[j]
        return m

    def predict_one(self, dict row):
        """Probability of a click for one raw dict row."""
        cdef Py_ssize_t n = self.hasher.hash(row)
        cdef double m
        with nogil:
            m = self.margin(&self.hasher.idx[0], &self.hasher.val[0], n)
        return sigmoid(m)

    def predict_hashed(self, const int32_t[::1] indices, const float[::1] values):
        """Probability of a click for one pre-hashed row."""
        cdef Py_ssize_t n = indices.shape[0]
        if values.shape[0] != n:
            raise ValueError(f"indices and values differ in length: {n} != {values.shape[0]}")
        if n == 0:
            return 0.5
        cdef double m
        with nogil:
            m = self.margin(&indices[0], &values[0], n)
        return sigmoid(m)
