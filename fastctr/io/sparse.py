"""VW text, libsvm and libffm: one compiled parser (``_parse_sparse``) for the three, under
the block loop of :class:`~fastctr.io.reader.BlockReader`; the discovery of VW namespaces
and libffm fields from the start of a file.

How each format becomes hashed rows (every row also starts with the bias, field id 0):

``"vw"``
    Vowpal Wabbit text ``label [importance] [tag]|namespace[:scale] feature[:value] ...``.
    Labels -1/0/1 become 0/1; the importance goes to ``HashedRows.weights`` (1 when absent; a
    ParseError unless finite and in [0, 1e6]); the tag is ignored. Each namespace is a hasher
    field named by the *whole* namespace name
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
from fastctr._validation import Options, validate_params
from fastctr.exceptions import ParseError
from fastctr.io.hashing import FeatureHasher
from fastctr.io.reader import READER_CONSTRAINTS, Batch, BlockReader
from fastctr.io.sources import Source, discovery_head, first_line, source_name, whole_lines

#: VW's name for the namespace of features before any named one (``| a b``)
VW_DEFAULT_NAMESPACE = " "
#: libffm fields a hasher can have (field ids, the bias's 0 included, are uint16)
MAX_LIBFFM_FIELDS = 2**16 - 2
OTHER = "other"

_LABEL = "expected a label -1, 0 or 1"
_WORDING = {
    E.ERR_BAD_LABEL: "token {tok}: " + _LABEL + ", got {token!r}",
    E.ERR_MISSING_LABEL: _LABEL + " first{where}",
    E.ERR_BAD_WEIGHT: ("token {tok}: expected a finite importance weight in [0, 1e6] (MAX_WEIGHT) after "
                        "the label, got {token!r}"),
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
        As in :class:`~fastctr.io.reader.BlockReader`.
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

    def _parse(self, buf: bytes, pos: int, batch: Batch, errors: np.ndarray) -> tuple:
        return _parse_sparse.parse_sparse(buf, pos, self._code, self.hasher._spec, self._options,
                                          batch.views(), self.on_error == "skip", errors)

    def _describe(self, code: int, col: int, token: bytes) -> str:
        return _WORDING[code].format(
            token=token, tok=col + 1, fields=list(self.hasher.fields), size=1 << self.hasher.bits,
            n=len(self.hasher.fields), where=" (before the first '|')" if self.format == "vw" else "",
            shape="field:index:value" if self.format == "libffm" else "index:value")


# -- hashers: the fields of each format, declared or discovered ---------------------------------
def vw_hasher(source: Source | None = None, *, namespaces: Sequence[str] | None = None,
              unknown_namespace: str = "error", **hasher_params) -> FeatureHasher:
    """The FeatureHasher of VW text: one field per namespace, declared or discovered from
    ``source`` (plus ``"other"`` with ``unknown_namespace="other"``); see
    :func:`~fastctr.io.detect.hasher_for`.

    Examples
    --------
    >>> vw_hasher(b"1 |user age:3 |ad a1\\n", unknown_namespace="other").fields
    ('user', 'ad', 'other')
    """
    if namespaces is None:
        namespaces = vw_namespaces(discovery_head(source, "namespaces"), source_name(source))
    names = list(namespaces)
    if unknown_namespace == OTHER and OTHER not in names:
        names.append(OTHER)
    return FeatureHasher(fields=names, **hasher_params)


def libsvm_hasher(**hasher_params) -> FeatureHasher:
    """The FeatureHasher of libsvm lines: the one field ``"features"``."""
    return FeatureHasher(fields=("features",), **hasher_params)


def libffm_hasher(source: Source | None = None, *, n_fields: int | None = None,
                  **hasher_params) -> FeatureHasher:
    """The FeatureHasher of libffm lines: fields ``"0"`` .. ``str(n_fields - 1)``, their number
    declared or discovered from ``source``."""
    if n_fields is None:
        n = libffm_n_fields(discovery_head(source, "n_fields"), source_name(source))
    else:  # checked before the names are made: n_fields=10**8 would make 100M of them
        validate_params(READER_CONSTRAINTS, {"n_fields": n_fields}, "libffm_hasher")
        n = n_fields
    return FeatureHasher(fields=[str(f) for f in range(n)], **hasher_params)


def vw_namespaces(head: bytes, name: str = "<bytes>") -> list[str]:
    """Namespace names of VW lines in order of first appearance ('' is VW's ``" "``).

    A namespace name that is not UTF-8, or lines without any namespace, are a ParseError
    naming ``name`` (and the line).

    Examples
    --------
    >>> vw_namespaces(b"1 |a x |b y\\n-1 'tag| z |c:2 w\\n")
    ['a', 'b', ' ', 'c']
    """
    head = whole_lines(head)
    names: dict[str, None] = {}
    for match in re.finditer(rb"\|([^\s|:]*)", head):
        try:
            names[match[1].decode() or VW_DEFAULT_NAMESPACE] = None
        except UnicodeDecodeError:
            line = head.count(b"\n", 0, match.start()) + 1
            raise ParseError(f"{name}, line {line}: namespace {match[1][:60]!r} is not UTF-8 text: "
                             "expected UTF-8 namespace names (they name the hasher's fields)") from None
    if not names:
        raise ParseError(f"{name}: no VW namespace ('|name') in its first {len(head):,} bytes to "
                         "discover the fields from: expected lines 'label [importance] [tag]|namespace "
                         "feature ...', or pass namespaces=")
    return list(names)


def libffm_n_fields(head: bytes, name: str = "<bytes>") -> int:
    """One more than the largest field number of libffm lines.

    A field number of ``MAX_LIBFFM_FIELDS`` or more (field ids are uint16, with the bias) is a
    ParseError naming ``name`` and the line, raised before any field is made.

    Examples
    --------
    >>> libffm_n_fields(b"1 0:5:1 3:7:1\\n0 1:2:1\\n")
    4
    """
    head = whole_lines(head)
    fields = re.findall(rb"(?:^|\s)(\d+):\d+:", head, re.M)
    # compared as text first: a 5,000-digit number is too long for int()
    largest = max(fields, key=lambda f: (len(f.lstrip(b"0")), f.lstrip(b"0")), default=b"0")
    if len(largest.lstrip(b"0")) > 5 or int(largest) >= MAX_LIBFFM_FIELDS:
        at = re.search(rb"(?:^|\s)(" + re.escape(largest) + rb"):\d+:", head, re.M).start(1)
        line = head.count(b"\n", 0, at) + 1
        number = largest.lstrip(b"0")[:20].decode()
        raise ParseError(f"{name}, line {line}: libffm field number {number} is too large: at "
                         f"most {MAX_LIBFFM_FIELDS} fields, numbered 0 .. {MAX_LIBFFM_FIELDS - 1}")
    return 1 + int(largest)


# -- readers ----------------------------------------------------------------------------------
def read_vw(source: Source, hasher: FeatureHasher | None = None, *, labeled: bool | None = None,
            unknown_namespace: str = "error", batch_size: int = 100_000,
            on_error: str = "raise") -> SparseReader:
    """Read Vowpal Wabbit text lines in hashed batches (labels, importance weights, fields).

    Parameters
    ----------
    source : path, '-', binary file or iterable of bytes
    hasher : FeatureHasher, optional
        Fields are namespace names; by default ``vw_hasher(source)`` discovers them.
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
    validate_params({**READER_CONSTRAINTS, "unknown_namespace": [Options(str, ("error", "other"))]},
                    {"hasher": hasher, "labeled": labeled, "unknown_namespace": unknown_namespace,
                     "batch_size": batch_size, "on_error": on_error}, "read_vw")
    hasher = vw_hasher(source, unknown_namespace=unknown_namespace) if hasher is None else hasher
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
    validate_params(READER_CONSTRAINTS, {"hasher": hasher, "hash_indices": hash_indices,
                                         "batch_size": batch_size, "on_error": on_error},
                    "read_libsvm")
    hasher = libsvm_hasher() if hasher is None else hasher
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
    validate_params(READER_CONSTRAINTS, {"hasher": hasher, "n_fields": n_fields,
                                         "hash_indices": hash_indices, "batch_size": batch_size,
                                         "on_error": on_error}, "read_libffm")
    if hasher is None:
        hasher = libffm_hasher(source, n_fields=n_fields)
    return SparseReader(source, "libffm", hasher, hash_indices=hash_indices,
                        batch_size=batch_size, on_error=on_error)
