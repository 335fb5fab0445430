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

Writes go to a temporary file in the target's folder, are fsynced, then renamed over the
target, so a crash never leaves a half-written model under the target name, and a file being
read (or mapped) keeps its bytes: nothing is ever truncated or rewritten in place. A symlink
is followed (the model goes where it points; the link stays), and a target that is not a
regular file (a directory, a device such as ``/dev/null``, a FIFO) is refused. A temporary
file is named ``.NAME.fastctr-tmp-PID-XXXXXXXX`` and locked while written; one that a killed
save left (its lock free, its process gone) is removed by the next save to that target.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import stat
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from fastctr._version import __version__
from fastctr.exceptions import ModelFileError
from fastctr.serving.registry import MODEL_CLASSES

# A state field's name in the file: the estimators' attribute names, as files have always
# held them (a Scorer's fields are stored under their own names).
_FILE_NAMES = {"zn": "zn_", "vg": "vg_", "seed": "seed_", "n_rows_seen": "n_rows_seen_",
               "value_scale": "value_scale_"}
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
    # A model another thread may be teaching: its state is copied under the model's learning
    # lock (a consistent snapshot, learning blocked only for the copy) and written outside it.
    lock = getattr(model, "_learn_lock", None)
    with lock if lock is not None else contextlib.nullcontext():
        for field, value in model.state._asdict().items():
            name = _FILE_NAMES.get(field, field)
            if value is None:  # an optional field left out (a dense Scorer's keys)
                continue
            if isinstance(value, np.ndarray):
                arrays[name] = (np.array(value, order="C") if lock is not None
                                else np.ascontiguousarray(value))
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
    target = destination(path)
    _remove_stale_temporaries(target)
    fd, tmp, mode = _create_temporary(target)
    try:
        with os.fdopen(fd, "wb") as f:
            crc = _write(f, MAGIC + struct.pack("<Q", len(header_bytes)) + header_bytes, 0)
            for spec in header["arrays"]:
                crc = _write(f, b"\0" * (spec["offset"] - f.tell()), crc)
                # 1-D first: memoryview cannot cast an empty array of several dimensions
                crc = _write(f, memoryview(arrays[spec["name"]].reshape(-1)).cast("B"), crc)
            f.write(struct.pack("<I", crc))
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
            os.replace(tmp, target)  # before closing: the lock is held until the name is gone
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def destination(path) -> Path:
    """The file a save to ``path`` replaces: ``path`` with its symlinks resolved (a model
    saved through a link goes where the link points, and the link stays a link).

    Raises
    ------
    ModelFileError
        ``path`` is a directory or exists as something else than a regular file (a device
        such as ``/dev/null``, a FIFO, a socket): a save would replace it.

    Examples
    --------
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> from fastctr.serving.files import destination
    >>> folder = os.path.realpath(tempfile.mkdtemp())
    >>> os.symlink("v2.fctr", os.path.join(folder, "current.fctr"))
    >>> destination(os.path.join(folder, "current.fctr")) == Path(folder, "v2.fctr")
    True
    """
    target = Path(os.path.realpath(path))
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:  # a new file (or a dangling link's target, created)
        return target
    if stat.S_ISDIR(mode):
        raise ModelFileError(f"cannot save a model to {str(path)!r}: it is a directory; name "
                             "a file in it")
    if not stat.S_ISREG(mode):
        raise ModelFileError(f"cannot save a model to {str(path)!r}: it is not a regular file "
                             "(a device, FIFO or socket), and saving would replace it; name a "
                             "regular file")
    return target


_TEMPORARY = ".fastctr-tmp-"  # in a temporary file's name: .NAME.fastctr-tmp-PID-RANDOM


def probe_writable(path) -> None:
    """Create and remove a temporary file next to ``path`` as a save does (named and locked
    as its temporary files are, so one left by a kill is removed by the next save); OSError
    when the folder takes no new file.

    Examples
    --------
    >>> import tempfile
    >>> probe_writable(os.path.join(tempfile.mkdtemp(), "model.fctr"))
    """
    fd, tmp, _ = _create_temporary(Path(path))
    try:
        os.unlink(tmp)  # before closing: the lock is held until the name is gone
    finally:
        os.close(fd)



