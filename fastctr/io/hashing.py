"""FeatureHasher: field values to hashed sparse rows (the hashing trick, VW style).

The spec, so that another language can reproduce it bit for bit (MurmurHash3 x86_32,
unsigned, little-endian):

* a field's seed is ``murmur3_32(utf8(field_name), seed=hash_seed)``;
* a categorical value's bucket is ``murmur3_32(utf8(value), seed=field_seed) & (2**bits - 1)``;
* a numeric value ``x`` with ``numeric_transform="bin"`` becomes the token
  ``b = floor(x) if x <= 2 else 3 + floor(log(x)**2)`` (the Criteo winners' binning, shifted so
  bins never collide with small raw values), hashed as the 8 little-endian bytes of ``b`` as
  an int64; with ``"value"`` or ``"log1p"`` the field has one bucket ``field_seed & mask``
  carrying ``x`` or ``sign(x) * log1p(|x|)``;
* a missing value (absent, empty, None, NaN) emits nothing;
* the bias is always present: bucket ``murmur3_32(b"", seed=hash_seed) & mask``, value 1;
* a cross ``a x b`` of two present fields has bucket
  ``murmur3_32(le32(h_b), seed=h_a) & mask`` where ``h_a``, ``h_b`` are the fields' full 32-bit
  hashes (before the mask), and value ``v_a * v_b``;
* a row lists the bias (field id 0), then the present fields in schema order (field id
  ``1 + position``), then the present crosses (field id ``1 + n_fields + cross position``).

A dict row's key that is not a field is an error (``unknown="strict"``, the default: a
mistyped or foreign schema would otherwise score the bias alone) or skipped
(``unknown="ignore"``); the policy changes no hash.
"""
from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from numbers import Integral
from typing import Any

import numpy as np

from fastctr._ext._hash import check_keys, hash_dict_rows, murmur3_32
from fastctr._validation import (
    Interval,
    InvalidParameterError,
    Options,
    PairSequence,
    StrSequence,
    validate_params,
)
from fastctr.io.rows import HashedRows

# Interned, like the literal keys of dict rows written in code ({"I1": 3}), so that rows built
# from these names or from literals match their fields by identity (the hasher's fast path).
CRITEO_NUMERIC = tuple(sys.intern(f"I{i}") for i in range(1, 14))
CRITEO_CATEGORICAL = tuple(sys.intern(f"C{i}") for i in range(1, 27))
CRITEO_FIELDS = CRITEO_NUMERIC + CRITEO_CATEGORICAL
NUMERIC_TRANSFORMS = ("bin", "value", "log1p")
#: What a dict row's key that is not a field does: raise (strict) or nothing (ignore)
UNKNOWN_POLICIES = ("strict", "ignore")
#: Hashing parameters that change no hash (a fitted model may change them)
POLICY_PARAMS = ("unknown",)

#: The hashing parameters' valid values, shared by every estimator (which owns a hasher). bits
#: stops at 30: the kernels and scorers index buckets with int32 and the 2**bits tables are
#: allocated whole; 2**18 is the smallest table the kernels are tuned and tested for.
HASHING_CONSTRAINTS = {
    "fields": [None, StrSequence(distinct=True, min_len=1)],
    "numeric": [None, StrSequence(distinct=False)],
    "bits": [Interval(Integral, 18, 30, closed="both")],
    "hash_seed": [Interval(Integral, 0, 2**32 - 1, closed="both")],
    "numeric_transform": [Options(str, NUMERIC_TRANSFORMS)],
    "crosses": [PairSequence()],
    "unknown": [Options(str, UNKNOWN_POLICIES)],
}


def validate_hashing(params: dict[str, Any], caller: str) -> None:
    """Check hashing parameters (as given to FeatureHasher or an estimator) one by one, then
    together: the numeric fields and the crossed ones must be among the fields.

    Raises :class:`~fastctr.exceptions.InvalidParameterError` worded as scikit-learn's, e.g.
    "The 'bits' parameter of FTRLClassifier must be an int in the range [18, 30]. Got 17
    instead."
    """
    validate_params(HASHING_CONSTRAINTS, params, caller)
    check_hashing_together(params, caller)


