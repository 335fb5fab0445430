"""The compiled (Cython) loops of the prediction path, which loads no numba: FTRL's batch
scorer over the live state, and the one-pass check of a batch's entries. Each is held to a
slow Python reference and to the numba code it stands beside (fresh-process checks of what
gets imported are in test_cold_start.py)."""
import math

import numpy as np
import pytest

from fastctr import FeatureHasher, FTRLClassifier, read_criteo
from fastctr._ext._rows import entries_are_valid

from naive import FTRLProximal

PARAMS = dict(alpha=0.2, beta=1.0, l1=0.5, l2=0.1)
BITS = 18


@pytest.fixture(scope="module")
def rows(synthetic_tsv):
    (batch,) = read_criteo(synthetic_tsv[: 2_000 * 150], FeatureHasher(bits=BITS),
                           batch_size=10**6)
    return batch[:1500]


@pytest.fixture(scope="module")
def learned(rows):
    """A model and Algorithm 1 written out, both after learning the same rows."""
    model = FTRLClassifier(bits=BITS, **PARAMS).partial_fit(rows[:1000])
    ref = FTRLProximal(**PARAMS)
    for r in range(1000):
        ref.learn(_entries(rows, r), float(rows.labels[r]))
    return model, ref


def _entries(rows, r):
    a, b = rows.indptr[r], rows.indptr[r + 1]
    return list(zip(rows.indices[a:b].tolist(), rows.values[a:b].astype(float).tolist()))


def _score(scorer, rows, proba=False, start=0, stop=None, out=None):
    stop = rows.n_rows if stop is None else stop
    if out is None:
        out = np.full(rows.n_rows * (2 if proba else 1), -7.0)
    scorer.score(rows.indptr, rows.indices, rows.values, out, start, stop, proba)
    return out


def test_batch_scorer_matches_algorithm_1(rows, learned):
    model, ref = learned
    scorer = model._make_scorer()
    m = _score(scorer, rows)
    p = _score(scorer, rows, proba=True).reshape(-1, 2)
    for r in range(rows.n_rows):
        entries = _entries(rows, r)
        assert m[r] == pytest.approx(sum(ref.w(i) * x for i, x in entries), abs=1e-12)
        assert p[r, 1] == pytest.approx(ref.predict(entries), abs=1e-12)
        assert p[r, 0] == pytest.approx(1.0 - ref.predict(entries), abs=1e-12)


def test_batch_scorer_agrees_with_numba_weights_and_predict_one(rows, learned):
    """coef_ is numba's weight of every bucket (fastctr._kernels.ftrl.ftrl_weights)."""
    model, _ = learned
    coef = model.coef_
    by_numba = np.array([sum(coef[i] * x for i, x in _entries(rows, r))
                         for r in range(rows.n_rows)])
    m = _score(model._make_scorer(), rows)
    np.testing.assert_allclose(m, by_numba, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(model.decision_function(rows), m)
    for r in range(0, rows.n_rows, 101):
        a, b = rows.indptr[r], rows.indptr[r + 1]
        p = model.predict_one((rows.indices[a:b], rows.values[a:b]))
        assert p == 1.0 / (1.0 + math.exp(-m[r]))


def test_ranges_score_as_the_whole_batch(rows, learned):
    scorer = learned[0]._make_scorer()
    whole = _score(scorer, rows)
    parts = np.full(rows.n_rows, -7.0)
    for a, b in ((0, 0), (0, 333), (333, 334), (334, rows.n_rows)):
        _score(scorer, rows, start=a, stop=b, out=parts)
    np.testing.assert_array_equal(parts, whole)


@pytest.mark.parametrize("bad", [-1, 1 << BITS, np.iinfo(np.int32).max])
def test_indices_outside_the_state_are_refused_before_writing(rows, learned, bad):
    scorer = learned[0]._make_scorer()
    indices = rows.indices.copy()
    indices[rows.indptr[5] + 1] = bad
    out = np.full(rows.n_rows, -7.0)
    with pytest.raises(ValueError, match=r"row indices must lie in \[0, 262144\)"):
        scorer.score(rows.indptr, indices, rows.values, out, 0, rows.n_rows, False)
    assert (out == -7.0).all()


def test_batch_bounds_are_checked(rows, learned):
    """Every length the loop trusts is checked first (the loop itself runs unchecked)."""
    scorer = learned[0]._make_scorer()
    n, ptr, idx, val = rows.n_rows, rows.indptr, rows.indices, rows.values
    out = np.empty(2 * n)
    cases = {
        "not within the batch": (ptr, idx, val, out, 0, n + 1, False),
        "are not within": (ptr, idx, val, out, 5, 4, False),
        "differ in length": (ptr, idx, val[:-1], out, 0, n, False),
        "out holds": (ptr, idx, val, out[: 2 * n - 1], 0, n, True),
        "does not lie in": (np.r_[ptr[:-1], ptr[-1] + 1], idx, val, out, 0, n, False),
    }
    descending = ptr.copy()
    descending[3] = descending[4] + 1
    cases["in order"] = (descending, idx, val, out, 0, n, False)
    for message, args in cases.items():
        with pytest.raises(ValueError, match=message):
            scorer.score(*args)
    with pytest.raises(ValueError, match="not within"):  # an empty indptr has no rows
        scorer.score(np.empty(0, np.int64), idx[:0], val[:0], out, 0, 0, False)


def _entries_are_valid_reference(indices, values, size):
    return all(0 <= int(i) < size for i in indices) and all(math.isfinite(v) for v in values)


def test_entries_check_matches_a_python_reference(rng):
    for trial in range(300):
        n = int(rng.integers(0, 40))
        size = int(rng.choice([1, 7, 1 << 18, 1 << 31]))
        indices = rng.integers(0, size, n).astype(np.int64)
        values = rng.normal(size=n).astype(np.float32)
        if n and trial % 3 == 0:  # one bad entry: out of range, negative or not finite
            j = int(rng.integers(0, n))
            kind = trial % 4
            if kind == 0:
                indices[j] = min(size, np.iinfo(np.int32).max)
            elif kind == 1:
                indices[j] = -int(rng.integers(1, 2**31))
            else:
                values[j] = rng.choice([np.nan, np.inf, -np.inf])
        indices = indices.astype(np.int32)
        assert entries_are_valid(indices, values, size) == \
            _entries_are_valid_reference(indices, values, size), (indices, values, size)


def test_entries_check_refuses_what_it_cannot_check():
    one = np.zeros(1, np.int32)
    with pytest.raises(ValueError, match="differ in length"):
        entries_are_valid(one, np.zeros(2, np.float32), 4)
    with pytest.raises(ValueError, match="size must be"):
        entries_are_valid(one, np.zeros(1, np.float32), -1)
    assert entries_are_valid(one[:0], np.zeros(0, np.float32), 0)
