"""Sources of bytes: paths, ``'-'`` (stdin), binary files, bytes-like buffers (bytes,
bytearray, memoryview, mmap, ...) and iterables of them (chunks), opened as blocks of bytes;
gzip is detected by content (in paths and files) and inflated ahead in a background thread. Also the
look-ahead every format's discovery uses (:func:`read_head`, :func:`first_line`) and the
cutting of block streams at line ends."""
from __future__ import annotations

import io
import itertools
import os
import sys
import threading
import zlib
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from fastctr.exceptions import DamagedDataError
from fastctr.io.ahead import read_ahead

#: anything with the buffer protocol: bytes, bytearray, memoryview, mmap, a numpy array, ...
BytesLike = bytes | bytearray | memoryview
Source = str | os.PathLike | BinaryIO | BytesLike | Iterable[BytesLike]
BLOCK_BYTES = 1 << 20
#: bytes read from the start of a file to discover VW namespaces, libffm fields or a header
DISCOVERY_BYTES = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
#: compressed bytes inflated per call: what a corrupt (not truncated) stream can lose before
#: its damage is at most what these inflate to
INFLATE_INPUT = 1 << 16


def open_source(source: Source) -> tuple[Iterator[bytes], str]:
    """Blocks of decompressed bytes from a path, '-' (stdin), a binary file, a bytes-like
    buffer or an iterable of them (chunks); and the name errors give the source.

    Gzip is recognised by its magic bytes, not by the file name. A buffer other than bytes
    is copied one block at a time, never whole.

    Examples
    --------
    >>> blocks, name = open_source(memoryview(b"1 |a x\\n"))
    >>> list(blocks), name
    ([b'1 |a x\\n'], '<bytes>')
    """
    name = source_name(source)
    if isinstance(source, (str, os.PathLike)):
        if os.fspath(source) == "-":
            return _blocks(sys.stdin.buffer, name), name
        if not os.path.exists(name):
            raise FileNotFoundError(f"no such data file: {name!r}")
        if not os.path.isfile(name) and (peeked := _take_peeked(name)):
            return _replayed_blocks(*peeked, name), name
        return _file_blocks(name), name
    if (view := byte_view(source)) is not None:
        return _view_blocks(source, view), name
    if hasattr(source, "read"):
        return _blocks(source, name), name
    return _chunk_blocks(source, name), name


def source_name(source: Source) -> str:
    """How errors name a source: its path, ``<stdin>``, a file's name, ``<bytes>`` for a
    buffer, ``<chunks>`` for an iterable of them.

    Examples
    --------
    >>> source_name("clicks.tsv.gz"), source_name("-"), source_name(bytearray(b"1 |a x"))
    ('clicks.tsv.gz', '<stdin>', '<bytes>')
    """
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        return "<stdin>" if name == "-" else os.fsdecode(name)
    if byte_view(source) is not None:
        return "<bytes>"
    if hasattr(source, "read"):
        return str(getattr(source, "name", "<stream>"))
    return "<chunks>"


def byte_view(obj: object) -> memoryview | None:
    """A flat view of the bytes of a buffer (bytes, bytearray, memoryview, mmap, a numpy
    array...), without a copy; None for anything else (str is not bytes-like). A buffer that
    is not contiguous is a TypeError: its bytes are not one run to parse."""
    if isinstance(obj, (str, os.PathLike)):
        return None
    try:
        view = memoryview(obj)
    except TypeError:
        return None
    if not view.contiguous:
        raise TypeError(f"a data buffer must be contiguous, got a non-contiguous {type(obj).__name__} "
                        "(copy it first, e.g. bytes(buffer))")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def _view_blocks(source: object, view: memoryview) -> Iterator[bytes]:
    """The bytes of a buffer in blocks: bytes as they are, any other buffer copied one block
    at a time (the parser's Python side searches blocks as bytes)."""
    if isinstance(source, bytes):
        if source:
            yield source
        return
    for at in range(0, view.nbytes, BLOCK_BYTES):
        yield bytes(view[at:at + BLOCK_BYTES])