def check_hashing_together(params: dict[str, Any], caller: str) -> None:
    """The checks of :func:`validate_hashing` that involve several parameters (each one
    already valid on its own)."""
    if not params["numeric"] and not params["crosses"] and (params["fields"] is None
                                                            or len(params["fields"]) < 2**16):
        return  # nothing to relate (the common case: checked at every fit and predict)
    fields = CRITEO_FIELDS if params["fields"] is None else tuple(params["fields"])
    known = set(fields)
    for name in params["numeric"] or ():
        if name not in known:
            raise InvalidParameterError(
                f"The 'numeric' parameter of {caller} must name fields among the 'fields' "
                f"{fields}. Got {name!r}, which is not one of them.")
    for pair in params["crosses"]:
        if any(name not in known for name in pair):
            raise InvalidParameterError(
                f"The 'crosses' parameter of {caller} must pair fields among the 'fields' "
                f"{fields}. Got the cross {tuple(pair)!r}.")
    if 1 + len(fields) + len(params["crosses"]) > 2**16:
        raise InvalidParameterError(
            f"{caller} takes at most 65535 fields and crosses together (field ids are uint16)")


def numeric_bin(x: float) -> int:
    """The "bin" token of a numeric value (see the module docstring)."""
    return 3 + math.floor(math.log(x) ** 2) if x > 2 else math.floor(x)


#: numeric_bin of 0..4095, looked up by the compiled hasher instead of computing a log
BIN_TABLE = np.array([numeric_bin(x) for x in range(4096)], np.int64)


