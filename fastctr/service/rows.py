"""Request bodies to raw rows, checked cheaply: the shapes of :mod:`fastctr.service.schemas`,
with a :class:`~fastctr.service.errors.ClientError` naming the field at fault.

The body is decoded by orjson; a row's values are type-checked by a C-level set operation
(``VALUE_TYPES.issuperset(map(type, values))``), a batch's by the compiled hasher as it
hashes them (``transform(..., scalars_only=True)``), not a Python loop per feature or per
row; the loop that names the bad value runs only once a row is known to hold one. The
hasher checks the rest as it hashes (numeric fields' values, unknown keys under the model's policy).
"""
from __future__ import annotations

import os
from itertools import chain
from operator import itemgetter
from typing import Any

import orjson

from fastctr.service.errors import ClientError
from fastctr.service.stores import FeatureStore

ROW_KEYS = frozenset({"features", "line", "numerical_features", "categorical_features",
                      "request_id", "entities"})
VALUE_TYPES = frozenset({str, int, float, type(None)})
NUMBER_TYPES = frozenset({int, float, type(None)})
CATEGORY_TYPES = frozenset({str, type(None)})
#: the longest request id kept (a client's own ids included)
MAX_ID = 128


def decode(body: bytes) -> Any:
    """The JSON document of a request body (422 naming the position when malformed)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ClientError(422, "", f"the body is not valid JSON: {e}") from None


def json_type(value: Any) -> str:
    """A Python value's JSON type name, for messages."""
    return {dict: "an object", list: "an array", str: "a string", int: "an integer",
            float: "a number", bool: "a boolean", type(None): "null"}.get(type(value),
                                                                           type(value).__name__)


def check_object(doc: Any, where: str, allowed: frozenset) -> dict:
    """``doc`` must be a JSON object whose keys are among ``allowed``."""
    if type(doc) is not dict:
        raise ClientError(422, where, f"must be a JSON object; got {json_type(doc)}")
    if not allowed.issuperset(doc):
        unknown = sorted(set(doc) - allowed)
        raise ClientError(422, field_path(where, unknown[0]),
                          f"unknown key (the keys are {', '.join(sorted(allowed))})")
    return doc


