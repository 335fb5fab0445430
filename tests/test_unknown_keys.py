"""No silent answers on the wrong schema (issue 14, point 1): a dict row's key, or a
DataFrame's column, that is not a field is an error under unknown="strict" (the default of
the library and of the CLI) naming the unknown keys, the fields and the fix; "ignore" skips
such keys as before. Lines and pre-hashed rows are unaffected, and model files written before
the policy existed still load."""
import json
import struct
import uuid
import zlib

import numpy as np
import pytest

from fastctr import FeatureHasher, FFMClassifier, FMClassifier, FTRLClassifier, load
from fastctr.cli import main
from fastctr.exceptions import InvalidParameterError
from fastctr.io.datasets import criteo_rows
from fastctr.io.hashing import CRITEO_FIELDS

ROWS, LABELS = criteo_rows(400, seed=3)
MODELS = [FTRLClassifier, FMClassifier, FFMClassifier]


def fitted(cls, **params):
    return cls(bits=18, **params).fit(ROWS, LABELS)


def scorers():
    model = fitted(FTRLClassifier)
    return {"ftrl": model, "fm": fitted(FMClassifier), "ffm": fitted(FFMClassifier),
            "scorer": model.to_scorer("float32"),
            "scorer_dense": model.to_scorer("float32", layout="dense")}


@pytest.fixture(scope="module")
def predictors():
    return scorers()


def error_of(call, *args) -> str:
    with pytest.raises(ValueError) as info:
        call(*args)
    return str(info.value)


@pytest.mark.parametrize("name", ["ftrl", "fm", "ffm", "scorer", "scorer_dense"])
def test_predict_one_unknown_key_is_an_error(predictors, name):
    predict_one = predictors[name].predict_one
    msg = error_of(predict_one, {"c1": "68fd1e64"})  # mistyped: C1
    assert msg.startswith("no key of the row is a field: unknown key 'c1' ")
    assert "(I1, I2, I3, ..., C26: 39 fields)" in msg
    assert "fields=[...]" in msg and "unknown='ignore'" in msg
    row = dict(ROWS[0], zz="x")
    msg = error_of(predict_one, row)
    assert msg.startswith("unknown key 'zz': not a field (")
    # JSON-decoded keys (not identical to the field names) are matched by their characters
    assert predict_one(json.loads(json.dumps(ROWS[0]))) == predict_one(ROWS[0])


def test_the_message_lists_at_most_ten_unknown_keys_sorted():
    model = fitted(FTRLClassifier)
    row = {"C1": "a", **{f"k{i:02d}": i for i in range(13, 0, -1)}}
    msg = error_of(model.predict_one, row)
    shown = ", ".join(f"'k{i:02d}'" for i in range(1, 11))
    assert msg.startswith(f"unknown keys {shown} and 3 more: not fields (")
    # non-str keys and values of other types (the row copied before hashing) too
    assert "unknown key 1:" in error_of(model.predict_one, {"C1": "a", 1: "b"})
    assert "unknown key 'zz'" in error_of(model.predict_one, {"C1": uuid.uuid4(), "zz": 1})
    msg = error_of(model.predict_one, {2: uuid.uuid4()})
    assert msg.startswith("no key of the row is a field: unknown key 2 ")


def test_missing_fields_are_legal():
    model = fitted(FTRLClassifier)
    bias = model.predict_one({})  # every field missing: the bias alone, as asked
    assert model.predict_one({"C1": None, "I1": float("nan")}) == bias
    assert 0 < model.predict_one({"C1": ROWS[0]["C1"]}) < 1


@pytest.mark.parametrize("cls", MODELS)
def test_batch_prediction_and_learning_on_unknown_keys(cls):
    model = fitted(cls)
    rows = [ROWS[0], {"C2": "a", "I99": 3}]
    for call in (model.predict_proba, model.decision_function, model.predict):
        assert error_of(call, rows).startswith("row 1: unknown key 'I99': not a field (")
    assert error_of(model.partial_fit, rows, [0, 1]).startswith("row 1: unknown key 'I99'")
    assert error_of(cls(bits=18).fit, rows, [0, 1]).startswith("row 1: unknown key 'I99'")


