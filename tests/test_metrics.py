"""Tests for fastctr.online.metrics against sklearn and hand-computed values."""

import doctest
import math

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fastctr.online import metrics
from fastctr.online.metrics import (
    ProgressiveValidation,
    calibration,
    log_loss,
    normalized_entropy,
    roc_auc,
)


def _ctr_data(n: int, seed: int, decimals: int | None = 2):
    """Labels drawn from the scores, so the AUC is well away from 0.5; rounding makes ties."""
    rng = np.random.default_rng(seed)
    p = rng.beta(1.0, 8.0, n)
    y = (rng.random(n) < p).astype(np.float64)
    if decimals is not None:
        p = np.round(p, decimals)
    w = rng.exponential(1.0, n)
    return y, p, w


def test_doctests() -> None:
    assert doctest.testmod(metrics).failed == 0


@pytest.mark.parametrize("weighted", [False, True])
def test_roc_auc_matches_sklearn_with_ties(weighted: bool) -> None:
    y, p, w = _ctr_data(200_000, seed=1)
    w = w if weighted else None
    assert roc_auc(y, p, w) == pytest.approx(skm.roc_auc_score(y, p, sample_weight=w), abs=1e-9)


def test_roc_auc_matches_sklearn_on_2m_rows() -> None:
    y, p, _ = _ctr_data(2_000_000, seed=2, decimals=3)
    assert roc_auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]),
            st.sampled_from([0.0, 0.5, 1.0, 3.0]),
        ),
        min_size=2,
        max_size=30,
    ),
    st.booleans(),
)
def test_roc_auc_matches_sklearn_small_cases(rows, weighted: bool) -> None:
    y = np.array([r[0] for r in rows], dtype=np.float64)
    p = np.array([r[1] for r in rows])
    w = np.array([r[2] for r in rows]) if weighted else np.ones(len(rows))
    # sklearn is undefined (NaN) when a class has no weight; that case is tested as an error.
    assume(w[y == 1].sum() > 0 and w[y == 0].sum() > 0)
    expected = skm.roc_auc_score(y, p, sample_weight=w if weighted else None)
    assert roc_auc(y, p, w if weighted else None) == pytest.approx(expected, abs=1e-9)


def test_roc_auc_label_encodings_agree() -> None:
    y, p, _ = _ctr_data(1_000, seed=3)
    expected = roc_auc(y, p)
    assert roc_auc(y.astype(bool), p) == expected
    assert roc_auc(2 * y - 1, p) == expected
    assert roc_auc(y.astype(int).tolist(), p.tolist()) == expected


def test_roc_auc_accepts_any_finite_score() -> None:
    y, p, _ = _ctr_data(1_000, seed=4, decimals=None)
    logits = np.log(p) - np.log1p(-p)
    assert roc_auc(y, logits) == pytest.approx(roc_auc(y, p), abs=1e-15)


@pytest.mark.parametrize("weighted", [False, True])
def test_log_loss_matches_sklearn(weighted: bool) -> None:
    y, p, w = _ctr_data(100_000, seed=5, decimals=None)
    p[:10] = [0.0, 1.0, 0.0, 1.0, 1e-20, 1 - 1e-17, 0.5, 1e-300, 1.0, 0.0]  # exercise clipping
    w = w if weighted else None
    assert log_loss(y, p, w) == pytest.approx(skm.log_loss(y, p, sample_weight=w), abs=1e-12)


def test_log_loss_with_one_class_is_defined() -> None:
    assert log_loss([1, 1], [0.5, 0.25]) == pytest.approx(-(math.log(0.5) + math.log(0.25)) / 2)


@pytest.mark.parametrize("weighted", [False, True])
def test_normalized_entropy_of_base_rate_is_one(weighted: bool) -> None:
    y, _, w = _ctr_data(10_000, seed=6)
    w = w if weighted else np.ones_like(y)
    ctr = np.sum(w * y) / np.sum(w)
    p = np.full_like(y, ctr)
    assert normalized_entropy(y, p, w if weighted else None) == pytest.approx(1.0, abs=1e-12)


