"""The compiled hasher against mmh3 and the written-out spec in tests/naive.py."""
import json
import math

import mmh3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastctr import FeatureHasher, read_criteo
from fastctr._ext._hash import murmur3_32
from fastctr.io.hashing import CRITEO_FIELDS, CRITEO_NUMERIC

from naive import hash_row


@settings(max_examples=500, deadline=None)
@given(st.text(), st.integers(0, 2**32 - 1))
def test_murmur3_matches_mmh3_on_unicode(text, seed):
    assert murmur3_32(text, seed) == mmh3.hash(text.encode("utf-8"), seed, signed=False)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 2**32 - 1))
def test_murmur3_matches_mmh3_on_bytes(data, seed):
    assert murmur3_32(data, seed) == mmh3.hash(data, seed, signed=False)


def test_murmur3_rejects_other_types():
    with pytest.raises(TypeError, match="str or bytes"):
        murmur3_32(12, 0)


def _as_list(rows, r):
    a, b = rows.indptr[r], rows.indptr[r + 1]
    return list(zip(rows.indices[a:b].tolist(), rows.values[a:b].tolist(), rows.fields[a:b].tolist()))


def _random_rows(rng, n):
    rows = []
    for _ in range(n):
        row = {}
        for name in CRITEO_FIELDS:
            if rng.random() < 0.2:
                continue  # missing
            if name in CRITEO_NUMERIC:
                row[name] = int(rng.choice([-2, -1, 0, 1, 2, 3, 7, 50, 1000, 123456]))
            else:
                row[name] = f"{int(rng.integers(0, 2**32)):08x}"
        rows.append(row)
    return rows


@pytest.mark.parametrize("transform", ["bin", "value", "log1p"])
def test_dict_rows_follow_the_spec(rng, transform):
    crosses = (("C1", "C2"), ("I1", "C3"))
    hasher = FeatureHasher(bits=20, hash_seed=7, numeric_transform=transform, crosses=crosses)
    rows = _random_rows(rng, 300)
    hashed = hasher.transform(rows)
    for r, row in enumerate(rows):
        expected = hash_row(row, CRITEO_FIELDS, CRITEO_NUMERIC, 20, 7, transform, crosses)
        got = _as_list(hashed, r)
        assert [(i, f) for i, _, f in got] == [(i, f) for i, _, f in expected]
        np.testing.assert_allclose([v for _, v, _ in got], [v for _, v, _ in expected], rtol=1e-6)


def test_json_decoded_rows_hash_as_literal_ones(rng):
    """Decoded rows have fresh keys (matched by their characters, not identity), any key
    order, non-ASCII values and keys that are not fields (skipped under unknown="ignore";
    tests/test_unknown_keys.py has the strict default)."""
    hasher = FeatureHasher(bits=20, unknown="ignore")
    rows = _random_rows(rng, 200)
    for i, row in enumerate(rows[::3]):
        row["C7"] = ["café", "日本", "x" * 40, ""][i % 4]
    shuffled = [dict(sorted(r.items(), key=lambda _: rng.random())) for r in rows[1::3]]
    decoded = [json.loads(json.dumps(r | {"C1x": "no", "I": 1, "c1": "no"})) for r in rows]
    decoded[0][5] = "an int key"
    for got, expected in [(decoded, rows), (shuffled, rows[1::3])]:
        for a, b in zip(got, expected):
            assert _as_list(hasher.transform([a]), 0) == hash_row(b, CRITEO_FIELDS, CRITEO_NUMERIC, 20, 0)


def _tsv(row, label):
    cells = [str(label)] + [str(row.get(name, "")) for name in CRITEO_FIELDS]
    return ("\t".join(cells) + "\n").encode()


