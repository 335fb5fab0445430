"""Stream readers: delimited click logs (Criteo TSV) to batches of HashedRows.

Bytes are read in blocks, gzip is detected by content, and each block is parsed and hashed
in compiled code (``fastctr._ext._parse``) with the GIL released. Memory stays proportional
to the batch: one block of bytes plus the arrays of one batch.
"""
from __future__ import annotations

import gzip
import io
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Union

import numpy as np

from fastctr._ext import _parse
from fastctr._rows import HashedRows
from fastctr.hashing import CRITEO_FIELDS, FeatureHasher

log = logging.getLogger(__name__)

Source = Union[str, os.PathLike, BinaryIO, Iterable[bytes]]
BLOCK_BYTES = 1 << 20
MAX_ERROR_EXAMPLES = 5
LABEL = "label"

_EXPECTED = {
    _parse.ParseErrorCode.ERR_TOO_MANY_FIELDS: "more fields than the schema's {n_cols}",
    _parse.ParseErrorCode.ERR_BAD_LABEL: "a label 0 or 1",
    _parse.ParseErrorCode.ERR_BAD_NUMBER: "a number (or an empty field for a missing value)",
    _parse.ParseErrorCode.ERR_MISSING_LABEL: "a label 0 or 1, found an empty field",
}


class ParseError(ValueError):
    """A line of a log file does not match its format; the message names file, line, field."""


