"""Model files: a versioned header, the state arrays and a checksum; never pickle.

Layout (little-endian)::

    b"FASTCTR\\0"  magic
    u64           header length H
    H bytes       JSON header: format_version, class, params, hasher, fastctr_version,
                  scalars, arrays [{name, dtype, shape, offset, nbytes}], file_size, and
                  optionally reader (the model's ``reader_settings_``: how its data was read)
    ...           array bytes, each at its offset (64-byte aligned)
    u32           CRC-32 of every byte before it

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
FORMAT_VERSION = 1
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
    header_bytes = _layout(header, arrays)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            crc = _write(f, MAGIC + struct.pack("<Q", len(header_bytes)) + header_bytes, 0)
            for spec in header["arrays"]:
                crc = _write(f, b"\0" * (spec["offset"] - f.tell()), crc)
                crc = _write(f, memoryview(arrays[spec["name"]]).cast("B"), crc)
            f.write(struct.pack("<I", crc))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
        Map the arrays read-only instead of reading them (for serving large tables);
        such a model can predict but not learn further.

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
            if mmap:
                state[spec["name"]] = np.memmap(path, np.dtype(spec["dtype"]), "r", spec["offset"],
                                                tuple(spec["shape"]))
            else:
                f.seek(spec["offset"])
                arr = np.empty(tuple(spec["shape"]), np.dtype(spec["dtype"]))
                f.readinto(memoryview(arr).cast("B"))
                state[spec["name"]] = arr
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
    if version != FORMAT_VERSION:
        raise ModelFileError(f"{path}: model format version {version}, this fastctr reads "
                             f"{FORMAT_VERSION}; upgrade fastctr to read it")
    if header.get("file_size") != size:
        raise ModelFileError(f"{path}: {size} bytes, the header says {header.get('file_size')}: "
                             "the file is truncated or has trailing bytes")
    if header.get("class") not in MODEL_CLASSES:
        raise ModelFileError(f"{path}: unknown model class {header.get('class')!r}")
    return header