def request_id(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if type(value) is not str or not 0 < len(value) <= MAX_ID:
        raise ClientError(422, where, f"must be a string of 1 to {MAX_ID} characters; got "
                                      f"{json_type(value)}" + (f" of {len(value)}" if
                                                               type(value) is str else ""))
    return value


def check_features(features: Any, where: str) -> dict:
    """A ``features`` object: string keys (JSON's), values strings, numbers or null."""
    if type(features) is not dict:
        raise ClientError(422, where, f"must be an object of field -> value; got "
                                      f"{json_type(features)}")
    if not VALUE_TYPES.issuperset(map(type, features.values())):
        for key, value in features.items():
            if type(value) not in VALUE_TYPES:
                raise ClientError(422, field_path(where, key), "must be a string, a number or null; "
                                                          f"got {json_type(value)}")
    return features


def parse_row(doc: Any, where: str, served, features: FeatureStore) -> tuple[dict | str, str | None]:
    """One row of a predict request as the raw row the model scores (a dict or a line) and
    its request id (None: to be generated)."""
    row = check_object(doc, where, ROW_KEYS)
    rid = request_id(row.get("request_id"), field_path(where, "request_id"))
    forms = [k for k in ("features", "line", "numerical_features") if k in row]
    if "categorical_features" in row and "numerical_features" not in row:
        forms.append("categorical_features")
    if len(forms) != 1:
        raise ClientError(422, where, "a row holds exactly one of 'features', 'line', or "
                                      "'numerical_features' with 'categorical_features'; got "
                                      + (", ".join(forms) or "none of them"))
    entities = row.get("entities")
    if forms[0] == "line":
        line = row["line"]
        if type(line) is not str:
            raise ClientError(422, field_path(where, "line"), f"must be a string; got {json_type(line)}")
        if entities is not None:
            raise ClientError(422, field_path(where, "entities"), "cannot be merged into a 'line' row: "
                                                             "send 'features' instead")
        return line, rid
    if forms[0] == "features":
        raw = check_features(row["features"], field_path(where, "features"))
    else:
        raw = _positional(row, where, served)
    if entities is not None:
        raw = _with_entities(raw, entities, field_path(where, "entities"), features)
    return raw, rid


def parse_batch(items: list, served, features: FeatureStore) -> tuple[list, list[str | None]]:
    """The rows of a batch as raw rows and their request ids (None: to be generated). A
    batch of ``{"features": {...}}`` rows alone, or of ``{"line": "..."}`` rows alone, is
    checked by a few C-level passes over all its rows (no Python code a row; the features'
    values are checked as they are hashed); any other is parsed row by row (naming the row
    at fault)."""
    form = _single_key(items)
    if form == "features":
        raws = list(map(itemgetter("features"), items))
        if _all_of(raws, dict):
            return raws, [None] * len(raws)
    elif form == "line":
        raws = list(map(itemgetter("line"), items))
        if _all_of(raws, str):
            return raws, [None] * len(raws)
    parsed = [parse_row(row, f"rows[{i}]", served, features) for i, row in enumerate(items)]
    return [raw for raw, _ in parsed], [rid for _, rid in parsed]


def _all_of(values: list, kind: type) -> bool:
    """Whether every value is exactly of type ``kind`` (one C-level pass)."""
    return set(map(type, values)) <= {kind}


def _single_key(items: list) -> str | None:
    """The one key every item has alone (every item a dict of one key, the same one), or None."""
    if not items or not _all_of(items, dict) or set(map(len, items)) != {1}:
        return None
    keys = set(chain.from_iterable(items))
    return keys.pop() if len(keys) == 1 else None


def new_ids(n: int) -> list[str]:
    """``n`` request ids for a batch: random 128-bit numbers in hex (32 characters), cut
    from one draw of the OS's randomness (not one draw a row).

    Examples
    --------
    >>> ids = new_ids(3)
    >>> len(ids), {len(i) for i in ids}, new_ids(0)
    (3, {32}, [])
    """
    if n == 0:
        return []
    return os.urandom(16 * n).hex(" ", 16).split(" ")  # (cut by C code, not a loop a row)


def _positional(row: dict, where: str, served) -> dict:
    """``numerical_features`` and ``categorical_features`` as a dict row of the model's
    numeric and categorical fields, in schema order (Criteo: I1..I13 and C1..C26)."""
    for key, names, types, what in (
            ("numerical_features", served.numeric, NUMBER_TYPES, "a number or null"),
            ("categorical_features", served.categorical, CATEGORY_TYPES, "a string or null")):
        values = row.get(key)
        field = field_path(where, key)
        if type(values) is not list:
            raise ClientError(422, field, f"must be an array of {len(names)} values; got "
                                          f"{json_type(values) if key in row else 'nothing'}")
        if len(values) != len(names):
            shown = f" ({names[0]}..{names[-1]})" if names else ""
            raise ClientError(422, field, f"must hold {len(names)} values, one per "
                                          f"{key.split('_')[0]} field of the model{shown}; got "
                                          f"{len(values)}")
        if not types.issuperset(map(type, values)):
            i = next(i for i, v in enumerate(values) if type(v) not in types)
            raise ClientError(422, f"{field}[{i}]", f"must be {what}; got {json_type(values[i])}")
    return {**dict(zip(served.numeric, row["numerical_features"])),
            **dict(zip(served.categorical, row["categorical_features"]))}


def _with_entities(raw: dict, entities: Any, where: str, features: FeatureStore) -> dict:
    """The stored features of each entity (looked up together: one Redis round trip), then
    the row's own over them."""
    if type(entities) is not dict or not CATEGORY_TYPES.issuperset(map(type, entities.values())):
        raise ClientError(422, where, "must be an object of entity -> id (strings), e.g. "
                                      "{\"user\": \"u17\"}")
    merged: dict = {}
    for stored in features.get_many([(e, k) for e, k in entities.items() if k is not None]):
        if stored:
            merged.update(stored)
    merged.update(raw)
    return merged


def field_path(where: str, key: Any) -> str:
    """``where`` and a key (or index) below it, as a field path: ``rows[3].features.C5``."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else str(key)