@dataclass
class ErrorReport:
    """Bad lines met by a reader with ``on_error="skip"``: a count and the first examples."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, message: str) -> None:
        self.count += 1
        if len(self.examples) < MAX_ERROR_EXAMPLES:
            self.examples.append(message)


def open_source(source: Source) -> tuple[Iterator[bytes], str]:
    """Blocks of decompressed bytes from a path, '-' (stdin), a binary file or bytes chunks.

    Gzip is recognised by its magic bytes, not by the file name.
    """
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        if name == "-":
            return _blocks(_maybe_gunzip(sys.stdin.buffer)), "<stdin>"
        if not os.path.exists(name):
            raise FileNotFoundError(f"no such data file: {name!r}")
        return _file_blocks(name), name
    if hasattr(source, "read"):
        return _blocks(_maybe_gunzip(source)), getattr(source, "name", "<stream>")
    if isinstance(source, (bytes, bytearray)):
        return iter([bytes(source)]), "<bytes>"
    return iter(source), "<chunks>"


def _file_blocks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as raw:
        yield from _blocks(_maybe_gunzip(raw))


def _maybe_gunzip(stream: BinaryIO) -> BinaryIO:
    if not hasattr(stream, "peek"):
        stream = io.BufferedReader(stream)
    return gzip.GzipFile(fileobj=stream) if stream.peek(2)[:2] == b"\x1f\x8b" else stream


def _blocks(stream: BinaryIO) -> Iterator[bytes]:
    while block := stream.read(BLOCK_BYTES):
        yield block


class DelimitedReader:
    """Batches of HashedRows from a delimited log with a fixed column layout.

    Parameters
    ----------
    source : path, '-', binary file or iterable of bytes
        Where the lines come from; gzip is detected by content.
    columns : sequence of str
        Column names in file order: ``"label"`` for the label, a hasher field name, or
        anything else for a column to ignore.
    hasher : FeatureHasher
        Hashes the field columns.
    batch_size : int, default=100_000
        Rows per batch.
    sep : bytes, default=b"\\t"
        The field delimiter.
    on_error : {"raise", "skip"}, default="raise"
        ``"raise"`` stops at the first bad line with a :class:`ParseError` naming file, line,
        field and what was expected; ``"skip"`` drops bad lines, counts them in
        :attr:`errors` and logs the count and the first examples at the end.

    Lines with fewer columns than the layout are read with the missing trailing columns empty
    (some Criteo copies strip trailing empty fields); blank lines are skipped; a last line
    without a newline is read; ``\\r\\n`` endings are accepted.
    """

    def __init__(self, source: Source, columns, hasher: FeatureHasher, *, batch_size: int = 100_000,
                 sep: bytes = b"\t", on_error: str = "raise") -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip'. Got {on_error!r} instead.")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1. Got {batch_size!r} instead.")
        self.source = source
        self.columns = tuple(columns)
        self.hasher = hasher
        self.batch_size = int(batch_size)
        self.sep = sep
        self.on_error = on_error
        self.errors = ErrorReport()
        position = {name: i for i, name in enumerate(hasher.fields)}
        self._col_field = np.array(
            [_parse.ColumnRole.LABEL if c == LABEL else position.get(c, _parse.ColumnRole.IGNORE) for c in self.columns],
            np.int32,
        )
        self.labeled = LABEL in self.columns

    def __iter__(self) -> Iterator[HashedRows]:
        blocks, self.name = open_source(self.source)
        width = self.hasher.n_fields + len(self.hasher.crosses)
        batch = _Batch(self.batch_size, width)
        errors = np.zeros((MAX_ERROR_EXAMPLES if self.on_error == "skip" else 1, 5), np.int64)
        lines_done = 0
        tail = b""
        for block in _with_final_newline(blocks):
            buf = tail + block if tail else block
            pos = 0
            while True:
                n_rows, pos2, n_lines, n_err = _parse.parse_delimited(
                    buf, pos, self._col_field, self.hasher._spec, ord(self.sep),
                    batch.views(), self.on_error == "skip", errors,
                )
                for e in errors[: min(n_err, len(errors))]:
                    self._on_bad_line(buf, pos, lines_done, e)
                for _ in range(n_err - len(errors)):  # past the recorded examples: count only
                    self.errors.count += 1
                batch.filled += n_rows
                lines_done += n_lines
                pos = pos2
                if batch.full:
                    yield batch.take(self.labeled)
                    batch = _Batch(self.batch_size, width)
                else:
                    break
            tail = buf[pos:]
        if batch.filled:
            yield batch.take(self.labeled)
        if self.errors.count:
            log.warning("%s: skipped %d bad lines; first ones:\n  %s", self.name,
                        self.errors.count, "\n  ".join(self.errors.examples))

    def _on_bad_line(self, buf: bytes, start: int, lines_done: int, err: np.ndarray) -> None:
        rel_line, col, code, a, b = (int(x) for x in err)
        line_no = lines_done + rel_line + 1
        name = self.columns[col] if col < len(self.columns) else f"#{col + 1}"
        expected = _EXPECTED[code].format(n_cols=len(self.columns))
        token = bytes(buf[a:b])[:60]
        if code == _parse.ParseErrorCode.ERR_TOO_MANY_FIELDS:
            what = f"line has {expected}"
        else:
            what = f"field {name!r} (column {col + 1}): expected {expected}, got {token!r}"
        message = f"{self.name}, line {line_no}: {what}"
        if self.on_error == "raise":
            raise ParseError(message + " (pass on_error='skip' to drop bad lines)")
        self.errors.add(message)


def _with_final_newline(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """The blocks, plus a newline if the data does not end with one (so its last line parses)."""
    last = b""
    for block in blocks:
        if block:
            last = block
            yield block
    if last and not last.endswith(b"\n"):
        yield b"\n"


class _Batch:
    """Preallocated arrays for one batch; rows are appended by the parser through views."""

    def __init__(self, n_rows: int, width: int) -> None:
        self.indptr = np.zeros(n_rows + 1, np.int64)
        self.indices = np.empty(n_rows * width, np.int32)
        self.values = np.empty(n_rows * width, np.float32)
        self.fields = np.empty(n_rows * width, np.uint16)
        self.labels = np.empty(n_rows, np.float32)
        self.filled = 0

    @property
    def full(self) -> bool:
        return self.filled == self.labels.shape[0]

    def views(self) -> tuple:
        f = self.filled
        return (self.indptr[f:], self.indices, self.values, self.fields, self.labels[f:])

    def take(self, labeled: bool) -> HashedRows:
        n = self.filled
        nnz = self.indptr[n]
        return HashedRows(self.indptr[: n + 1], self.indices[:nnz], self.values[:nnz],
                          self.fields[:nnz], self.labels[:n] if labeled else None)


def criteo_columns(labeled: bool = True) -> tuple[str, ...]:
    """Column layout of Criteo Kaggle TSV: label (if labeled), I1..I13, C1..C26."""
    return ((LABEL,) if labeled else ()) + CRITEO_FIELDS


def read_criteo(source: Source, hasher: FeatureHasher | None = None, *, labeled: bool | None = None,
                batch_size: int = 100_000, on_error: str = "raise") -> DelimitedReader:
    """Read a Criteo Kaggle TSV log (labelled: 40 fields, unlabelled: 39) in hashed batches.

    Parameters
    ----------
    source : path, '-', binary file or iterable of bytes
        The log; gzip is detected by content.
    hasher : FeatureHasher, optional
        Defaults to ``FeatureHasher()`` (the Criteo schema, 2**22 buckets).
    labeled : bool, optional
        Whether lines start with a label. By default it is read off the first line
        (40 fields: labelled; 39: unlabelled); a source that cannot be peeked is labelled.
    batch_size, on_error
        As in :class:`DelimitedReader`.

    Examples
    --------
    >>> lines = b"1\\t3\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t68fd1e64" + b"\\t" * 25 + b"\\n"
    >>> batch = next(iter(read_criteo(lines)))
    >>> batch.n_rows, batch.labels.tolist(), batch.fields.tolist()
    (1, [1.0], [0, 1, 14])
    """
    hasher = FeatureHasher() if hasher is None else hasher
    if labeled is None:
        labeled = _sniff_labeled(source)
    return DelimitedReader(source, criteo_columns(labeled), hasher, batch_size=batch_size,
                           on_error=on_error)


def _sniff_labeled(source: Source) -> bool:
    """True when the first line of a path or bytes source has 40 fields (or is unknown)."""
    if isinstance(source, (bytes, bytearray)):
        head = bytes(source[:65536])
    elif isinstance(source, (str, os.PathLike)) and os.fspath(source) != "-" and os.path.exists(source):
        with open(source, "rb") as raw:
            head = _maybe_gunzip(raw).read(65536)
    else:
        return True
    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    return first.count(b"\t") + 1 != len(CRITEO_FIELDS)