def test_tsv_and_dict_rows_hash_identically(rng):
    hasher = FeatureHasher(bits=22, crosses=(("C1", "C9"),))
    rows = _random_rows(rng, 500)
    data = b"".join(_tsv(row, r % 2) for r, row in enumerate(rows))
    (parsed,) = list(read_criteo(data, hasher, batch_size=1000))
    from_dicts = hasher.transform(rows)
    np.testing.assert_array_equal(parsed.indptr, from_dicts.indptr)
    np.testing.assert_array_equal(parsed.indices, from_dicts.indices)
    np.testing.assert_array_equal(parsed.values, from_dicts.values)
    np.testing.assert_array_equal(parsed.fields, from_dicts.fields)
    np.testing.assert_array_equal(parsed.labels, np.arange(500) % 2)


def test_missing_values_emit_nothing():
    hasher = FeatureHasher(bits=18)
    rows = hasher.transform([{"I1": None, "I2": float("nan"), "C1": ""}, {}])
    assert rows.indptr.tolist() == [0, 1, 2]  # the bias only
    assert rows.fields.tolist() == [0, 0]


def test_numeric_binning_matches_criteo_winners():
    hasher = FeatureHasher(fields=["x"], numeric=["x"], bits=18)
    seed = mmh3.hash(b"x", 0, signed=False)
    for x, token in [(-1, -1), (2, 2), (3, 3 + int(math.log(3) ** 2)), (1000, 3 + 47)]:
        rows = hasher.transform([{"x": x}])
        expected = mmh3.hash(np.int64(token).tobytes(), seed, signed=False) & hasher.mask
        assert rows.indices[1] == expected


def test_custom_schema_and_dataframe():
    pd = pytest.importorskip("pandas")
    hasher = FeatureHasher(fields=["site", "hour"], numeric=["hour"], bits=18)
    frame = pd.DataFrame({"site": ["a", None, "c"], "hour": [1.0, 2.0, np.nan]})
    rows = hasher.transform(frame)
    assert rows.indptr.tolist() == [0, 3, 5, 7]
    assert rows.fields.tolist() == [0, 1, 2, 0, 2, 0, 1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"bits": 17}, r"The 'bits' parameter of FeatureHasher must be an int in the range "
                       r"\[18, 30\]\. Got 17 instead\."),
        ({"bits": 31}, r"'bits' parameter of FeatureHasher must be an int in the range \[18, 30\]"),
        ({"bits": 20.0}, r"'bits' parameter .* Got 20.0 instead"),
        ({"bits": True}, r"'bits' parameter .* Got True instead"),
        ({"numeric_transform": "sqrt"},
         r"The 'numeric_transform' parameter of FeatureHasher must be a str among "
         r"\{'bin', 'value', 'log1p'\}\. Got 'sqrt' instead\."),
        ({"crosses": [("C1", "nope")]}, r"'crosses' parameter .* Got the cross \('C1', 'nope'\)"),
        ({"crosses": [("C1",)]}, r"'crosses' parameter .* must be a sequence of \(str, str\) pairs"),
        ({"fields": ["a", "a"]}, "'fields' parameter .* distinct"),
        ({"fields": []}, r"'fields' parameter .* str \(at least 1\)\. Got \[\] instead"),
        ({"fields": "C1"}, "'fields' parameter .* must be None or a sequence of distinct non-empty str"),
        ({"fields": ["a"], "numeric": ["b"]}, "'numeric' parameter .* Got 'b'"),
        ({"hash_seed": -1}, r"The 'hash_seed' parameter of FeatureHasher must be an int in the "
                            r"range \[0, 4294967295\]\. Got -1 instead\."),
        ({"hash_seed": 2**32}, r"'hash_seed' parameter .* Got 4294967296 instead"),
    ],
)
def test_bad_hasher_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FeatureHasher(**kwargs)


def test_hasher_parameter_limits_and_sequences_accepted():
    import pandas as pd

    assert FeatureHasher(bits=18, hash_seed=2**32 - 1).hash_seed == 2**32 - 1
    assert FeatureHasher(bits=np.int64(30)).bits == 30
    hasher = FeatureHasher(fields=pd.Index(["a", "b"]), numeric=np.array(["b"]), bits=18)
    assert hasher.fields == ("a", "b") and hasher.numeric == ("b",)


