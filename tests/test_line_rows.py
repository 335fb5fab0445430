"""Raw tab-separated lines as ``predict_one`` rows: the same features as the TSV reader gives
the same line, and as the dict row of the same values."""
import numpy as np
import pytest

from fastctr import FeatureHasher, FFMClassifier, FMClassifier, FTRLClassifier, read_criteo
from fastctr._ext._score import RowHasher
from fastctr.io.datasets import criteo_rows
from fastctr.io.hashing import CRITEO_FIELDS

CROSSES = [("C1", "C2"), ("I1", "C3")]


def _fit(kind, train):
    if kind == "ftrl":
        return FTRLClassifier(bits=20, crosses=CROSSES, numeric_transform="log1p").partial_fit(train)
    if kind == "fm":
        return FMClassifier(k=4, bits=20, init_std=0.1).partial_fit(train)
    if kind == "ffm":
        return FFMClassifier(k=2, bits=20, init_std=0.1).partial_fit(train)
    dtype, layout = kind.split("-")[1:]
    return FTRLClassifier(bits=20).partial_fit(train).to_scorer(dtype, layout)


@pytest.mark.parametrize("kind", ["ftrl", "fm", "ffm", "scorer-float32-dense",
                                  "scorer-int8-sparse", "scorer-float16-sparse"])
def test_lines_score_like_the_reader_parses_them(synthetic_tsv, kind):
    lines = synthetic_tsv.splitlines(keepends=True)
    model = _fit(kind, _read(kind, b"".join(lines[:5_000])))
    test = lines[5_000:5_300]
    batch = model.predict_proba(_read(kind, b"".join(test)))[:, 1]
    unlabelled = [line.split(b"\t", 1)[1] for line in test]  # a test-set line has no label
    from_bytes = np.array([model.predict_one(line) for line in unlabelled])
    from_str = np.array([model.predict_one(line.decode().rstrip("\n")) for line in unlabelled])
    np.testing.assert_allclose(from_bytes, batch, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(from_str, from_bytes)


def _read(kind, tsv: bytes):
    hasher = (FeatureHasher(bits=20, crosses=CROSSES, numeric_transform="log1p")
              if kind == "ftrl" else FeatureHasher(bits=20))
    return next(iter(read_criteo(tsv, hasher, batch_size=10_000)))


def _line(row: dict) -> str:
    return "\t".join(str(row.get(name, "")) for name in CRITEO_FIELDS)


@pytest.fixture(scope="module")
def model():
    rows, y = criteo_rows(500, seed=3)
    return FTRLClassifier(bits=18, crosses=CROSSES).fit(rows, y)


def test_a_line_hashes_like_the_dict_of_its_values(model):
    rows, _ = criteo_rows(300, seed=4)
    rows += [{}, {"I1": 0, "I13": -2}, {"C26": "last"}, {"C1": "café", "I2": 1.5, "I3": "7"}]
    hasher = RowHasher(model.hasher_._spec, model.hasher_.fields)
    for row in rows:
        expected = hasher.hash_row(row)
        for line in (_line(row), _line(row).encode(), _line(row) + "\n", _line(row) + "\r\n"):
            got = hasher.hash_row(line)
            for a, b in zip(got, expected):
                np.testing.assert_array_equal(a, b)
        assert model.predict_one(_line(row)) == model.predict_one(row)
        # straight into bytes (what an impression keeps): the same entries
        assert hasher.hash_row_bytes(row) == tuple(a.tobytes() for a in expected)


def test_trailing_fields_may_be_left_out(model):
    assert model.predict_one("3\t\t5") == model.predict_one({"I1": 3, "I3": 5})
    assert model.predict_one("") == model.predict_one({})


def test_bad_lines_are_named(model):
    labelled = "1\t" + _line({"I1": 3})
    with pytest.raises(ValueError, match=r"more than 39 tab-separated values.*leave out the label"):
        model.predict_one(labelled)
    with pytest.raises(ValueError, match=r"column 2: field 'I2' is numeric but got 'abc'"):
        model.predict_one("3\tabc")
    with pytest.raises(ValueError, match=r"column 1: field 'I1' is numeric but got 'x'"):
        model.predict_one(b"x\tb")
    with pytest.raises(TypeError, match="dict .* or one tab-separated line .* got list"):
        model.to_scorer("float32").predict_one(["3", "abc"])
