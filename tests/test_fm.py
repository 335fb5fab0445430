"""FMClassifier and FFMClassifier: agreement with the naive references, gradients, serving
parity, stability, persistence and quality."""
from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from fastctr import DivergenceError
from fastctr._kernels.ffm import ffm_fit, ffm_margin
from fastctr._kernels.fm import fm_fit, fm_margin
from fastctr.io.hashing import FeatureHasher
from fastctr.io.rows import HashedRows
from fastctr.models.fm import FFMClassifier, FMClassifier
from fastctr.models.ftrl import FTRLClassifier
from fastctr.serving.files import load

from naive_fm import NaiveFFM, NaiveFM

BITS = 18
N_FIELDS = 6  # bias + 5 fields, for the hand-made rows


def random_rows(seed, n_rows=300, n_buckets=60, width=(2, 7), continuous=True, weights=False):
    """Rows like the hasher's (bias first, field 0; then distinct fields 1..5) over few buckets,
    so that hash collisions (also inside a row) happen."""
    rng = np.random.default_rng(seed)
    indptr, idx, val, fld = [0], [], [], []
    for _ in range(n_rows):
        n = int(rng.integers(*width))
        fields = np.sort(rng.choice(np.arange(1, N_FIELDS), n - 1, replace=False))
        idx += [7] + rng.integers(0, n_buckets, n - 1).tolist()
        xs = (np.where(rng.random(n - 1) < 0.5, 1.0, rng.normal(0, 1.5, n - 1)) if continuous
              else np.ones(n - 1))
        val += [1.0] + xs.tolist()
        fld += [0] + fields.tolist()
        indptr.append(len(idx))
    labels = (rng.random(n_rows) < 0.3).astype(np.float32)
    w = rng.choice([0.0, 0.5, 1.0, 2.0], n_rows).astype(np.float32) if weights else None
    return HashedRows(np.array(indptr), np.array(idx), np.array(val), np.array(fld), labels, w)


def rows_of(rows, r):
    a, b = rows.indptr[r], rows.indptr[r + 1]
    return (rows.indices[a:b].tolist(), rows.values[a:b].astype(np.float64).tolist(),
            rows.fields[a:b].tolist())


FM_PARAMS = dict(alpha=0.3, beta=1.0, l1=0.01, l2=0.1, k=4, eta=0.15, l2_v=0.01, init_std=0.2)


# -- agreement with the naive references ------------------------------------------------------
@pytest.mark.parametrize("weights", [False, True])
def test_fm_matches_naive_reference(weights):
    rows = random_rows(1, weights=weights)
    model = FMClassifier(**FM_PARAMS, random_state=3, bits=BITS)
    p = model.partial_fit_predict(rows)
    hp = model._hyper()
    naive = NaiveFM(4, *hp[:4], FM_PARAMS["eta"], FM_PARAMS["l2_v"], FM_PARAMS["init_std"], model.seed_)
    w = rows.weights if weights else np.ones(rows.n_rows)
    p_naive = [naive.learn(*rows_of(rows, r), float(rows.labels[r]), float(w[r]))
               for r in range(rows.n_rows)]
    np.testing.assert_allclose(p, p_naive, rtol=0, atol=1e-9)
    for i in set(naive.lin.z):
        np.testing.assert_allclose(model.zn_[i], [naive.lin.z[i], np.sqrt(naive.lin.n[i])],
                                   rtol=1e-9, atol=1e-9)
    for i in naive.V:
        np.testing.assert_allclose(model.V_[i], naive.V[i], rtol=0, atol=1e-9)
        np.testing.assert_allclose(model.G_[i], naive.G[i], rtol=1e-9)
    touched = np.flatnonzero(model.G_[:, 0])
    assert sorted(touched) == sorted(naive.V)
    # predictions of the trained model, untouched buckets included (their seeded init)
    test = random_rows(2, n_rows=50, n_buckets=90)
    m = model.decision_function(test)
    np.testing.assert_allclose(m, [naive.margin(*rows_of(test, r)) for r in range(50)], atol=1e-9)
    assert np.isfinite(model.zn_).all() and np.isfinite(model.vg_).all()


