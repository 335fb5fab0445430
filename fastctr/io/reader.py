"""The loop every log format shares: blocks of bytes -> a compiled parser -> batches of
:class:`~fastctr.HashedRows` (:class:`BlockReader`), its chunks for parsing in threads
(:class:`Chunk`), bad-line reports (:class:`ErrorReport`), and the reader of delimited text
with a fixed column layout (:class:`DelimitedReader`, under the Criteo and CSV readers).

Each block is parsed and hashed in compiled code with the GIL released. Memory stays
proportional to the batch: one block of bytes plus the arrays of one batch.
"""
from __future__ import annotations

import logging
import numbers
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from fastctr._ext import _parse
from fastctr._validation import Booleans, InstanceOf, Interval, Options, validate_params
from fastctr.exceptions import DamagedDataError, ParseError
from fastctr.io.hashing import FeatureHasher
from fastctr.io.rows import HashedRows
from fastctr.io.sources import (
    Source,
    line_runs,
    open_source,
    source_name,
    split_first_line,
    with_final_newline,
)

log = logging.getLogger(__name__)

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


#: The readers' shared parameters; every read_* function checks its own with these first, so
#: that a message names the function called ("The 'batch_size' parameter of read_criteo ...").
READER_CONSTRAINTS = {
    "hasher": [None, InstanceOf(FeatureHasher)],
    "labeled": [None, Booleans()],
    "hash_indices": [Booleans()],
    "n_fields": [None, Interval(numbers.Integral, 1, 2**16 - 2, closed="both")],
    "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
    "on_error": [Options(str, ("raise", "skip"))],
}


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

    A damaged source (a truncated or corrupt gzip file) ends after its last complete line:
    every row before the damage is read, then a :class:`~fastctr.exceptions.DamagedDataError`
    naming the bytes of text and the complete lines read is raised, or, with
    ``on_damage = "keep"`` (an attribute), logged as a warning and kept in :attr:`damage`
    (``fastctr train`` keeps the model of those rows).
    """

    #: whether batches carry labels / importance weights
    labeled = True
    weighted = False
    #: whether the first line is a header, handed to :meth:`_read_header`
    has_header = False
    #: a damaged source: "raise" its DamagedDataError after the rows before it, or "keep" it
    #: in :attr:`damage` with a warning
    on_damage = "raise"

    def __init__(self, source: Source, *, batch_size: int = 100_000, on_error: str = "raise") -> None:
        validate_params(READER_CONSTRAINTS, {"batch_size": batch_size, "on_error": on_error},
                        type(self).__name__)
        self.source = source
        self.name = source_name(source)  # what errors call it
        self.batch_size = int(batch_size)
        self.on_error = on_error
        self.errors = ErrorReport()
        self.damage: DamagedDataError | None = None

    def _width(self) -> int:
        """Entries per row to allocate at first (sparse formats grow their batch as needed)."""
        return 16

    def _parse(self, buf: bytes, pos: int, batch: Batch, errors: np.ndarray) -> tuple:
        """Parse ``buf[pos:]`` into ``batch``: (n_rows, end, n_lines, n_errors)."""
        raise NotImplementedError

    def _describe(self, code: int, col: int, token: bytes) -> str:
        """What is wrong with token number ``col`` (0-based) of a line, in words."""
        raise NotImplementedError

    def _read_header(self, line: bytes) -> None:
        raise NotImplementedError

    def __iter__(self) -> Iterator[HashedRows]:
        blocks, lines_done = self._open()
        try:  # a bad line or an early stop ends the gzip read-ahead thread now, not at gc
            yield from self._batches(blocks, lines_done, self.batch_size, self.errors)
        finally:
            blocks.close()
        self._warn_skipped()
        self._end_damaged(self.errors.lines)

    def read_text(self, text: bytes, max_rows: int) -> HashedRows | None:
        r"""The rows of ``text`` (whole lines in memory, the last newline optional) as one
        batch, parsed in one compiled call: what a service does with a request body, without
        the sources, gzip detection and generators of iterating (~60 us a call). The reader's
        own source is not read. Bad lines follow ``on_error`` (lines counted from 1 in
        ``text``); None when ``text`` holds more than ``max_rows`` rows.

        Examples
        --------
        >>> from fastctr import FeatureHasher
        >>> from fastctr.io.reader import DelimitedReader
        >>> hasher = FeatureHasher(["a", "b"], numeric=["a"], bits=18)
        >>> reader = DelimitedReader(b"", ["a", "b"], hasher)
        >>> reader.read_text(b"3\tx\n\n5\ty", max_rows=10).n_rows
        2
        >>> reader.read_text(b"3\tx\n5\ty", max_rows=1) is None
        True
        """
        blocks = [text] if text.endswith(b"\n") else [text, b"\n"]
        # a row is a byte and a newline at least: a bound without scanning the text
        rows = min(len(text) // 2 + 1, max_rows + 1)
        batch = next(self._batches(blocks, 0, rows, ErrorReport()), None)  # each call its own
        if batch is None:
            return HashedRows(np.zeros(1, np.int64), np.empty(0, np.int32),
                              np.empty(0, np.float32), np.empty(0, np.uint16))
        return batch if batch.n_rows <= max_rows else None

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
        try:
            for run in line_runs(blocks, rows):
                yield Chunk(self, run)
        finally:
            blocks.close()
        yield Chunk(self, [], last=True)

    def _open(self) -> tuple[Iterator[bytes], int]:
        """Blocks of the source after its header (read here), and the lines before them."""
        blocks, self.name = open_source(self.source)
        source = self._until_damage(with_final_newline(blocks))
        if not self.has_header:
            return source, 0
        header, blocks = split_first_line(source)
        try:
            self._read_header(header)
        except BaseException:
            source.close()
            raise
        return _closing(blocks, source), 1

    def _until_damage(self, blocks: Iterator[bytes]) -> Iterator[bytes]:
        """The blocks up to a damage, which is kept for :meth:`_end_damaged`. Placed after
        :func:`with_final_newline`, so a line cut by the damage gets no newline and is never
        parsed: only complete lines are read."""
        try:
            yield from blocks
        except DamagedDataError as error:
            self.damage = error

    def _end_damaged(self, lines: int) -> None:
        """After the last row: raise (or, with ``on_damage="keep"``, log) the damage."""
        if self.damage is None:
            return
        damage = self.damage = DamagedDataError(
            f"{self.damage}; the {lines:,} complete lines before it were read",
            self.damage.text_bytes, lines)
        if self.on_damage == "raise":
            raise damage
        log.warning("%s", damage)

    def _batches(self, blocks: Iterable[bytes], lines_done: int, batch_size: int,
                 report: ErrorReport) -> Iterator[HashedRows]:
        """Batches of ``batch_size`` rows from blocks that start at line ``lines_done + 1``."""
        entries = batch_size * self._width()
        batch = Batch(batch_size, entries)
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
                    batch = Batch(batch_size, entries)
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
        line, what = lines_done + rel_line + 1, self._describe(code, col, bytes(buf[a:b])[:60])
        report.add(self.name, line, what)
        if self.on_error == "raise":  # this line's message, whatever the report already holds
            raise ParseError(f"{self.name}, line {line}: {what}{RAISE_HINT}")


def _closing(blocks: Iterator[bytes], source: Iterator[bytes]) -> Iterator[bytes]:
    """``blocks``; closing it closes ``source`` (the generator they come from) too."""
    try:
        yield from blocks
    finally:
        source.close()


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
            reader._end_damaged(reader._lines_taken)


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
            [_parse.ColumnRole.LABEL if c == label else position.get(c, _parse.ColumnRole.IGNORE)
             for c in self.columns],
            np.int32,
        )
        self.labeled = label in self.columns

    def _width(self) -> int:
        return self.hasher.n_fields  # bias + fields + crosses: a row never has more

    def _parse(self, buf: bytes, pos: int, batch: Batch, errors: np.ndarray) -> tuple:
        return _parse.parse_delimited(buf, pos, self._col_field, self.hasher._spec, ord(self.sep),
                                      batch.views(), self.on_error == "skip", errors)

    def _describe(self, code: int, col: int, token: bytes) -> str:
        expected = _EXPECTED[code].format(n_cols=len(self.columns))
        if code == _parse.ParseErrorCode.ERR_TOO_MANY_FIELDS:
            return f"line has {expected}"
        name = self.columns[col] if col < len(self.columns) else f"#{col + 1}"
        return f"field {name!r} (column {col + 1}): expected {expected}, got {token!r}"


class Batch:
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
