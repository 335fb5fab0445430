# cython: language_level=3
"""Single-row serving: hash a raw row (a dict, or one tab-separated line) and score it in one C
call.

Single-row calls keep the GIL: the dict access needs it anyway, and releasing and taking it
back would cost about as much as the scoring itself (~0.1 us). Batch calls release it.

The batch path lives in numba (fastctr._kernels); this is the latency path for one request,
where a numba dispatch per call would cost more than the work. A parity test pins the two.
"""
import numpy as np

cimport cython
from libc.math cimport copysign, exp, fabs, sqrt
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

cimport numpy as cnp

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize

from rowspec cimport (Spec, make_spec, hash_dict, hash_fields, emit_row, prefetch,
                      LINE_TOO_MANY_FIELDS)

cnp.import_array()


# Constants the numba kernels share (fastctr._kernels.ftrl, .fm, .scorer); a test compares the
# Python names below with theirs.
cdef double _MARGIN_CLIP = 35.0  # |margin| beyond this changes p by < 1e-15; keeps exp finite
cdef uint64_t _GOLDEN = 0x9E3779B97F4A7C15  # splitmix64 (fastctr._kernels.fm.init_value)
cdef uint64_t _MIX1 = 0xBF58476D1CE4E5B9
cdef uint64_t _MIX2 = 0x94D049BB133111EB
cdef double INIT_SCALE_PER_STD = sqrt(3.0)  # uniform on [-s, s) has standard deviation s/sqrt(3)
cdef uint32_t _FIBONACCI = 0x9E3779B1u  # the sparse table's bucket hash (table_slots)
cdef uint32_t EMPTY = 0xFFFFFFFFu  # an empty slot of the sparse table
MARGIN_CLIP = _MARGIN_CLIP
SPLITMIX64 = (_GOLDEN, _MIX1, _MIX2)
INIT_SCALE = INIT_SCALE_PER_STD
TABLE_HASH = _FIBONACCI
TABLE_EMPTY = EMPTY


cdef inline double sigmoid(double m) noexcept nogil:
    # Clip the margin so exp never overflows; the probability is 1e-15 away from 0 or 1.
    if m > _MARGIN_CLIP:
        m = _MARGIN_CLIP
    elif m < -_MARGIN_CLIP:
        m = -_MARGIN_CLIP
    return 1.0 / (1.0 + exp(-m))


cdef inline void _store(double* out, Py_ssize_t r, double m, bint proba) noexcept nogil:
    """Row r's result of a batch call: its margin at ``out[r]``, or with ``proba`` its
    probabilities of no click and click at ``out[2r]``, ``out[2r + 1]``."""
    cdef double p
    if proba:
        p = sigmoid(m)
        out[2 * r] = 1.0 - p
        out[2 * r + 1] = p
    else:
        out[r] = m


def probabilities(const double[::1] margins):
    """Probabilities of no click and click, shape (n, 2), of ``n`` margins: the sigmoid of
    ``predict_one`` (libm's exp), so that batch and single-row predictions agree bit for bit
    (numpy's exp, vectorised, can differ from libm's in the last bit)."""
    cdef Py_ssize_t r, n = margins.shape[0]
    out = np.empty((n, 2), np.float64)
    cdef double[:, ::1] o = out
    if n:
        with nogil:
            for r in range(n):
                _store(&o[0, 0], r, margins[r], True)
    return out