@pytest.mark.parametrize("normalize", [True, False])
def test_ffm_matches_naive_reference(normalize):
    rows = random_rows(4, n_rows=200, weights=True)
    hasher_fields = [f"f{j}" for j in range(1, N_FIELDS)]  # n_fields = 6 ids: bias + 5
    params = dict(FM_PARAMS, eta=0.2)
    model = FFMClassifier(**params, normalize=normalize, random_state=5, bits=BITS, fields=hasher_fields)
    p = model.partial_fit_predict(rows)
    assert model.vg_.shape == (1 << BITS, N_FIELDS, 8)
    hp = model._hyper()
    naive = NaiveFFM(4, N_FIELDS, *hp[:4], params["eta"], params["l2_v"], params["init_std"],
                     model.seed_, normalize)
    p_naive = [naive.learn(*rows_of(rows, r), float(rows.labels[r]), float(rows.weights[r]))
               for r in range(rows.n_rows)]
    np.testing.assert_allclose(p, p_naive, rtol=0, atol=1e-9)
    for (i, f), v in naive.V.items():
        np.testing.assert_allclose(model.V_[i, f], v, rtol=0, atol=1e-9)
        np.testing.assert_allclose(model.G_[i, f], naive.G[(i, f)], rtol=1e-9)
    for i in naive.lin.z:
        np.testing.assert_allclose(model.zn_[i], [naive.lin.z[i], np.sqrt(naive.lin.n[i])],
                                   rtol=1e-9, atol=1e-9)
    test = random_rows(6, n_rows=40, n_buckets=90)
    np.testing.assert_allclose(model.decision_function(test),
                               [naive.margin(*rows_of(test, r)) for r in range(40)], atol=1e-9)


# -- finite differences of the log loss -------------------------------------------------------
def _log_loss_of(margin_fn, y):
    def f():
        p = 1.0 / (1.0 + np.exp(-margin_fn()))
        return -(y * np.log(p) + (1 - y) * np.log(1 - p))
    return f


def _implied_gradients(zn0, vg0, zn1, vg1, hp, k):
    """Gradients the kernel applied, read back off its state change: latent (AdaGrad: the
    accumulator grew by g^2, the value moved against g) and linear (FTRL: z grew by
    g - sigma * w_before)."""
    dG = vg1[..., k:] - vg0[..., k:]
    g_v = -np.sign(vg1[..., :k] - vg0[..., :k]) * np.sqrt(np.maximum(dG, 0))
    alpha, beta, l1, l2 = hp.alpha, hp.beta, hp.l1, hp.l2
    w0 = np.where(np.abs(zn0[:, 0]) <= l1, 0.0,
                  -(zn0[:, 0] - np.sign(zn0[:, 0]) * l1) / ((beta + zn0[:, 1]) / alpha + l2))
    sigma = (zn1[:, 1] - zn0[:, 1]) / alpha  # zn holds sqrt(n)
    g_w = (zn1[:, 0] - zn0[:, 0]) + sigma * w0
    return g_v, g_w


