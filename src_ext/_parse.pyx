# cython: language_level=3
"""Delimited log lines (Criteo TSV, CSV) straight from bytes into hashed CSR rows.

One call parses whole lines from ``buf[start:]`` until ``max_rows`` rows are written or no
complete line is left; the GIL is released while it runs and no Python object is made per
token. Errors are reported as codes with their position; the Python reader words them.
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t

from rowspec cimport (Spec, make_spec, emit_row, find_line, hash_fields, COL_LABEL, COL_IGNORE,
                      LINE_TOO_MANY_FIELDS, LINE_BAD_LABEL, LINE_BAD_NUMBER, LINE_MISSING_LABEL)

import numpy as np

cpdef enum ColumnRole:
    # Roles in col_field; values >= 0 are field indices.
    LABEL = COL_LABEL
    IGNORE = COL_IGNORE

cpdef enum ParseErrorCode:
    # Error codes, worded by fastctr.io.readers.
    ERR_TOO_MANY_FIELDS = LINE_TOO_MANY_FIELDS
    ERR_BAD_LABEL = LINE_BAD_LABEL
    ERR_BAD_NUMBER = LINE_BAD_NUMBER
    ERR_MISSING_LABEL = LINE_MISSING_LABEL


def parse_delimited(const uint8_t[::1] buf, Py_ssize_t start, const int32_t[::1] col_field,
                    tuple spec, unsigned char sep, tuple out, bint skip_errors,
                    int64_t[:, ::1] errors):
    """Parse complete lines of ``buf[start:]`` into ``out`` = (indptr, indices, values,
    fields, labels), starting at row 0 of ``out``.

    Returns (n_rows, end, n_lines, n_errors): rows written, the offset after the last consumed
    line, lines consumed (blank and bad lines included) and errors seen. Each error is
    recorded in ``errors`` (while rows are left) as (line index from ``start``, column, code,
    token start, token end). Without ``skip_errors`` parsing stops at the first error.
    """
    cdef Spec s = make_spec(spec)
    cdef int64_t[::1] indptr = out[0]
    cdef int32_t[::1] indices = out[1]
    cdef float[::1] values = out[2]
    cdef uint16_t[::1] fields = out[3]
    cdef float[::1] labels = out[4]
    cdef Py_ssize_t max_rows = labels.shape[0], n_cols = col_field.shape[0]
    cdef Py_ssize_t end = buf.shape[0], pos = start, n_rows = 0, n_lines = 0, n_err = 0
    cdef Py_ssize_t line_end, le, a, b, col, k
    cdef int err
    cdef float label
    cdef const uint8_t* base = &buf[0] if end > 0 else NULL
    cdef const int32_t* roles = &col_field[0] if n_cols > 0 else NULL
    h_a = np.empty(max(s.n_fields, 1), np.uint32)
    v_a = np.empty(max(s.n_fields, 1), np.float32)
    present_a = np.zeros(max(s.n_fields, 1), np.uint8)
    cdef uint32_t[::1] h = h_a
    cdef float[::1] v = v_a
    cdef uint8_t[::1] present = present_a
    with nogil:
        k = indptr[0]
        while n_rows < max_rows and pos < end:
            line_end = find_line(base, pos, end, &le)
            if line_end < 0:
                break
            n_lines += 1
            if le == pos:  # blank line
                pos = line_end + 1
                continue
            present[:] = 0
            a = pos
            err = hash_fields(&s, base, &a, le, roles, n_cols, sep, &h[0], &v[0],
                              &present[0], &label, &col, &b)
            if err:
                if n_err < errors.shape[0]:
                    errors[n_err, 0] = n_lines - 1
                    errors[n_err, 1] = col
                    errors[n_err, 2] = err
                    errors[n_err, 3] = a
                    errors[n_err, 4] = b
                n_err += 1
                if not skip_errors:
                    break
                pos = line_end + 1
                continue
            k += emit_row(&s, &h[0], &v[0], &present[0], &indices[k], &values[k], &fields[k])
            labels[n_rows] = label
            n_rows += 1
            indptr[n_rows] = k
            pos = line_end + 1
    return n_rows, pos, n_lines, n_err
