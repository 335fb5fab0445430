"""FTRLClassifier against Algorithm 1 and its API conventions (the contract checks of every
estimator run in test_contracts.py)."""
import numpy as np
import pytest

from fastctr import FeatureHasher, FTRLClassifier, NotFittedError, read_criteo
from fastctr.io.datasets import criteo_rows

from naive import FTRLProximal

PARAMS = dict(alpha=0.2, beta=1.0, l1=0.5, l2=0.1)


@pytest.fixture(scope="module")
def rows(synthetic_tsv):
    (batch,) = read_criteo(synthetic_tsv[: 3_000 * 150], FeatureHasher(bits=18), batch_size=10**6)
    return batch[:3000]


def _entries(rows, r):
    a, b = rows.indptr[r], rows.indptr[r + 1]
    return list(zip(rows.indices[a:b].tolist(), rows.values[a:b].astype(float).tolist()))


def _parity(rows, params, weights=None):
    model = FTRLClassifier(bits=18, **params)
    ref = FTRLProximal(**params)
    w = np.ones(rows.n_rows) if weights is None else weights
    p = model.partial_fit_predict(rows, sample_weight=weights)
    p_ref = [ref.learn(_entries(rows, r), float(rows.labels[r]), float(w[r]))
             for r in range(rows.n_rows)]
    return model, ref, p, np.array(p_ref)


def test_progressive_predictions_match_algorithm_1(rows):
    model, ref, p, p_ref = _parity(rows, PARAMS)
    np.testing.assert_allclose(p, p_ref, rtol=0, atol=1e-12)
    final = model.predict_proba(rows)[:, 1]
    np.testing.assert_allclose(final, [ref.predict(_entries(rows, r)) for r in range(rows.n_rows)],
                               rtol=0, atol=1e-12)
    for i, z in ref.z.items():
        assert model.zn_[i, 0] == pytest.approx(z, abs=1e-12)


def test_sample_weights_match_algorithm_1(rows, rng):
    weights = rng.uniform(0, 3, rows.n_rows).astype(np.float32)
    _, _, p, p_ref = _parity(rows[:500], PARAMS, weights[:500])
    np.testing.assert_allclose(p, p_ref, rtol=0, atol=1e-12)


def test_zero_weight_rows_change_nothing(rows):
    model = FTRLClassifier(bits=18).partial_fit(rows[:100])
    state = model.zn_.copy()
    model.partial_fit(rows[100:200], sample_weight=np.zeros(100))
    np.testing.assert_array_equal(model.zn_, state)


def test_l1_gives_exact_zeros(rows):
    model = FTRLClassifier(bits=18, l1=5.0).partial_fit(rows)
    coef = model.coef_
    small = np.abs(model.zn_[:, 0]) <= 5.0
    assert small.any() and (~small).any()
    assert np.all(coef[small] == 0.0) and np.all(coef[~small] != 0.0)


def test_scorer_agrees_with_batch_prediction(rows):
    model = FTRLClassifier(bits=18, **PARAMS).partial_fit(rows)
    batch = model.predict_proba(rows)[:, 1]
    for r in range(0, rows.n_rows, 97):
        a, b = rows.indptr[r], rows.indptr[r + 1]
        one = model.predict_one((rows.indices[a:b], rows.values[a:b]))
        assert one == pytest.approx(batch[r], abs=1e-12)


def test_dict_rows_score_as_tsv_rows():
    dicts, labels = criteo_rows(300, seed=11)
    model = FTRLClassifier(bits=20).fit(dicts, labels)
    from_dicts = np.array([model.predict_one(row) for row in dicts])
    np.testing.assert_allclose(from_dicts, model.predict_proba(dicts)[:, 1], rtol=0, atol=1e-12)


