"""The served model: loaded from its file, swapped atomically on reload, taught by feedback,
snapshotted to its file.

A request reads :attr:`ModelHolder.current` once and uses that :class:`ServedModel` to the
end, so a reload (the new model built whole, then one reference swapped) never shows a
request a half-loaded model, and requests in flight finish on the old one.
"""
from __future__ import annotations

import datetime
import logging
import os
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fastctr._ext._score import RowHasher
from fastctr.io.reader import DelimitedReader
from fastctr.io.rows import HashedRows
from fastctr.service.stores import Impression, encode_row, encode_rows
from fastctr.serving.files import load

log = logging.getLogger("fastctr.service")


def _file_id(path: Path) -> tuple[int, int, int]:
    """What tells that a file was replaced or rewritten: inode, mtime (ns) and size."""
    st = os.stat(path)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _checksum(path: Path) -> str:
    """The model file's own CRC-32 (its last 4 bytes, over everything before), as hex."""
    with open(path, "rb") as f:
        f.seek(-4, os.SEEK_END)
        return f"{struct.unpack('<I', f.read(4))[0]:08x}"


@dataclass
class ServedModel:
    """One loaded model and what the service says about it.

    ``version`` is the file's checksum, followed by ``+N`` once N rows were learned from
    feedback since it was loaded.
    """

    model: Any
    path: Path
    checksum: str
    file_id: tuple[int, int, int]
    loaded_at: str
    learnable: bool
    learned: int = 0
    row_hasher: RowHasher = field(init=False, repr=False)
    text_reader: DelimitedReader = field(init=False, repr=False)
    numeric: tuple[str, ...] = field(init=False, repr=False)
    categorical: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        hasher = self.model.hasher_
        self.row_hasher = RowHasher(hasher._spec, hasher.fields)
        self.text_reader = DelimitedReader(b"", hasher.fields, hasher)
        numeric = set(hasher.numeric)
        self.numeric = tuple(f for f in hasher.fields if f in numeric)
        self.categorical = tuple(f for f in hasher.fields if f not in numeric)

    @classmethod
    def load(cls, path: Path, *, learn: bool = False, mmap: bool = False) -> ServedModel:
        """Load ``path``; with ``learn``, the model must be one that can learn (not a
        Scorer, not memory-mapped)."""
        for _ in range(3):  # the file replaced while it was read: read the new one
            before = _file_id(path)
            checksum = _checksum(path)
            model = load(path, mmap=mmap and not learn)
            if _file_id(path) == before:
                break
        if learn and not hasattr(model, "partial_fit"):
            raise ValueError(f"{path} holds a {type(model).__name__}, which cannot learn: serve "
                             "a model file (FTRL, FM, FFM) to learn from feedback, or serve "
                             "this one without --learn")
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        return cls(model, path, checksum, before, now, learn)

    @property
    def version(self) -> str:
        return self.checksum if not self.learned else f"{self.checksum}+{self.learned}"

    def impression(self, row: dict | str, p: float, arm: str = "main") -> Impression:
        """The hashed ``row`` (hashed again, straight into bytes: the scorers hash into
        private buffers) as an Impression of this model."""
        return Impression(*self.row_hasher.hash_row_bytes(row), self.version, arm, p)

    def hash_lines(self, lines: list[str]) -> HashedRows | None:
        """Lines hashed in one pass of the compiled reader (which hashes a line as
        ``predict_one`` does); None when a line has a newline, a carriage return or nothing
        (the reader would split or skip it: hash such a batch row by row). A ParseError
        (ValueError) when a line does not parse."""
        text = "\n".join(lines)
        if text.count("\n") != len(lines) - 1 or "\r" in text:
            return None
        rows = self.hash_text(text.encode(), len(lines))
        return rows if rows is not None and rows.n_rows == len(lines) else None

    def hash_text(self, text: bytes, max_rows: int) -> HashedRows | None:
        """The rows of tab-separated text (lines as ``predict_one`` takes them; blank lines
        skipped, ``\r\n`` accepted) hashed in one pass of the compiled reader; None when it
        holds more than ``max_rows`` rows. A ParseError (ValueError) naming the line when
        one does not parse."""
        return self.text_reader.read_text(text, max_rows)

    def encoded_impression(self, row: dict | str, p: float, arm: str = "main") -> bytes:
        """:meth:`impression` encoded (what the stores keep), without the object between."""
        return encode_row(*self.row_hasher.hash_row_bytes(row), p, self.version, arm)

    def encoded_impressions(self, rows: HashedRows, p: np.ndarray, arm: str = "main") -> list[bytes]:
        """Hashed rows scored ``p`` as encoded impressions of this model (what the stores
        keep: their entries sliced from the batch's bytes, not hashed again)."""
        return encode_rows(rows.indptr.tolist(), rows.indices.astype("<i4").tobytes(),
                           rows.values.astype("<f4").tobytes(), rows.fields.astype("<u2").tobytes(),
                           p.tolist(), self.version, arm)

    def hash_each(self, raws: list) -> HashedRows:
        """Raw rows (dicts and lines mixed) hashed one by one, each in one compiled call."""
        parts = [self.row_hasher.hash_row(raw) for raw in raws]
        indptr = np.zeros(len(parts) + 1, np.int64)
        np.cumsum([len(p[0]) for p in parts], out=indptr[1:])
        if not parts:
            return HashedRows(indptr, np.empty(0, np.int32), np.empty(0, np.float32),
                              np.empty(0, np.uint16))
        return HashedRows(indptr, *(np.concatenate([p[k] for p in parts]) for k in range(3)))

    def learn(self, impressions: list[Impression], clicks: list[int]) -> None:
        """Learn the impressions with their clicks, in order, in one ``partial_fit`` (the
        model's lock serialises it with snapshots). ValueError if a row does not fit this
        model (hashed for another one's bits)."""
        rows = _hashed_rows(impressions)
        self.model.partial_fit(rows, np.asarray(clicks, np.float32))
        self.learned += rows.n_rows

    def warm_up(self) -> float:
        """Load from numba's cache (or compile) the kernels :meth:`learn` calls, so that the
        first click fed back does not stall the service for seconds; the seconds it took.

        A throwaway clone (2**18 buckets: the kernels' types do not depend on the size)
        learns two empty impressions built as :meth:`learn` builds them (read-only arrays
        over bytes, which numba compiles apart from writable ones), so this model is left
        untouched."""
        start = time.perf_counter()
        clone = self.model.__sklearn_clone__().set_params(bits=18)
        empty = Impression(b"", b"", b"", self.checksum)
        clone.partial_fit(_hashed_rows([empty, empty]), np.array([0, 1], np.float32))
        return time.perf_counter() - start

    def describe(self) -> dict[str, Any]:
        """What ``GET /model`` answers."""
        model = self.model
        return {"class": type(model).__name__, "params": model.get_params(),
                "hasher": model.hasher_.get_params(), "version": self.version,
                "checksum": self.checksum, "path": str(self.path),
                "rows_learned": getattr(model, "n_rows_seen_", None),
                "rows_learned_online": self.learned, "loaded_at": self.loaded_at,
                "learning": self.learnable}