def _chunk_blocks(chunks: Iterable[BytesLike], name: str) -> Iterator[bytes]:
    """The blocks of an iterable of bytes-like chunks; anything else is a TypeError."""
    for number, chunk in enumerate(chunks, 1):
        if (view := byte_view(chunk)) is None:
            raise TypeError(f"{name}: chunk {number} is a {type(chunk).__name__}; every chunk must "
                            "be bytes-like (bytes, bytearray, memoryview, mmap)")
        yield from _view_blocks(chunk, view)


def _file_blocks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as raw:
        yield from _blocks(raw, path)


def _replayed_blocks(head: bytes, raw: BinaryIO, name: str) -> Iterator[bytes]:
    with raw:
        yield from _blocks(io.BufferedReader(_Replay(head, raw)), name)


class _Replay(io.RawIOBase):
    """A pipe read once: the ``head`` already read from it (to look at), then the rest."""

    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        super().__init__()
        self._head, self._raw, self.name = memoryview(head), raw, raw.name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self._head.nbytes:
            return self._raw.readinto(buffer)
        n = min(len(buffer), self._head.nbytes)
        buffer[:n], self._head = self._head[:n], self._head[n:]
        return n


#: heads of pipes and FIFOs (paths that can be read once) read by :func:`read_head`, each
#: with the open pipe, until :func:`open_source` replays the head before the rest
_PEEKED: dict[str, tuple[bytes, BinaryIO]] = {}
_PEEKED_LOCK = threading.Lock()


def _peek_once(path: str) -> bytes:
    """The first DISCOVERY_BYTES (raw) of a pipe path, read once and kept for open_source."""
    with _PEEKED_LOCK:
        if path not in _PEEKED:
            raw = open(path, "rb", buffering=0)
            chunks, size = [], 0
            while size < DISCOVERY_BYTES and (chunk := raw.read(DISCOVERY_BYTES - size)):
                chunks.append(chunk)
                size += len(chunk)
            _PEEKED[path] = (b"".join(chunks), raw)
        return _PEEKED[path][0]


def _take_peeked(path: str) -> tuple[bytes, BinaryIO] | None:
    with _PEEKED_LOCK:
        return _PEEKED.pop(path, None)


def _blocks(stream: BinaryIO, name: str) -> Iterator[bytes]:
    """Blocks of a stream. A gzip stream is inflated ahead by a background thread (zlib
    releases the GIL), so inflating overlaps parsing and learning instead of adding to them."""
    stream = _buffered(stream)
    if stream.peek(2)[:2] == GZIP_MAGIC:
        return read_ahead(_inflated_blocks(stream, name))
    return _read_blocks(stream)


def _buffered(stream: BinaryIO) -> BinaryIO:
    return stream if hasattr(stream, "peek") else io.BufferedReader(stream)


def _read_blocks(stream: BinaryIO) -> Iterator[bytes]:
    while block := stream.read(BLOCK_BYTES):
        yield block


def _inflate(stream: BinaryIO) -> Iterator[bytes]:
    """The inflated bytes of a gzip stream (its members one after the other, zero padding
    skipped, as gzip does), every byte before a damage; then EOFError where the stream is
    truncated, zlib.error where it is corrupt. Unlike GzipFile.read, which drops what it
    inflated in the call that meets the damage, nothing before a truncation is lost."""
    inflater = zlib.decompressobj(wbits=31)
    data = b""
    while True:
        if not data and not (data := stream.read(INFLATE_INPUT)):
            break
        if out := inflater.decompress(data, BLOCK_BYTES):
            yield out
        if not inflater.eof:
            data = inflater.unconsumed_tail
            continue
        data = inflater.unused_data.lstrip(b"\0")
        while not data:
            if not (more := stream.read(INFLATE_INPUT)):
                return
            data = more.lstrip(b"\0")
        inflater = zlib.decompressobj(wbits=31)  # the next member
    if out := inflater.flush():
        yield out
    if not inflater.eof:
        raise EOFError("the compressed data ends before its end-of-stream marker")


def _inflated_blocks(stream: BinaryIO, name: str) -> Iterator[bytes]:
    """The blocks of a gzip stream; a truncated or corrupt one raises a DamagedDataError naming
    the source and the bytes of text before the damage, after every block before it."""
    inflated = 0
    try:
        for block in _inflate(stream):
            inflated += len(block)
            yield block
    except (EOFError, OSError, zlib.error) as error:
        raise DamagedDataError(f"{name}: the gzip data is truncated or corrupt after {inflated:,} "
                               f"bytes of text ({error})", text_bytes=inflated) from None


