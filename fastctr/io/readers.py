"""Stream readers: click logs to batches of HashedRows (Criteo TSV here; the other formats,
built on :class:`BlockReader`, in :mod:`fastctr.io.formats`).

Bytes are read in blocks, gzip is detected by content, and each block is parsed and hashed
in compiled code (``fastctr._ext._parse``) with the GIL released. Memory stays proportional
to the batch: one block of bytes plus the arrays of one batch.
"""
from __future__ import annotations

import gzip
import io
import itertools
import logging
import os
import sys
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Union

import numpy as np

from fastctr.io.ahead import read_ahead
from fastctr._ext import _parse
from fastctr.io.rows import HashedRows
from fastctr.io.hashing import CRITEO_FIELDS, FeatureHasher

log = logging.getLogger(__name__)

Source = Union[str, os.PathLike, BinaryIO, Iterable[bytes]]
BLOCK_BYTES = 1 << 20
# Lines per chunk for parallel parsing: small enough that a chunk's bytes and rows are still
# cached when they are learned (in paired runs of train(threads=2) on 1M synthetic rows,
# 16K-32K-line chunks scaled better than 64K-100K-line ones).
CHUNK_ROWS = 1 << 15
MAX_ERROR_EXAMPLES = 5
LABEL = "label"
RAISE_HINT = " (pass on_error='skip' to drop bad lines)"

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
    """What a read met: lines read, and bad lines (a count and the first examples) when
    reading with ``on_error="skip"``."""

    count: int = 0
    lines: int = 0
    first: list[tuple[str, int, str]] = field(default_factory=list)  # (source, line, what)

    @property
    def examples(self) -> list[str]:
        return [f"{name}, line {line}: {what}" for name, line, what in self.first]

    def add(self, name: str, line: int, what: str) -> None:
        self.count += 1
        if len(self.first) < MAX_ERROR_EXAMPLES:
            self.first.append((name, line, what))

    def merge(self, later: ErrorReport, lines_before: int) -> None:
        """Add the report of a later part of the source, whose lines it counts from 0."""
        self.count += later.count
        self.lines += later.lines
        room = MAX_ERROR_EXAMPLES - len(self.first)
        self.first += [(name, line + lines_before, what) for name, line, what in later.first[:room]]


def open_source(source: Source) -> tuple[Iterator[bytes], str]:
    """Blocks of decompressed bytes from a path, '-' (stdin), a binary file or bytes chunks.

    Gzip is recognised by its magic bytes, not by the file name.
    """
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        if name == "-":
            return _blocks(sys.stdin.buffer, "<stdin>"), "<stdin>"
        if not os.path.exists(name):
            raise FileNotFoundError(f"no such data file: {name!r}")
        return _file_blocks(name), name
    if hasattr(source, "read"):
        name = getattr(source, "name", "<stream>")
        return _blocks(source, name), name
    if isinstance(source, (bytes, bytearray)):
        return iter([bytes(source)]), "<bytes>"
    return iter(source), "<chunks>"


def _file_blocks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as raw:
        yield from _blocks(raw, path)


def _blocks(stream: BinaryIO, name: str) -> Iterator[bytes]:
    """Blocks of a stream. A gzip stream is inflated ahead by a background thread (zlib
    releases the GIL), so inflating overlaps parsing and learning instead of adding to them."""
    stream = _maybe_gunzip(stream)
    if isinstance(stream, gzip.GzipFile):
        return read_ahead(_inflated_blocks(stream, name))
    return _read_blocks(stream)


def _maybe_gunzip(stream: BinaryIO) -> BinaryIO:
    if not hasattr(stream, "peek"):
        stream = io.BufferedReader(stream)
    return gzip.GzipFile(fileobj=stream) if stream.peek(2)[:2] == b"\x1f\x8b" else stream


def _read_blocks(stream: BinaryIO) -> Iterator[bytes]:
    while block := stream.read(BLOCK_BYTES):
        yield block


