# cython: language_level=3
"""Sparse text formats (VW text, libsvm, libffm) straight from bytes into hashed CSR rows.

Like ``_parse.parse_delimited``: one call parses whole lines of ``buf[start:]`` into
preallocated arrays with the GIL released, no Python object per token, and reports bad lines
as codes with their position (worded by ``fastctr.io.formats``). Rows have a variable number of
entries, so a call also stops, without consuming the line, when the next line might not fit:
the caller grows the arrays and calls again.
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t
from libc.string cimport memchr

from rowspec cimport Spec, make_spec, murmur3_32, parse_number, find_line

cpdef enum SparseFormat:
    VW = 0
    LIBSVM = 1
    LIBFFM = 2

cpdef enum SparseErrorCode:
    # Error codes, worded by fastctr.io.formats.
    ERR_BAD_LABEL = 1
    ERR_MISSING_LABEL = 2
    ERR_BAD_WEIGHT = 3
    ERR_EXTRA_LABEL_TOKEN = 4
    ERR_NO_BAR = 5
    ERR_UNKNOWN_NAMESPACE = 6
    ERR_BAD_FEATURE = 7
    ERR_BAD_VALUE = 8
    ERR_BAD_INDEX = 9
    ERR_INDEX_RANGE = 10
    ERR_BAD_FIELD = 11
    ERR_FIELD_RANGE = 12

cdef enum:
    # Label-section tokens kept: label, importance, one extra (an error) and the tag.
    MAX_HEAD = 4

# The largest importance weight, fastctr.io.rows.MAX_WEIGHT (a test checks they agree): an
# infinite or huge one (1e39, 1e400) would turn a model's state to NaN.
cdef double MAX_WEIGHT_C = 1e6
MAX_WEIGHT = MAX_WEIGHT_C


cdef struct Options:
    uint32_t hash_seed      # seed of namespace names (VW), as FeatureHasher.hash_seed
    int32_t other_field     # VW: field of undeclared namespaces, -1 to reject them
    bint require_label
    bint hash_indices       # libsvm/libffm: hash the index token instead of using it


cdef struct Row:
    # One line's output and, on error, where it went wrong.
    int32_t* idx
    float* val
    uint16_t* fld
    Py_ssize_t k           # entries written
    float label
    float weight
    Py_ssize_t tok         # token number (0-based) of the error
    Py_ssize_t a, b        # byte span of the bad token


cdef inline bint is_space(uint8_t c) noexcept nogil:
    return c == c' ' or c == c'\t'


cdef inline bint parse_index(const uint8_t* p, Py_ssize_t n, int64_t* out) noexcept nogil:
    """A non-negative decimal integer of at most 18 digits filling exactly p[:n]."""
    cdef Py_ssize_t i
    cdef int64_t acc = 0
    if n == 0 or n > 18:
        return False
    for i in range(n):
        if not c'0' <= p[i] <= c'9':
            return False
        acc = acc * 10 + (p[i] - c'0')
    out[0] = acc
    return True


cdef inline int parse_label(const uint8_t* p, Py_ssize_t n, Row* r) noexcept nogil:
    """Labels -1/0/1 (any spelling of those numbers, e.g. +1 or 1.0) become 0/1."""
    cdef double x
    if not parse_number(p, n, &x) or not (x == -1.0 or x == 0.0 or x == 1.0):
        return ERR_BAD_LABEL
    r.label = 1.0 if x > 0 else 0.0
    return 0


cdef inline int fail(Row* r, int code, Py_ssize_t tok, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    r.tok = tok
    r.a = a
    r.b = b
    return code


cdef inline Py_ssize_t token_end(const uint8_t* base, Py_ssize_t a, Py_ssize_t le,
                                 bint stop_at_bar) noexcept nogil:
    while a < le and not is_space(base[a]) and not (stop_at_bar and base[a] == c'|'):
        a += 1
    return a


cdef int vw_head(const uint8_t* base, Py_ssize_t pos, Py_ssize_t bar, const Options* o,
                 Row* r, Py_ssize_t* n_tokens) noexcept nogil:
    """The label section ``[label [importance]] [tag]`` before the first '|' (VW's rules:
    the tag is the last token when it touches the bar or starts with an apostrophe).
    Sets ``n_tokens`` to its number of tokens."""
    cdef Py_ssize_t ta[MAX_HEAD]
    cdef Py_ssize_t tb[MAX_HEAD]
    cdef Py_ssize_t n = 0, a = pos, b
    cdef double w
    cdef int err
    while True:
        while a < bar and is_space(base[a]):
            a += 1
        if a >= bar:
            break
        b = token_end(base, a, bar, False)
        if n == MAX_HEAD:
            return fail(r, ERR_EXTRA_LABEL_TOKEN, n, a, b)
        ta[n] = a
        tb[n] = b
        n += 1
        a = b
    n_tokens[0] = n
    if n and (not is_space(base[bar - 1]) or base[ta[n - 1]] == c'\''):
        n -= 1  # the tag: not used for learning
    if n > 2:
        return fail(r, ERR_EXTRA_LABEL_TOKEN, 2, ta[2], tb[2])
    if n == 0:
        return fail(r, ERR_MISSING_LABEL, 0, pos, bar) if o.require_label else 0
    err = parse_label(base + ta[0], tb[0] - ta[0], r)
    if err:
        return fail(r, err, 0, ta[0], tb[0])
    if n == 2:
        if not parse_number(base + ta[1], tb[1] - ta[1], &w) or not (0 <= w <= MAX_WEIGHT_C):
            return fail(r, ERR_BAD_WEIGHT, 1, ta[1], tb[1])
        r.weight = <float>w
    return 0


cdef inline int32_t find_field(const Spec* s, uint32_t seed, int32_t guess) noexcept nogil:
    """The field whose seed is ``seed`` (a namespace is matched by its hashed name), or -1.

    ``guess`` is tried first: namespaces usually come in schema order.
    """
    cdef Py_ssize_t f
    if 0 <= guess < s.n_fields and s.field_seed[guess] == seed:
        return guess
    for f in range(s.n_fields):
        if s.field_seed[f] == seed:
            return <int32_t>f
    return -1


cdef int vw_line(const Spec* s, const uint8_t* base, Py_ssize_t pos, Py_ssize_t le,
                 const Options* o, Row* r) noexcept nogil:
    """``label [importance] [tag]|ns[:scale] feature[:value] ... |ns ...``."""
    cdef const uint8_t* bar_p = <const uint8_t*>memchr(base + pos, c'|', le - pos)
    cdef Py_ssize_t bar, a, b, c, tok = 0
    cdef int err
    cdef int32_t f = -1
    cdef uint32_t seed = 0
    cdef double x, scale = 1.0
    if bar_p == NULL:
        return fail(r, ERR_NO_BAR, 0, pos, le)
    bar = bar_p - base
    err = vw_head(base, pos, bar, o, r, &tok)
    if err:
        return err
    a = bar
    while a < le:  # tok: the 0-based number of the token at a, counted from the line start
        if is_space(base[a]):
            a += 1
            continue
        if base[a] == c'|':  # a namespace: its name seeds its features' hashes
            b = token_end(base, a + 1, le, True)
            c = a + 1
            while c < b and base[c] != c':':
                c += 1
            if c == a + 1:  # VW's default namespace is named " "
                seed = murmur3_32(<const uint8_t*>b" ", 1, o.hash_seed)
            else:
                seed = murmur3_32(base + a + 1, c - a - 1, o.hash_seed)
            f = find_field(s, seed, f + 1)
            if f < 0:
                f = o.other_field
                if f < 0:
                    return fail(r, ERR_UNKNOWN_NAMESPACE, tok, a + 1, c)
            scale = 1.0
            if c < b and not parse_number(base + c + 1, b - c - 1, &scale):
                return fail(r, ERR_BAD_VALUE, tok, c + 1, b)
        else:
            b = token_end(base, a, le, True)
            c = a
            while c < b and base[c] != c':':
                c += 1
            if c == a:
                return fail(r, ERR_BAD_FEATURE, tok, a, b)
            x = 1.0
            if c < b and not parse_number(base + c + 1, b - c - 1, &x):
                return fail(r, ERR_BAD_VALUE, tok, c + 1, b)
            r.idx[r.k] = murmur3_32(base + a, c - a, seed) & s.mask
            r.val[r.k] = <float>(x * scale)
            r.fld[r.k] = <uint16_t>(f + 1)
            r.k += 1
        tok += 1
        a = b
    return 0


cdef int svm_line(const Spec* s, const uint8_t* base, Py_ssize_t pos, Py_ssize_t le,
                  const Options* o, bint ffm, Row* r) noexcept nogil:
    """libsvm ``label index:value ...`` or libffm ``label field:index:value ...``."""
    cdef Py_ssize_t a = pos, b, c, d, tok = 0
    cdef int64_t f = 0, i
    cdef double x
    cdef int err
    cdef uint32_t bucket
    while a < le and is_space(base[a]):
        a += 1
    b = token_end(base, a, le, False)
    if b == a:
        return fail(r, ERR_MISSING_LABEL, 0, a, b)
    err = parse_label(base + a, b - a, r)
    if err:
        return fail(r, err, 0, a, b)
    a = b
    while a < le:
        if is_space(base[a]):
            a += 1
            continue
        tok += 1
        b = token_end(base, a, le, False)
        c = a
        if ffm:
            while c < b and base[c] != c':':
                c += 1
            if c == b or not parse_index(base + a, c - a, &f):
                return fail(r, ERR_BAD_FIELD, tok, a, b)
            if f >= s.n_fields:
                return fail(r, ERR_FIELD_RANGE, tok, a, c)
            c += 1
        d = c
        while d < b and base[d] != c':':
            d += 1
        if d == b or not parse_index(base + c, d - c, &i):
            return fail(r, ERR_BAD_INDEX, tok, a, b)
        if not parse_number(base + d + 1, b - d - 1, &x):
            return fail(r, ERR_BAD_VALUE, tok, d + 1, b)
        if o.hash_indices:
            bucket = murmur3_32(base + c, d - c, s.field_seed[f]) & s.mask
        elif i > s.mask:
            return fail(r, ERR_INDEX_RANGE, tok, c, d)
        else:
            bucket = <uint32_t>i
        r.idx[r.k] = bucket
        r.val[r.k] = <float>x
        r.fld[r.k] = <uint16_t>(f + 1)
        r.k += 1
        a = b
    return 0


def parse_sparse(const uint8_t[::1] buf, Py_ssize_t start, int fmt, tuple spec, tuple options,
                 tuple out, bint skip_errors, int64_t[:, ::1] errors):
    """Parse complete lines of ``buf[start:]`` in format ``fmt`` into ``out`` = (indptr,
    indices, values, fields, labels, weights), starting at row 0 of ``out``.

    ``options`` = (hash_seed, other_field, require_label, hash_indices). Returns (n_rows, end,
    n_lines, n_errors) as ``_parse.parse_delimited`` does, errors recorded the same way
    (line index, token number, code, token start, token end). Parsing also stops before a
    line that might not fit in the entries left in ``out``.
    """
    cdef Spec s = make_spec(spec)
    cdef Options o
    o.hash_seed = options[0]
    o.other_field = options[1]
    o.require_label = options[2]
    o.hash_indices = options[3]
    cdef int64_t[::1] indptr = out[0]
    cdef int32_t[::1] indices = out[1]
    cdef float[::1] values = out[2]
    cdef uint16_t[::1] fields = out[3]
    cdef float[::1] labels = out[4]
    cdef float[::1] weights = out[5]
    cdef Py_ssize_t max_rows = labels.shape[0], room = indices.shape[0]
    cdef Py_ssize_t end = buf.shape[0], pos = start, n_rows = 0, n_lines = 0, n_err = 0
    cdef Py_ssize_t line_end, le
    cdef int err
    cdef Row r
    cdef const uint8_t* base = &buf[0] if end > 0 else NULL
    with nogil:
        r.k = indptr[0]
        while n_rows < max_rows and pos < end:
            line_end = find_line(base, pos, end, &le)
            if line_end < 0:
                break
            # a token takes at least 2 bytes with its separator; plus the bias
            if r.k + 2 + (le - pos + 1) // 2 > room:
                break
            n_lines += 1
            if le == pos:  # blank line
                pos = line_end + 1
                continue
            r.idx = &indices[0]
            r.val = &values[0]
            r.fld = &fields[0]
            indices[r.k] = s.bias_bucket
            values[r.k] = 1.0
            fields[r.k] = 0
            r.k += 1
            r.label = 0.0
            r.weight = 1.0
            if fmt == VW:
                err = vw_line(&s, base, pos, le, &o, &r)
            else:
                err = svm_line(&s, base, pos, le, &o, fmt == LIBFFM, &r)
            if err:
                r.k = indptr[n_rows]  # drop what the bad line wrote
                if n_err < errors.shape[0]:
                    errors[n_err, 0] = n_lines - 1
                    errors[n_err, 1] = r.tok
                    errors[n_err, 2] = err
                    errors[n_err, 3] = r.a
                    errors[n_err, 4] = r.b
                n_err += 1
                if not skip_errors:
                    break
                pos = line_end + 1
                continue
            labels[n_rows] = r.label
            weights[n_rows] = r.weight
            n_rows += 1
            indptr[n_rows] = r.k
            pos = line_end + 1
    return n_rows, pos, n_lines, n_err