cdef class RowHasher:
    """Hashes one raw row into reusable buffers with the FeatureHasher's spec."""
    cdef Spec spec
    cdef tuple spec_arrays, keys
    cdef dict index
    cdef uint32_t[::1] h
    cdef float[::1] v
    cdef uint8_t[::1] present
    cdef int32_t[::1] idx
    cdef float[::1] val
    cdef uint16_t[::1] fld
    cdef int32_t[::1] columns  # a line's column i is field i
    cdef object idx_array, val_array, fld_array  # the arrays behind idx, val and fld
    cdef const char* table  # the scorer's rows by bucket, prefetched while hashing (or NULL)
    cdef Py_ssize_t stride

    def __init__(self, tuple spec_arrays, tuple keys):
        self.spec_arrays = spec_arrays  # keeps the arrays alive behind the Spec pointers
        self.keys = keys
        self.index = {name: i for i, name in enumerate(keys)}
        self.spec = make_spec(spec_arrays)
        n = max(self.spec.n_fields, 1)
        width = 1 + self.spec.n_fields + self.spec.n_crosses
        self.h = np.empty(n, np.uint32)
        self.v = np.empty(n, np.float32)
        self.present = np.empty(n, np.uint8)
        self.idx = self.idx_array = np.empty(width, np.int32)
        self.val = self.val_array = np.empty(width, np.float32)
        self.fld = self.fld_array = np.empty(width, np.uint16)
        self.columns = np.arange(n, dtype=np.int32)

    cdef void prefetch_rows(self, const void* table, Py_ssize_t stride) noexcept:
        """Have :meth:`hash` prefetch ``table + bucket * stride`` for each field it hashes:
        a scorer's first loads then overlap the hashing instead of following it."""
        self.table = <const char*>table
        self.stride = stride

    cdef Py_ssize_t hash(self, object row) except -1:
        """Hash a raw row into idx, val and fld; return its length.

        ``row`` is a dict {field name: value} (see rowspec.hash_dict) or one line, str or
        bytes, holding the fields' values in schema order separated by tabs: a Criteo
        test-set line (no label). An empty value is missing, trailing fields may be left out,
        and a final newline is ignored.
        """
        if isinstance(row, dict):
            return self._finite(hash_dict(&self.spec, row, self.keys, self.index, &self.h[0],
                                          &self.v[0], &self.present[0], &self.idx[0],
                                          &self.val[0], &self.fld[0], self.table, self.stride))
        cdef const char* p
        cdef Py_ssize_t n, start = 0, stop, col
        cdef float label
        if isinstance(row, bytes):
            p = PyBytes_AS_STRING(row)
            n = PyBytes_GET_SIZE(row)
        elif isinstance(row, str):
            p = PyUnicode_AsUTF8AndSize(row, &n)
        else:
            raise TypeError("a raw row is a dict {field: value} or one tab-separated line "
                            f"(str or bytes); got {type(row).__name__}")
        if n > 0 and p[n - 1] == c'\n':
            n -= 1
            if n > 0 and p[n - 1] == c'\r':
                n -= 1
        memset(&self.present[0], 0, self.spec.n_fields)
        cdef int err = hash_fields(&self.spec, <const uint8_t*>p, &start, n, &self.columns[0],
                                   self.spec.n_fields, c'\t', &self.h[0], &self.v[0],
                                   &self.present[0], &label, &col, &stop, self.table,
                                   self.stride)
        if err:
            raise ValueError(self._line_error(err, col, (<bytes>p[start:stop]).decode(
                "utf-8", "replace")))
        return self._finite(emit_row(&self.spec, &self.h[0], &self.v[0], &self.present[0],
                                     &self.idx[0], &self.val[0], &self.fld[0]))

    cdef Py_ssize_t _finite(self, Py_ssize_t n) except -1:
        """``n``, once the row's values are checked finite: a numeric value of inf or 1e39
        (inf as float32) under numeric_transform "value" or "log1p", or a cross overflowing,
        is refused as batch prediction refuses it, not scored as NaN."""
        cdef Py_ssize_t j
        for j in range(n):
            if not self.val[j] - self.val[j] == 0.0:  # NaN or infinite
                name = self.keys[self.fld[j] - 1] if 0 < self.fld[j] <= len(self.keys) else (
                    f"cross #{self.fld[j] - len(self.keys)}")
                raise ValueError(f"X has NaN or infinite feature values: field {name!r} "
                                 f"gives {self.val[j]} (as float32); drop or clip it first")
        return n

    def _line_error(self, int err, Py_ssize_t col, str token):
        n = len(self.keys)
        if err == LINE_TOO_MANY_FIELDS:
            return (f"a line row has more than {n} tab-separated values, one per field "
                    f"({self.keys[0]} .. {self.keys[n - 1]}); leave out the label and any other "
                    "column that is not a field")
        return (f"line row column {col + 1}: field {self.keys[col]!r} is numeric but got "
                f"{token!r}; write a number or leave it empty")

    def hash_row(self, row):
        """(indices, values, fields) of one raw row, as new arrays."""
        n = self.hash(row)
        return self.idx_array[:n].copy(), self.val_array[:n].copy(), self.fld_array[:n].copy()

    def hash_row_bytes(self, row):
        """(indices, values, fields) of one raw row as bytes in the machine's order (int32,
        float32, uint16): what an impression keeps, without an array between."""
        cdef Py_ssize_t n = self.hash(row)
        if n > self.idx.shape[0]:  # (hash writes at most the buffers' width)
            raise AssertionError(f"a row of {n} entries in buffers of {self.idx.shape[0]}")
        return (PyBytes_FromStringAndSize(<const char*>&self.idx[0], n * 4),
                PyBytes_FromStringAndSize(<const char*>&self.val[0], n * 4),
                PyBytes_FromStringAndSize(<const char*>&self.fld[0], n * 2))


cdef inline cnp.ndarray _c_array(object a, int typenum):
    """``a`` itself when it is already a contiguous 1-D array of the type (no copy, no
    buffer acquisition: the latency path), else a converted copy."""
    if (type(a) is np.ndarray and cnp.PyArray_TYPE(a) == typenum and cnp.PyArray_NDIM(a) == 1
            and cnp.PyArray_IS_C_CONTIGUOUS(a)):
        return a
    return np.ascontiguousarray(a, dtype=cnp.PyArray_DescrFromType(typenum)).reshape(-1)


cdef inline cnp.ndarray _c_indices(object a):
    """_c_array for bucket indices, exactly (as fastctr.io.rows.as_indices): integers only,
    every value representable in int32: an index of 2**32 + 5 is refused, not wrapped to 5,
    and 5.7 is refused, not truncated."""
    if (type(a) is np.ndarray and cnp.PyArray_TYPE(a) == cnp.NPY_INT32
            and cnp.PyArray_NDIM(a) == 1 and cnp.PyArray_IS_C_CONTIGUOUS(a)):
        return a
    arr = np.asarray(a)
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"indices must be integers (hashed buckets); got dtype {arr.dtype}")
    if arr.size and (arr.min() < -2**31 or arr.max() >= 2**31):
        raise ValueError(f"indices must fit in int32 (buckets are < 2**30); got "
                         f"{arr.min() if arr.min() < -2**31 else arr.max()}")
    return np.ascontiguousarray(arr, np.int32).reshape(-1)


# ---------------------------------------------------------------------------------------------
# Scorers over a live model's state (FTRLClassifier, FMClassifier, FFMClassifier). Same math and
# summation order as the numba kernels in fastctr/_kernels/{ftrl,fm,ffm}.py, so the two agree to
# ~1e-15 (a parity test pins them). Each reads the estimator's state NamedTuple and hyperparameter
# NamedTuple once, at construction; the estimator drops its scorer whenever either changes.

cdef inline double _ftrl_weight(const double[:, ::1] zn, Py_ssize_t i, double alpha, double beta,
                                double l1, double l2) noexcept nogil:
    """FTRL-Proximal's weight of bucket i (fastctr._kernels.ftrl.weight), computed without a
    branch: whether |z| <= l1 is as good as random across a row's buckets, and a
    mispredicted branch costs more than the division it would skip. (A weight cut to 0 is
    -0.0 or 0.0; either adds nothing to a margin.)"""
    cdef double z = zn[i, 0]
    cdef double w = -alpha * (z - copysign(l1, z)) / (beta + zn[i, 1] + alpha * l2)
    return w * <double>(fabs(z) > l1)


cdef inline double _init_value(uint64_t seed, uint64_t key, double scale) noexcept nogil:
    """fastctr._kernels.fm.init_value: splitmix64(seed + key * golden) -> uniform [-scale, scale)."""
    cdef uint64_t x = seed + key * _GOLDEN
    x = (x ^ (x >> 30)) * _MIX1
    x = (x ^ (x >> 27)) * _MIX2
    x = x ^ (x >> 31)
    cdef double u = <double>(x >> 11) * (1.0 / 9007199254740992.0)
    return scale * (2.0 * u - 1.0)