@pytest.mark.parametrize("kind", ["fm", "ffm"])
def test_gradient_matches_finite_differences(kind):
    cls = FMClassifier if kind == "fm" else FFMClassifier
    extra = {} if kind == "fm" else {"fields": [f"f{j}" for j in range(1, N_FIELDS)], "normalize": True}
    model = cls(**dict(FM_PARAMS, l1=0.0, l2_v=0.0), bits=BITS, **extra)
    model.partial_fit(random_rows(8, n_rows=100))  # a trained, non-trivial state
    # one row with distinct buckets and fields, continuous values
    idx = np.array([7, 11, 23, 31, 47], np.int32)
    row = HashedRows(np.array([0, 5]), idx, np.array([1.0, 0.7, -1.3, 2.0, 0.4]),
                     np.array([0, 1, 2, 4, 5]), np.array([1.0], np.float32), np.ones(1, np.float32))
    fit, margin = (fm_fit, fm_margin) if kind == "fm" else (ffm_fit, ffm_margin)
    zn, vg, hp, k = model.zn_, model.vg_, model._hyper(), model.k
    krow = model._kernel_rows(row)
    def state(zn, vg):
        return model.State(zn, vg, model.seed_, model.n_rows_seen_)
    margin(krow, state(zn, vg), hp, np.empty(1))
    zn0, vg0 = zn.copy(), vg.copy()
    # touch (materialise) the row's vectors first so the state change is the update alone
    fit(krow._replace(weights=np.zeros(1, np.float32)), state(zn, vg), hp, np.empty(1))
    zn0, vg0 = zn.copy(), vg.copy()
    fit(krow, state(zn1 := zn0.copy(), vg1 := vg0.copy()), hp, np.empty(1))
    g_v, g_w = _implied_gradients(zn0, vg0, zn1, vg1, hp, k)

    out = np.empty(1)
    def m():
        margin(krow, state(zn0, vg0), hp, out)
        return out[0]
    loss = _log_loss_of(m, 1.0)
    h = 1e-6
    checked = 0
    positions = [(i, c) for i in idx[1:] for c in range(k)] if kind == "fm" else \
        [((i, f), c) for i in idx[1:] for f in (1, 2, 4, 5) for c in range(k)]
    for pos, c in positions:
        key = pos if kind == "fm" else pos
        base = vg0[key][c]
        vg0[key][c] = base + h
        up = loss()
        vg0[key][c] = base - h
        down = loss()
        vg0[key][c] = base
        fd = (up - down) / (2 * h)
        assert abs(fd - g_v[key][c]) <= 1e-6 + 1e-5 * abs(fd), (pos, c, fd, g_v[key][c])
        checked += abs(fd) > 1e-6
    assert checked >= 8  # the check is not vacuous
    # linear weights: with l1 = 0, w_i = -z_i / ((beta + sqrt(n_i)) / alpha + l2) (zn holds
    # sqrt(n)), so
    # dL/dw_i = dL/dz_i / (dw_i/dz_i)
    alpha, beta, l2 = hp.alpha, hp.beta, hp.l2
    for i in idx:
        base = zn0[i, 0]
        dwdz = -1.0 / ((beta + zn0[i, 1]) / alpha + l2)
        zn0[i, 0] = base + h
        up = loss()
        zn0[i, 0] = base - h
        down = loss()
        zn0[i, 0] = base
        fd = (up - down) / (2 * h) / dwdz
        assert abs(fd - g_w[i]) <= 1e-6 + 1e-5 * abs(fd), (i, fd, g_w[i])


# -- serving: the Cython scorers agree with the numba batch path ------------------------------
def _dict_rows(seed, n):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        row = {f"C{j}": f"{rng.integers(0, 30):08x}" for j in range(1, 27) if rng.random() < 0.9}
        row.update({f"I{j}": int(rng.integers(0, 500)) for j in range(1, 14) if rng.random() < 0.7})
        out.append(row)
    return out


@pytest.mark.parametrize("cls", [FMClassifier, FFMClassifier])
@pytest.mark.parametrize("transform", ["bin", "log1p"])
def test_scorer_matches_batch_prediction(cls, transform):
    train, test = _dict_rows(10, 400), _dict_rows(11, 60)  # test rows touch unseen buckets too
    y = np.random.default_rng(12).random(400) < 0.3
    model = cls(k=4, bits=BITS, init_std=0.1, numeric_transform=transform).fit(train, y)
    batch = model.predict_proba(test)[:, 1]
    one = np.array([model.predict_one(r) for r in test])
    np.testing.assert_allclose(one, batch, rtol=0, atol=1e-12)
    hashed = model.hasher_.transform(test[:5])
    for r in range(5):
        a, b = hashed.indptr[r], hashed.indptr[r + 1]
        triple = (hashed.indices[a:b], hashed.values[a:b], hashed.fields[a:b])
        assert abs(model.predict_one(triple) - batch[r]) <= 1e-12
    if cls is FMClassifier:  # a pair has no field ids: every entry interacts, as in a CSR
        nofields = HashedRows(hashed.indptr, hashed.indices, hashed.values)
        p = model.predict_proba(nofields)[:, 1]
        for r in range(5):
            a, b = hashed.indptr[r], hashed.indptr[r + 1]
            assert abs(model.predict_one((hashed.indices[a:b], hashed.values[a:b])) - p[r]) <= 1e-12
    else:
        with pytest.raises(ValueError, match="field ids"):
            model.predict_one((hashed.indices[:3], hashed.values[:3]))


def test_scorer_follows_further_learning_and_refit():
    rows, y = _dict_rows(13, 200), np.arange(200) % 3 == 0
    model = FMClassifier(bits=BITS).fit(rows, y)
    before = model.predict_one(rows[0])
    model.partial_fit(rows, y)
    after = model.predict_one(rows[0])
    assert before != after and after == pytest.approx(model.predict_proba(rows[:1])[0, 1], abs=1e-12)
    model.fit(rows[:50], y[:50])  # a refit allocates new state: the scorer must follow it
    assert model.predict_one(rows[0]) == pytest.approx(model.predict_proba(rows[:1])[0, 1], abs=1e-12)