def _create_temporary(target: Path) -> tuple[int, str, int]:
    """A new temporary file next to ``target``, locked (see :func:`_remove_stale_temporaries`),
    readable by its owner only while written. Returns its descriptor, its path and the mode the
    model file gets: an existing target's, else what ``open(path, "w")`` would give (0o666
    less the umask, which the kernel applies here: reading the umask is not thread-safe)."""
    while True:
        tmp = str(target.parent / f".{target.name}{_TEMPORARY}{os.getpid()}-{secrets.token_hex(4)}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            break
        except FileExistsError:
            continue
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a lock the kernel drops when this process dies
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        with contextlib.suppress(FileNotFoundError):
            mode = stat.S_IMODE(os.stat(target).st_mode)
        os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    return fd, tmp, mode


def _remove_stale_temporaries(target: Path) -> None:
    """Remove the temporary files of saves to ``target`` that were killed (``kill -9``, a
    crash, a power cut): those whose lock no one holds and whose process is gone. A save in
    progress holds its file's lock, and its pid (in the name) covers the instant between
    creating the file and locking it; a reused pid only keeps a stale file until the next
    save."""
    prefix = f".{target.name}{_TEMPORARY}"
    stale = []  # (a directory that cannot be listed: the save itself says why)
    with contextlib.suppress(OSError), os.scandir(target.parent) as entries:
        stale = [e.path for e in entries if e.name.startswith(prefix)
                 and not _alive(e.name[len(prefix):].partition("-")[0])]
    for tmp in stale:
        try:
            fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(tmp)
        except OSError:  # locked: a save is writing it (or it is gone already)
            pass
        finally:
            os.close(fd)


def _alive(pid: str) -> bool:
    """Whether ``pid`` (as written in a temporary file's name) is a running process."""
    if not pid.isdigit():
        return True  # not ours to judge: keep the file
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


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
        try:  # calloc: pages are taken only where rows are written
            table = np.zeros(shape, dtype)
        except (MemoryError, ValueError):
            raise ModelFileError(f"{path}: {name!r} of shape {list(shape)} does not fit in "
                                 "memory: the file is corrupted") from None
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
        The file is not a fastctr model, is of a newer format, truncated or corrupted, or
        disagrees with itself or its class (a crafted file with a correct checksum): before
        any array is read, every array's dtype (little-endian integers and floats only,
        never object), shape, size and offset (after the header, aligned, inside the file,
        not overlapping another) and the header's length are checked, and the arrays and
        scalars must be exactly the class's; then the class's invariants (state tables of
        2**bits rows and the shapes its parameters give; a Scorer's storage dtype, table
        size, empty slot, bucket range and scale). The message names what disagrees.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such model file: {str(path)!r}")
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = _read_header(f, path, size)
        data_start = f.tell()  # the arrays come after the header
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
        _check_arrays(header, size, data_start, path)
        _check_names(header, path)
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
    _CLASS_CHECKS.get(header["class"], lambda *args: None)(header, state, path)
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
    if n > size - len(head) - 4:  # checked before reading: 2**62 would be a MemoryError
        raise ModelFileError(f"{path}: the header is unreadable: its length field says {n} "
                             f"bytes, more than the file's {size}: truncated or corrupted")
    raw = f.read(n)
    try:
        header = json.loads(raw)
    except ValueError:
        raise ModelFileError(f"{path}: the header is unreadable: truncated or corrupted") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: the header is not a JSON object: corrupted")
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


# -- checks of a file's header against its bytes and its class --------------------------------
# The CRC catches accidents, not lies: a crafted file with a correct checksum is checked
# before any array is allocated, read or handed to compiled code.