def test_dataframe_columns_are_checked_once_per_frame():
    pd = pytest.importorskip("pandas")
    model = fitted(FTRLClassifier)
    frame = pd.DataFrame([{"C1": "a", "c2": "b", "hour": 3}] * 5)
    msg = error_of(model.predict_proba, frame)
    assert msg.startswith("unknown columns 'c2', 'hour': not fields (I1, I2, I3, ..., C26")
    assert "naming the columns" in msg
    wrong = pd.DataFrame({"site": ["a"] * 3, "app": ["b"] * 3})
    assert error_of(model.predict_proba, wrong).startswith(
        "no column of the frame is a field: unknown columns 'app', 'site' (")

    class Frame(pd.DataFrame):  # counts the conversions to rows
        calls = 0

        def to_dict(self, *args, **kwargs):
            Frame.calls += 1
            return super().to_dict(*args, **kwargs)

    error_of(model.predict_proba, Frame(frame))
    assert Frame.calls == 0  # failed on the columns, before any row was made
    good = pd.DataFrame(ROWS[:20])
    assert np.array_equal(model.predict_proba(good), model.predict_proba(ROWS[:20]))
    ignoring = fitted(FTRLClassifier, unknown="ignore")
    assert np.array_equal(ignoring.predict_proba(frame),
                          ignoring.predict_proba(pd.DataFrame([{"C1": "a"}] * 5)))


@pytest.mark.parametrize("cls", MODELS)
def test_ignore_skips_unknown_keys(cls):
    model = fitted(cls, unknown="ignore")
    row = dict(ROWS[0])
    noisy = dict(row, zz="x", c1="y")
    assert model.predict_one(noisy) == model.predict_one(row)
    assert np.array_equal(model.predict_proba([noisy]), model.predict_proba([row]))
    assert model.predict_one({"zz": "x"}) == model.predict_one({})


@pytest.mark.parametrize("cls", MODELS)
def test_unknown_can_change_after_fit_and_reaches_predict_one(cls):
    model = fitted(cls)
    row = {"C1": ROWS[0]["C1"], "zz": 1}
    error_of(model.predict_one, row)
    model.set_params(unknown="ignore")  # changes no hash: allowed on a fitted model
    assert model.predict_one(row) == model.predict_one({"C1": ROWS[0]["C1"]})
    model.unknown = "strict"  # assigned directly, as scikit-learn allows
    error_of(model.predict_one, row)
    with pytest.raises(ValueError, match="changes the hashing"):
        model.set_params(bits=19)


def test_the_policy_is_validated():
    with pytest.raises(InvalidParameterError, match="'unknown' parameter of FeatureHasher"):
        FeatureHasher(unknown="warn")
    with pytest.raises(InvalidParameterError, match="'unknown' parameter of FMClassifier"):
        FMClassifier(bits=18, unknown=None).fit(ROWS, LABELS)
    model = fitted(FTRLClassifier)
    model.set_params(unknown="lenient")
    with pytest.raises(InvalidParameterError, match="'unknown' parameter of FTRLClassifier"):
        model.predict_proba(ROWS[:2])


def test_the_hasher_carries_the_policy():
    strict, ignore = FeatureHasher(bits=18), FeatureHasher(bits=18, unknown="ignore")
    assert strict.unknown == "strict" and strict.get_params()["unknown"] == "strict"
    assert ignore.transform([{"C1": "a", "zz": 1}]).nnz == strict.transform([{"C1": "a"}]).nnz
    error_of(strict.transform, [{"C1": "a", "zz": 1}])
    import pickle

    assert pickle.loads(pickle.dumps(ignore)).unknown == "ignore"
    model = fitted(FTRLClassifier, unknown="ignore")
    assert model.hasher_.unknown == "ignore"
    # the policy hashes nothing: a state learned under one serves under the other
    twin = FTRLClassifier.from_state(dict(model.get_params(), unknown="strict"),
                                     FeatureHasher(bits=18), model.state)
    assert twin.predict_one(ROWS[0]) == model.predict_one(ROWS[0])
    error_of(twin.predict_one, {"zz": 1})