def _inflated_blocks(stream: gzip.GzipFile, name: str) -> Iterator[bytes]:
    """The blocks of a gzip stream; a truncated or corrupt one raises a ParseError naming the
    source, after every block before the damage (those lines are kept)."""
    inflated = 0
    try:
        for block in _read_blocks(stream):
            inflated += len(block)
            yield block
    except (EOFError, OSError, zlib.error) as error:
        raise ParseError(f"{name}: the gzip data is truncated or corrupt after {inflated:,} "
                         f"bytes of text ({error})") from None


class BlockReader:
    """The loop every format shares: blocks of bytes -> a compiled parser -> batches.

    A format supplies :meth:`_parse` (one call of its parser over a block) and
    :meth:`_describe` (the wording of one of its error codes); this class owns the source,
    gzip, lines straddling blocks, batching, line numbers and the error policy.

    Parameters
    ----------
    source : path, '-', binary file or iterable of bytes
        Where the lines come from; gzip is detected by content.
    batch_size : int, default=100_000
        Rows per batch.
    on_error : {"raise", "skip"}, default="raise"
        ``"raise"`` stops at the first bad line with a :class:`ParseError` naming file, line,
        field and what was expected; ``"skip"`` drops bad lines, counts them in
        :attr:`errors` and logs the count and the first examples at the end.
    """

    #: whether batches carry labels / importance weights
    labeled = True
    weighted = False
    #: whether the first line is a header, handed to :meth:`_read_header`
    has_header = False

    def __init__(self, source: Source, *, batch_size: int = 100_000, on_error: str = "raise") -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip'. Got {on_error!r} instead.")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1. Got {batch_size!r} instead.")
        self.source = source
        self.batch_size = int(batch_size)
        self.on_error = on_error
        self.errors = ErrorReport()

    def _width(self) -> int:
        """Entries per row to allocate at first (sparse formats grow their batch as needed)."""
        return 16

    def _parse(self, buf: bytes, pos: int, batch: _Batch, errors: np.ndarray) -> tuple:
        """Parse ``buf[pos:]`` into ``batch``: (n_rows, end, n_lines, n_errors)."""
        raise NotImplementedError

    def _describe(self, code: int, col: int, token: bytes) -> str:
        """What is wrong with token number ``col`` (0-based) of a line, in words."""
        raise NotImplementedError

    def _read_header(self, line: bytes) -> None:
        raise NotImplementedError

    def __iter__(self) -> Iterator[HashedRows]:
        blocks, lines_done = self._open()
        yield from self._batches(blocks, lines_done, self.batch_size, self.errors)
        self._warn_skipped()

    def chunks(self, rows: int | None = None) -> Iterator[Chunk]:
        """The source cut at line ends into :class:`Chunk` s of about ``rows`` lines (by
        default ``batch_size``, at most CHUNK_ROWS), each parsed on its own, anywhere:
        parsing releases the GIL.

        This is how ``train(..., threads=N)`` parses in N threads. Take the chunks' rows in
        order and call :meth:`Chunk.done` on each: it numbers bad lines and applies
        ``on_error`` exactly as iterating the reader does.
        """
        rows = min(self.batch_size, CHUNK_ROWS) if rows is None else rows
        blocks, self._lines_taken = self._open()
        for run in _line_runs(blocks, rows):
            yield Chunk(self, run)
        yield Chunk(self, [], last=True)

    def _open(self) -> tuple[Iterator[bytes], int]:
        """Blocks of the source after its header (read here), and the lines before them."""
        blocks, self.name = open_source(self.source)
        blocks = _with_final_newline(blocks)
        if not self.has_header:
            return blocks, 0
        header, blocks = _split_first_line(blocks)
        self._read_header(header)
        return blocks, 1

    def _batches(self, blocks: Iterable[bytes], lines_done: int, batch_size: int,
                 report: ErrorReport) -> Iterator[HashedRows]:
        """Batches of ``batch_size`` rows from blocks that start at line ``lines_done + 1``."""
        entries = batch_size * self._width()
        batch = _Batch(batch_size, entries)
        errors = np.zeros((MAX_ERROR_EXAMPLES if self.on_error == "skip" else 1, 5), np.int64)
        tail = b""
        for block in blocks:
            buf = tail + block if tail else block
            pos = 0
            while True:
                n_rows, pos2, n_lines, n_err = self._parse(buf, pos, batch, errors)
                for e in errors[: min(n_err, len(errors))]:
                    self._on_bad_line(buf, lines_done, e, report)
                report.count += max(0, n_err - len(errors))  # past the recorded examples
                batch.filled += n_rows
                lines_done += n_lines
                pos = pos2
                if batch.full:
                    yield batch.take(self.labeled, self.weighted)
                    batch = _Batch(batch_size, entries)
                elif buf.find(b"\n", pos) >= 0:  # stopped short of a whole line: out of room
                    entries = batch.grow()
                else:
                    break
            tail = buf[pos:]
        report.lines = lines_done
        if batch.filled:
            yield batch.take(self.labeled, self.weighted)

    def _warn_skipped(self) -> None:
        if self.errors.count:
            log.warning("%s: skipped %d bad lines; first ones:\n  %s", self.name,
                        self.errors.count, "\n  ".join(self.errors.examples))

    def _on_bad_line(self, buf: bytes, lines_done: int, err: np.ndarray,
                     report: ErrorReport) -> None:
        rel_line, col, code, a, b = (int(x) for x in err)
        report.add(self.name, lines_done + rel_line + 1,
                   self._describe(code, col, bytes(buf[a:b])[:60]))
        if self.on_error == "raise":
            raise ParseError(report.examples[-1] + RAISE_HINT)