# -- stability -------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [FMClassifier, FFMClassifier])
@pytest.mark.parametrize("eta", [0.05, 10.0, 1e6])
@pytest.mark.parametrize("scale", [1e6, 1e-30, 1e37])
def test_extreme_values_stay_finite_or_raise_clearly(cls, eta, scale):
    rng = np.random.default_rng(14)
    rows = random_rows(15, n_rows=200, weights=True)
    values = rows.values * np.where(rng.random(rows.nnz) < 0.3, scale, 1.0).astype(np.float32)
    values[rows.fields == 0] = 1.0
    extreme = HashedRows(rows.indptr, rows.indices, values, rows.fields, rows.labels, rows.weights)
    model = cls(eta=eta, bits=BITS, fields=[f"f{j}" for j in range(1, N_FIELDS)])
    try:
        for _ in range(3):
            model.partial_fit(extreme)
    except DivergenceError as err:
        message = str(err)
        assert "numeric_transform='log1p'" in message and "lower eta" in message
        assert isinstance(err, FloatingPointError) and isinstance(err, ValueError)
    for arr in (model.zn_, model.vg_):
        assert np.isfinite(arr).all()
    if model.is_fitted:
        p = model.predict_proba(extreme)
        assert np.isfinite(p).all()


def test_divergence_error_keeps_learned_rows():
    rows = random_rows(16, n_rows=50)
    values = rows.values.copy()
    values[rows.indptr[30] + 1] = 1e7
    bad = HashedRows(rows.indptr, rows.indices, values, rows.fields, rows.labels)
    model = FMClassifier(bits=BITS, init_std=0.1)
    with pytest.raises(DivergenceError, match="row 30 of this batch"):
        model.partial_fit(bad)
    assert model.n_rows_seen_ == 30
    # the same value scale (the first batch measures it): only the rows learned differ
    reference = FMClassifier(bits=BITS, init_std=0.1, value_scale=model.value_scale_)
    reference.partial_fit(rows[:30])
    assert np.array_equal(model.vg_, reference.vg_) and np.array_equal(model.zn_, reference.zn_)


# -- API surface ------------------------------------------------------------------------------
def test_parameter_validation_messages():
    rows = random_rows(17, n_rows=10)
    with pytest.raises(ValueError, match=r"The 'eta' parameter of FMClassifier must be a float in the "
                                         r"range \(0\.0, inf\)\. Got -1 instead\."):
        FMClassifier(eta=-1, bits=BITS).partial_fit(rows)
    with pytest.raises(ValueError, match=r"'k' parameter of FFMClassifier must be an int in the range "
                                         r"\[1, 256\]\. Got 0 instead\."):
        FFMClassifier(k=0, bits=BITS).partial_fit(rows)
    with pytest.raises(ValueError,
                       match="'normalize' parameter of FFMClassifier must be a bool. Got 'yes' instead"):
        FFMClassifier(normalize="yes", bits=BITS).partial_fit(rows)
    with pytest.raises(ValueError, match=r"'random_state' parameter of FMClassifier must be an int in "
                                         r"the range \[0, inf\) or None\. Got -3"):
        FMClassifier(random_state=-3, bits=BITS).partial_fit(rows)


def test_ffm_needs_field_ids():
    rows = random_rows(18, n_rows=10)
    with pytest.raises(ValueError, match="needs the field id of every entry"):
        FFMClassifier(bits=BITS).partial_fit(rows.to_csr(1 << BITS), rows.labels)
    with pytest.raises(ValueError, match="field ids must be < n_fields = 3"):
        FFMClassifier(bits=BITS, fields=["a", "b"]).partial_fit(rows)