@pytest.mark.parametrize("name", ["ftrl", "fm", "ffm"])
def test_lines_and_prehashed_rows_are_unaffected(predictors, name):
    model = predictors[name]
    row = ROWS[0]
    line = "\t".join(str(row.get(f, "")) for f in CRITEO_FIELDS)
    assert model.predict_one(line) == pytest.approx(model.predict_one(row), abs=1e-12)
    hashed = FeatureHasher(bits=18).transform([row])
    assert model.predict_one((hashed.indices, hashed.values, hashed.fields)) == pytest.approx(
        model.predict_one(row), abs=1e-12)


def test_a_key_whose_repr_empties_the_row():
    """The error path runs Python code (a key's __repr__, __eq__): it reads the keys through
    references it owns, so a key that empties its row meanwhile changes nothing."""
    model = fitted(FTRLClassifier)

    class Key(str):
        row = None

        def __repr__(self):
            Key.row.clear()
            return "Key()"

    row = {"C1": "a", Key("zz"): 1}
    Key.row = row
    assert "unknown key Key()" in error_of(model.predict_one, row)
    assert row == {}


def _strip_policy(path):
    """Rewrite a model file as written before the policy existed: the header without the
    "unknown" entries (blanked to spaces, so every offset stays), the CRC recomputed."""
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", data[8:16])
    header = data[16:16 + n].decode()
    entry = ', "unknown": "strict"'
    assert entry in header
    header = header.replace(entry, " " * len(entry))
    assert "unknown" not in json.loads(header)["params"] | json.loads(header)["hasher"]
    data[16:16 + n] = header.encode()
    data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[:-4])))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("cls", MODELS)
def test_files_written_before_the_policy_load_as_strict(cls, tmp_path):
    model = fitted(cls)
    path = tmp_path / "old.fctr"
    model.save(path)
    _strip_policy(path)
    old = load(path)
    assert old.unknown == "strict" and old.hasher_.unknown == "strict"
    assert old.predict_one(ROWS[1]) == model.predict_one(ROWS[1])
    error_of(old.predict_one, {"zz": 1})
    old.set_params(unknown="ignore")
    assert old.predict_one({"zz": 1}) == old.predict_one({})
    # and from_state given such a hasher's parameters
    hasher = {k: v for k, v in model.hasher_.get_params().items() if k != "unknown"}
    params = {k: v for k, v in model.get_params().items() if k != "unknown"}
    assert cls.from_state(params, hasher, model.state).unknown == "strict"


def test_scorer_files_written_before_the_policy_load_as_strict(tmp_path):
    scorer = fitted(FTRLClassifier).to_scorer("float32")
    path = tmp_path / "old_scorer.fctr"
    scorer.save(path)
    _strip_policy(path)
    old = load(path)
    assert old.hasher.unknown == "strict"
    assert old.predict_one(ROWS[1]) == scorer.predict_one(ROWS[1])
    error_of(old.predict_one, {"zz": 1})


def test_the_cli_trains_strict_models(tmp_path, capsys):
    path = tmp_path / "m.fctr"
    assert main(["train", "--rows", "2000", "--bits", "18", "-o", str(path)]) == 0
    capsys.readouterr()
    model = load(path)
    assert model.unknown == "strict"
    assert error_of(model.predict_one, {"c1": "x"}).startswith("no key of the row is a field")
    with pytest.raises(SystemExit):  # no option for it: the CLI reads lines, not dict rows
        main(["train", "--unknown", "ignore"])
