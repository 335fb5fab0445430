"""One entry to every log format: :func:`read_data` picks the reader, :func:`detect_format`
tells the format from the first line, :func:`hasher_for` builds the format's FeatureHasher.

Every format is parsed and hashed in compiled code straight from bytes (``_parse`` for
delimited text, ``_parse_sparse`` for VW, libsvm and libffm), shares the block, batch and
error loop of :class:`fastctr.io.reader.BlockReader` (gzip by content, ``'-'`` for stdin,
``on_error="raise"`` or ``"skip"``), and yields :class:`~fastctr.HashedRows`. The formats
and how each becomes hashed rows:

``"criteo"``
    Criteo Kaggle TSV, see :mod:`fastctr.io.criteo`.
``"vw"``, ``"libsvm"``, ``"libffm"``
    Vowpal Wabbit text, libsvm and libffm lines, see :mod:`fastctr.io.sparse`.
``"csv"``
    Delimited text with a header naming the columns, see :mod:`fastctr.io.csv`.
"""
from __future__ import annotations

from collections.abc import Sequence

from fastctr._validation import Options, validate_params
from fastctr.exceptions import ParseError
from fastctr.io.criteo import read_criteo
from fastctr.io.csv import csv_hasher, read_csv
from fastctr.io.hashing import FeatureHasher
from fastctr.io.reader import READER_CONSTRAINTS, BlockReader
from fastctr.io.sources import Source, first_line, source_name
from fastctr.io.sparse import libffm_hasher, libsvm_hasher, read_libffm, read_libsvm, read_vw, vw_hasher

FORMATS = ("criteo", "vw", "libsvm", "libffm", "csv")

_READERS = {"criteo": read_criteo, "vw": read_vw, "libsvm": read_libsvm, "libffm": read_libffm,
            "csv": read_csv}


def hasher_for(format: str, source: Source | None = None, *, namespaces: Sequence[str] | None = None,
               unknown_namespace: str = "error", n_fields: int | None = None,
               label: str | None = None, ignore: Sequence[str] = (), numeric: Sequence[str] = (),
               sep: str | bytes = ",", **hasher_params) -> FeatureHasher:
    """The FeatureHasher that reads ``format``, its fields declared or read off ``source``.

    Parameters
    ----------
    format : {"criteo", "vw", "libsvm", "libffm", "csv"}
    source : path or bytes, optional
        Where undeclared VW namespaces, libffm fields or CSV columns are discovered (the
        first MiB, or the header).
    namespaces : sequence of str, optional
        VW namespaces, in field order (discovered from ``source`` when None).
    unknown_namespace : {"error", "other"}
        With ``"other"`` a field ``"other"`` is added for undeclared VW namespaces.
    n_fields : int, optional
        Number of libffm fields (the largest field number in ``source`` + 1 when None).
    label, ignore, numeric, sep
        CSV: the label column, columns to ignore, numeric columns, the separator.
    **hasher_params
        ``bits``, ``hash_seed``, ``numeric_transform``, ``crosses`` of FeatureHasher.

    Examples
    --------
    >>> hasher_for("vw", b"1 |user age:3 |ad a1\\n", bits=20).fields
    ('user', 'ad')
    >>> hasher_for("libffm", n_fields=3).fields
    ('0', '1', '2')
    >>> h = hasher_for("csv", b"id,click,hour,site\\n1,0,14,a\\n", label="click", ignore=["id"],
    ...                numeric=["hour"])
    >>> h.fields, h.numeric
    (('hour', 'site'), ('hour',))
    """
    validate_params({"format": [Options(str, FORMATS)]}, {"format": format}, "hasher_for")
    if format == "criteo":
        return FeatureHasher(**hasher_params)
    if format == "vw":
        return vw_hasher(source, namespaces=namespaces, unknown_namespace=unknown_namespace,
                         **hasher_params)
    if format == "libsvm":
        return libsvm_hasher(**hasher_params)
    if format == "libffm":
        return libffm_hasher(source, n_fields=n_fields, **hasher_params)
    return csv_hasher(source, label=label, ignore=ignore, numeric=numeric, sep=sep, **hasher_params)


def read_data(source: Source, format: str = "auto", hasher: FeatureHasher | None = None, *,
              batch_size: int = 100_000, on_error: str = "raise", model=None,
              **options) -> BlockReader:
    """Read a click log in any supported format as batches of HashedRows.

    Parameters
    ----------
    source : path, '-', binary file or iterable of bytes
    format : {"auto", "criteo", "vw", "libsvm", "libffm", "csv"}, default="auto"
        ``"auto"`` reads the format off the first line (see :func:`detect_format`).
    hasher : FeatureHasher, optional
        By default the format's own (see :func:`hasher_for`).
    batch_size, on_error
        As in :class:`~fastctr.io.reader.BlockReader`.
    model : fitted estimator, optional
        Read ``source`` the way the model's data was read: its ``reader_settings_`` (saved
        in its file by ``fastctr train``, or set by you) give the format and the reader
        options, its ``hasher_`` the hasher; ``options`` given override them, a ``format``
        other than the model's is an error.
    **options
        The format reader's own options (``label=``, ``hash_indices=``, ...).

    Examples
    --------
    >>> batch = next(iter(read_data(b"1 |a x y\\n")))
    >>> batch.n_rows, batch.nnz
    (1, 3)
    """
    if model is not None:
        settings = dict(getattr(model, "reader_settings_", None) or {})
        if format != "auto" and settings.get("format", format) != format:
            raise ValueError(f"format={format!r}, but the model's data was read as "
                             f"{settings['format']!r}: leave format out")
        format = settings.pop("format", format)
        for schema in ("ignore", "numeric"):  # in the model's hasher already
            settings.pop(schema, None)
        options = {**settings, **options}
        hasher = model.hasher_ if hasher is None else hasher
    validate_params({**READER_CONSTRAINTS, "format": [Options(str, ("auto",) + FORMATS)]},
                    {"format": format, "hasher": hasher, "batch_size": batch_size,
                     "on_error": on_error}, "read_data")
    if format == "auto":
        format = detect_format(first_line(source), source)
    return _READERS[format](source, hasher, batch_size=batch_size, on_error=on_error, **options)


def detect_format(line: bytes | None, source: Source = "<line>") -> str:
    """The format of a log, told from its first line when that is unambiguous.

    39 or 40 tab-separated fields: criteo; a ``|``: vw; every token after the first
    ``a:b:c``: libffm; ``a:b``: libsvm; commas and a field that is not a number: csv.

    Examples
    --------
    >>> [detect_format(x) for x in (b"1 |a x", b"1 0:1:1", b"-1 3:1 5:2", b"id,click,C1")]
    ['vw', 'libffm', 'libsvm', 'csv']
    """
    name = source_name(source)
    if line is None:
        raise ValueError(f"cannot read ahead in {name} to detect its format: pass format= "
                         f"one of {FORMATS}")
    tokens = line.split()
    if line.count(b"\t") + 1 in (39, 40):
        return "criteo"
    if b"|" in line:
        return "vw"
    colons = {t.count(b":") for t in tokens[1:]}
    if colons == {2}:
        return "libffm"
    if colons == {1}:
        return "libsvm"
    if b"," in line and not all(_is_number(c) for c in line.split(b",")):
        return "csv"
    raise ParseError(f"{name}, line 1: cannot tell the format from {line[:80]!r}: expected a "
                     f"Criteo, VW, libsvm, libffm or CSV line, or pass format= one of {FORMATS}")


def _is_number(token: bytes) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True