cdef class _LiveScorer:
    """What the three live-state scorers share: the row hasher, the FTRL linear part, and
    predict_one / predict_hashed around a subclass's ``margin``.

    ``state`` has a ``zn`` field and ``hyper`` ``alpha``, ``beta``, ``l1``, ``l2`` (the
    models' State and hyperparameter NamedTuples).
    """
    cdef RowHasher hasher
    cdef const double[:, ::1] zn
    cdef double alpha, beta, l1, l2
    cdef bint fields_required  # predict_hashed needs field ids
    cdef Py_ssize_t n_fields  # field ids must be < n_fields; 0: any

    def __init__(self, RowHasher hasher, state, hyper):
        self.hasher = hasher
        self.zn = state.zn
        self.alpha, self.beta, self.l1, self.l2 = hyper.alpha, hyper.beta, hyper.l1, hyper.l2

    @cython.final
    cdef inline double linear(self, const int32_t* idx, const float* val,
                              Py_ssize_t n) noexcept nogil:
        cdef double m = 0.0
        cdef Py_ssize_t j
        for j in range(n):
            m += _ftrl_weight(self.zn, idx[j], self.alpha, self.beta, self.l1, self.l2) * val[j]
        return m

    cdef double margin(self, const int32_t* idx, const float* val, const uint16_t* fld,
                       Py_ssize_t n) noexcept nogil:
        """The row's margin; ``fld`` is NULL for a pre-hashed row given without field ids."""
        return self.linear(idx, val, n)

    def predict_one(self, row):
        """Probability of a click for one raw row (see RowHasher.hash)."""
        cdef Py_ssize_t n = self.hasher.hash(row)
        return sigmoid(self.margin(&self.hasher.idx[0], &self.hasher.val[0], &self.hasher.fld[0],
                                   n))

    def predict_hashed(self, indices, values, fields=None):
        """Probability of a click for one pre-hashed row (int32 indices, float32 values,
        uint16 field ids: read by FM and FFM, required by FFM; without them every FM entry
        interacts)."""
        cdef cnp.ndarray idx = _c_indices(indices)
        cdef cnp.ndarray val = _c_array(values, cnp.NPY_FLOAT32)
        cdef const float* pv = <const float*>cnp.PyArray_DATA(val)
        cdef cnp.ndarray fl
        cdef Py_ssize_t n = cnp.PyArray_SIZE(idx), j
        cdef const int32_t* pi = <const int32_t*>cnp.PyArray_DATA(idx)
        cdef const uint16_t* pf = NULL
        if cnp.PyArray_SIZE(val) != n:
            raise ValueError(
                f"indices and values differ in length: {n} != {cnp.PyArray_SIZE(val)}")
        if fields is not None:
            fl = _c_array(fields, cnp.NPY_UINT16)
            if cnp.PyArray_SIZE(fl) != n:
                raise ValueError(f"indices and fields differ in length: {n} != "
                                 f"{cnp.PyArray_SIZE(fl)}")
            pf = <const uint16_t*>cnp.PyArray_DATA(fl)
        elif self.fields_required:
            raise ValueError("FFMClassifier.predict_one needs field ids: pass (indices, values, "
                             "fields)")
        for j in range(n):
            if pi[j] < 0 or pi[j] >= self.zn.shape[0]:
                raise ValueError(f"index {pi[j]} out of range [0, {self.zn.shape[0]})")
            if self.n_fields and pf[j] >= self.n_fields:
                raise ValueError(f"field id {pf[j]} out of range [0, {self.n_fields})")
            if not pv[j] - pv[j] == 0.0:  # as batch prediction refuses it
                raise ValueError(f"X has NaN or infinite feature values: value {pv[j]} at "
                                 f"entry {j}; drop or clip it first")
        return sigmoid(self.margin(pi, pv, pf, n))


cdef class FTRLScorer(_LiveScorer):
    """Scores rows against live FTRL state ``zn`` (z and n interleaved per bucket).

    Weights are computed on the fly from z and n exactly as FTRL-Proximal's prediction step,
    so the scorer always sees the model's current state without a copy.
    """

    def __init__(self, RowHasher hasher, state, hyper):
        super().__init__(hasher, state, hyper)
        hasher.prefetch_rows(&self.zn[0, 0], sizeof(double) * 2)

    def score(self, const int64_t[::1] indptr, const int32_t[::1] indices,
              const float[::1] values, double[::1] out, Py_ssize_t start, Py_ssize_t stop,
              bint proba):
        """Rows ``start:stop`` of a CSR batch into ``out``, as :meth:`DenseScorer.score`:
        margins at ``out[r]``, or with ``proba`` probabilities at ``out[2r]``, ``out[2r + 1]``.

        The batch prediction of FTRLClassifier: the weights and summation of predict_one, so
        the two agree exactly, and no numba in a process that only predicts. The GIL is
        released (threads may score, and learn, at once); ValueError on an index outside
        the state, before anything is written.
        """
        _check_batch(indptr, indices.shape[0], values.shape[0], out.shape[0], start, stop,
                     2 if proba else 1)
        cdef Py_ssize_t r, j, a, b, ahead
        cdef uint32_t size = <uint32_t>self.zn.shape[0]
        cdef const int32_t* idx = &indices[0] if indices.shape[0] else NULL
        cdef const float* val = &values[0] if values.shape[0] else NULL
        cdef const char* zn = <const char*>&self.zn[0, 0]
        cdef double m
        with nogil:
            for j in range(indptr[start], indptr[stop]):
                if <uint32_t>idx[j] >= size:  # a negative index wraps to >= size
                    with gil:
                        raise ValueError(f"row indices must lie in [0, {size}): entry {j} is "
                                         f"{idx[j]}")
            for r in range(start, stop):
                ahead = r + AHEAD  # start loading the state rows of a row a few rows on
                if ahead < stop:
                    for j in range(indptr[ahead], indptr[ahead + 1]):
                        prefetch(zn + <Py_ssize_t>idx[j] * 2 * sizeof(double))
                a, b = indptr[r], indptr[r + 1]
                m = self.linear(idx + a, val + a, b - a)
                _store(&out[0], r, m, proba)