def _fail(path: Path, what: str) -> ModelFileError:
    return ModelFileError(f"{path}: {what}: the file is corrupted or was not written by fastctr")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _numeric_dtype(text, path: Path, what: str) -> np.dtype:
    """The dtype ``text`` names, which must be a little-endian integer or float of at most
    8 bytes: never object (its bytes would become pointers), void, bool, complex or dates."""
    try:
        dtype = np.dtype(text) if isinstance(text, str) else None
    except (TypeError, ValueError):
        dtype = None
    if (dtype is None or dtype.kind not in "iuf" or dtype.itemsize > 8
            or dtype.byteorder not in "<|="):
        raise _fail(path, f"{what} has dtype {text!r}; model files hold little-endian "
                          "integers and floats only")
    return dtype


def _check_shape(shape, path: Path, what: str) -> tuple[int, ...]:
    if not (isinstance(shape, list) and all(_is_int(n) and 0 <= n < 1 << 48 for n in shape)):
        raise _fail(path, f"{what} has shape {shape!r}; a shape is a list of sizes >= 0")
    return tuple(shape)


def _check_arrays(header: dict, size: int, data_start: int, path: Path) -> None:
    """Every array entry against the file: a name given once, a numeric dtype, a shape whose
    bytes are its ``nbytes``, and bytes ALIGN-aligned, after the header (``data_start``),
    inside the file and overlapping no other array's. Also the types of the scalars,
    parameters and hasher, and the rows of each table stored by rows (``sparse``)."""
    specs, scalars = header.get("arrays"), header.get("scalars")
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise _fail(path, "the header's 'arrays' is not a list of array entries")
    if not isinstance(scalars, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in scalars.values()):
        raise _fail(path, f"the header's scalars {scalars!r} are not all numbers")
    for key in ("params", "hasher"):
        if not isinstance(header.get(key), dict):
            raise _fail(path, f"the header's {key!r} is not a JSON object")
    spans, names = [], set()
    for spec in specs:
        name = spec.get("name")
        if not isinstance(name, str) or name in names:
            raise _fail(path, f"an array is named {name!r} (a name must be a str given once)")
        names.add(name)
        dtype = _numeric_dtype(spec.get("dtype"), path, f"array {name!r}")
        shape = _check_shape(spec.get("shape"), path, f"array {name!r}")
        nbytes, offset = spec.get("nbytes"), spec.get("offset")
        want = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if not _is_int(nbytes) or nbytes != want:
            raise _fail(path, f"array {name!r} is {dtype.str} {list(shape)}, {want} bytes, but "
                              f"the header says {nbytes!r} bytes")
        if (not _is_int(offset) or offset % ALIGN or offset < data_start
                or offset + nbytes > size - 4):
            raise _fail(path, f"array {name!r} at offset {offset!r} ({nbytes} bytes) is not "
                              f"{ALIGN}-byte aligned between the header's end ({data_start}) "
                              f"and the checksum ({size - 4})")
        spans.append((offset, offset + nbytes, name))
    spans.sort()
    for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
        if start < end:
            raise _fail(path, f"arrays {first!r} and {second!r} overlap")
    sparse = header.get("sparse") or {}
    if not isinstance(sparse, dict):
        raise _fail(path, "the header's 'sparse' is not a JSON object")
    bits = header["hasher"].get("bits")
    for name, spec in sparse.items():
        if name not in _SPARSE_TABLES or not isinstance(spec, dict):
            raise _fail(path, f"{name!r} is said to be stored by rows; only "
                              f"{', '.join(_SPARSE_TABLES)} can be")
        _numeric_dtype(spec.get("dtype"), path, f"the table {name!r}")
        shape = _check_shape(spec.get("shape"), path, f"the table {name!r}")
        if not shape or not _is_int(bits) or not 0 <= bits <= 32 or shape[0] != 1 << bits:
            raise _fail(path, f"the table {name!r} has {shape[0] if shape else 0} rows where "
                              f"the hasher's bits={bits!r} make 2**bits")