def test_input_kinds_agree(rows):
    pd = pytest.importorskip("pandas")
    dicts, labels = criteo_rows(200, seed=3)
    hashed = FeatureHasher(bits=18).transform(dicts)
    by_dicts = FTRLClassifier(bits=18).fit(dicts, labels)
    by_frame = FTRLClassifier(bits=18).fit(pd.DataFrame(dicts), labels)
    by_csr = FTRLClassifier(bits=18).fit(hashed.to_csr(2**18), labels)
    by_rows = FTRLClassifier(bits=18).fit(hashed, labels * 2 - 1)  # {-1, 1} labels
    by_bool = FTRLClassifier(bits=18).fit(hashed, labels.astype(bool))
    for other in (by_frame, by_csr, by_rows, by_bool):
        np.testing.assert_array_equal(other.zn_, by_dicts.zn_)


def test_fit_resets_and_makes_epochs_passes(rows):
    once = FTRLClassifier(bits=18).partial_fit(rows)
    twice = FTRLClassifier(bits=18, epochs=2).fit(rows)
    again = FTRLClassifier(bits=18).partial_fit(rows).partial_fit(rows)
    np.testing.assert_array_equal(twice.zn_, again.zn_)
    np.testing.assert_array_equal(FTRLClassifier(bits=18).fit(rows).fit(rows).zn_, once.zn_)
    assert twice.n_rows_seen_ == 2 * rows.n_rows


def test_params_conventions():
    model = FTRLClassifier(alpha=0.3)
    assert model.get_params()["alpha"] == 0.3
    assert model.set_params(l1=2.0) is model and model.l1 == 2.0
    with pytest.raises(ValueError, match="Invalid parameter 'gamma'"):
        model.set_params(gamma=1)
    with pytest.raises(ValueError, match=r"The 'alpha' parameter of FTRLClassifier must be a "
                                         r"float in the range \(0\.0, inf\)\. Got -1 instead\."):
        FTRLClassifier(alpha=-1, bits=18).partial_fit([{"C1": "a"}], [1])
    assert repr(FTRLClassifier(alpha=0.3)) == "FTRLClassifier(alpha=0.3)"


def test_sklearn_clone_and_hashing_frozen_after_fit(rows):
    from sklearn.base import clone

    model = FTRLClassifier(bits=18, l2=3.0).partial_fit(rows[:10])
    fresh = clone(model)
    assert fresh.get_params() == model.get_params() and not fresh.is_fitted
    with pytest.raises(ValueError, match="cannot change 'bits' of a fitted model"):
        model.set_params(bits=20)


def test_not_fitted_error_is_clear():
    with pytest.raises(NotFittedError, match="call partial_fit or fit"):
        FTRLClassifier().predict_one({"C1": "a"})


def test_set_params_refreshes_the_live_scorer(rows):
    model = FTRLClassifier(bits=18).partial_fit(rows)
    row = {"C1": "68fd1e64"}
    before = model.predict_one(row)
    model.set_params(l1=0.0)
    assert model.predict_one(row) == pytest.approx(model.predict_proba([row])[0, 1], abs=1e-12)
    assert model.predict_one(row) != before


def test_real_rows_match_algorithm_1(real_criteo):
    batch = next(iter(read_criteo(real_criteo, FeatureHasher(bits=20), batch_size=3_000)))
    model = FTRLClassifier(bits=20, **PARAMS)
    ref = FTRLProximal(**PARAMS)
    p = model.partial_fit_predict(batch)
    p_ref = [ref.learn(_entries(batch, r), float(batch.labels[r])) for r in range(batch.n_rows)]
    np.testing.assert_allclose(p, p_ref, rtol=0, atol=1e-6)
    final = model.predict_proba(batch)[:, 1]
    np.testing.assert_allclose(final, [ref.predict(_entries(batch, r)) for r in range(batch.n_rows)],
                               rtol=0, atol=1e-6)


def test_hasher_follows_assigned_and_changed_hashing_parameters():
    model = FTRLClassifier(bits=18, fields=["a", "b"])
    first = model.hasher_
    assert model.hasher_ is first  # cached, not rebuilt on every access
    model.fields.append("c")  # an in-place change is seen
    assert model.hasher_.fields == ("a", "b", "c")
    model.bits = 19
    assert model.hasher_.bits == 19