# -- looking ahead ----------------------------------------------------------------------------
def read_head(source: Source, limit: int = 65536) -> bytes | None:
    """The first ``limit`` bytes of a path, a bytes-like source or a list or tuple of chunks
    (gunzipped where a path is gzip); None for stdin, streams and other iterables of chunks,
    which cannot be read twice.

    A pipe or FIFO path is read once: its head is kept and :func:`open_source` reads it
    before the rest, so nothing is lost and nothing is opened twice. Gzip data damaged
    before the end of the first line is a DamagedDataError naming the file (there is no
    line to look at); damage after it is met by the reader, after the lines before it."""
    if (view := byte_view(source)) is not None:
        return bytes(view[:limit])
    if isinstance(source, (list, tuple)):  # chunks that can be read twice
        return _joined_head(source, limit)
    if not isinstance(source, (str, os.PathLike)) or os.fspath(source) == "-":
        return None
    name = source_name(source)
    if os.path.isfile(name):
        with open(name, "rb") as raw:
            return _head_of(_buffered(raw), limit, name)
    if os.path.exists(name):
        return _head_of(io.BufferedReader(io.BytesIO(_peek_once(name))), limit, name)
    return None


def _joined_head(chunks: list | tuple, limit: int) -> bytes:
    head = bytearray()
    for block in _chunk_blocks(chunks, "<chunks>"):
        head += block[: limit - len(head)]
        if len(head) >= limit:
            break
    return bytes(head)


def _head_of(stream: BinaryIO, limit: int, name: str) -> bytes:
    if stream.peek(2)[:2] != GZIP_MAGIC:
        return stream.read(limit)
    head = b""
    try:
        for block in _inflate(stream):
            head += block
            if len(head) >= limit:
                break
    except (EOFError, zlib.error) as error:  # a damaged (or cut) file may still have a head
        if b"\n" not in head:
            raise DamagedDataError(f"{name}: the gzip data is truncated or corrupt after "
                                   f"{len(head):,} bytes of text, before the end of the first "
                                   f"line ({error})", text_bytes=len(head), lines=0) from None
    return head[:limit]


def first_line(source: Source) -> bytes | None:
    """The first line (without its end) of a path or bytes source; None where unknown.

    Examples
    --------
    >>> first_line(b"id,click\\r\\n1,0\\n"), first_line(iter([b"1 |a x\\n"]))
    (b'id,click', None)
    """
    head = read_head(source)
    return None if head is None else head.split(b"\n", 1)[0].rstrip(b"\r")


def discovery_head(source: Source | None, what: str) -> bytes:
    """The first DISCOVERY_BYTES of ``source``, to discover a schema from; a ValueError
    asking for ``what`` where the source cannot be read ahead."""
    head = None if source is None else read_head(source, DISCOVERY_BYTES)
    if head is None:
        where = "no source" if source is None else source_name(source)
        raise ValueError(f"cannot read ahead in {where} to discover the schema: pass {what} "
                         "(or a hasher built by hasher_for from a file)")
    return head


def whole_lines(head: bytes) -> bytes:
    """``head`` without a last partial line (it may be cut by the read limit)."""
    return head[: head.rfind(b"\n") + 1] or head


# -- cutting block streams at line ends -------------------------------------------------------
def split_first_line(blocks: Iterator[bytes]) -> tuple[bytes, Iterator[bytes]]:
    """The first line of a block stream (without its end) and the blocks after it."""
    head = b""
    for block in blocks:
        head += block
        if b"\n" in block:
            break
    line, _, rest = head.partition(b"\n")
    return line.rstrip(b"\r"), itertools.chain([rest] if rest else [], blocks)


def with_final_newline(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """The blocks, plus a newline if the data does not end with one (so its last line parses)."""
    last = b""
    for block in blocks:
        if block:
            last = block
            yield block
    if last and not last.endswith(b"\n"):
        yield b"\n"


def line_runs(blocks: Iterator[bytes], rows: int) -> Iterator[list[bytes]]:
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
