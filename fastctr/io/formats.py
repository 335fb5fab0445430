"""Readers for the common click-log formats, and :func:`read_data` to pick one.

Every format is parsed and hashed in compiled code straight from bytes (``_parse`` for
delimited text, ``_parse_sparse`` for VW, libsvm and libffm), shares the block, batch and
error loop of :class:`fastctr.io.readers.BlockReader` (gzip by content, ``'-'`` for stdin,
``on_error="raise"`` or ``"skip"``), and yields :class:`~fastctr.HashedRows`.

How each format becomes hashed rows (every row also starts with the bias, field id 0):

``"criteo"``
    Criteo Kaggle TSV, see :func:`fastctr.io.readers.read_criteo`.
``"vw"``
    Vowpal Wabbit text ``label [importance] [tag]|namespace[:scale] feature[:value] ...``.
    Labels -1/0/1 become 0/1; the importance goes to ``HashedRows.weights`` (1 when absent);
    the tag is ignored. Each namespace is a hasher field named by the *whole* namespace name
    (VW's anonymous namespace ``| a b`` is the field ``" "``), and its features are hashed
    like categorical values of that field: bucket ``murmur3_32(feature, seed=field_seed) &
    mask`` with ``field_seed = murmur3_32(namespace, hash_seed)``, value ``value * scale``
    (default 1). A namespace that is not a hasher field is an error, or, with
    ``unknown_namespace="other"``, goes to the field ``"other"`` (its features keep their
    own namespace's seed). Lines without a label are read when ``labeled=False``.
``"libsvm"``
    ``label index:value ...``: indices are buckets as they are (pre-hashed), so each must be
    below ``2**bits``; with ``hash_indices=True`` the index's decimal text is hashed as a
    categorical value of the one field ``"features"`` instead. Features have field id 1.
``"libffm"``
    ``label field:index:value ...``: field ``f`` has field id ``f + 1`` and must be below the
    hasher's number of fields (named ``"0"``, ``"1"``, ...); indices as for libsvm, hashed
    with field ``f``'s seed when ``hash_indices=True``.
``"csv"``
    Delimited text with a header naming the columns (``sep`` ``","`` or ``"\\t"``): a label
    column, numeric columns, columns to ignore, and every other column categorical. Fields
    are split at every separator: quoting is not interpreted (a quoted header is rejected).

Bias and pre-hashed indices share one table, so the bias bucket may meet an index: as in VW
with its constant feature, this costs nothing measurable.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from fastctr._ext import _parse_sparse
from fastctr._ext._parse_sparse import SparseErrorCode as E
from fastctr._ext._parse_sparse import SparseFormat
from fastctr.io.hashing import FeatureHasher
from fastctr.io.readers import (
    BlockReader, DelimitedReader, Source, _Batch, first_line, read_criteo, read_head,
)

FORMATS = ("criteo", "vw", "libsvm", "libffm", "csv")
#: VW's name for the namespace of features before any named one (``| a b``)
VW_DEFAULT_NAMESPACE = " "
OTHER = "other"
#: bytes read from the start of a file to discover VW namespaces or libffm fields
DISCOVERY_BYTES = 1 << 20

_LABEL = "expected a label -1, 0 or 1"
_WORDING = {
    E.ERR_BAD_LABEL: "token {tok}: " + _LABEL + ", got {token!r}",
    E.ERR_MISSING_LABEL: _LABEL + " first{where}",
    E.ERR_BAD_WEIGHT: "token {tok}: expected an importance weight >= 0 after the label, got {token!r}",
    E.ERR_EXTRA_LABEL_TOKEN: "token {tok}: expected 'label [importance] ['tag]' before the first '|', "
                             "got an extra token {token!r}",
    E.ERR_NO_BAR: "expected '|' before the features ('label [importance] [tag]|namespace "
                  "feature ...')",
    E.ERR_UNKNOWN_NAMESPACE: "token {tok}: namespace {token!r} is not among the hasher's fields {fields}: "
                             "declare it (hasher_for('vw', namespaces=[...])) or pass "
                             "unknown_namespace='other'",
    E.ERR_BAD_FEATURE: "token {tok}: expected feature[:value], got {token!r}",
    E.ERR_BAD_VALUE: "token {tok}: expected a number after ':', got {token!r}",
    E.ERR_BAD_INDEX: "token {tok}: expected {shape} with an integer index >= 0, got {token!r}",
    E.ERR_INDEX_RANGE: "token {tok}: index {token!r} is not below 2**bits = {size}: hash with "
                       "more bits or pass hash_indices=True",
    E.ERR_BAD_FIELD: "token {tok}: expected field:index:value with an integer field >= 0, "
                     "got {token!r}",
    E.ERR_FIELD_RANGE: "token {tok}: field {token!r} is not below the hasher's {n} fields: "
                       "pass n_fields= (or a hasher with more fields)",
}


class SparseReader(BlockReader):
    """Batches of HashedRows from VW text, libsvm or libffm lines (see the module docstring).

    Parameters
    ----------
    source : path, '-', binary file or iterable of bytes
        Where the lines come from; gzip is detected by content.
    format : {"vw", "libsvm", "libffm"}
    hasher : FeatureHasher
        Its fields are the VW namespaces, the one libsvm field or the libffm fields; its
        ``bits`` and ``hash_seed`` are used.
    labeled : bool, default=True
        Whether every line must have a label (VW only; libsvm and libffm always have one).
    unknown_namespace : {"error", "other"}, default="error"
        VW: what an undeclared namespace does (``"other"`` needs a hasher field ``"other"``).
    hash_indices : bool, default=False
        libsvm/libffm: hash index tokens instead of using them as buckets.
    batch_size, on_error
        As in :class:`~fastctr.io.readers.BlockReader`.
    """

    def __init__(self, source: Source, format: str, hasher: FeatureHasher, *, labeled: bool = True,
                 unknown_namespace: str = "error", hash_indices: bool = False,
                 batch_size: int = 100_000, on_error: str = "raise") -> None:
        super().__init__(source, batch_size=batch_size, on_error=on_error)
        if unknown_namespace not in ("error", OTHER):
            raise ValueError(f"unknown_namespace must be 'error' or 'other'. Got {unknown_namespace!r}.")
        if unknown_namespace == OTHER and OTHER not in hasher.fields:
            raise ValueError("unknown_namespace='other' needs a hasher field named 'other'")
        self.format = format
        self.hasher = hasher
        self.labeled = labeled
        self.weighted = format == "vw"
        other = hasher.fields.index(OTHER) if unknown_namespace == OTHER else -1
        self._code = {"vw": SparseFormat.VW, "libsvm": SparseFormat.LIBSVM,
                      "libffm": SparseFormat.LIBFFM}[format]
        self._options = (int(hasher.hash_seed), other, labeled, hash_indices)

    def _parse(self, buf: bytes, pos: int, batch: _Batch, errors: np.ndarray) -> tuple:
        return _parse_sparse.parse_sparse(buf, pos, self._code, self.hasher._spec, self._options,
                                          batch.views(), self.on_error == "skip", errors)

    def _describe(self, code: int, col: int, token: bytes) -> str:
        return _WORDING[code].format(
            token=token, tok=col + 1, fields=list(self.hasher.fields), size=1 << self.hasher.bits,
            n=len(self.hasher.fields), where=" (before the first '|')" if self.format == "vw" else "",
            shape="field:index:value" if self.format == "libffm" else "index:value")


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
        As in :class:`~fastctr.io.readers.BlockReader`.
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
            raise ValueError(f"{self.name}: columns {missing} are not in the header {header}")
        self._set_columns(header, label=self.label)


def header_columns(line: bytes, sep: bytes, name: str = "<data>") -> list[str]:
    """Column names from a header line (UTF-8, unquoted).

    Examples
    --------
    >>> header_columns(b"id,click,hour", b",")
    ['id', 'click', 'hour']
    """
    if not line.strip():
        raise ValueError(f"{name}: the first line should be a header naming the columns; it is empty")
    if b'"' in line:
        raise ValueError(f"{name}: quoted CSV is not supported (header {line[:80]!r}); write it "
                         "without quotes, e.g. pandas to_csv(quoting=csv.QUOTE_NONE)")
    return [c.strip() for c in line.decode("utf-8").split(sep.decode())]


def _sep_byte(sep: str | bytes) -> bytes:
    sep = sep.encode() if isinstance(sep, str) else bytes(sep)
    if len(sep) != 1:
        raise ValueError(f"sep must be one byte, e.g. ',' or '\\t'. Got {sep!r} instead.")
    return sep


# -- hashers --------------------------------------------------------------------------------
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
    _check_format(format, FORMATS)
    if format == "criteo":
        return FeatureHasher(**hasher_params)
    if format == "vw":
        names = list(namespaces if namespaces is not None else vw_namespaces(_need_head(source, "namespaces")))
        if unknown_namespace == OTHER and OTHER not in names:
            names.append(OTHER)
        return FeatureHasher(fields=names, **hasher_params)
    if format == "libsvm":
        return FeatureHasher(fields=("features",), **hasher_params)
    if format == "libffm":
        n = n_fields if n_fields is not None else libffm_n_fields(_need_head(source, "n_fields"))
        return FeatureHasher(fields=[str(f) for f in range(n)], **hasher_params)
    head = _need_head(source, "a hasher")
    columns = header_columns(head.split(b"\n", 1)[0].rstrip(b"\r"), _sep_byte(sep))
    unknown = [c for c in [label, *ignore, *numeric] if c is not None and c not in columns]
    if unknown:
        raise ValueError(f"columns {unknown} are not in the header {columns}")
    fields = [c for c in columns if c != label and c not in set(ignore)]
    return FeatureHasher(fields=fields, numeric=list(numeric), **hasher_params)


def _need_head(source: Source | None, what: str) -> bytes:
    head = None if source is None else read_head(source, DISCOVERY_BYTES)
    if head is None:
        raise ValueError(f"cannot read ahead in {source!r} to discover the schema: pass {what} "
                         "(or a hasher built by hasher_for from a file)")
    return head


def vw_namespaces(head: bytes) -> list[str]:
    """Namespace names of VW lines in order of first appearance ('' is VW's ``" "``).

    Examples
    --------
    >>> vw_namespaces(b"1 |a x |b y\\n-1 'tag| z |c:2 w\\n")
    ['a', 'b', ' ', 'c']
    """
    names = dict.fromkeys(m.decode() or VW_DEFAULT_NAMESPACE
                          for m in re.findall(rb"\|([^\s|:]*)", _whole_lines(head)))
    return list(names)


def libffm_n_fields(head: bytes) -> int:
    """One more than the largest field number of libffm lines.

    Examples
    --------
    >>> libffm_n_fields(b"1 0:5:1 3:7:1\\n0 1:2:1\\n")
    4
    """
    fields = re.findall(rb"(?:^|\s)(\d+):\d+:", _whole_lines(head), re.M)
    return 1 + max(map(int, fields), default=0)


def _whole_lines(head: bytes) -> bytes:
    """``head`` without a last partial line (it may be cut by the read limit)."""
    return head[: head.rfind(b"\n") + 1] or head


# -- readers ----------------------------------------------------------------------------------
def read_vw(source: Source, hasher: FeatureHasher | None = None, *, labeled: bool | None = None,
            unknown_namespace: str = "error", batch_size: int = 100_000,
            on_error: str = "raise") -> SparseReader:
    """Read Vowpal Wabbit text lines in hashed batches (labels, importance weights, fields).

    Parameters
    ----------
    source : path, '-', binary file or iterable of bytes
    hasher : FeatureHasher, optional
        Fields are namespace names; by default ``hasher_for("vw", source)`` discovers them.
    labeled : bool, optional
        Whether lines have labels; read off the first line by default (labelled when it
        cannot be read ahead, as from stdin).
    unknown_namespace, batch_size, on_error
        As in :class:`SparseReader`.

    Examples
    --------
    >>> data = b"1 2.0 'a|user age:3 |ad a1\\n-1 |user age:5\\n"
    >>> batch = next(iter(read_vw(data)))
    >>> batch.labels.tolist(), batch.weights.tolist(), batch.fields.tolist()
    ([1.0, 0.0], [2.0, 1.0], [0, 1, 2, 0, 1])
    >>> batch.values.tolist()
    [1.0, 3.0, 1.0, 1.0, 5.0]
    """
    hasher = hasher_for("vw", source, unknown_namespace=unknown_namespace) if hasher is None else hasher
    if labeled is None:
        labeled = _vw_labeled(first_line(source))
    return SparseReader(source, "vw", hasher, labeled=labeled, unknown_namespace=unknown_namespace,
                        batch_size=batch_size, on_error=on_error)


def _vw_labeled(line: bytes | None) -> bool:
    """Whether a VW line has a label (unknown lines count as labelled)."""
    if line is None or b"|" not in line:
        return True
    head = line.split(b"|", 1)[0]
    tokens = head.split()
    if tokens and (not head[-1:].isspace() or tokens[-1].startswith(b"'")):
        tokens.pop()  # the tag
    return bool(tokens)


def read_libsvm(source: Source, hasher: FeatureHasher | None = None, *, hash_indices: bool = False,
                batch_size: int = 100_000, on_error: str = "raise") -> SparseReader:
    """Read libsvm lines ``label index:value ...`` in hashed batches.

    Examples
    --------
    >>> batch = next(iter(read_libsvm(b"+1 3:1 70:0.5\\n-1 3:1\\n")))
    >>> batch.labels.tolist(), batch.indices[1:3].tolist(), batch.values[1:3].tolist()
    ([1.0, 0.0], [3, 70], [1.0, 0.5])
    """
    hasher = hasher_for("libsvm") if hasher is None else hasher
    return SparseReader(source, "libsvm", hasher, hash_indices=hash_indices,
                        batch_size=batch_size, on_error=on_error)


def read_libffm(source: Source, hasher: FeatureHasher | None = None, *, n_fields: int | None = None,
                hash_indices: bool = False, batch_size: int = 100_000,
                on_error: str = "raise") -> SparseReader:
    """Read libffm lines ``label field:index:value ...`` in hashed batches.

    Examples
    --------
    >>> batch = next(iter(read_libffm(b"1 0:3:1 2:70:0.5\\n")))
    >>> batch.fields.tolist(), batch.indices[1:].tolist()
    ([0, 1, 3], [3, 70])
    """
    if hasher is None:
        hasher = hasher_for("libffm", source, n_fields=n_fields)
    return SparseReader(source, "libffm", hasher, hash_indices=hash_indices,
                        batch_size=batch_size, on_error=on_error)


def read_csv(source: Source, hasher: FeatureHasher | None = None, *, label: str | None = None,
             ignore: Sequence[str] = (), numeric: Sequence[str] = (), sep: str | bytes = ",",
             batch_size: int = 100_000, on_error: str = "raise") -> CSVReader:
    """Read delimited text with a header (e.g. an Avazu click log) in hashed batches.

    Parameters
    ----------
    source : path, '-', binary file or iterable of bytes
    hasher : FeatureHasher, optional
        By default ``hasher_for("csv", source, label=, ignore=, numeric=, sep=)``: every column
        but the label and the ignored ones is a field, categorical unless numeric.
    label : str, optional
        The label column; None for unlabelled data.
    ignore, numeric : sequence of str
        Columns to leave out, and columns holding numbers (for the default hasher).
    sep : str or bytes, default=","
    batch_size, on_error
        As in :class:`~fastctr.io.readers.BlockReader`.

    Examples
    --------
    >>> data = b"id,click,hour,site\\n1,0,14,a\\n2,1,15,\\n"
    >>> batch = next(iter(read_csv(data, label="click", ignore=["id"], numeric=["hour"])))
    >>> batch.labels.tolist(), batch.fields.tolist()
    ([0.0, 1.0], [0, 1, 2, 0, 1])
    """
    if hasher is None:
        hasher = hasher_for("csv", source, label=label, ignore=ignore, numeric=numeric, sep=sep)
    return CSVReader(source, hasher, label=label, sep=sep, batch_size=batch_size, on_error=on_error)


_READERS = {"criteo": read_criteo, "vw": read_vw, "libsvm": read_libsvm, "libffm": read_libffm,
            "csv": read_csv}


def read_data(source: Source, format: str = "auto", hasher: FeatureHasher | None = None, *,
              batch_size: int = 100_000, on_error: str = "raise", **options) -> BlockReader:
    """Read a click log in any supported format as batches of HashedRows.

    Parameters
    ----------
    source : path, '-', binary file or iterable of bytes
    format : {"auto", "criteo", "vw", "libsvm", "libffm", "csv"}, default="auto"
        ``"auto"`` reads the format off the first line (see :func:`detect_format`).
    hasher : FeatureHasher, optional
        By default the format's own (see :func:`hasher_for`).
    batch_size, on_error
        As in :class:`~fastctr.io.readers.BlockReader`.
    **options
        The format reader's own options (``label=``, ``hash_indices=``, ...).

    Examples
    --------
    >>> batch = next(iter(read_data(b"1 |a x y\\n")))
    >>> batch.n_rows, batch.nnz
    (1, 3)
    """
    if format == "auto":
        format = detect_format(first_line(source), source)
    _check_format(format, FORMATS)
    return _READERS[format](source, hasher, batch_size=batch_size, on_error=on_error, **options)


def detect_format(line: bytes | None, source: object = "<data>") -> str:
    """The format of a log, told from its first line when that is unambiguous.

    39 or 40 tab-separated fields: criteo; a ``|``: vw; every token after the first
    ``a:b:c``: libffm; ``a:b``: libsvm; commas and a field that is not a number: csv.

    Examples
    --------
    >>> [detect_format(x) for x in (b"1 |a x", b"1 0:1:1", b"-1 3:1 5:2", b"id,click,C1")]
    ['vw', 'libffm', 'libsvm', 'csv']
    """
    if line is None:
        raise ValueError(f"cannot read ahead in {source!r} to detect its format: pass format= "
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
    raise ValueError(f"cannot tell the format of {source!r} from its first line {line[:80]!r}: "
                     f"pass format= one of {FORMATS}")


def _is_number(token: bytes) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _check_format(format: str, choices: Sequence[str]) -> None:
    if format not in choices:
        raise ValueError(f"format must be one of {tuple(choices)}. Got {format!r} instead.")
