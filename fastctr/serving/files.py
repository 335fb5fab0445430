"""Model files: a versioned header, the state arrays and a checksum; never pickle.

Layout (little-endian)::

    b"FASTCTR\\0"  magic
    u64           header length H
    H bytes       JSON header: format_version, class, params, hasher, fastctr_version,
                  scalars, arrays [{name, dtype, shape, offset, nbytes}], file_size, and
                  optionally reader (the model's ``reader_settings_``: how its data was read)
                  and sparse (version 2: the state tables stored by touched bucket, below)
    ...           array bytes, each at its offset (64-byte aligned)
    u32           CRC-32 of every byte before it

A model's per-bucket state tables (``zn_``, ``vg_``: 2**bits rows, most of them never touched
and all zero) are stored sparsely when that is smaller: the arrays ``zn_.rows`` (uint32, the
buckets whose row has a non-zero bit, ascending) and ``zn_.values`` (those rows), with
``sparse: {"zn_": {"dtype", "shape"}}`` in the header; loading rebuilds the same table bit for
bit. Such a file is format version 2; a file with nothing sparse (a Scorer's) stays version 1,
which older fastctr reads. Both versions are read.

Writes go to a temporary file in the same folder, are fsynced, then renamed over the target,
so a crash never leaves a half-written model under the target name.
"""
from __future__ import annotations

import json
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from fastctr._version import __version__
from fastctr.exceptions import ModelFileError
from fastctr.serving.registry import MODEL_CLASSES

# A state field's name in the file: the estimators' attribute names, as files have always
# held them (a Scorer's fields are stored under their own names).
_FILE_NAMES = {"zn": "zn_", "vg": "vg_", "seed": "seed_", "n_rows_seen": "n_rows_seen_"}
_FIELD_NAMES = {v: k for k, v in _FILE_NAMES.items()}

MAGIC = b"FASTCTR\0"
FORMAT_VERSION = 2  # the newest written; READABLE are read
READABLE = (1, 2)
#: state tables stored by touched bucket when that is smaller (see the module docstring)
_SPARSE_TABLES = ("zn_", "vg_")
ALIGN = 64
_CRC_CHUNK = 1 << 24


def save(model: Any, path) -> None:
    """Write a fitted model (or a Scorer) to ``path`` atomically.

    Examples
    --------
    >>> import tempfile, os
    >>> from fastctr import FTRLClassifier, load
    >>> model = FTRLClassifier(bits=18).fit([{"C1": "a"}, {"C1": "b"}], [1, 0])
    >>> path = os.path.join(tempfile.mkdtemp(), "model.fctr")
    >>> model.save(path)
    >>> load(path).predict_one({"C1": "a"}) == model.predict_one({"C1": "a"})
    True
    """
    model._check_fitted()
    arrays, scalars = {}, {}
    for field, value in model.state._asdict().items():
        name = _FILE_NAMES.get(field, field)
        if value is None:  # an optional field left out (a dense Scorer's keys)
            continue
        if isinstance(value, np.ndarray):
            arrays[name] = np.ascontiguousarray(value)
        else:
            scalars[name] = value.item() if isinstance(value, np.generic) else value
    header = {
        "format": "fastctr-model",
        "format_version": FORMAT_VERSION,
        "class": type(model).__name__,
        "params": model.get_params(),
        "hasher": model.hasher_.get_params(),
        "fastctr_version": __version__,
        "scalars": scalars,
        "arrays": [],
    }
    if getattr(model, "reader_settings_", None):  # optional: files without it still load
        header["reader"] = dict(model.reader_settings_)
    arrays, sparse = _sparse_tables(arrays)
    if sparse:
        header["sparse"] = sparse
    else:  # nothing needs version 2: older fastctr can read the file
        header["format_version"] = 1
    header_bytes = _layout(header, arrays)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            crc = _write(f, MAGIC + struct.pack("<Q", len(header_bytes)) + header_bytes, 0)
            for spec in header["arrays"]:
                crc = _write(f, b"\0" * (spec["offset"] - f.tell()), crc)
                # 1-D first: memoryview cannot cast an empty array of several dimensions
                crc = _write(f, memoryview(arrays[spec["name"]].reshape(-1)).cast("B"), crc)
            f.write(struct.pack("<I", crc))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _sparse_tables(arrays: dict) -> tuple[dict, dict]:
    """The arrays to write, with each state table in ``_SPARSE_TABLES`` replaced by its
    touched rows when that is smaller (at most half the bytes), and the header's ``sparse``
    entry describing them. A row is kept when any of its bits is set (-0.0 included), so
    the table rebuilt by :func:`_dense_tables` is identical."""
    out, sparse = {}, {}
    for name, arr in arrays.items():
        if name not in _SPARSE_TABLES or arr.ndim < 2 or arr.shape[0] >= 1 << 32:
            out[name] = arr
            continue
        bits = arr.reshape(arr.shape[0], -1).view(np.dtype(f"u{arr.dtype.itemsize}"))
        rows = np.flatnonzero(bits.any(axis=1)).astype(np.uint32)
        row_bytes = arr.nbytes // max(arr.shape[0], 1)
        if rows.shape[0] * (row_bytes + 4) * 2 > arr.nbytes:
            out[name] = arr
            continue
        out[f"{name}.rows"] = rows
        out[f"{name}.values"] = np.ascontiguousarray(arr[rows])
        sparse[name] = {"dtype": arr.dtype.str, "shape": list(arr.shape)}
    return out, sparse