def _check_names(header: dict, path: Path) -> None:
    """The arrays and scalars are exactly those of the class's state: each array field
    stored whole or by rows (``NAME.rows`` and ``NAME.values``), every required field
    present, nothing the class does not use."""
    state_cls = MODEL_CLASSES[header["class"]].State
    hints = getattr(state_cls, "__annotations__", {})
    optional = set(getattr(state_cls, "_field_defaults", {}))
    sparse = header.get("sparse") or {}
    arrays = {spec["name"] for spec in header["arrays"]}
    expected_arrays, expected_scalars = set(), set()
    for field in state_cls._fields:
        name = _FILE_NAMES.get(field, field)
        if "ndarray" not in str(hints.get(field, "")):  # a scalar field
            if name in header["scalars"] or field not in optional:
                expected_scalars.add(name)
        elif name in sparse:
            expected_arrays |= {f"{name}.rows", f"{name}.values"}
        elif name in arrays or field not in optional:
            expected_arrays.add(name)
    if arrays != expected_arrays:
        raise _fail(path, f"a {header['class']} file holds the arrays "
                          f"{sorted(expected_arrays)}, this one {sorted(arrays)}")
    if set(header["scalars"]) != expected_scalars:
        raise _fail(path, f"a {header['class']} file holds the scalars "
                          f"{sorted(expected_scalars)}, this one {sorted(header['scalars'])}")


def _check_scorer(header: dict, state: dict, path: Path) -> None:
    """A Scorer's tables against what its compiled lookups rely on: weights stored as its
    declared dtype; dense: one weight per bucket; sparse: a power-of-two table of keys
    (buckets below 2**bits, or EMPTY) with at least one empty slot (where the lookup of an
    absent bucket stops) and one weight per slot; a finite scale > 0."""
    from fastctr.serving.scorer import _STORAGE, EMPTY, LAYOUTS  # the Scorer's own layout

    params, bits = header["params"], header["hasher"].get("bits")
    dtype, layout = params.get("dtype"), params.get("layout")
    weights, keys, scale = state["weights"], state.get("keys"), state["scale"]
    if dtype not in _STORAGE:
        raise _fail(path, f"a Scorer's dtype is one of {', '.join(_STORAGE)}, not {dtype!r}")
    if weights.dtype != np.dtype(_STORAGE[dtype]) or weights.ndim != 1:
        raise _fail(path, f"a {dtype} Scorer stores its weights as a 1-D "
                          f"{np.dtype(_STORAGE[dtype])} array, not {weights.dtype} "
                          f"{list(weights.shape)}")
    if not np.isfinite(scale) or scale <= 0:
        raise _fail(path, f"a Scorer's scale must be a finite number > 0, not {scale!r}")
    if not _is_int(bits) or not 0 <= bits <= 32:
        raise _fail(path, f"a Scorer's hasher has bits={bits!r}")
    if layout not in LAYOUTS or (layout == "sparse") != (keys is not None):
        raise _fail(path, f"a Scorer of layout {layout!r} "
                          f"{'without' if keys is None else 'with'} a table of keys")
    if keys is None:
        if weights.shape[0] != 1 << bits:
            raise _fail(path, f"a dense Scorer has one weight per bucket: 2**{bits}, not "
                              f"{weights.shape[0]}")
        return
    slots = keys.shape[0]
    if keys.dtype != np.uint32 or keys.ndim != 1 or slots < 2 or slots & (slots - 1):
        raise _fail(path, "a sparse Scorer's keys are a uint32 table of a power-of-two size, "
                          f"not {keys.dtype} {list(keys.shape)}")
    if weights.shape[0] != slots:
        raise _fail(path, f"a sparse Scorer has one weight per slot: {slots}, not "
                          f"{weights.shape[0]}")
    empty = keys == EMPTY
    if not empty.any():
        raise _fail(path, "a sparse Scorer's table has no empty slot (the lookup of an absent "
                          "bucket would never stop)")
    if (keys[~empty] >= 1 << bits).any():
        raise _fail(path, f"a sparse Scorer's table holds buckets >= 2**{bits}")


#: invariants checked per class once its state is read (the models check theirs in from_state)
_CLASS_CHECKS = {"Scorer": _check_scorer}
