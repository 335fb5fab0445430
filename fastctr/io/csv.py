"""Delimited text with a header naming the columns (``sep`` ``","`` or ``"\\t"``), e.g. an
Avazu click log: a label column, numeric columns, columns to ignore, and every other column
categorical. Fields are split at every separator: quoting is not interpreted (a quoted
header is rejected)."""
from __future__ import annotations

from collections.abc import Sequence

from fastctr._validation import Constraint, InstanceOf, StrSequence, validate_params
from fastctr.exceptions import ParseError
from fastctr.io.hashing import FeatureHasher
from fastctr.io.reader import READER_CONSTRAINTS, DelimitedReader
from fastctr.io.sources import Source, discovery_head, source_name


class CSVReader(DelimitedReader):
    """Batches of HashedRows from delimited text whose header names the columns.

    Parameters
    ----------
    source : path, '-', binary file or iterable of bytes
    hasher : FeatureHasher
        Its fields are the header's feature columns; header columns that are not fields
        (nor the label) are ignored, and a field missing from the header is an error.
    label : str, optional
        The label column (values -1, 0 or 1); None for unlabelled data.
    sep : str or bytes, default=","
    batch_size, on_error
        As in :class:`~fastctr.io.reader.BlockReader`.
    """

    has_header = True

    def __init__(self, source: Source, hasher: FeatureHasher, *, label: str | None = None,
                 sep: str | bytes = ",", batch_size: int = 100_000, on_error: str = "raise") -> None:
        super().__init__(source, (), hasher, batch_size=batch_size, sep=_sep_byte(sep),
                         on_error=on_error)
        self.label = label

    def _read_header(self, line: bytes) -> None:
        header = header_columns(line, self.sep, self.name)
        missing = [f for f in self.hasher.fields if f not in header]
        if self.label is not None and self.label not in header:
            missing.insert(0, self.label)
        if missing:
            raise ParseError(f"{self.name}, line 1: columns {missing} are not in the header {header}")
        self._set_columns(header, label=self.label)


def header_columns(line: bytes, sep: bytes, name: str = "<bytes>") -> list[str]:
    """Column names from a header line (UTF-8, unquoted, distinct and non-empty); anything
    else is a ParseError naming ``name``, line 1 and the column.

    Examples
    --------
    >>> header_columns(b"id,click,hour", b",")
    ['id', 'click', 'hour']
    >>> header_columns(b"id,click,id", b",", "log.csv")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fastctr.exceptions.ParseError: log.csv, line 1: column 3 of the header is named 'id' like ...
    """
    where = f"{name}, line 1"
    if not line.strip():
        raise ParseError(f"{where}: expected a header naming the columns; the line is empty")
    if b'"' in line:
        raise ParseError(f"{where}: quoted CSV is not supported (header {line[:80]!r}); write it "
                         "without quotes, e.g. pandas to_csv(quoting=csv.QUOTE_NONE)")
    raw = line.split(sep)
    columns: list[str] = []
    for number, cell in enumerate(raw, 1):
        try:
            column = cell.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise ParseError(f"{where}: column {number} of the header, {cell[:60]!r}, is not UTF-8 "
                             "text: expected UTF-8 column names") from None
        if not column:
            raise ParseError(f"{where}: column {number} of the header has no name: expected a "
                             f"name for every column (header {line[:80]!r})")
        if column in columns:
            raise ParseError(f"{where}: column {number} of the header is named {column!r} like "
                             f"column {columns.index(column) + 1}: expected distinct column names")
        columns.append(column)
    return columns


class _OneByte(Constraint):
    """A separator: one byte, as a str or bytes (',' or '\\t')."""

    def is_satisfied_by(self, value) -> bool:
        return isinstance(value, (str, bytes)) and len(
            value.encode() if isinstance(value, str) else value) == 1

    def __str__(self) -> str:
        return "one byte as a str or bytes, e.g. ',' or '\\t'"


CSV_CONSTRAINTS = {
    "label": [None, InstanceOf(str)],
    "ignore": [StrSequence(distinct=False)],
    "numeric": [StrSequence(distinct=False)],
    "sep": [_OneByte()],
}


def _sep_byte(sep: str | bytes) -> bytes:
    validate_params(CSV_CONSTRAINTS, {"sep": sep}, "read_csv")
    return sep.encode() if isinstance(sep, str) else bytes(sep)


def csv_hasher(source: Source | None, *, label: str | None = None, ignore: Sequence[str] = (),
               numeric: Sequence[str] = (), sep: str | bytes = ",", **hasher_params) -> FeatureHasher:
    """The FeatureHasher of a CSV log: every header column but the label and the ignored ones
    is a field, categorical unless numeric; see :func:`~fastctr.io.detect.hasher_for`.

    Examples
    --------
    >>> csv_hasher(b"id,click,site\\n1,0,a\\n", label="click", ignore=["id"]).fields
    ('site',)
    """
    head, name = discovery_head(source, "a hasher"), source_name(source)
    columns = header_columns(head.split(b"\n", 1)[0].rstrip(b"\r"), _sep_byte(sep), name)
    unknown = [c for c in [label, *ignore, *numeric] if c is not None and c not in columns]
    if unknown:
        raise ParseError(f"{name}, line 1: columns {unknown} are not in the header {columns}")
    fields = [c for c in columns if c != label and c not in set(ignore)]
    return FeatureHasher(fields=fields, numeric=list(numeric), **hasher_params)


def read_csv(source: Source, hasher: FeatureHasher | None = None, *, label: str | None = None,
             ignore: Sequence[str] = (), numeric: Sequence[str] = (), sep: str | bytes = ",",
             batch_size: int = 100_000, on_error: str = "raise") -> CSVReader:
    """Read delimited text with a header (e.g. an Avazu click log) in hashed batches.

    Parameters
    ----------
    source : path, '-', binary file or iterable of bytes
    hasher : FeatureHasher, optional
        By default ``csv_hasher(source, label=, ignore=, numeric=, sep=)``: every column
        but the label and the ignored ones is a field, categorical unless numeric.
    label : str, optional
        The label column; None for unlabelled data.
    ignore, numeric : sequence of str
        Columns to leave out, and columns holding numbers (for the default hasher).
    sep : str or bytes, default=","
    batch_size, on_error
        As in :class:`~fastctr.io.reader.BlockReader`.

    Examples
    --------
    >>> data = b"id,click,hour,site\\n1,0,14,a\\n2,1,15,\\n"
    >>> batch = next(iter(read_csv(data, label="click", ignore=["id"], numeric=["hour"])))
    >>> batch.labels.tolist(), batch.fields.tolist()
    ([0.0, 1.0], [0, 1, 2, 0, 1])
    """
    validate_params({**READER_CONSTRAINTS, **CSV_CONSTRAINTS},
                    {"hasher": hasher, "label": label, "ignore": ignore, "numeric": numeric,
                     "sep": sep, "batch_size": batch_size, "on_error": on_error}, "read_csv")
    if hasher is None:
        hasher = csv_hasher(source, label=label, ignore=ignore, numeric=numeric, sep=sep)
    return CSVReader(source, hasher, label=label, sep=sep, batch_size=batch_size, on_error=on_error)