class FeatureHasher:
    """Hash rows of named fields into ``2**bits`` buckets.

    Parameters
    ----------
    fields : sequence of str, optional
        Field names in schema order. Defaults to the Criteo schema (I1..I13, C1..C26).
    numeric : sequence of str, optional
        The numeric fields among ``fields``; the others are categorical. Defaults to I1..I13
        for the Criteo schema and to none otherwise.
    bits : int, default=22
        Hash table size is ``2**bits``; 18 to 30.
    hash_seed : int, default=0
        Seed of every field's hash.
    numeric_transform : {"bin", "value", "log1p"}, default="bin"
        How numeric values become features (see the module docstring).
    crosses : sequence of (str, str), default=()
        Field pairs whose values are crossed into one extra feature.
    unknown : {"strict", "ignore"}, default="strict"
        A dict row (or DataFrame column) whose key is not a field: "strict" raises a
        ValueError naming the unknown keys and the fields (a mistyped or foreign schema
        would otherwise score the bias alone); "ignore" skips such keys. Fields missing from
        a row are always allowed (missing values). Lines and pre-hashed rows are unaffected.

    Examples
    --------
    >>> hasher = FeatureHasher(bits=18)
    >>> rows = hasher.transform([{"I1": 3, "C1": "68fd1e64"}, {"C2": "80e26c9b"}])
    >>> rows.n_rows, rows.nnz          # each row has the bias plus its present fields
    (2, 5)
    >>> rows.fields.tolist()
    [0, 1, 14, 0, 15]
    >>> try:                           # a key that is not a field (unknown="strict")
    ...     hasher.transform([{"C1": "68fd1e64", "c2": "80e26c9b"}])
    ... except ValueError as e:
    ...     print(e)
    row 0: unknown key 'c2': not a field (I1, I2, I3, ..., C26: 39 fields); pass
    fields=[...] naming the row's keys, or unknown='ignore' to skip them
    >>> FeatureHasher(bits=18, unknown="ignore").transform([{"c2": "x"}]).nnz  # the bias
    1
    """

    def __init__(
        self,
        fields: Sequence[str] | None = None,
        numeric: Sequence[str] | None = None,
        bits: int = 22,
        hash_seed: int = 0,
        numeric_transform: str = "bin",
        crosses: Sequence[tuple[str, str]] = (),
        unknown: str = "strict",
    ) -> None:
        validate_hashing(dict(fields=fields, numeric=numeric, bits=bits, hash_seed=hash_seed,
                              numeric_transform=numeric_transform, crosses=crosses,
                              unknown=unknown),
                         "FeatureHasher")
        # interned, so dict rows with literal keys match their fields by identity (fast path)
        self.fields = tuple(sys.intern(str(f)) for f in (CRITEO_FIELDS if fields is None else fields))
        if numeric is None:
            numeric = CRITEO_NUMERIC if fields is None else ()
        self.numeric = tuple(numeric)
        self.bits = int(bits)
        self.hash_seed = int(hash_seed)
        self.numeric_transform = numeric_transform
        self.crosses = tuple(tuple(pair) for pair in crosses)
        self.unknown = unknown
        self._spec = self._build_spec()

    def _build_spec(self) -> tuple:
        # The tuple layout is read by src_ext/rowspec.pxd:make_spec.
        position = {name: i for i, name in enumerate(self.fields)}
        seeds = np.array([murmur3_32(f, self.hash_seed) for f in self.fields], np.uint32)
        numeric = np.array([f in set(self.numeric) for f in self.fields], np.int8)
        crosses = np.array(
            [[position[a] for a, _ in self.crosses], [position[b] for _, b in self.crosses]],
            np.int32,
        ).reshape(2, len(self.crosses))
        return (
            seeds,
            numeric,
            np.ascontiguousarray(crosses),
            self.mask,
            self.bias_bucket,
            NUMERIC_TRANSFORMS.index(self.numeric_transform),
            BIN_TABLE,
            self.unknown == "strict",
        )

    @property
    def mask(self) -> int:
        return (1 << self.bits) - 1

    @property
    def bias_bucket(self) -> int:
        return murmur3_32(b"", self.hash_seed) & self.mask

    @property
    def n_fields(self) -> int:
        """Number of field ids a row can carry: bias + fields + crosses."""
        return 1 + len(self.fields) + len(self.crosses)

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, JSON-serialisable (used by model files)."""
        return {
            "fields": list(self.fields),
            "numeric": list(self.numeric),
            "bits": int(self.bits),
            "hash_seed": int(self.hash_seed),
            "numeric_transform": self.numeric_transform,
            "crosses": [list(pair) for pair in self.crosses],
            "unknown": self.unknown,
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureHasher) and self.get_params() == other.get_params()

    def __repr__(self) -> str:
        return f"FeatureHasher(n_fields={len(self.fields)}, bits={self.bits}, crosses={len(self.crosses)})"

    def __reduce__(self):
        return (_hasher_from_params, (self.get_params(),))

    def transform(self, rows: Iterable[dict] | Any, *, scalars_only: bool = False) -> HashedRows:
        """Hash dict rows (or a pandas DataFrame) into HashedRows; labels are not set.

        Under ``unknown="strict"`` a key that is not a field raises ValueError (a
        DataFrame's columns are checked once, before any row). A categorical value that is
        not a str is hashed as its text (an int as its digits); with ``scalars_only`` a value
        other than a str, an int, a float or None (a JSON row's list, object or boolean)
        raises TypeError naming the row instead.

        Examples
        --------
        >>> hasher = FeatureHasher(["a"], bits=18)
        >>> hasher.transform([{"a": "x"}, {"a": [1, 2]}]).n_rows
        2
        >>> hasher.transform([{"a": "x"}, {"a": [1, 2]}], scalars_only=True)
        Traceback (most recent call last):
        TypeError: row 1: a value is not a string, a number or null
        """
        if self.unknown == "strict" and _is_frame(rows):
            check_keys(list(rows.columns), self.fields)
        records = _records(rows)
        indptr, indices, values, fields = hash_dict_rows(records, self._spec, self.fields,
                                                         scalars_only)
        return HashedRows(indptr, indices, values, fields)


def _hasher_from_params(params: dict) -> FeatureHasher:
    return FeatureHasher(**params)


def _is_frame(rows) -> bool:
    return hasattr(rows, "to_dict") and hasattr(rows, "columns")


def _records(rows) -> list:
    """Dict rows as a list; a DataFrame becomes its records (NaN is missing)."""
    if _is_frame(rows):
        return rows.to_dict("records")
    if isinstance(rows, dict):
        raise TypeError("transform takes a sequence of dict rows; wrap a single row in a list")
    return rows if isinstance(rows, list) else list(rows)
