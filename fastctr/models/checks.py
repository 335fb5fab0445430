"""Contract checks every fastctr estimator must pass (run by the test suite on each one).

Each check takes an unfitted estimator and labelled HashedRows and raises AssertionError
(or the estimator's own error) when the contract is broken.
"""
from __future__ import annotations

import copy
import os
import pickle
import tempfile

import numpy as np

from fastctr.exceptions import NotFittedError
from fastctr.io.rows import HashedRows
from fastctr.models.base import OnlineClassifier


def _state_equal(a: OnlineClassifier, b: OnlineClassifier) -> bool:
    sa, sb = a.state, b.state
    return type(sa) is type(sb) and all(np.array_equal(x, y) for x, y in zip(sa, sb))


def check_predict_before_fit(est: OnlineClassifier, rows: HashedRows) -> None:
    try:
        est.predict_proba(rows)
    except NotFittedError:
        return
    raise AssertionError("predicting before fit must raise NotFittedError")


def check_predict_does_not_mutate(est: OnlineClassifier, rows: HashedRows) -> None:
    est = copy.deepcopy(est).partial_fit(rows)
    before = copy.deepcopy(rows)
    state = copy.deepcopy(est.state)
    est.predict_proba(rows)
    for name in ("indptr", "indices", "values", "fields", "labels"):
        assert np.array_equal(getattr(rows, name), getattr(before, name)), f"predict changed {name}"
    assert all(np.array_equal(x, y) for x, y in zip(state, est.state)), "predict changed the model"


def check_resume_is_identical(est: OnlineClassifier, rows: HashedRows) -> None:
    """Pickle or save mid-stream, reload, continue: bit-identical to uninterrupted training."""
    from fastctr.serving.files import load

    half = rows.n_rows // 2
    straight = copy.deepcopy(est).partial_fit(rows[:half]).partial_fit(rows[half:])
    first = copy.deepcopy(est).partial_fit(rows[:half])
    pickled = pickle.loads(pickle.dumps(first)).partial_fit(rows[half:])
    assert _state_equal(straight, pickled), "pickle mid-stream changed the result"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.fctr")
        first.save(path)
        saved = load(path).partial_fit(rows[half:])
    assert _state_equal(straight, saved), "save/load mid-stream changed the result"
    np.testing.assert_array_equal(straight.predict_proba(rows), saved.predict_proba(rows))


def check_minibatches_equal_one_batch(est: OnlineClassifier, rows: HashedRows) -> None:
    whole = copy.deepcopy(est).partial_fit(rows)
    pieces = copy.deepcopy(est)
    for start in range(0, rows.n_rows, 37):
        pieces.partial_fit(rows[start : start + 37])
    assert _state_equal(whole, pieces), "mini-batches must equal one batch for a sequential learner"


def check_deterministic(est: OnlineClassifier, rows: HashedRows) -> None:
    a = copy.deepcopy(est).partial_fit(rows)
    b = copy.deepcopy(est).partial_fit(rows)
    assert _state_equal(a, b), "the same data and parameters must give identical weights"


def check_clone_and_params(est: OnlineClassifier, rows: HashedRows) -> None:
    fitted = copy.deepcopy(est).partial_fit(rows)
    fresh = fitted.__sklearn_clone__()
    assert fresh.get_params() == est.get_params() and not fresh.is_fitted
    assert _state_equal(fresh.partial_fit(rows), fitted), "a clone must learn the same model"


def check_bad_input(est: OnlineClassifier, rows: HashedRows) -> None:
    fitted = copy.deepcopy(est).partial_fit(rows)
    n = rows.n_rows
    unlabelled = HashedRows(rows.indptr, rows.indices, rows.values, rows.fields)
    bad_cases = [
        (lambda: copy.deepcopy(est).partial_fit(rows, np.full(n, 2)), ValueError),
        (lambda: copy.deepcopy(est).partial_fit(rows, np.ones(n + 1)), ValueError),
        (lambda: copy.deepcopy(est).partial_fit(rows, sample_weight=-np.ones(n)), ValueError),
        (lambda: copy.deepcopy(est).partial_fit(unlabelled), ValueError),
        (lambda: fitted.predict_proba("not rows"), TypeError),
        (lambda: fitted.predict_one(["not", "a", "row"]), TypeError),
        (lambda: fitted.predict_proba(HashedRows(np.array([0, 1]), np.array([-1]), np.ones(1))),
         ValueError),
        (lambda: fitted.predict_proba(HashedRows(np.array([0, 1]), np.array([0]), [np.nan])),
         ValueError),
    ]
    for i, (call, error) in enumerate(bad_cases):
        try:
            call()
        except error:
            continue
        raise AssertionError(f"bad input case {i} did not raise {error.__name__}")
    try:
        type(est)(**{**est.get_params(), "epochs": 0}).partial_fit(rows)
    except ValueError as e:
        assert "'epochs' parameter" in str(e)
    else:
        raise AssertionError("an invalid parameter must raise ValueError at first use")


def check_predictions_valid(est: OnlineClassifier, rows: HashedRows) -> None:
    fitted = copy.deepcopy(est).partial_fit(rows)
    proba = fitted.predict_proba(rows)
    assert proba.shape == (rows.n_rows, 2) and np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(np.unique(fitted.predict(rows))) <= {0, 1}


ALL_CHECKS = (
    check_predict_before_fit,
    check_predict_does_not_mutate,
    check_resume_is_identical,
    check_minibatches_equal_one_batch,
    check_deterministic,
    check_clone_and_params,
    check_bad_input,
    check_predictions_valid,
)


def check_estimator(est: OnlineClassifier, rows: HashedRows) -> None:
    """Run every contract check on an unfitted estimator with labelled rows."""
    for check in ALL_CHECKS:
        check(est, rows)