cdef int _check_batch(const int64_t[::1] indptr, Py_ssize_t n_indices, Py_ssize_t n_values,
                      Py_ssize_t n_out, Py_ssize_t start, Py_ssize_t stop,
                      Py_ssize_t per_row) except -1:
    """Check a batch call's bounds before any read (the loops run unchecked): rows
    ``start:stop`` exist, their entries lie inside ``indices`` and ``values``, and ``out``
    holds ``per_row`` numbers per row."""
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, r
    if not 0 <= start <= stop <= n_rows:
        raise ValueError(f"rows {start}:{stop} are not within the batch's {max(n_rows, 0)}")
    if n_values != n_indices:
        raise ValueError(f"indices and values differ in length: {n_indices} != {n_values}")
    if n_out < per_row * stop:
        raise ValueError(f"out holds {n_out} numbers; rows up to {stop} need {per_row * stop}")
    for r in range(start, stop):
        if not 0 <= indptr[r] <= indptr[r + 1] <= n_indices:
            raise ValueError(f"indptr[{r}:{r + 2}] = {indptr[r]}, {indptr[r + 1]} does not "
                             f"lie in [0, {n_indices}] in order")
    return 0


cdef class FMScorer(_LiveScorer):
    """Scores rows against live FM state: FTRL ``zn`` and latent ``vg`` (V | G per bucket).

    Untouched buckets (G == 0) score with their seeded initial vectors, exactly as the batch
    kernel does.
    """
    cdef const double[:, ::1] vg
    cdef double scale
    cdef uint64_t seed
    cdef Py_ssize_t k
    cdef double[::1] s

    def __init__(self, RowHasher hasher, state, hyper):
        super().__init__(hasher, state, hyper)
        self.vg = state.vg
        self.scale = hyper.init_std * INIT_SCALE_PER_STD
        self.seed = <uint64_t>state.seed
        self.k = self.vg.shape[1] // 2
        self.s = np.empty(max(self.k, 1))

    cdef double margin(self, const int32_t* idx, const float* val, const uint16_t* fld,
                       Py_ssize_t n) noexcept nogil:
        cdef double lin = self.linear(idx, val, n), q = 0.0, ss = 0.0, x, v, t
        cdef Py_ssize_t j, c, i, k = self.k
        cdef double* s = &self.s[0]
        cdef bint fresh
        for c in range(k):
            s[c] = 0.0
        for j in range(n):
            if fld == NULL or fld[j] != 0:
                i = idx[j]
                x = val[j]
                fresh = self.vg[i, k] == 0.0
                for c in range(k):
                    if fresh:
                        v = _init_value(self.seed, <uint64_t>(i * k + c), self.scale)
                    else:
                        v = self.vg[i, c]
                    t = v * x
                    s[c] += t
                    q += t * t
        for c in range(k):
            ss += s[c] * s[c]
        return lin + 0.5 * (ss - q)


cdef class FFMScorer(_LiveScorer):
    """Scores rows against live FFM state: FTRL ``zn`` and latent ``vg`` (bucket, field, V | G).

    Cost O(k x nnz^2) per row.
    """
    cdef const double[:, :, ::1] vg
    cdef double scale
    cdef uint64_t seed
    cdef Py_ssize_t k, nf
    cdef bint normalize

    def __init__(self, RowHasher hasher, state, hyper):
        super().__init__(hasher, state, hyper)
        self.vg = state.vg
        self.scale = hyper.init_std * INIT_SCALE_PER_STD
        self.seed = <uint64_t>state.seed
        self.normalize = hyper.normalize
        self.nf = self.vg.shape[1]
        self.k = self.vg.shape[2] // 2
        self.fields_required = True
        self.n_fields = self.nf

    cdef inline double vec(self, Py_ssize_t i, Py_ssize_t f, Py_ssize_t c) noexcept nogil:
        if self.vg[i, f, self.k] == 0.0:
            return _init_value(self.seed, <uint64_t>((i * self.nf + f) * self.k + c), self.scale)
        return self.vg[i, f, c]

    cdef double margin(self, const int32_t* idx, const float* val, const uint16_t* fld,
                       Py_ssize_t n) noexcept nogil:
        cdef double lin = self.linear(idx, val, n), pair = 0.0, norm = 0.0, rs = 1.0, d, xj
        cdef Py_ssize_t j, l, c, ij, il, fj, fl
        if self.normalize:
            for j in range(n):
                if fld[j] != 0:
                    norm += (<double>val[j]) * (<double>val[j])
            if norm > 0.0:
                rs = 1.0 / norm
        for j in range(n):
            fj = fld[j]
            if fj == 0:
                continue
            ij = idx[j]
            xj = val[j]
            for l in range(j + 1, n):
                fl = fld[l]
                if fl == 0:
                    continue
                il = idx[l]
                d = 0.0
                for c in range(self.k):
                    d += self.vec(ij, fl, c) * self.vec(il, fj, c)
                pair += d * xj * val[l]
        return lin + pair * rs


# ---------------------------------------------------------------------------------------------
# Compact serving scorer (fastctr.serving.scorer.Scorer): materialised weights stored as float32,
# float16 (bits in a uint16) or int8 steps of one scale, either one per bucket (dense) or the
# non-zero ones in an open-addressing table keyed by bucket (sparse). The row loops are
# specialised per stored type so that a weight load is one inlined instruction, not a call.

ctypedef fused stored_t:
    float
    uint16_t
    int8_t

DTYPES = ("float32", "float16", "int8")
# Rows ahead whose weights are prefetched: enough to cover a memory miss with the ~40 loads
# of the rows in between, few enough that the lines are still cached when they are used.
cdef Py_ssize_t AHEAD = 4


cdef inline float _half(uint16_t h) noexcept nogil:
    """IEEE 754 half -> single, bit by bit (no dependency on numpy's npymath)."""
    cdef uint32_t sign = (h & 0x8000) << 16, exp = (h >> 10) & 0x1F, mant = h & 0x3FF
    cdef uint32_t bits
    cdef float out
    if exp == 0:
        out = mant * (1.0 / 16777216.0)  # subnormal: mant * 2**-24
        return -out if sign else out
    if exp == 31:
        bits = sign | 0x7F800000 | (mant << 13)
    else:
        bits = sign | ((exp + 112) << 23) | (mant << 13)
    memcpy(&out, &bits, 4)
    return out