def test_normalized_entropy_known_value() -> None:
    y = [1, 0, 0, 0]
    p = [0.5, 0.1, 0.2, 0.1]
    loss = -(math.log(0.5) + 2 * math.log(0.9) + math.log(0.8)) / 4
    entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert normalized_entropy(y, p) == pytest.approx(loss / entropy, rel=1e-14)


def test_calibration() -> None:
    assert calibration([1, 0, 0, 0], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(2.0)
    assert calibration([1, 0], [0.3, 0.2], sample_weight=[1.0, 3.0]) == pytest.approx(0.9)
    y, _, w = _ctr_data(1_000, seed=7)
    base_rate = np.full_like(y, np.average(y, weights=w))
    assert calibration(y, base_rate, w) == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize(
    ("func", "y", "p", "w", "message"),
    [
        (roc_auc, [1, 1, 1], [0.1, 0.2, 0.3], None, "both positive and negative"),
        (roc_auc, [0, 1], [0.1, 0.2], [1.0, 0.0], "both positive and negative"),
        (roc_auc, [0, 1, 1], [0.1, 0.2], None, "different lengths"),
        (roc_auc, [0, 1], [0.1, 0.2], [1.0], "different lengths"),
        (roc_auc, [0, 1], [0.1, np.nan], None, "NaN"),
        (roc_auc, [0, 1], [0.1, np.inf], None, "infinite"),
        (roc_auc, [0, 2], [0.1, 0.2], None, r"labels must be in .*\[0.0, 2.0\]"),
        (roc_auc, [-1, 0, 1], [0.1, 0.2, 0.3], None, r"found values \[-1.0, 0.0, 1.0\]"),
        (roc_auc, [0, 0.5], [0.1, 0.2], None, "labels must be in"),
        (roc_auc, ["a", "b"], [0.1, 0.2], None, "numeric or bool"),
        (roc_auc, [[0, 1]], [[0.1, 0.2]], None, "1-D"),
        (log_loss, [0, 1], [0.1, 1.2], None, r"probabilities in \[0, 1\]"),
        (log_loss, [0, 1], [0.1, 0.2], [1.0, -1.0], "non-negative"),
        (log_loss, [0, 1], [0.1, 0.2], [0.0, 0.0], "no rows with positive weight"),
        (log_loss, [], [], None, "no rows with positive weight"),
        (normalized_entropy, [0, 0], [0.1, 0.2], None, "entropy is 0"),
        (calibration, [0, 0], [0.1, 0.2], None, "at least one click"),
    ],
)
def test_bad_input_raises_clear_value_error(func, y, p, w, message) -> None:
    with pytest.raises(ValueError, match=message):
        func(y, p, w)


def _batches(n: int, seed: int):
    """Random batch boundaries, some batches longer than a report window."""
    rng = np.random.default_rng(seed)
    cuts = np.unique(rng.integers(0, n, 60))
    return list(zip(np.r_[0, cuts], np.r_[cuts, n]))


@pytest.mark.parametrize("weighted", [False, True])
def test_progressive_validation_matches_whole_data_metrics(weighted: bool) -> None:
    n, every = 50_000, 4_000
    y, p, w = _ctr_data(n, seed=8)
    w = w if weighted else None
    pv = ProgressiveValidation(report_every=every)
    lines = []
    for a, b in _batches(n, seed=9):
        lines += pv.update(y[a:b], p[a:b], None if w is None else w[a:b])
        assert pv.window_rows <= every  # memory bound: only the open window is kept

    assert [line["rows"] for line in lines] == list(range(every, n + 1, every))
    for k, line in enumerate(lines):
        window = slice(k * every, (k + 1) * every)
        ww = None if w is None else w[window]
        assert line["window_auc"] == pytest.approx(roc_auc(y[window], p[window], ww), abs=1e-12)
        assert line["window_log_loss"] == pytest.approx(
            log_loss(y[window], p[window], ww), rel=1e-12
        )
        seen = slice(0, (k + 1) * every)
        assert line["log_loss"] == pytest.approx(
            log_loss(y[seen], p[seen], None if w is None else w[seen]), rel=1e-12
        )

    summary = pv.report()
    tail = slice(len(lines) * every, n)
    assert summary["rows"] == pv.rows == n
    assert summary["log_loss"] == pytest.approx(log_loss(y, p, w), rel=1e-12)
    assert summary["normalized_entropy"] == pytest.approx(normalized_entropy(y, p, w), rel=1e-12)
    assert summary["calibration"] == pytest.approx(calibration(y, p, w), rel=1e-12)
    assert summary["ctr"] == pytest.approx(np.average(y, weights=w), rel=1e-12)
    assert summary["mean_prediction"] == pytest.approx(np.average(p, weights=w), rel=1e-12)
    assert summary["auc"] == pytest.approx(
        roc_auc(y[tail], p[tail], None if w is None else w[tail]), abs=1e-12
    )


def test_progressive_validation_one_batch_spanning_many_windows() -> None:
    y, p, _ = _ctr_data(1_050, seed=10)
    pv = ProgressiveValidation(report_every=100)
    lines = pv.update(y, p)
    assert [line["rows"] for line in lines] == list(range(100, 1_001, 100))
    assert pv.window_rows == 50
    assert pv.update([], []) == []


def test_progressive_validation_final_auc_is_last_full_window_on_boundary() -> None:
    y, p, _ = _ctr_data(200, seed=11)
    pv = ProgressiveValidation(report_every=100)
    lines = pv.update(y, p)
    assert pv.window_rows == 0
    assert pv.report()["auc"] == lines[-1]["window_auc"] == roc_auc(y[100:], p[100:])


def test_progressive_validation_mixes_weighted_and_unweighted_batches() -> None:
    y, p, w = _ctr_data(300, seed=12)
    pv = ProgressiveValidation(report_every=300)
    pv.update(y[:100], p[:100])
    pv.update(y[100:200], p[100:200], w[100:200])
    (line,) = pv.update(y[200:], p[200:])
    w_full = np.r_[np.ones(100), w[100:200], np.ones(100)]
    assert line["window_auc"] == pytest.approx(roc_auc(y, p, w_full), abs=1e-12)
    assert line["log_loss"] == pytest.approx(log_loss(y, p, w_full), rel=1e-12)


def test_progressive_validation_undefined_values_are_nan() -> None:
    pv = ProgressiveValidation(report_every=2)
    (line,) = pv.update([1, 1], [0.5, 0.5])  # one class: window AUC undefined
    assert math.isnan(line["window_auc"])
    summary = pv.report()
    assert math.isnan(summary["normalized_entropy"]) and math.isnan(summary["auc"])
    assert math.isnan(ProgressiveValidation().report()["log_loss"])


def test_progressive_validation_rows_per_second_and_formatting() -> None:
    ticks = iter([10.0, 12.0, 14.0])  # construction, then one reading per update
    pv = ProgressiveValidation(report_every=4, clock=lambda: next(ticks))
    assert pv.update([0, 1], [0.2, 0.6]) == []
    (line,) = pv.update([0, 1], [0.3, 0.7])
    assert line["rows_per_s"] == pytest.approx(4 / 4.0)
    row, header = ProgressiveValidation.format_row(line), ProgressiveValidation.header()
    assert len(row) == len(header)
    assert row.split()[0] == "4" and header.split()[0] == "rows"


def test_progressive_validation_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="report_every"):
        ProgressiveValidation(report_every=0)
    with pytest.raises(ValueError, match="NaN"):
        ProgressiveValidation().update([0, 1], [0.5, np.nan])


def test_progressive_validation_copies_caller_buffers() -> None:
    y, p, _ = _ctr_data(200, seed=13)
    pv = ProgressiveValidation(report_every=200)
    buffer_y, buffer_p = y[:100].copy(), p[:100].copy()
    pv.update(buffer_y, buffer_p)
    buffer_y[:], buffer_p[:] = y[100:], p[100:]  # a learner reusing its batch buffers
    (line,) = pv.update(buffer_y, buffer_p)
    assert line["window_auc"] == pytest.approx(roc_auc(y, p), abs=1e-12)
