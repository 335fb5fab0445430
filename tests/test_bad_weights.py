"""One bad importance weight or label must be refused where it enters, naming its line or row,
never poison a model's state (issue 13, defect 9)."""
import io

import numpy as np
import pytest

from fastctr import FFMClassifier, FMClassifier, FTRLClassifier, HashedRows, ParseError, read_vw
from fastctr._ext import _parse_sparse
from fastctr.io.detect import hasher_for
from fastctr.io.rows import MAX_WEIGHT


def _vw(weight: bytes, **kwargs) -> list:
    data = b"1 1 |a x y\n0 " + weight + b" |a z\n1 |a y\n"
    return list(read_vw(io.BytesIO(data), hasher_for("vw", namespaces=["a"], bits=18), **kwargs))


@pytest.mark.parametrize("weight", [b"1e39", b"inf", b"-inf", b"1e400", b"nan", b"-5", b"2e6"])
def test_vw_importance_not_finite_or_out_of_range_is_a_parse_error(weight):
    with pytest.raises(ParseError, match=r"line 2: .*importance weight in \[0, 1e6\]"):
        _vw(weight)
    (batch,) = _vw(weight, on_error="skip")  # the line is dropped, the others kept
    assert batch.n_rows == 2 and batch.weights.tolist() == [1.0, 1.0]


def test_vw_importance_at_the_bound_is_learned_finitely():
    (batch,) = _vw(b"1e6")
    assert batch.weights.tolist() == [1.0, 1e6, 1.0]
    model = FTRLClassifier(bits=18).partial_fit(batch)
    assert np.isfinite(model.zn_).all()


def test_the_reader_and_the_estimators_share_the_bound():
    assert _parse_sparse.MAX_WEIGHT == MAX_WEIGHT


def _rows(labels, weights=None) -> HashedRows:
    n = len(labels)
    with np.errstate(over="ignore"):  # 1e39 is inf in float32, as a reader would store it
        weights = None if weights is None else np.asarray(weights, np.float32)
    return HashedRows(np.arange(n + 1, dtype=np.int64), np.arange(n, dtype=np.int32),
                      np.ones(n, np.float32), np.ones(n, np.uint16),
                      np.asarray(labels, np.float32), weights)


@pytest.mark.parametrize("cls", [FTRLClassifier, FMClassifier, FFMClassifier])
@pytest.mark.parametrize("label", [2, -5, 0.5, np.nan, -1])
def test_labels_carried_by_hashed_rows_must_be_clicks(cls, label):
    model = cls(bits=18, **({"fields": ["a"]} if cls is FFMClassifier else {}))
    with pytest.raises(ValueError, match=r"HashedRows labels\[2\] = .*must be 0 or 1"):
        model.partial_fit(_rows([1, 0, label]))
    with pytest.raises(ValueError, match=r"labels\[2\]"):
        model.fit(_rows([1, 0, label]))
    assert not model.is_fitted
    model.partial_fit(_rows([1, 0, label]), y=[1, 0, 1])  # y given replaces them


@pytest.mark.parametrize("cls", [FTRLClassifier, FMClassifier])
@pytest.mark.parametrize("weight", [np.inf, -np.inf, np.nan, -5, 1e39, 2e6])
def test_weights_carried_by_hashed_rows_or_passed_are_checked(cls, weight):
    model = cls(bits=18).partial_fit(_rows([1, 0]))
    before = model.zn_.copy()
    with pytest.raises(ValueError, match=r"HashedRows weights\[1\] = .*finite, >= 0 and <= 1e\+06"):
        model.partial_fit(_rows([1, 0, 1], [1, weight, 1]))
    with pytest.raises(ValueError, match=r"sample_weight\[0\] = "):
        model.partial_fit(_rows([1, 0, 1]), sample_weight=[weight, 1, 1])
    np.testing.assert_array_equal(model.zn_, before)  # nothing learned
    model.partial_fit(_rows([1, 0, 1], [1, weight, 1]), sample_weight=[1, MAX_WEIGHT, 0])
    assert np.isfinite(model.zn_).all()


def test_predicting_ignores_the_carried_targets():
    model = FTRLClassifier(bits=18).partial_fit(_rows([1, 0]))
    assert np.isfinite(model.predict_proba(_rows([2, np.nan], [np.inf, -1]))).all()