def _dense_tables(state: dict, sparse: dict, path: Path) -> dict:
    """``state`` with each table stored by touched rows (``sparse``, from the header)
    rebuilt whole: zeros, then the stored rows. Always in memory, also under ``mmap``: only
    the touched rows' pages are written (the zeros are the OS's)."""
    state = dict(state)
    for name, spec in sparse.items():
        rows, values = state.pop(f"{name}.rows", None), state.pop(f"{name}.values", None)
        try:
            dtype, shape = np.dtype(spec["dtype"]), tuple(int(n) for n in spec["shape"])
        except (KeyError, TypeError, ValueError):
            raise ModelFileError(f"{path}: the sparse entry of {name!r} is unreadable") from None
        if (rows is None or values is None or rows.dtype != np.uint32 or rows.ndim != 1
                or values.dtype != dtype or values.shape != (rows.shape[0], *shape[1:])):
            raise ModelFileError(f"{path}: {name!r} is stored by rows, but its arrays "
                                 f"{name}.rows / {name}.values are missing or do not fit "
                                 f"{spec['dtype']} {list(shape)}: the file is corrupted")
        if rows.shape[0] and (rows[-1] >= shape[0] or np.any(rows[1:] <= rows[:-1])):
            raise ModelFileError(f"{path}: the rows of {name!r} are not ascending buckets "
                                 f"below {shape[0]}: the file is corrupted")
        table = np.zeros(shape, dtype)
        table[rows] = values
        state[name] = table
    return state


def _layout(header: dict, arrays: dict) -> bytes:
    """Fill in array offsets and file size; the header's length depends on them, so iterate."""
    guess = 0
    while True:
        offset = _align(len(MAGIC) + 8 + guess)
        header["arrays"] = []
        for name, arr in arrays.items():
            header["arrays"].append({"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape),
                                     "offset": offset, "nbytes": arr.nbytes})
            offset = _align(offset + arr.nbytes)
        header["file_size"] = (header["arrays"][-1]["offset"] + header["arrays"][-1]["nbytes"]
                               if arrays else len(MAGIC) + 8 + guess) + 4
        encoded = json.dumps(header, sort_keys=True).encode()
        if len(encoded) == guess:
            return encoded
        guess = len(encoded)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _write(f, data, crc: int) -> int:
    f.write(data)
    return zlib.crc32(data, crc)


def load(path, *, mmap: bool = False) -> Any:
    """Read a model written by ``model.save``; no code from the file is ever executed.

    Parameters
    ----------
    path : str or PathLike
    mmap : bool, default=False
        Map the arrays read-only instead of reading them (for serving large tables: a
        Scorer's); such a model can predict but not learn further. A model's state tables
        stored by touched bucket (format version 2, see the module docstring) are rebuilt
        in memory instead: they are small on disk, and a zero-filled table costs pages only
        where rows were touched.

    Raises
    ------
    ModelFileError
        The file is not a fastctr model, is of a newer format, truncated or corrupted.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such model file: {str(path)!r}")
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = _read_header(f, path, size)
        crc = zlib.crc32(f.read(0))
        f.seek(0)
        remaining = size - 4
        while remaining:
            chunk = f.read(min(_CRC_CHUNK, remaining))
            crc = zlib.crc32(chunk, crc)
            remaining -= len(chunk)
        (stored,) = struct.unpack("<I", f.read(4))
        if stored != crc:
            raise ModelFileError(f"{path}: checksum mismatch, the file is corrupted")
        state = dict(header["scalars"])
        for spec in header["arrays"]:
            if mmap and spec["nbytes"]:  # nothing to map in an empty array
                state[spec["name"]] = np.memmap(path, np.dtype(spec["dtype"]), "r", spec["offset"],
                                                tuple(spec["shape"]))
            else:
                f.seek(spec["offset"])
                arr = np.empty(tuple(spec["shape"]), np.dtype(spec["dtype"]))
                f.readinto(memoryview(arr.reshape(-1)).cast("B"))
                state[spec["name"]] = arr
    state = _dense_tables(state, header.get("sparse") or {}, path)
    state = {_FIELD_NAMES.get(name, name): value for name, value in state.items()}
    try:
        model = MODEL_CLASSES[header["class"]].from_state(header["params"], header["hasher"], state)
    except (TypeError, ValueError) as e:  # parameters, hasher or state that do not fit together
        raise ModelFileError(f"{path}: {e}") from e
    model.reader_settings_ = header.get("reader")
    return model


def _read_header(f, path: Path, size: int) -> dict:
    head = f.read(len(MAGIC) + 8)
    if len(head) < len(MAGIC) + 8 or head[: len(MAGIC)] != MAGIC:
        raise ModelFileError(f"{path}: not a fastctr model file (bad magic bytes)")
    (n,) = struct.unpack("<Q", head[len(MAGIC):])
    raw = f.read(n)
    try:
        header = json.loads(raw)
    except ValueError:
        raise ModelFileError(f"{path}: the header is unreadable: truncated or corrupted") from None
    version = header.get("format_version")
    if version not in READABLE:
        raise ModelFileError(f"{path}: model format version {version}, this fastctr reads "
                             f"versions {', '.join(map(str, READABLE))}; upgrade fastctr to "
                             "read it")
    if header.get("file_size") != size:
        raise ModelFileError(f"{path}: {size} bytes, the header says {header.get('file_size')}: "
                             "the file is truncated or has trailing bytes")
    if header.get("class") not in MODEL_CLASSES:
        raise ModelFileError(f"{path}: unknown model class {header.get('class')!r}")
    return header