class Chunk:
    """A run of whole lines of a reader's source, parsed on demand (see
    :meth:`BlockReader.chunks`).

    :meth:`parse` may run in any thread. :meth:`done` is called in chunk order once the rows
    are taken: it numbers the chunk's lines after the earlier chunks', then raises its bad
    line (``on_error="raise"``) or adds them to the reader's report, which the last (empty)
    chunk logs.
    """

    def __init__(self, reader: BlockReader, blocks: list[bytes], last: bool = False) -> None:
        self.reader = reader
        self.blocks = blocks
        self.last = last
        self.report = ErrorReport()  # lines counted from the chunk's start
        self.failed = False

    def parse(self) -> list[HashedRows]:
        """The chunk's rows, in batches of at most ``batch_size`` (none if a line is bad and
        the reader raises: :meth:`done` raises it)."""
        try:
            return list(self.reader._batches(self.blocks, 0, self.reader.batch_size, self.report))
        except ParseError:
            self.failed = True
            return []

    def done(self) -> None:
        reader = self.reader
        before = reader._lines_taken
        reader._lines_taken += self.report.lines
        if self.failed:
            name, line, what = self.report.first[0]
            raise ParseError(f"{name}, line {before + line}: {what}{RAISE_HINT}")
        reader.errors.merge(self.report, before)
        if self.last:
            reader._warn_skipped()