def test_bad_numeric_value_names_row_and_field():
    with pytest.raises(ValueError, match=r"row 1: field 'I3' is numeric but got 'abc'"):
        FeatureHasher(bits=18).transform([{"I3": 1}, {"I3": "abc"}])


def test_hasher_pickles_and_compares():
    import pickle

    hasher = FeatureHasher(bits=19, crosses=[("C1", "C2")])
    again = pickle.loads(pickle.dumps(hasher))
    assert again == hasher
    row = [{"C1": "a", "C2": "b"}]
    np.testing.assert_array_equal(again.transform(row).indices, hasher.transform(row).indices)


def test_binning_table_and_formula_agree_across_the_table_edge():
    hasher = FeatureHasher(fields=["x"], numeric=["x"], bits=24)
    values = list(range(-3, 5000)) + [2.5, 4095.5, 1e9, 0.25]
    got = hasher.transform([{"x": v} for v in values])
    expected = [hash_row({"x": v}, ("x",), ("x",), 24)[1][0] for v in values]
    np.testing.assert_array_equal(got.indices[1::2], expected)


def test_numeric_text_and_numbers_hash_alike():
    hasher = FeatureHasher(bits=20)
    as_text = hasher.transform([{"I1": "5", "I2": "-3", "I3": "2.5", "I4": " 7", "I5": "1e3"}])
    as_numbers = hasher.transform([{"I1": 5, "I2": -3, "I3": 2.5, "I4": 7, "I5": 1000}])
    np.testing.assert_array_equal(as_text.indices, as_numbers.indices)


def test_nan_text_is_missing_and_infinities_are_their_own_bins():
    hasher = FeatureHasher(bits=20)
    assert hasher.transform([{"I1": "nan", "I2": np.nan}]).n_rows == 1
    assert hasher.transform([{"I1": "nan", "I2": np.nan}]).nnz == 1  # the bias only
    rows = hasher.transform([{"I1": float("inf")}, {"I1": float("-inf")}, {"I1": 1e300}])
    assert len({int(i) for i in rows.indices[1::2]}) == 3


JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                        st.floats(-1e6, 1e6), st.text(max_size=6),
                        st.lists(st.integers(), max_size=2),
                        st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["a", "b", "n"]), JSON_VALUES, max_size=3),
                max_size=5))
def test_scalars_only_refuses_exactly_what_json_scalars_are_not(rows):
    # the service's batch check: a str, an int, a float or None passes (hashed as without
    # the flag); a bool, a list or an object is a TypeError naming the row
    hasher = FeatureHasher(["a", "b", "n"], numeric=["n"], bits=18, unknown="ignore")
    scalar = {str, int, float, type(None)}
    bad = [i for i, row in enumerate(rows) if any(type(v) not in scalar for v in row.values())]
    try:
        want = hasher.transform(rows)
    except ValueError:  # a numeric field's list or object: refused either way
        want = None
    if bad and want is not None:
        with pytest.raises(TypeError, match=rf"^row {bad[0]}: a value is not a string"):
            hasher.transform(rows, scalars_only=True)
    elif bad:
        with pytest.raises((TypeError, ValueError)):
            hasher.transform(rows, scalars_only=True)
    elif want is not None:
        got = hasher.transform(rows, scalars_only=True)
        for name in ("indptr", "indices", "values", "fields"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name))


def test_scalars_only_checks_every_value_of_a_row_with_a_key_that_is_not_a_str():
    # such a row is copied before it is hashed (its key's __eq__ may run): the copy's
    # values are checked too, not converted to their text
    hasher = FeatureHasher(["a", "C1"], bits=18, unknown="ignore")
    with pytest.raises(TypeError, match=r"^row 0: a value is not a string"):
        hasher.transform([{5: "x", "C1": [1]}], scalars_only=True)
    assert hasher.transform([{5: "x", "C1": [1]}]).n_rows == 1
