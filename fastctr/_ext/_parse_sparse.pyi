"""Type stubs of the compiled ``fastctr._ext._parse_sparse`` (src_ext/_parse_sparse.pyx)."""
from enum import IntEnum

import numpy as np
import numpy.typing as npt

#: the largest importance weight a VW line may give (fastctr.io.rows.MAX_WEIGHT)
MAX_WEIGHT: float

class SparseFormat(IntEnum):
    VW = 0
    LIBSVM = 1
    LIBFFM = 2

class SparseErrorCode(IntEnum):
    """Error codes of bad lines, worded by :mod:`fastctr.io.sparse`."""

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

def parse_sparse(
    buf: bytes,
    start: int,
    fmt: int,
    spec: tuple,
    options: tuple[int, int, bool, bool],
    out: tuple[np.ndarray, ...],
    skip_errors: bool,
    errors: npt.NDArray[np.int64],
) -> tuple[int, int, int, int]:
    """Parse complete lines of ``buf[start:]`` in format ``fmt`` into ``out`` = (indptr,
    indices, values, fields, labels, weights): (n_rows, end, n_lines, n_errors).
    ``options`` = (hash_seed, other_field, require_label, hash_indices)."""