cdef inline float _value(stored_t w) noexcept nogil:
    """A stored weight as a float; int8 steps are scaled once per row, by the caller."""
    if stored_t is uint16_t:
        return _half(w)
    return w


cdef inline double _dense_margin(const stored_t* w, uint32_t size, float scale,
                                 const int32_t* idx, const float* val, Py_ssize_t n,
                                 bint* bad) noexcept nogil:
    """Margin of one row against one weight per bucket; sets ``bad`` on an index >= size."""
    cdef double m = 0.0
    cdef Py_ssize_t j
    cdef uint32_t b
    for j in range(n):
        b = <uint32_t>idx[j]  # a negative index wraps to >= size
        if b >= size:
            bad[0] = True
            return 0.0
        m += _value(w[b]) * val[j]
    if stored_t is int8_t:
        m *= scale
    return m


cdef inline uint32_t _home(uint32_t b, uint32_t shift) noexcept nogil:
    # Fibonacci hashing spreads consecutive buckets (as fastctr._kernels.scorer.table_slots)
    return (b * _FIBONACCI) >> shift


cdef inline double _table_margin(const stored_t* w, const uint32_t* keys, uint32_t size,
                                 uint32_t shift, float scale, const int32_t* idx,
                                 const float* val, Py_ssize_t n, bint* bad) noexcept nogil:
    """Margin of one row against a linear-probing table of the non-zero weights; a bucket
    that is not in the table weighs 0. Same summation as _dense_margin."""
    cdef double m = 0.0
    cdef Py_ssize_t j
    cdef uint32_t b, s, mask = (<uint32_t>1 << (32 - shift)) - 1
    for j in range(n):
        b = <uint32_t>idx[j]
        if b >= size:
            bad[0] = True
            return 0.0
        s = _home(b, shift)
        while keys[s] != b and keys[s] != EMPTY:
            s = (s + 1) & mask
        m += (_value(w[s]) if keys[s] == b else 0.0) * val[j]
    if stored_t is int8_t:
        m *= scale
    return m


cdef class DenseScorer:
    """Scores rows with one stored weight per bucket (a dense table indexed by bucket).

    ``weights`` is the raw weight array (float32, float16 as uint16, or int8) and ``dtype``
    indexes DTYPES. TableScorer changes only where a bucket's weight is found.
    """
    cdef RowHasher hasher
    cdef object weights  # keeps the array (or memmap) alive behind self.w
    cdef const void* w
    cdef int dtype
    cdef float scale
    cdef uint32_t size  # buckets: 2**bits
    cdef Py_ssize_t width  # bytes of one stored weight

    def __init__(self, RowHasher hasher, weights, int dtype, float scale, int bits):
        cdef const uint8_t[::1] raw = weights.view(np.uint8).reshape(-1)
        self.hasher = hasher
        self.weights = weights
        self.w = &raw[0] if raw.shape[0] else NULL
        self.dtype = dtype
        self.width = weights.dtype.itemsize
        self.scale = scale
        self.size = <uint32_t>1 << bits
        hasher.prefetch_rows(self.w, self.width)

    cdef double margin(self, const int32_t* idx, const float* val, Py_ssize_t n,
                       bint* bad) noexcept nogil:
        if self.dtype == 0:
            return _dense_margin(<const float*>self.w, self.size, self.scale, idx, val, n, bad)
        if self.dtype == 1:
            return _dense_margin(<const uint16_t*>self.w, self.size, self.scale, idx, val, n, bad)
        return _dense_margin(<const int8_t*>self.w, self.size, self.scale, idx, val, n, bad)

    cdef void prefetch(self, const int32_t* idx, Py_ssize_t n) noexcept nogil:
        """Start loading the weights of one row (a hint: no bounds needed, nothing read)."""
        cdef Py_ssize_t j
        cdef uint32_t mask = self.size - 1
        for j in range(n):
            prefetch(<const char*>self.w + (<uint32_t>idx[j] & mask) * self.width)

    def predict_one(self, row):
        """Probability of a click for one raw row (see RowHasher.hash)."""
        cdef Py_ssize_t n = self.hasher.hash(row)
        cdef bint bad = False  # cannot happen: the hasher masks to the table
        return sigmoid(self.margin(&self.hasher.idx[0], &self.hasher.val[0], n, &bad))

    def score(self, const int64_t[::1] indptr, const int32_t[::1] indices,
              const float[::1] values, double[::1] out, Py_ssize_t start, Py_ssize_t stop,
              bint proba):
        """Rows ``start:stop`` of a CSR batch into ``out``: their margins at ``out[r]``, or
        with ``proba`` their probabilities of no click and click at ``out[2r]``,
        ``out[2r + 1]``. The GIL is released; raises ValueError on an index >= 2**bits."""
        _check_batch(indptr, indices.shape[0], values.shape[0], out.shape[0], start, stop,
                     2 if proba else 1)
        cdef Py_ssize_t r = start, a, ahead
        cdef double m
        cdef bint bad = False
        cdef const int32_t* idx = &indices[0] if indices.shape[0] else NULL
        cdef const float* val = &values[0] if values.shape[0] else NULL
        with nogil:
            for r in range(start, stop):
                ahead = r + AHEAD
                if ahead < stop:
                    self.prefetch(idx + indptr[ahead], indptr[ahead + 1] - indptr[ahead])
                a = indptr[r]
                m = self.margin(idx + a, val + a, indptr[r + 1] - a, &bad)
                if bad:
                    break
                _store(&out[0], r, m, proba)
        if bad:
            raise ValueError(f"row indices must lie in [0, {self.size}): row {r} has one outside")


