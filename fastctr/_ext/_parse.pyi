"""Type stubs of the compiled ``fastctr._ext._parse`` (src_ext/_parse.pyx)."""
from enum import IntEnum

import numpy as np
import numpy.typing as npt

class ColumnRole(IntEnum):
    """Roles in ``col_field``; values >= 0 are field indices."""

    LABEL = ...
    IGNORE = ...

class ParseErrorCode(IntEnum):
    """Error codes of bad lines, worded by :mod:`fastctr.io.reader`."""

    ERR_TOO_MANY_FIELDS = ...
    ERR_BAD_LABEL = ...
    ERR_BAD_NUMBER = ...
    ERR_MISSING_LABEL = ...

def parse_delimited(
    buf: bytes,
    start: int,
    col_field: npt.NDArray[np.int32],
    spec: tuple,
    sep: int,
    out: tuple[np.ndarray, ...],
    skip_errors: bool,
    errors: npt.NDArray[np.int64],
) -> tuple[int, int, int, int]:
    """Parse complete lines of ``buf[start:]`` into ``out`` = (indptr, indices, values, fields,
    labels): (n_rows, end, n_lines, n_errors)."""
