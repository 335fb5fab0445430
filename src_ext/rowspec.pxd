# cython: language_level=3
"""Shared C-level pieces of the hashing spec: MurmurHash3 x86_32 and the row builder.

Included (cimported by name) by every extension in src_ext/ so that the TSV parser, the
dict-row hasher and the serving scorer hash a row in exactly one way.
"""
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, INT64_MAX, INT64_MIN
from libc.string cimport memchr, memcpy, memset
from libc.math cimport log, floor, log1p, fabs
from libc.stdlib cimport free, malloc, strtod

cimport numpy as cnp

# Numeric transforms (FeatureHasher.numeric): binned token, one bucket with the raw value,
# one bucket with sign(x) * log1p(|x|).
cdef enum:
    NUM_BIN = 0
    NUM_VALUE = 1
    NUM_LOG1P = 2


cdef inline uint32_t _rotl32(uint32_t x, int r) noexcept nogil:
    return (x << r) | (x >> (32 - r))


cdef inline uint32_t murmur3_32(const uint8_t* data, Py_ssize_t n, uint32_t seed) noexcept nogil:
    """MurmurHash3 x86_32, bit for bit the same as mmh3.hash(data, seed, signed=False)."""
    cdef uint32_t h = seed, k
    cdef uint32_t c1 = <uint32_t>0xcc9e2d51u, c2 = <uint32_t>0x1b873593u
    cdef Py_ssize_t nblocks = n // 4, i
    for i in range(nblocks):
        memcpy(&k, data + 4 * i, 4)  # unaligned little-endian load
        k *= c1
        k = _rotl32(k, 15)
        k *= c2
        h ^= k
        h = _rotl32(h, 13)
        h = h * 5 + <uint32_t>0xe6546b64u
    cdef const uint8_t* tail = data + 4 * nblocks
    k = 0
    cdef int rest = n & 3
    if rest == 3:
        k ^= (<uint32_t>tail[2]) << 16
    if rest >= 2:
        k ^= (<uint32_t>tail[1]) << 8
    if rest >= 1:
        k ^= tail[0]
        k *= c1
        k = _rotl32(k, 15)
        k *= c2
        h ^= k
    h ^= <uint32_t>n
    h ^= h >> 16
    h *= <uint32_t>0x85ebca6bu
    h ^= h >> 13
    h *= <uint32_t>0xc2b2ae35u
    h ^= h >> 16
    return h


cdef inline Py_ssize_t find_line(const uint8_t* base, Py_ssize_t pos, Py_ssize_t end,
                                 Py_ssize_t* content_end) noexcept nogil:
    """Offset of the newline that ends the line starting at ``pos`` (-1 when the line is not
    complete yet); ``content_end`` gets the end of its content, before any ``\\r``."""
    cdef const uint8_t* nl = <const uint8_t*>memchr(base + pos, c'\n', end - pos)
    if nl == NULL:
        return -1
    cdef Py_ssize_t line_end = nl - base
    content_end[0] = line_end - 1 if line_end > pos and base[line_end - 1] == c'\r' else line_end
    return line_end


cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif
    #if defined(__GNUC__) || defined(__clang__)
    #define FASTCTR_CTZ64(x) __builtin_ctzll(x)
    #else
    static inline int FASTCTR_CTZ64(uint64_t x) { int n = 0; while (!(x & 1)) { x >>= 1; n++; } return n; }
    #endif

    /* Bit i set where p[i] == c, for i < min(n, 64); reads nothing at or beyond p[n].
       16 bytes per compare with SSE2 (every x86-64); else 8 at a time where a 64-bit word's
       bytes can be tested exactly (the zero bytes of x ^ c*0x01.. flagged by their high bit,
       the flags gathered by one multiply); then byte by byte. */
    static inline uint64_t fastctr_match64(const uint8_t* p, Py_ssize_t n, uint8_t c) {
        uint64_t m = 0;
        Py_ssize_t i = 0, k = n < 64 ? n : 64;
    #if defined(__SSE2__)
        const __m128i v = _mm_set1_epi8((char)c);
        for (; i + 16 <= k; i += 16)
            m |= (uint64_t)(uint16_t)_mm_movemask_epi8(
                _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i*)(p + i)), v)) << i;
    #elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        const uint64_t low7 = 0x7F7F7F7F7F7F7F7FULL, pattern = 0x0101010101010101ULL * c;
        for (; i + 8 <= k; i += 8) {
            uint64_t x;
            memcpy(&x, p + i, 8);
            x ^= pattern;
            uint64_t zero = ~(((x & low7) + low7) | x) & ~low7;
            m |= ((zero >> 7) * 0x0102040810204080ULL >> 56) << i;
        }
    #endif
        for (; i < k; i++)
            m |= (uint64_t)(p[i] == c) << i;
        return m;
    }

    /* The separators of p[a:end] in order, found 64 bytes per step: `mask` flags the
       separators of p[base:base + 64] not yet returned, so each costs a count of trailing
       zeros, not a byte loop. */
    typedef struct { const uint8_t* p; Py_ssize_t base, end; uint64_t mask; uint8_t c; } fastctr_scan;

    static inline void fastctr_scan_start(fastctr_scan* s, const uint8_t* p, Py_ssize_t a,
                                          Py_ssize_t end, uint8_t c) {
        s->p = p; s->base = a; s->end = end; s->c = c;
        s->mask = fastctr_match64(p + a, end - a, c);
    }

    /* Offset of the next separator (end when none is left). */
    static inline Py_ssize_t fastctr_scan_next(fastctr_scan* s) {
        while (s->mask == 0) {
            s->base += 64;
            if (s->base >= s->end) return s->end;
            s->mask = fastctr_match64(s->p + s->base, s->end - s->base, s->c);
        }
        Py_ssize_t at = s->base + FASTCTR_CTZ64(s->mask);
        s->mask &= s->mask - 1;
        return at;
    }
    """
    ctypedef struct separator_scan "fastctr_scan":
        pass
    void scan_start "fastctr_scan_start" (separator_scan* s, const uint8_t* p, Py_ssize_t a,
                                          Py_ssize_t end, uint8_t c) noexcept nogil
    Py_ssize_t scan_next "fastctr_scan_next" (separator_scan* s) noexcept nogil


cdef enum:
    NUMBER_TEXT = 64  # number texts shorter than this are copied to the stack for strtod


cdef inline bint _parse_double(const uint8_t* p, Py_ssize_t n, double* out) noexcept nogil:
    """strtod over a NUL-terminated copy of p[:n]: strtod skips leading whitespace (newlines
    included) and reads until a byte that cannot continue the number, so on the buffer
    itself it could read past the field, and past the end of a chunk (a blank field at the
    end of an mmap'd chunk read the next, unmapped page)."""
    cdef char text[NUMBER_TEXT]
    cdef char* copy = text
    cdef char* endp
    cdef bint ok
    if n >= NUMBER_TEXT:
        copy = <char*>malloc(n + 1)
        if copy == NULL:
            return False
    memcpy(copy, p, n)
    copy[n] = 0
    out[0] = strtod(copy, &endp)
    ok = endp == copy + n and out[0] == out[0]
    if copy != text:
        free(copy)
    return ok


cdef inline bint parse_number(const uint8_t* p, Py_ssize_t n, double* out) noexcept nogil:
    """A number filling exactly p[:n], reading nothing outside it: a decimal integer fast
    path, strtod (on a copy) for the rest; NaN and partial parses are rejected."""
    cdef Py_ssize_t i = 0
    cdef int64_t acc = 0
    cdef bint neg = False
    if n == 0:
        return False
    if p[0] == c'-':
        neg = True
        i = 1
    if i < n and n - i <= 18:
        while i < n and c'0' <= p[i] <= c'9':
            acc = acc * 10 + (p[i] - c'0')
            i += 1
        if i == n and not (neg and n == 1):
            out[0] = -acc if neg else acc
            return True
    return _parse_double(p, n, out)


cdef struct Spec:
    # Everything needed to turn one row's field values into hashed features.
    Py_ssize_t n_fields
    Py_ssize_t n_crosses
    const uint32_t* field_seed   # murmur3(field name, hash_seed)
    const int8_t* field_numeric  # 1 for numeric fields, 0 for categorical
    const int32_t* cross_a       # crossed field pairs (indices into fields)
    const int32_t* cross_b
    uint32_t mask                # 2**bits - 1
    uint32_t bias_bucket
    int numeric_mode             # NUM_BIN / NUM_VALUE / NUM_LOG1P
    const int64_t* bin_table     # numeric_bin of the small integers 0..bin_table_size-1
    Py_ssize_t bin_table_size
    bint strict                  # a dict row's key that is not a field is an error


cdef inline Spec make_spec(tuple arrays):
    """Point a Spec at the arrays of FeatureHasher._spec (which must outlive it)."""
    cdef cnp.ndarray seeds = arrays[0], numeric = arrays[1], crosses = arrays[2]
    cdef Spec s
    s.n_fields = seeds.shape[0]
    s.n_crosses = crosses.shape[1]
    s.field_seed = <const uint32_t*>cnp.PyArray_DATA(seeds)
    s.field_numeric = <const int8_t*>cnp.PyArray_DATA(numeric)
    s.cross_a = <const int32_t*>cnp.PyArray_DATA(crosses)
    s.cross_b = s.cross_a + s.n_crosses
    s.mask = arrays[3]
    s.bias_bucket = arrays[4]
    s.numeric_mode = arrays[5]
    cdef cnp.ndarray table = arrays[6]
    s.bin_table = <const int64_t*>cnp.PyArray_DATA(table)
    s.bin_table_size = table.shape[0]
    s.strict = arrays[7]
    return s


cdef inline int64_t numeric_bin(const Spec* s, double x) noexcept nogil:
    """Criteo winners' binning: small values are their own token, larger ones int(log(x)**2).

    Bins of x > 2 are shifted by 3 so that they never collide with the raw tokens x <= 2.
    Counts are mostly small integers: their bins come from a table (no log).
    """
    cdef double lx
    cdef Py_ssize_t ix
    if 0.0 <= x < s.bin_table_size:
        ix = <Py_ssize_t>x
        if ix == x:
            return s.bin_table[ix]
    if x > 2.0:
        if x > 1e300:  # +inf: its own bin (the cast below would be undefined)
            return INT64_MAX
        lx = log(x)
        return 3 + <int64_t>floor(lx * lx)
    if x < -9e18:  # -inf and beyond the int64 range
        return INT64_MIN
    return <int64_t>floor(x)


cdef inline void hash_token(const Spec* s, Py_ssize_t f, const uint8_t* tok, Py_ssize_t n,
                            uint32_t* h, float* v) noexcept nogil:
    """Categorical field f: full 32-bit hash of the token's bytes, value 1."""
    h[f] = murmur3_32(tok, n, s.field_seed[f])
    v[f] = 1.0


cdef inline void hash_number(const Spec* s, Py_ssize_t f, double x,
                             uint32_t* h, float* v) noexcept nogil:
    """Numeric field f: a binned token (int64 little-endian bytes) or one bucket carrying x."""
    cdef int64_t b
    if s.numeric_mode == NUM_BIN:
        b = numeric_bin(s, x)
        h[f] = murmur3_32(<const uint8_t*>&b, 8, s.field_seed[f])
        v[f] = 1.0
    else:
        h[f] = s.field_seed[f]
        if s.numeric_mode == NUM_VALUE:
            v[f] = <float>x
        else:
            v[f] = <float>(log1p(fabs(x)) if x >= 0 else -log1p(fabs(x)))


cdef inline Py_ssize_t emit_row(const Spec* s, const uint32_t* h, const float* v,
                                const uint8_t* present, int32_t* idx, float* val,
                                uint16_t* fld) noexcept nogil:
    """Write the bias, the present fields and the crosses of one row; return its length.

    Layout of a row: bias first (field 0), then fields in schema order (field f + 1), then
    crosses (field 1 + n_fields + c). A cross a x b hashes b's 32-bit hash (4 bytes,
    little-endian) seeded by a's 32-bit hash.
    """
    cdef Py_ssize_t f, c, a, b, k = 1
    cdef uint32_t hb
    idx[0] = s.bias_bucket
    val[0] = 1.0
    fld[0] = 0
    for f in range(s.n_fields):
        if present[f]:
            idx[k] = h[f] & s.mask
            val[k] = v[f]
            fld[k] = f + 1
            k += 1
    for c in range(s.n_crosses):
        a = s.cross_a[c]
        b = s.cross_b[c]
        if present[a] and present[b]:
            hb = h[b]
            idx[k] = murmur3_32(<const uint8_t*>&hb, 4, h[a]) & s.mask
            val[k] = v[a] * v[b]
            fld[k] = 1 + s.n_fields + c
            k += 1
    return k


cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define FASTCTR_PREFETCH(p) __builtin_prefetch(p)
    #else
    #define FASTCTR_PREFETCH(p) ((void)0)
    #endif
    """
    void prefetch "FASTCTR_PREFETCH" (const void* p) noexcept nogil


# Roles of a delimited line's columns (col_field values >= 0 are field indices), and the
# errors hash_fields reports (worded by fastctr.io.readers and the scorers).
cdef enum:
    COL_LABEL = -1
    COL_IGNORE = -2
cdef enum:
    LINE_TOO_MANY_FIELDS = 1
    LINE_BAD_LABEL = 2
    LINE_BAD_NUMBER = 3
    LINE_MISSING_LABEL = 4


cdef inline int hash_fields(const Spec* s, const uint8_t* base, Py_ssize_t* start,
                            Py_ssize_t end, const int32_t* col_field, Py_ssize_t n_cols,
                            uint8_t sep, uint32_t* h, float* v, uint8_t* present, float* label,
                            Py_ssize_t* col, Py_ssize_t* stop, const char* table=NULL,
                            Py_ssize_t stride=0) noexcept nogil:
    """Hash the ``sep``-separated columns of ``base[start:end]`` (one line's content) into
    h, v and present (zeroed by the caller); column i plays the role ``col_field[i]``.

    Returns 0 or an error code; on an error, ``col`` is the bad column and ``start:stop``
    its token. An empty column is a missing value; a line may have fewer columns than
    ``n_cols``. With a ``table``, the row of each hashed bucket is prefetched (as in
    hash_dict).
    """
    cdef Py_ssize_t a = start[0], b, c = 0
    cdef int32_t cf
    cdef double x
    cdef int err = 0
    cdef separator_scan seps
    scan_start(&seps, base, a, end, sep)
    label[0] = 0.0
    while True:
        b = scan_next(&seps)
        if c >= n_cols:
            err = LINE_TOO_MANY_FIELDS
            break
        cf = col_field[c]
        if cf >= 0:
            if b > a:
                if s.field_numeric[cf]:
                    if not parse_number(base + a, b - a, &x):
                        err = LINE_BAD_NUMBER
                        break
                    hash_number(s, cf, x, h, v)
                else:
                    hash_token(s, cf, base + a, b - a, h, v)
                present[cf] = 1
                if table != NULL:
                    prefetch(table + (h[cf] & s.mask) * stride)
        elif cf == COL_LABEL:
            if b == a:
                err = LINE_MISSING_LABEL
                break
            if b - a == 1 and (base[a] == c'0' or base[a] == c'1'):
                label[0] = base[a] - c'0'
            elif b - a == 2 and base[a] == c'-' and base[a + 1] == c'1':
                label[0] = 0.0
            else:
                err = LINE_BAD_LABEL
                break
        c += 1
        if b >= end:
            break
        a = b + 1
    col[0] = c
    start[0] = a
    stop[0] = b
    return err


from cpython.dict cimport PyDict_GetItem, PyDict_Items, PyDict_Keys, PyDict_Next
from cpython.long cimport PyLong_AsDouble, PyLong_AsSsize_t
from cpython.tuple cimport PyTuple_GET_ITEM
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.object cimport PyObject, PyTypeObject
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE


cdef inline bint _is_missing(object x):
    return x is None or (type(x) is float and x != x) or (type(x) is str and len(<str>x) == 0)


cdef inline double _as_number(object x, object name) except? -1.0:
    """A numeric field's value: int, float and plain decimal text are read in C (no temporary
    object), anything else through float()."""
    cdef Py_ssize_t n
    cdef const char* p
    cdef double number
    if type(x) is float:
        return PyFloat_AS_DOUBLE(x)
    if type(x) is int:
        return PyLong_AsDouble(x)
    if type(x) is str:
        p = PyUnicode_AsUTF8AndSize(x, &n)
        if parse_number(<const uint8_t*>p, n, &number):
            return number
    return _float_value(x, name)


cdef inline double _float_value(object x, object name) except? -1.0:
    """float(x), or a ValueError naming the field (the slow part of _as_number)."""
    cdef object held = x  # float() can run Python code that drops the caller's reference
    try:
        return float(held)  # e.g. " 3", "1e3", "nan" or a numpy scalar
    except (TypeError, ValueError):
        raise ValueError(f"field {name!r} is numeric but got {held!r}; pass a number or "
                         "leave it out") from None


cdef extern from "Python.h":
    ctypedef struct PyASCIIObject:  # the header of a compact ASCII str; its characters follow
        pass
    bint PyUnicode_IS_COMPACT_ASCII(PyObject* o)
    Py_ssize_t PyUnicode_GET_LENGTH(PyObject* o)
    void* PyUnicode_DATA(PyObject* o)
    bint PyUnicode_CheckExact(PyObject* o)
    PyTypeObject* _type_of "Py_TYPE" (PyObject* o)
    PyTypeObject PyUnicode_Type, PyLong_Type, PyFloat_Type, PyBytes_Type, PyBool_Type


cdef inline bint _runs_only_c(PyObject* key, PyObject* x) noexcept:
    """Whether hashing this item can run no Python code: a str key (its lookup compares
    str with str) and a value of a built-in type whose conversions are C. Anything else
    (a uuid.UUID, a numpy scalar, a key with its own ``__eq__``) may run ``__str__``,
    ``__float__`` or ``__eq__``, which can change or free the row, or let another thread do
    so, while it is being read."""
    if not PyUnicode_CheckExact(key):
        return False
    cdef PyTypeObject* t = _type_of(x)
    return (t == &PyUnicode_Type or t == &PyLong_Type or t == &PyFloat_Type
            or x == <PyObject*>None or t == &PyBytes_Type or t == &PyBool_Type)


cdef inline bint _json_scalar(PyObject* x) noexcept:
    """Whether a value is what JSON decodes a scalar to, bar true/false: str, int, float or
    None (a bool, a list or a dict is not)."""
    cdef PyTypeObject* t = _type_of(x)
    return (t == &PyUnicode_Type or t == &PyLong_Type or t == &PyFloat_Type
            or x == <PyObject*>None)


cdef inline bint _same_name(PyObject* key, PyObject* name) noexcept:
    """Whether a row's key is the field name ``name`` (an ASCII str): by identity, or by its
    characters, with no hashing (JSON-decoded rows have fresh keys, never identical)."""
    if key == name:
        return True
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(name), i
    if not (PyUnicode_CheckExact(key) and PyUnicode_IS_COMPACT_ASCII(key)
            and PyUnicode_GET_LENGTH(key) == n):
        return False
    cdef const char* a = <const char*>PyUnicode_DATA(key)
    cdef const char* b = <const char*>PyUnicode_DATA(name)
    for i in range(n):  # names are short: a loop beats a call to memcmp
        if a[i] != b[i]:
            return False
    return True


cdef inline int _hash_other(const Spec* s, Py_ssize_t f, object x, uint32_t* h,
                            float* v) except -1:
    """A categorical value that is not an ASCII str: other str as UTF-8, bytes as is,
    anything else as str(x)."""
    cdef Py_ssize_t n
    cdef const char* p
    if type(x) is bytes:
        hash_token(s, f, <const uint8_t*>PyBytes_AS_STRING(x), PyBytes_GET_SIZE(x), h, v)
        return 0
    if type(x) is not str:
        x = str(x)
    p = PyUnicode_AsUTF8AndSize(x, &n)
    hash_token(s, f, <const uint8_t*>p, n, h, v)
    return 0


cdef inline Py_ssize_t _hash_item(const Spec* s, PyObject* key, PyObject* x, Py_ssize_t guess,
                                  tuple keys, dict index, uint32_t* h, float* v,
                                  uint8_t* present, const char* table,
                                  Py_ssize_t stride, Py_ssize_t* unknown) except -1:
    """One item of a dict row: its field found (first by ``guess``, the field after the
    previous one), its value hashed into h, v and present; ``unknown`` counts the keys that
    are not fields (on that rare path only: a field costs nothing more). Returns the next
    guess."""
    cdef Py_ssize_t f
    cdef double number
    if guess < s.n_fields and _same_name(key, PyTuple_GET_ITEM(keys, guess)):
        f = guess
    else:
        found = PyDict_GetItem(index, <object>key)
        if found == NULL:  # not a field: an error or ignored, as the caller decides
            unknown[0] += 1
            return guess
        f = PyLong_AsSsize_t(<object>found)
    if _is_missing(<object>x):
        return f + 1
    if s.field_numeric[f]:
        number = _as_number(<object>x, keys[f])
        if number != number:  # NaN, e.g. "nan" or a numpy NaN: missing
            return f + 1
        hash_number(s, f, number, h, v)
    elif PyUnicode_CheckExact(x) and PyUnicode_IS_COMPACT_ASCII(x):  # ASCII is its UTF-8
        hash_token(s, f, <const uint8_t*>PyUnicode_DATA(x), PyUnicode_GET_LENGTH(x), h, v)
    else:
        _hash_other(s, f, <object>x, h, v)
    present[f] = 1
    if table != NULL:
        prefetch(table + (h[f] & s.mask) * stride)
    return f + 1


cdef inline str _names(list names, Py_ssize_t shown):
    """``names`` joined; beyond ``shown`` of them, the first ``shown - 1``, "..." and the
    last."""
    if len(names) <= shown:
        return ", ".join(names)
    return ", ".join(names[:shown - 1]) + ", ..., " + names[len(names) - 1]


cdef inline str unknown_keys_message(list row_keys, tuple fields, dict index, str what):
    """The error of a row (``what`` = "key") or a DataFrame (``what`` = "column") with keys
    that are not fields (unknown="strict"): the unknown keys (sorted, at most 10), the fields
    (abbreviated) and the two fixes. ``row_keys`` is owned by the caller: a key's
    ``__eq__``/``__repr__`` may run Python code that changes the row."""
    cdef list unknown = []
    for k in row_keys:  # (no generator expressions: they do not compile in a .pxd)
        if PyDict_GetItem(index, k) == NULL:
            unknown.append(repr(k))
    unknown.sort()
    cdef str plural = "s" if len(unknown) > 1 else ""
    cdef str listed = ", ".join(unknown[:10]) + (
        f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
    cdef str expected = f"{_names(list(fields), 4)}: {len(fields)} field" + (
        "s" if len(fields) > 1 else "")
    cdef str whose = "row's keys" if what == "key" else "columns"
    cdef str whole = "row" if what == "key" else "frame"
    if len(unknown) == len(row_keys):  # nothing of the row would be scored but the bias
        head = f"no {what} of the {whole} is a field: unknown {what}{plural} {listed}"
    else:
        head = f"unknown {what}{plural} {listed}: not {'fields' if plural else 'a field'}"
    return (f"{head} ({expected}); pass fields=[...] naming the {whose}, or "
            "unknown='ignore' to skip them")


cdef inline dict _plain_row(const Spec* s, dict row, tuple keys, dict index,
                            bint scalars_only=False):
    """A row with an item whose hashing can run Python code (see _runs_only_c), as a new row
    that no other code can reach, of field names and built-in values.

    The row's items are copied first (the copy owns references to them); every key is
    matched and every value of another type converted (a number for a numeric field, else
    its str) while holding those references. hash_dict's walk over the new row runs no
    Python code: a value's Python code can neither free what is being read nor let another
    thread's predict_one on the same buffers interleave with this row's writes. The result
    is the row as it was when the call began. With ``scalars_only`` a value that is not a
    JSON scalar (see _json_scalar) is a TypeError before anything is converted.
    """
    cdef list items = PyDict_Items(row)
    cdef dict plain = {}
    cdef Py_ssize_t known = 0
    if scalars_only:  # (the copy owns the values: looking at their types runs no code)
        for item in items:
            if not _json_scalar(<PyObject*>(<tuple>item)[1]):
                raise TypeError("a value is not a string, a number or null")
    if s.strict:  # keys first: a row that is an error converts no value
        for item in items:
            known += PyDict_GetItem(index, (<tuple>item)[0]) != NULL
        if known != len(items):
            raise ValueError(unknown_keys_message([(<tuple>item)[0] for item in items], keys,
                                                  index, "key"))
    for item in items:
        key = (<tuple>item)[0]
        x = (<tuple>item)[1]
        found = PyDict_GetItem(index, key)
        if found == NULL:  # not a field: ignored (unknown="ignore")
            continue
        f = <object>found
        if not _runs_only_c(<PyObject*>"", <PyObject*>x):  # a value of another type
            x = _float_value(x, keys[f]) if s.field_numeric[<Py_ssize_t>f] else str(x)
        plain[keys[f]] = x
    return plain


cdef inline Py_ssize_t hash_dict(const Spec* s, dict row, tuple keys, dict index, uint32_t* h,
                                 float* v, uint8_t* present, int32_t* idx, float* val,
                                 uint16_t* fld, const char* table=NULL,
                                 Py_ssize_t stride=0, bint scalars_only=False) except -1:
    """Hash one dict row {field name: value}; missing keys, None, NaN and '' emit nothing.

    The row's items are visited once; a key is matched to its field first against the next
    schema name, by identity or by its characters (rows in schema order, literal or decoded
    from JSON: no hashing at all), then through ``index`` (name -> position). Keys that are
    not fields are counted as the walk goes (no second pass): with ``s.strict`` a row with
    any raises ValueError naming them (unknown_keys_message), else they are ignored. (An
    empty row is legal: every field missing.) With ``scalars_only`` a value that is not a
    str, an int, a float or None raises TypeError (a JSON row's list, object or boolean),
    where it would be hashed as its text otherwise.
    Categorical values: str as UTF-8, bytes as is, anything else as str(value) (an int
    hashes as its decimal text, as it reads from a log file). Numeric values: float(value).

    Memory latency, not arithmetic, is what a row from a cold cache waits on, so the loop
    runs one item ahead: while an item is hashed, the next value's object (and an ASCII
    str's characters after its header) is prefetched. With a ``table`` (rows of ``stride``
    bytes indexed by bucket), the row of each field's bucket is prefetched as soon as it is
    hashed, so the scorer's loads overlap the rest of the hashing.

    The items are borrowed from the row (no reference counting), which is safe only while
    no Python code runs: every item is checked first (_runs_only_c), and a row with an item
    that could run Python code (a value's ``__str__``/``__float__``, a key's ``__eq__``) is
    walked again as converted by _plain_row, through references it owns.
    """
    cdef Py_ssize_t pos, guess, unknown
    cdef PyObject* key  # key and value are borrowed from the row: no reference counting
    cdef PyObject* x
    cdef PyObject* next_key
    cdef PyObject* next_x
    cdef bint more, plain = True
    while True:  # twice at most: a _plain_row holds only built-in values
        pos = guess = unknown = 0
        plain = True  # (an empty row has no item to set it)
        memset(present, 0, s.n_fields)
        more = PyDict_Next(row, &pos, &key, &x)
        while more:
            more = PyDict_Next(row, &pos, &next_key, &next_x)
            if more:
                prefetch(next_x)
                prefetch(<const char*>next_x + sizeof(PyASCIIObject))
            if scalars_only and not _json_scalar(x):
                # (names no borrowed object: formatting one could run Python code)
                raise TypeError("a value is not a string, a number or null")
            plain = _runs_only_c(key, x)
            if not plain:
                break
            guess = _hash_item(s, key, x, guess, keys, index, h, v, present, table, stride,
                               &unknown)
            key = next_key
            x = next_x
        if plain:
            if unknown and s.strict:
                # the slow path: owned references to the keys before any Python code runs
                raise ValueError(unknown_keys_message(PyDict_Keys(row), keys, index, "key"))
            return emit_row(s, h, v, present, idx, val, fld)
        row = _plain_row(s, row, keys, index, scalars_only)