cdef class TableScorer(DenseScorer):
    """Weights of the non-zero buckets only, in a linear-probing table: ``keys`` holds each
    slot's bucket (0xFFFFFFFF when empty), ``weights`` the slot's weight."""
    cdef const uint32_t[::1] keys
    cdef uint32_t shift

    def __init__(self, RowHasher hasher, const uint32_t[::1] keys, weights, int dtype,
                 float scale, int bits):
        slots = keys.shape[0]
        if slots & (slots - 1) or slots < 2:
            raise ValueError("the table size must be a power of two")
        super().__init__(hasher, weights, dtype, scale, bits)
        hasher.prefetch_rows(NULL, 0)  # slots are not indexed by bucket
        self.keys = keys
        self.shift = 32 - (slots.bit_length() - 1)

    cdef double margin(self, const int32_t* idx, const float* val, Py_ssize_t n,
                       bint* bad) noexcept nogil:
        cdef const uint32_t* keys = &self.keys[0]
        if self.dtype == 0:
            return _table_margin(<const float*>self.w, keys, self.size, self.shift, self.scale,
                                 idx, val, n, bad)
        if self.dtype == 1:
            return _table_margin(<const uint16_t*>self.w, keys, self.size, self.shift,
                                 self.scale, idx, val, n, bad)
        return _table_margin(<const int8_t*>self.w, keys, self.size, self.shift, self.scale,
                             idx, val, n, bad)

    cdef void prefetch(self, const int32_t* idx, Py_ssize_t n) noexcept nogil:
        """Start loading the home slots of one row's buckets."""
        cdef Py_ssize_t j
        for j in range(n):
            prefetch(&self.keys[0] + _home(<uint32_t>idx[j], self.shift))


# ---------------------------------------------------------------------------------------------
# Compact FM / FFM serving scorer (fastctr.serving.factors.FactorScorer): the linear weights and
# latent factors of the touched buckets, stored as float32, float16 (bits in a uint16) or int8
# steps of one scale per array, one row per bucket: either every bucket's, indexed by bucket
# (dense), or the touched buckets' rows only, found through the open-addressing table of
# TableScorer whose slots hold a row number (sparse: the wide rows are not stored at the
# table's half occupancy). A bucket that is not in the table has weight 0 and its seeded initial latent values, computed as the models
# compute them, so a scorer agrees with its model on rows it never saw.

# The largest latent dimension (the models' k is at most 256): FM's sums live on the stack.
DEF MAX_K = 256
MAX_FACTORS = MAX_K
# bad[0] of a batch row: an index outside the buckets, or a field id outside the latent rows
cdef enum:
    BAD_INDEX = 1
    BAD_FIELD = 2


cdef struct Factors:
    const void* w  # one linear weight per row
    const void* v  # nf * k latent values per row
    const uint32_t* keys  # the bucket of each table slot (sparse); NULL: row = bucket (dense)
    const uint32_t* rows  # the row of each table slot (sparse)
    uint32_t size  # buckets: 2**bits
    uint32_t shift, mask  # the sparse table's probing
    double scale_w, scale_v  # int8 steps (1 for float32 and float16)
    double init_scale  # seeded initial values are uniform on [-init_scale, init_scale)
    uint64_t seed
    Py_ssize_t k, nf, width  # latent dimension, latent vectors per slot (FM: 1), nf * k
    bint ffm, normalize


cdef inline Py_ssize_t _factor_row(const Factors* t, uint32_t b) noexcept nogil:
    """The row of bucket ``b`` (< size), or -1 when the sparse table does not hold it."""
    if t.keys == NULL:
        return b
    cdef uint32_t s = _home(b, t.shift)
    while t.keys[s] != b and t.keys[s] != EMPTY:
        s = (s + 1) & t.mask
    return t.rows[s] if t.keys[s] == b else -1


cdef inline double _fm_margin(const stored_t* w, const stored_t* v, const Factors* t,
                              const int32_t* idx, const float* val, const uint16_t* fld,
                              Py_ssize_t n, int* bad) noexcept nogil:
    """FM's margin of one row, as fastctr._kernels.fm._forward: linear part, then the
    pairwise sum by the sum-of-squares identity over the entries of field id != 0 (every
    entry when ``fld`` is NULL)."""
    cdef double s[MAX_K]
    cdef double lin = 0.0, q = 0.0, ss = 0.0, x, f, p
    cdef Py_ssize_t j, c, row, k = t.k
    cdef uint32_t b
    for c in range(k):
        s[c] = 0.0
    for j in range(n):
        b = <uint32_t>idx[j]  # a negative index wraps to >= size
        if b >= t.size:
            bad[0] = BAD_INDEX
            return 0.0
        row = _factor_row(t, b)
        x = val[j]
        if row >= 0:
            lin += _value(w[row]) * t.scale_w * x
        if fld != NULL and fld[j] == 0:
            continue
        for c in range(k):
            if row >= 0:
                f = _value(v[row * k + c]) * t.scale_v
            else:
                f = _init_value(t.seed, <uint64_t>b * <uint64_t>k + <uint64_t>c, t.init_scale)
            p = f * x
            s[c] += p
            q += p * p
    for c in range(k):
        ss += s[c] * s[c]
    return lin + 0.5 * (ss - q)


cdef inline double _ffm_vec(const stored_t* v, const Factors* t, Py_ssize_t row, uint32_t b,
                            Py_ssize_t f, Py_ssize_t c) noexcept nogil:
    """Coordinate ``c`` of bucket ``b``'s latent vector towards field ``f``."""
    if row >= 0:
        return _value(v[row * t.width + f * t.k + c]) * t.scale_v
    return _init_value(t.seed, (<uint64_t>b * <uint64_t>t.nf + <uint64_t>f) * <uint64_t>t.k
                       + <uint64_t>c, t.init_scale)