class DelimitedReader(BlockReader):
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
        As in :class:`BlockReader`.

    Lines with fewer columns than the layout are read with the missing trailing columns empty
    (some Criteo copies strip trailing empty fields); blank lines are skipped; a last line
    without a newline is read; ``\\r\\n`` endings are accepted.
    """

    def __init__(self, source: Source, columns, hasher: FeatureHasher, *, batch_size: int = 100_000,
                 sep: bytes = b"\t", on_error: str = "raise") -> None:
        super().__init__(source, batch_size=batch_size, on_error=on_error)
        self.hasher = hasher
        self.sep = sep
        self._set_columns(columns)

    def _set_columns(self, columns, label: str | None = LABEL) -> None:
        """Map columns to roles: the column named ``label``, a hasher field, or ignored."""
        self.columns = tuple(columns)
        position = {name: i for i, name in enumerate(self.hasher.fields)}
        self._col_field = np.array(
            [_parse.ColumnRole.LABEL if c == label else position.get(c, _parse.ColumnRole.IGNORE) for c in self.columns],
            np.int32,
        )
        self.labeled = label in self.columns

    def _width(self) -> int:
        return self.hasher.n_fields  # bias + fields + crosses: a row never has more

    def _parse(self, buf: bytes, pos: int, batch: _Batch, errors: np.ndarray) -> tuple:
        return _parse.parse_delimited(buf, pos, self._col_field, self.hasher._spec, ord(self.sep),
                                      batch.views(), self.on_error == "skip", errors)

    def _describe(self, code: int, col: int, token: bytes) -> str:
        expected = _EXPECTED[code].format(n_cols=len(self.columns))
        if code == _parse.ParseErrorCode.ERR_TOO_MANY_FIELDS:
            return f"line has {expected}"
        name = self.columns[col] if col < len(self.columns) else f"#{col + 1}"
        return f"field {name!r} (column {col + 1}): expected {expected}, got {token!r}"


def _line_runs(blocks: Iterator[bytes], rows: int) -> Iterator[list[bytes]]:
    """The blocks regrouped into runs of whole lines, about ``rows`` lines each (sized by the
    first block's line length); the blocks must end with a newline."""
    target, run, size = 0, [], 0
    for block in blocks:
        if not target:
            target = max(BLOCK_BYTES, rows * len(block) // max(block.count(b"\n"), 1))
        size += len(block)
        if size < target:
            run.append(block)
            continue
        cut = block.rfind(b"\n") + 1
        if not cut:  # a line longer than the run: keep going
            run.append(block)
            continue
        run.append(block[:cut])
        yield run
        run, size = ([block[cut:]], len(block) - cut) if cut < len(block) else ([], 0)
    if run:
        yield run


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

    def __init__(self, n_rows: int, n_entries: int) -> None:
        self.indptr = np.zeros(n_rows + 1, np.int64)
        self.indices = np.empty(n_entries, np.int32)
        self.values = np.empty(n_entries, np.float32)
        self.fields = np.empty(n_entries, np.uint16)
        self.labels = np.empty(n_rows, np.float32)
        self.weights = np.empty(n_rows, np.float32)
        self.filled = 0

    @property
    def full(self) -> bool:
        return self.filled == self.labels.shape[0]

    def views(self) -> tuple:
        f = self.filled
        return (self.indptr[f:], self.indices, self.values, self.fields, self.labels[f:],
                self.weights[f:])

    def grow(self) -> int:
        """Double the room for entries (keeping those written); returns the new room."""
        n = 2 * self.indices.shape[0]
        for name in ("indices", "values", "fields"):
            old = getattr(self, name)
            new = np.empty(n, old.dtype)
            new[: old.shape[0]] = old
            setattr(self, name, new)
        return n

    def take(self, labeled: bool, weighted: bool = False) -> HashedRows:
        n = self.filled
        nnz = self.indptr[n]
        return HashedRows(self.indptr[: n + 1], self.indices[:nnz], self.values[:nnz],
                          self.fields[:nnz], self.labels[:n] if labeled else None,
                          self.weights[:n] if weighted else None)


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
    first = first_line(source)
    return first is None or first.count(b"\t") + 1 != len(CRITEO_FIELDS)


def first_line(source: Source) -> bytes | None:
    """The first line (without its end) of a path or bytes source; None where unknown."""
    head = read_head(source)
    return None if head is None else head.split(b"\n", 1)[0].rstrip(b"\r")


def read_head(source: Source, limit: int = 65536) -> bytes | None:
    """The first ``limit`` bytes of a path or bytes source, gunzipped; None for stdin,
    streams and chunk iterables, which cannot be read twice."""
    if isinstance(source, (bytes, bytearray)):
        return bytes(source[:limit])
    if isinstance(source, (str, os.PathLike)) and os.fspath(source) != "-" and os.path.exists(source):
        with open(source, "rb") as raw:
            return _maybe_gunzip(raw).read(limit)
    return None


def _split_first_line(blocks: Iterator[bytes]) -> tuple[bytes, Iterator[bytes]]:
    """The first line of a block stream (without its end) and the blocks after it."""
    head = b""
    for block in blocks:
        head += block
        if b"\n" in block:
            break
    line, _, rest = head.partition(b"\n")
    return line.rstrip(b"\r"), itertools.chain([rest] if rest else [], blocks)
