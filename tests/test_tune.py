"""Hyperparameter tuning: K FTRL candidates in one compiled pass (fastctr._kernels.tune,
fastctr.online.tune) and train(tune=...)."""
import numpy as np
import pytest

from fastctr import FMClassifier, FTRLClassifier
from fastctr._kernels.tune import renumber
from fastctr.io.datasets import make_criteo, make_text
from fastctr.io.detect import hasher_for, read_data
from fastctr.io.rows import HashedRows
from fastctr.models.scale import scaled_params, value_scale
from fastctr.online.metrics import normalized_entropy, roc_auc
from fastctr.online.training import Progress, train
from fastctr.online.tune import compact_indices, concat_rows, search_ftrl, tune, tuned_stream

from naive import FTRLProximal

QUIET = Progress(enabled=False)


def _random_rows(n=300, bits=18, seed=0):
    """Rows with real values, repeated buckets and a collision inside a row."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 8, n)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    indices = rng.integers(0, 40, indptr[-1]) * 997 % (1 << bits)
    indices[1] = indices[0]
    values = rng.uniform(0.05, 2.0, indptr[-1])
    labels = (rng.random(n) < 0.3).astype(np.float32)
    weights = rng.uniform(0.0, 2.0, n).astype(np.float32)
    return HashedRows(indptr, indices, values, labels=labels, weights=weights)


CANDIDATES = [
    {"alpha": 0.1, "beta": 1.0, "l1": 0.5, "l2": 1.0},
    {"alpha": 0.5, "beta": 0.3, "l1": 0.0, "l2": 0.0},
    {"alpha": 2.0, "beta": 1.0, "l1": 0.05, "l2": 3.0},
]


def test_each_candidate_equals_a_separate_single_model_run():
    rows = _random_rows()
    p, losses = search_ftrl(rows, CANDIDATES)
    for k, params in enumerate(CANDIDATES):
        single = FTRLClassifier(bits=18, value_scale=1.0, **params).partial_fit_predict(rows)
        assert np.array_equal(p[k], single)  # bit for bit: the same FTRL code
        ref = FTRLProximal(**params)
        expected = [ref.learn(list(zip(rows.indices[a:b].tolist(), rows.values[a:b].tolist())),
                              y, w)  # Python floats: float32 arithmetic would round
                    for a, b, y, w in zip(rows.indptr[:-1], rows.indptr[1:],
                                          rows.labels.tolist(), rows.weights.tolist())]
        np.testing.assert_allclose(p[k], expected, rtol=0, atol=1e-12)
    assert len(set(losses.tolist())) == 3


def test_renumbering_keeps_collisions_and_first_seen_order():
    out, m = renumber(np.array([9, 4, 9, 7], np.int32), 10)
    assert out.tolist() == [0, 1, 0, 2] and m == 3
    big = np.array([5, 2**29, 5], np.int32)  # too sparse for a dense map: sorted ids
    out, m = compact_indices(big)
    assert out.tolist() == [0, 1, 0] and m == 2


def test_scaled_params_equal_learning_rescaled_values():
    rows = _random_rows(seed=1)
    s = 0.125  # a power of two: values / s stay exact in float32
    base = {"alpha": 0.2, "beta": 1.0, "l1": 0.3, "l2": 0.5}
    rescaled = HashedRows(rows.indptr, rows.indices, rows.values / s, labels=rows.labels,
                          weights=rows.weights)
    p_rescaled = FTRLClassifier(bits=18, value_scale=1.0, **base).partial_fit_predict(rescaled)
    p_scaled = FTRLClassifier(bits=18, value_scale=1.0,
                              **scaled_params(base, s)).partial_fit_predict(rows)
    np.testing.assert_allclose(p_scaled, p_rescaled, rtol=1e-9)
    # what value_scale=s does inside the model, and "auto" finds the scale of the values
    p_model = FTRLClassifier(bits=18, value_scale=s, **base).partial_fit_predict(rows)
    np.testing.assert_allclose(p_model, p_rescaled, rtol=1e-9)
    auto = FTRLClassifier(bits=18, **base).fit(rows)
    assert auto.value_scale_ == value_scale(rows)


def test_value_scale_ignores_the_bias():
    one_hot = FTRLClassifier(bits=18).hasher_.transform([{"C1": "a", "C2": "b"}])
    assert value_scale(one_hot) == 1.0
    rows = HashedRows(np.array([0, 3]), np.array([0, 1, 2]), np.array([1.0, 0.3, 0.4]),
                      fields=np.array([0, 1, 1]))
    assert value_scale(rows) == pytest.approx(np.sqrt((0.09 + 0.16) / 2))


def _criteo(n, seed=3):
    model = FTRLClassifier(bits=18)
    batches = list(read_data(b"".join(make_criteo(n, seed=seed)), "criteo", model.hasher_,
                             batch_size=1_000))
    return model, batches


def test_tune_picks_the_candidate_with_the_lowest_progressive_loss():
    model, batches = _criteo(4_000)
    rows = concat_rows(batches)
    report = tune(model, rows)
    tried = report["candidates"]
    best = min(tried, key=lambda t: t["log_loss"])
    assert report["log_loss"] == best["log_loss"]
    assert {k: getattr(model, k) for k in ("alpha", "beta", "l1", "l2")} == report["chosen"]
    # every loss is that of a separate model with those values
    for t in tried[:: len(tried) // 4]:
        params = {k: t[k] for k in ("alpha", "beta", "l1", "l2")}
        p = FTRLClassifier(bits=18, **params).partial_fit_predict(rows)
        from fastctr.online.metrics import log_loss
        assert log_loss(rows.labels, p, rows.weights) == pytest.approx(t["log_loss"], rel=1e-12)


def test_tune_finds_the_known_learning_rate():
    # labels from a fixed sign pattern: a large step learns it at once, a tiny one never
    rng = np.random.default_rng(0)
    n = 3_000
    idx = rng.integers(1, 50, n)
    rows = HashedRows(np.arange(0, 2 * n + 1, 2), np.column_stack([np.zeros(n, int), idx]).ravel(),
                      np.ones(2 * n), labels=(idx % 2).astype(np.float32))
    model = FTRLClassifier(bits=18, alpha=0.01, l1=0.0, l2=0.0)
    report = tune(model, rows, scale=False)
    assert model.alpha == pytest.approx(0.04)  # the largest alpha tried (4 x 0.01) wins
    assert report["chosen"]["l1"] == 0.0


def test_train_with_tune_equals_training_with_the_chosen_values():
    model, batches = _criteo(6_000)
    report = train(model, batches, tune=True, tune_rows=2_500, progress=QUIET)
    chosen = report["tune"]["chosen"]
    assert report["tune"]["rows"] == 2_500 and report["rows"] == 6_000
    twin = FTRLClassifier(bits=18, **chosen)
    twin_report = train(twin, batches, progress=QUIET)
    assert twin_report["log_loss"] == report["log_loss"]
    assert np.array_equal(twin.zn_, model.zn_)


def test_train_tune_rejects_bad_values_and_fitted_models():
    model, batches = _criteo(1_000)
    with pytest.raises(ValueError, match="tune must be one of"):
        train(model, batches, tune="yes", progress=QUIET)
    with pytest.raises(ValueError, match="tune_rows must be an int >= 1"):
        train(model, batches, tune=True, tune_rows=0, progress=QUIET)
    train(model, batches, progress=QUIET)
    with pytest.raises(ValueError, match="learned nothing"):
        train(model, batches, tune=True, progress=QUIET)


def test_tuned_stream_gives_back_every_batch_in_order():
    model, batches = _criteo(3_000)
    stream, report = tuned_stream(model, iter(batches), True, 1_500)
    assert [b.n_rows for b in stream] == [1_000] * 3
    assert report["rows"] == 1_500 and report["value_scale"] == 1.0  # one-hot rows


def _text(n=20_000):
    data = make_text(n, seed=2)
    return data, hasher_for("vw", data, bits=18)


def test_default_estimators_learn_real_valued_text():
    # TF-IDF rows (values ~0.1): unscaled, the unit-scale defaults barely beat the base rate
    # (what the defaults did before they measured the value scale)
    data, hasher = _text()
    plain = FTRLClassifier(bits=18, fields=hasher.fields, value_scale=1.0)
    default = FTRLClassifier(bits=18, fields=hasher.fields)
    r_plain = train(plain, read_data(data, "vw", hasher), progress=QUIET)
    r_default = train(default, read_data(data, "vw", hasher), progress=QUIET)
    assert 0.08 < default.value_scale_ < 0.2
    assert r_plain["normalized_entropy"] > 0.98  # 0.996 when written
    assert r_default["normalized_entropy"] < 0.96  # 0.948 when written
    # the same through plain fit (one batch) and a 2-D array of TF-IDF-like values
    rows = b"".join(data.splitlines(True)[:10_000])
    batch = next(iter(read_data(rows, "vw", hasher, batch_size=10_000)))
    for model in (FTRLClassifier(bits=18, fields=hasher.fields),
                  FMClassifier(bits=18, k=4, fields=hasher.fields)):
        p = model.partial_fit_predict(batch)
        # 0.972 and 0.608 when written; unscaled 0.9986 and 0.528
        assert normalized_entropy(batch.labels, p) < 0.98 and roc_auc(batch.labels, p) > 0.58


def test_fm_tunes_eta_too():
    data, hasher = _text(4_000)
    model = FMClassifier(bits=18, k=4, fields=hasher.fields)
    report = train(model, read_data(data, "vw", hasher), tune=True, tune_rows=2_000,
                   progress=QUIET)
    assert "eta" in report["tune"]["chosen"] and model.eta == report["tune"]["chosen"]["eta"]
    assert sum("eta" in t for t in report["tune"]["candidates"]) == 3


def test_cli_tune_says_what_it_chose(tmp_path, capsys):
    import json

    from fastctr.cli import main

    path = tmp_path / "text.vw"
    path.write_bytes(make_text(3_000, seed=4))
    assert main(["train", str(path), "--format", "vw", "--bits", "18", "--tune",
                 "--tune-rows", "1000"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tune"]["rows"] == 1_000 and set(out["tune"]["chosen"]) == {"alpha", "beta", "l1", "l2"}
    assert 0.08 < out["value_scale"] < 0.2
    # without --tune the values are carried to the data's scale, which the report names;
    # --value-scale 1 turns that off
    assert main(["train", str(path), "--format", "vw", "--bits", "18", "--alpha", "0.1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "tune" not in out and 0.08 < out["value_scale"] < 0.2
    assert main(["train", str(path), "--format", "vw", "--bits", "18", "--value-scale", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["value_scale"] == 1.0