cdef inline double _ffm_margin(const stored_t* w, const stored_t* v, const Factors* t,
                               const int32_t* idx, const float* val, const uint16_t* fld,
                               Py_ssize_t n, Py_ssize_t* found, int* bad) noexcept nogil:
    """FFM's margin of one row, as fastctr._kernels.ffm._forward; ``found`` has room for the
    n entries' rows (-1: not stored)."""
    cdef double lin = 0.0, pair = 0.0, norm = 0.0, rs = 1.0, d, xj
    cdef Py_ssize_t j, l, c, fj, fl
    cdef uint32_t b
    for j in range(n):
        b = <uint32_t>idx[j]
        if b >= t.size:
            bad[0] = BAD_INDEX
            return 0.0
        if fld[j] >= t.nf:
            bad[0] = BAD_FIELD
            return 0.0
        found[j] = _factor_row(t, b)
        if found[j] >= 0:
            lin += _value(w[found[j]]) * t.scale_w * val[j]
        if fld[j] != 0:
            norm += (<double>val[j]) * (<double>val[j])
    if t.normalize and norm > 0.0:
        rs = 1.0 / norm
    for j in range(n):
        fj = fld[j]
        if fj == 0:
            continue
        xj = val[j]
        for l in range(j + 1, n):
            fl = fld[l]
            if fl == 0:
                continue
            d = 0.0
            for c in range(t.k):
                d += (_ffm_vec(v, t, found[j], <uint32_t>idx[j], fl, c)
                      * _ffm_vec(v, t, found[l], <uint32_t>idx[l], fj, c))
            pair += d * xj * val[l]
    return lin + pair * rs


cdef inline double _factor_margin(const Factors* t, int dtype, const int32_t* idx,
                                  const float* val, const uint16_t* fld, Py_ssize_t n,
                                  Py_ssize_t* found, int* bad) noexcept nogil:
    """The margin of one row, specialised on the stored type."""
    if t.ffm:
        if fld == NULL and n:  # FFM needs field ids (an empty row has none: its margin is 0)
            bad[0] = BAD_FIELD
            return 0.0
        if dtype == 0:
            return _ffm_margin(<const float*>t.w, <const float*>t.v, t, idx, val, fld, n, found,
                               bad)
        if dtype == 1:
            return _ffm_margin(<const uint16_t*>t.w, <const uint16_t*>t.v, t, idx, val, fld, n,
                               found, bad)
        return _ffm_margin(<const int8_t*>t.w, <const int8_t*>t.v, t, idx, val, fld, n, found,
                           bad)
    if dtype == 0:
        return _fm_margin(<const float*>t.w, <const float*>t.v, t, idx, val, fld, n, bad)
    if dtype == 1:
        return _fm_margin(<const uint16_t*>t.w, <const uint16_t*>t.v, t, idx, val, fld, n, bad)
    return _fm_margin(<const int8_t*>t.w, <const int8_t*>t.v, t, idx, val, fld, n, bad)


cdef inline const void* _data_of(object a, str name, int typenum, int ndim,
                                 Py_ssize_t rows) except NULL:
    """The data of ``a``: a C-contiguous, native-order array of the type, ``ndim``
    dimensions and ``rows`` rows (at least one), or ValueError naming ``name``."""
    if (not isinstance(a, np.ndarray) or cnp.PyArray_TYPE(a) != typenum
            or cnp.PyArray_NDIM(a) != ndim or not cnp.PyArray_IS_C_CONTIGUOUS(a)
            or not a.dtype.isnative or a.shape[0] != rows or cnp.PyArray_SIZE(a) == 0):
        raise ValueError(f"{name} must be a C-contiguous {ndim}-D "
                         f"{cnp.PyArray_DescrFromType(typenum)} array of {rows} rows; got "
                         f"{getattr(a, 'dtype', type(a).__name__)} {getattr(a, 'shape', '')}")
    return cnp.PyArray_DATA(a)


