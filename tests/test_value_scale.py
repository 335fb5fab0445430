"""value_scale: the estimators carry their hyperparameters to the size of the feature values
(measured on the first batch, kept in the state and in model files)."""
import numpy as np
import pytest

from fastctr import FFMClassifier, FMClassifier, FTRLClassifier, InvalidParameterError, load
from fastctr.io.datasets import make_avazu, make_criteo, make_text
from fastctr.io.detect import hasher_for, read_data
from fastctr.models.scale import value_scale

BITS = 18


def _text_rows(n=3_000):
    data = make_text(n, seed=5)
    hasher = hasher_for("vw", data, bits=BITS)
    return hasher, next(iter(read_data(data, "vw", hasher, batch_size=n)))


@pytest.mark.parametrize("fmt, raw, opts", [
    ("criteo", b"".join(make_criteo(3_000, seed=2)), {}),
    ("csv", make_avazu(3_000, seed=2), {"label": "click", "ignore": ["id"]}),
])
def test_one_hot_data_learns_exactly_as_before(fmt, raw, opts):
    """Click logs hash to one-hot rows: scale 1, the same model as without scaling."""
    hasher = hasher_for(fmt, raw, bits=BITS, **opts)
    batch = next(iter(read_data(raw, fmt, hasher, batch_size=3_000,
                                **({"label": "click"} if fmt == "csv" else {}))))
    fields = {"fields": hasher.fields, "numeric": hasher.numeric}
    auto = FTRLClassifier(bits=BITS, **fields)
    p_auto = auto.partial_fit_predict(batch)
    p_off = FTRLClassifier(bits=BITS, value_scale=1.0, **fields).partial_fit_predict(batch)
    assert auto.value_scale_ == 1.0
    assert np.array_equal(p_auto, p_off)


@pytest.mark.parametrize("cls", [FTRLClassifier, FMClassifier, FFMClassifier])
def test_the_scale_is_learned_once_and_kept_by_model_files(cls, tmp_path):
    hasher, rows = _text_rows()
    model = cls(bits=BITS, fields=hasher.fields, k=2) if cls is not FTRLClassifier else \
        cls(bits=BITS, fields=hasher.fields)
    model.partial_fit(rows[:1_000])
    first = model.value_scale_
    assert first == value_scale(rows[:1_000]) and 0.08 < first < 0.2
    model.partial_fit(rows[1_000:])  # later batches do not change it
    assert model.value_scale_ == first
    model.save(tmp_path / "m.fctr")
    loaded = load(tmp_path / "m.fctr")
    assert loaded.value_scale_ == first and loaded.value_scale == "auto"
    np.testing.assert_array_equal(loaded.predict_proba(rows), model.predict_proba(rows))
    line = b"w3:0.2 w17:0.1"
    assert loaded.predict_one(line) == model.predict_one(line)
    # the weights a scorer exports are those the model predicts with
    if cls is FTRLClassifier:
        scorer = model.to_scorer(dtype="float32", layout="dense")
        np.testing.assert_allclose(scorer.predict_proba(rows)[:, 1],
                                   model.predict_proba(rows)[:, 1], atol=1e-5)
    # fit starts again: the scale is measured again
    model.set_params(value_scale=0.5).fit(rows)
    assert model.value_scale_ == 0.5


def test_state_without_a_scale_is_unscaled():
    """Files and states written before value_scale existed were learned unscaled."""
    hasher, rows = _text_rows(500)
    model = FTRLClassifier(bits=BITS, fields=hasher.fields, value_scale=1.0).fit(rows)
    state = {"zn": model.zn_, "n_rows_seen": model.n_rows_seen_}
    twin = FTRLClassifier.from_state(FTRLClassifier(bits=BITS, fields=hasher.fields).get_params(),
                                     hasher, state)
    assert twin.value_scale_ == 1.0
    np.testing.assert_array_equal(twin.predict_proba(rows), model.predict_proba(rows))


def test_bad_scales_are_refused():
    hasher, rows = _text_rows(100)
    for bad in (0.0, -1.0, "big", float("inf")):
        with pytest.raises(InvalidParameterError, match="value_scale"):
            FTRLClassifier(bits=BITS, fields=hasher.fields, value_scale=bad).fit(rows)
    model = FTRLClassifier(bits=BITS, fields=hasher.fields).fit(rows)
    state = model.state._replace(value_scale=float("nan"))
    with pytest.raises(ValueError, match="value_scale"):
        FTRLClassifier.from_state(model.get_params(), hasher, state)