def _hashed_rows(impressions: list[Impression]) -> HashedRows:
    """Impressions as one HashedRows batch (their bytes joined, not copied twice)."""
    sizes = np.fromiter((imp.n_entries for imp in impressions), np.int64, len(impressions))
    indptr = np.zeros(len(impressions) + 1, np.int64)
    np.cumsum(sizes, out=indptr[1:])
    join = b"".join
    return HashedRows(indptr,
                      np.frombuffer(join([i.indices for i in impressions]), "<i4"),
                      np.frombuffer(join([i.values for i in impressions]), "<f4"),
                      np.frombuffer(join([i.fields for i in impressions]), "<u2"))


class ModelHolder:
    """The current :class:`ServedModel` and its lifecycle: reload (on request or when the file
    changes) and snapshots of a learning model to its file.

    Parameters
    ----------
    path : path of the model file
    learn : bool
        Feedback teaches the model (it must be trainable).
    mmap : bool
        Map a Scorer's arrays read-only instead of reading them (not with ``learn``).
    """

    def __init__(self, path, *, learn: bool = False, mmap: bool = False,
                 serving: ServedModel | None = None) -> None:
        self.path, self.learn_enabled, self.mmap = Path(path), learn, mmap
        # ``serving``: what serves until the file loads (a fallback; the watcher reloads)
        self.current = serving or ServedModel.load(self.path, learn=learn, mmap=mmap)
        self.problems: dict[str, str] = {}  # what makes /health say degraded, by source
        self._reload_lock = threading.Lock()
        self._snapshot_learned = 0  # rows learned when the last snapshot was written

    def reload(self, only_if_changed: bool = False) -> ServedModel:
        """Load the file again and swap it in; the old model keeps serving if loading fails
        (the error is raised and reported by /health). With ``only_if_changed``, nothing
        happens unless the file is another one than the served model's (the watcher)."""
        with self._reload_lock:
            if only_if_changed and not self.file_changed():
                return self.current
            try:
                new = ServedModel.load(self.path, learn=self.learn_enabled, mmap=self.mmap)
                if self.learn_enabled:  # a new class's first click would compile: warm it now
                    new.warm_up()  # (2 ms when its kernels are loaded already)
            except (OSError, ValueError) as e:
                self.problems["reload"] = f"reloading {self.path} failed, serving version " \
                                          f"{self.current.version}: {e}"
                raise
            self.problems.pop("reload", None)
            self.current = new  # the one reference requests read: the swap is atomic
            self._snapshot_learned = 0
            log.info("model reloaded: %s version %s", self.path, new.version)
            return new

    def file_changed(self) -> bool:
        """Whether the file on disk is another one than the served model's."""
        try:
            return _file_id(self.path) != self.current.file_id
        except OSError:
            return False  # gone for a moment (being replaced): look again later

    def snapshot(self) -> bool:
        """Write the learning model to its file (atomically: temp file and rename) if it
        learned since the last snapshot; the file written is not reloaded."""
        served = self.current
        if not served.learnable or served.learned == self._snapshot_learned:
            return False
        learned = served.learned
        try:
            with self._reload_lock:  # the watcher must not take our own write for a new file
                served.model.save(served.path)
                served.file_id = _file_id(served.path)
        except (OSError, ValueError) as e:
            self.problems["snapshot"] = f"writing the snapshot {served.path} failed: {e}"
            log.error("%s", self.problems["snapshot"])
            return False
        self.problems.pop("snapshot", None)
        self._snapshot_learned = learned
        return True