cdef class FactorTable:
    """Scores rows with stored FM or FFM weights: ``weights`` one linear weight per row,
    ``factors`` (n, k) for FM or (n, n_fields, k) for FFM, both float32, float16 bits
    (uint16) or int8 (``dtype`` indexes DTYPES; int8 times ``scale_w`` and ``scale_v``);
    ``keys`` the bucket of each table slot (a power-of-two table with an empty slot) and
    ``rows`` its row (< n); keys None: row = bucket, n = 2**bits. Untouched buckets score with their seeded initial latent values
    (``seed``, ``init_scale``). Every size is checked here: a table that passes cannot make a
    read outside its arrays or a lookup that never stops."""
    cdef RowHasher hasher
    cdef tuple arrays  # keeps weights, factors and keys (or memmaps) alive behind t's pointers
    cdef Factors t
    cdef int dtype
    cdef Py_ssize_t[::1] found  # one row's rows in the tables (FFM), under the GIL
    cdef Py_ssize_t row_bytes  # bytes of one latent row

    def __init__(self, RowHasher hasher, keys, rows, weights, factors, int dtype, double scale_w,
                 double scale_v, int bits, uint64_t seed, double init_scale, bint normalize):
        cdef int typenum
        cdef Py_ssize_t slots, j, n
        cdef const uint32_t* pk
        cdef const uint32_t* pr
        cdef bint empty = False
        if not 0 <= dtype < len(DTYPES):
            raise ValueError(f"dtype index {dtype} is not one of {DTYPES}")
        if not 0 <= bits <= 31:
            raise ValueError(f"bits must lie in [0, 31]; got {bits}")
        typenum = (cnp.NPY_FLOAT32, cnp.NPY_UINT16, cnp.NPY_INT8)[dtype]
        n = (<Py_ssize_t>1 << bits) if keys is None else getattr(weights, "shape", (0,))[0]
        self.t.size = <uint32_t>1 << bits
        self.t.keys = self.t.rows = NULL
        if keys is not None:
            slots = len(keys)
            if slots < 2 or slots & (slots - 1) or slots > (<Py_ssize_t>1 << 32):
                raise ValueError(f"the table size must be a power of two >= 2; got {slots}")
            pk = <const uint32_t*>_data_of(keys, "keys", cnp.NPY_UINT32, 1, slots)
            pr = <const uint32_t*>_data_of(rows, "rows", cnp.NPY_UINT32, 1, slots)
            for j in range(slots):
                if pk[j] == EMPTY:
                    empty = True
                elif pr[j] >= n:
                    raise ValueError(f"table slot {j} points to row {pr[j]} of {n}")
            if not empty:
                raise ValueError("the table has no empty slot (the lookup of an absent bucket "
                                 "would never stop)")
            self.t.keys, self.t.rows = pk, pr
            self.t.shift = 32 - (slots.bit_length() - 1)
            self.t.mask = <uint32_t>(slots - 1)
        self.t.w = _data_of(weights, "weights", typenum, 1, n)
        self.t.ffm = getattr(factors, "ndim", 0) == 3
        self.t.v = _data_of(factors, "factors", typenum, 3 if self.t.ffm else 2, n)
        self.t.k = factors.shape[factors.ndim - 1]
        self.t.nf = factors.shape[1] if self.t.ffm else 1
        self.t.width = self.t.nf * self.t.k
        if not 1 <= self.t.k <= MAX_K or not 1 <= self.t.nf <= 65536:
            raise ValueError(f"factors of k={self.t.k} (1 to {MAX_K}) and {self.t.nf} fields "
                             "(1 to 65536)")
        for x, name in ((scale_w, "scale_w"), (scale_v, "scale_v")):
            if not (x > 0.0 and x - x == 0.0):
                raise ValueError(f"{name} must be a finite number > 0; got {x}")
        if not (init_scale >= 0.0 and init_scale - init_scale == 0.0):
            raise ValueError(f"init_scale must be a finite number >= 0; got {init_scale}")
        self.t.scale_w, self.t.scale_v = scale_w, scale_v
        self.t.seed, self.t.init_scale, self.t.normalize = seed, init_scale, normalize
        self.hasher = hasher
        self.arrays = (keys, rows, weights, factors)
        self.dtype = dtype
        self.found = np.empty(max(hasher.idx.shape[0], 1), np.intp)
        self.row_bytes = self.t.width * factors.dtype.itemsize
        if keys is None:  # prefetch each hashed bucket's latent row while the row is hashed
            hasher.prefetch_rows(self.t.v, self.row_bytes)
        else:
            hasher.prefetch_rows(NULL, 0)

    cdef void prefetch(self, const int32_t* idx, Py_ssize_t n) noexcept nogil:
        """Start loading what one row's buckets read: their table slots (sparse) or their
        linear weights and latent rows (dense). A hint: no bounds needed, nothing read."""
        cdef Py_ssize_t j
        cdef uint32_t b
        for j in range(n):
            b = <uint32_t>idx[j] & (self.t.size - 1)
            if self.t.keys != NULL:
                prefetch(self.t.keys + _home(b, self.t.shift))
            else:
                prefetch(<const char*>self.t.v + b * self.row_bytes)

    def predict_one(self, row):
        """Probability of a click for one raw row (see RowHasher.hash)."""
        cdef Py_ssize_t n = self.hasher.hash(row)
        cdef int bad = 0
        cdef double m = _factor_margin(&self.t, self.dtype, &self.hasher.idx[0],
                                       &self.hasher.val[0], &self.hasher.fld[0], n,
                                       &self.found[0], &bad)
        if bad:  # a field id beyond the latent rows: a hasher with more fields than the table
            raise ValueError(f"the row has a field id outside the scorer's {self.t.nf} fields")
        return sigmoid(m)

    def score(self, const int64_t[::1] indptr, const int32_t[::1] indices,
              const float[::1] values, fields, double[::1] out, Py_ssize_t start,
              Py_ssize_t stop, bint proba):
        """Rows ``start:stop`` of a CSR batch (``fields``: uint16 field ids, or None: every
        entry interacts, FM only) into ``out``: margins at ``out[r]``, or with ``proba`` the
        probabilities of no click and click at ``out[2r]``, ``out[2r + 1]``. The GIL is
        released; raises ValueError on an index >= 2**bits or a field id out of range."""
        cdef const uint16_t[::1] fl
        cdef const uint16_t* pf = NULL
        cdef Py_ssize_t r, a, longest = 0, nnz = indices.shape[0]
        cdef double m
        cdef int bad = 0
        _check_batch(indptr, nnz, values.shape[0], out.shape[0], start, stop,
                     2 if proba else 1)
        for r in range(start, stop):
            longest = max(longest, indptr[r + 1] - indptr[r])
        if fields is not None:
            fl = fields
            if fl.shape[0] != nnz:
                raise ValueError(f"{fl.shape[0]} field ids for {nnz} entries")
            pf = &fl[0] if nnz else NULL
        elif self.t.ffm:
            raise ValueError("an FFM scorer needs the field id of every entry")
        cdef Py_ssize_t[::1] found = np.empty(max(longest, 1), np.intp)
        cdef const int32_t* idx = &indices[0] if nnz else NULL
        cdef const float* val = &values[0] if nnz else NULL
        with nogil:
            for r in range(start, stop):
                if r + AHEAD < stop:
                    self.prefetch(idx + indptr[r + AHEAD], indptr[r + AHEAD + 1] - indptr[r + AHEAD])
                a = indptr[r]
                m = _factor_margin(&self.t, self.dtype, idx + a, val + a,
                                   pf + a if pf != NULL else NULL, indptr[r + 1] - a,
                                   &found[0], &bad)
                if bad:
                    break
                _store(&out[0], r, m, proba)
        if bad == BAD_INDEX:
            raise ValueError(f"row indices must lie in [0, {self.t.size}): row {r} has one "
                             "outside")
        if bad:
            raise ValueError(f"field ids must lie in [0, {self.t.nf}): row {r} has one outside")


def fill_initial(const uint32_t[::1] buckets, const uint8_t[:, ::1] fresh, double[:, :, ::1] out,
                 uint64_t seed, double scale):
    """The seeded initial latent values (as the models draw them) of the vectors that
    learning never touched: ``out[r, f, c]`` for every ``fresh[r, f]``, the vector of bucket
    ``buckets[r]`` towards field f (FM: one field, f = 0) with key ``(bucket * n_fields + f) *
    k + c``. Used once, to materialise a FactorScorer's stored rows."""
    cdef Py_ssize_t r, f, c, n = buckets.shape[0], nf = out.shape[1], k = out.shape[2]
    if out.shape[0] != n or fresh.shape[0] != n or fresh.shape[1] != nf:
        raise ValueError(f"{n} buckets, fresh {tuple(fresh.shape)[:2]} and out "
                         f"{tuple(out.shape)[:3]} do not fit together")
    with nogil:
        for r in range(n):
            for f in range(nf):
                if fresh[r, f]:
                    for c in range(k):
                        out[r, f, c] = _init_value(
                            seed, (<uint64_t>buckets[r] * <uint64_t>nf + <uint64_t>f)
                            * <uint64_t>k + <uint64_t>c, scale)