@pytest.mark.parametrize("cls", [FMClassifier, FFMClassifier])
def test_pickle_resume_is_bit_identical(cls, tmp_path):
    rows = random_rows(19, n_rows=400, weights=True)
    kw = dict(bits=BITS, fields=[f"f{j}" for j in range(1, N_FIELDS)], init_std=0.1)
    whole = cls(**kw).partial_fit(rows[:200]).partial_fit(rows[200:])
    half = pickle.loads(pickle.dumps(cls(**kw).partial_fit(rows[:200])))
    half.predict_one((rows.indices[:3], rows.values[:3], rows.fields[:3]))  # builds a scorer
    half = pickle.loads(pickle.dumps(half))
    half.partial_fit(rows[200:])
    for name, a, b in zip(cls.State._fields, whole.state, half.state):
        assert np.array_equal(a, b), name
    # one batch == many mini-batches (at the value scale the first batch measured)
    mini = cls(**kw, value_scale=whole.value_scale_)
    for start in range(0, 400, 37):
        mini.partial_fit(rows[start : start + 37])
    assert np.array_equal(mini.vg_, whole.vg_) and np.array_equal(mini.zn_, whole.zn_)
    # through a model file
    whole.save(tmp_path / "m.fctr")
    loaded = load(tmp_path / "m.fctr")
    for name, a, b in zip(cls.State._fields, whole.state, loaded.state):
        assert np.array_equal(a, b), name
    assert loaded.hasher_ == whole.hasher_
    assert {k: v for k, v in loaded.get_params().items() if k != "fields"} == \
        {k: v for k, v in whole.get_params().items() if k != "fields"}
    triple = (rows.indices[:4], rows.values[:4], rows.fields[:4])
    assert loaded.predict_one(triple) == whole.predict_one(triple)


def test_seeds_clone_and_params():
    rows = random_rows(20, n_rows=100)
    a = FMClassifier(bits=BITS, random_state=1).partial_fit(rows)
    b = FMClassifier(bits=BITS, random_state=1).partial_fit(rows)
    c = FMClassifier(bits=BITS, random_state=2).partial_fit(rows)
    assert np.array_equal(a.vg_, b.vg_) and not np.array_equal(a.vg_, c.vg_)
    none = FMClassifier(bits=BITS, random_state=None).partial_fit(rows)
    assert 0 <= none.seed_ < 2**53
    from sklearn.base import clone

    d = clone(a)
    assert d.get_params() == a.get_params() and not d.is_fitted
    assert FFMClassifier().bits == 18 and FMClassifier().k == 8


def test_weight_zero_rows_change_nothing():
    rows = random_rows(21, n_rows=50)
    model = FMClassifier(bits=BITS).partial_fit(rows)
    zn, vg = model.zn_.copy(), model.vg_.copy()
    model.partial_fit(rows, sample_weight=np.zeros(50))
    assert np.array_equal(model.zn_, zn) and np.array_equal(model.vg_, vg)


# -- quality ---------------------------------------------------------------------------------
def _auc_after_one_pass(model, train_batches, test):
    from fastctr.online.metrics import roc_auc

    for batch in train_batches:
        model.partial_fit(batch)
    return roc_auc(test.labels, model.predict_proba(test)[:, 1])


def test_fm_beats_ftrl_on_synthetic_interactions():
    from fastctr.io.criteo import read_criteo
    from fastctr.io.datasets import make_criteo

    batches = list(read_criteo(make_criteo(250_000, seed=0), FeatureHasher(bits=22), batch_size=50_000))
    train, test = batches[:4], batches[4]
    fm = _auc_after_one_pass(FMClassifier(), train, test)
    ftrl = _auc_after_one_pass(FTRLClassifier(), train, test)
    assert fm > ftrl, (fm, ftrl)


def _real_data() -> Path | None:
    root = Path(os.environ.get("FASTCTR_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    path = root / "criteo_kaggle_labeled_dedup.tsv.gz"
    return path if path.is_file() else None


@pytest.mark.skipif(_real_data() is None, reason="real Criteo sample absent: set FASTCTR_DATA or "
                    "provide ../shared/data/criteo_kaggle_labeled_dedup.tsv.gz")
def test_fm_at_least_as_good_as_ftrl_on_real_criteo_sample():
    from fastctr.io.criteo import read_criteo
    from fastctr.online.metrics import roc_auc

    with gzip.open(_real_data(), "rb") as f:
        lines = f.read().split(b"\n")[:10_000]
    train = next(iter(read_criteo(b"\n".join(lines[:8000]) + b"\n", FeatureHasher(), batch_size=8000)))
    test = next(iter(read_criteo(b"\n".join(lines[8000:]) + b"\n", FeatureHasher(), batch_size=2000)))
    fm = FMClassifier().fit(train)
    ftrl = FTRLClassifier().fit(train)
    auc_fm = roc_auc(test.labels, fm.predict_proba(test)[:, 1])
    auc_ftrl = roc_auc(test.labels, ftrl.predict_proba(test)[:, 1])
    assert auc_fm >= auc_ftrl - 0.002, (auc_fm, auc_ftrl)
