"""FactorScorer, the compact serving artifact of FM and FFM: agreement with the live model and
with a slow Python reference, quantisation loss, sizes, files (mmap), bad input, fuzzing."""
import os
import pickle
import random
import tempfile

import numpy as np
import pytest

from fastctr import FeatureHasher, FFMClassifier, FMClassifier, HashedRows, load, read_criteo
from fastctr._ext._score import INIT_SCALE, SPLITMIX64
from fastctr.io.datasets import criteo_rows
from fastctr.online.metrics import roc_auc
from fastctr.serving.factors import FactorScorer

from child import run_batches

LONG = os.environ.get("FASTCTR_FUZZ_LONG") == "1"
MASK = (1 << 64) - 1


@pytest.fixture(scope="module")
def batch(synthetic_tsv):
    (rows,) = read_criteo(synthetic_tsv, FeatureHasher(bits=18), batch_size=10**6)
    assert rows.n_rows == 20_000
    return rows[:2500], rows[2500:2900]


@pytest.fixture(scope="module")
def fm(batch):
    train, test = batch
    return FMClassifier(bits=18, k=4, eta=0.05).partial_fit(train), test


@pytest.fixture(scope="module")
def ffm(batch):
    train, test = batch
    return FFMClassifier(bits=18, k=2).partial_fit(train[:1500]), test[:150]


def _line(row: dict, fields) -> str:
    """A Criteo test-set line (no label) holding the dict row's values."""
    return "\t".join(str(row.get(name, "")) for name in fields)


@pytest.mark.parametrize("layout", ["sparse", "dense"])
@pytest.mark.parametrize("kind", ["fm", "ffm"])
def test_float32_scorer_matches_the_live_model(request, kind, layout):
    model, test = request.getfixturevalue(kind)
    scorer = model.to_scorer("float32", layout)
    assert isinstance(scorer, FactorScorer) and scorer.layout == layout
    np.testing.assert_allclose(scorer.predict_proba(test), model.predict_proba(test), atol=1e-6)
    dicts, _ = criteo_rows(100, seed=8)
    for row in dicts:
        p = scorer.predict_one(row)
        assert p == pytest.approx(model.predict_one(row), abs=1e-6)
        assert scorer.predict_one(_line(row, scorer.hasher.fields)) == p


def _init_value(seed: int, key: int, scale: float) -> float:
    """splitmix64 written out (fastctr._kernels.fm.init_value)."""
    golden, mix1, mix2 = SPLITMIX64
    x = (seed + key * golden) & MASK
    x = ((x ^ (x >> 30)) * mix1) & MASK
    x = ((x ^ (x >> 27)) * mix2) & MASK
    x ^= x >> 31
    return scale * (2.0 * ((x >> 11) / 2.0**53) - 1.0)


def reference_margin(scorer: FactorScorer, idx, val, fld) -> float:
    """FM or FFM's margin of one row from the scorer's stored tables, pair by pair (no
    sum-of-squares identity), in plain Python."""
    w = scorer.weights.view(np.float16) if scorer.dtype == "float16" else scorer.weights
    v = scorer.factors.view(np.float16) if scorer.dtype == "float16" else scorer.factors
    if scorer.keys is None:
        row_of = dict(enumerate(range(len(w))))
    else:
        row_of = {int(b): int(r) for b, r in zip(scorer.keys, scorer.rows) if b != 0xFFFFFFFF}
    ffm, k = v.ndim == 3, v.shape[-1]
    nf = v.shape[1] if ffm else 1
    init = scorer.init_std * INIT_SCALE

    def vec(b, f):
        if b in row_of:
            return [float(x) * scorer.factor_scale for x in (v[row_of[b], f] if ffm else v[row_of[b]])]
        return [_init_value(scorer.seed, (b * nf + f) * k + c, init) for c in range(k)]

    lin = sum(float(w[row_of[b]]) * scorer.scale * float(x) for b, x in zip(idx, val) if b in row_of)
    entries = [(int(b), float(x), int(f)) for b, x, f in zip(idx, val, fld) if f != 0]
    pair = 0.0
    for j, (bj, xj, fj) in enumerate(entries):
        for bl, xl, fl in entries[j + 1:]:
            a, c = (vec(bj, fl), vec(bl, fj)) if ffm else (vec(bj, 0), vec(bl, 0))
            pair += sum(p * q for p, q in zip(a, c)) * xj * xl
    norm = sum(x * x for _, x, _ in entries)
    return lin + (pair / norm if ffm and scorer.normalize and norm > 0 else pair)


@pytest.mark.parametrize("dtype", ["float32", "float16", "int8"])
@pytest.mark.parametrize("kind,layout", [("fm", "sparse"), ("fm", "dense"), ("ffm", "sparse")])
def test_scorer_matches_a_python_reference_of_its_tables(request, kind, layout, dtype):
    model, test = request.getfixturevalue(kind)
    scorer = model.to_scorer(dtype, layout)
    margins = scorer.decision_function(test[:25])
    absent = 0
    for r in range(25):
        a, b = test.indptr[r], test.indptr[r + 1]
        idx, val, fld = test.indices[a:b], test.values[a:b], test.fields[a:b]
        assert margins[r] == pytest.approx(reference_margin(scorer, idx, val, fld), rel=1e-9,
                                           abs=1e-9)
        if scorer.keys is not None:
            absent += len(set(idx.tolist()) - set(scorer.keys.tolist()))
    assert layout == "dense" or absent > 0  # the seeded initial vectors were exercised


@pytest.mark.parametrize("layout", ["sparse", "dense"])
@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_quantised_scorers_keep_the_predictions(fm, dtype, layout):
    model, test = fm
    exact = model.predict_proba(test)[:, 1]
    quantised = model.to_scorer(dtype, layout).predict_proba(test)[:, 1]
    assert np.abs(quantised - exact).max() < (1e-3 if dtype == "float16" else 2e-2)
    assert abs(roc_auc(test.labels, exact) - roc_auc(test.labels, quantised)) <= 0.002


def test_ffm_int8_keeps_the_predictions(ffm):
    model, test = ffm
    quantised = model.to_scorer("int8").predict_proba(test)[:, 1]
    assert np.abs(quantised - model.predict_proba(test)[:, 1]).max() < 2e-2


def test_sparse_tables_hold_the_touched_buckets_only(fm, ffm):
    for model, _ in (fm, ffm):
        k = model.vg_.shape[-1] // 2
        touched = model.vg_[..., k] != 0
        touched = touched.any(axis=1) if touched.ndim == 2 else touched
        touched |= model.zn_[:, 0] != 0
        sizes = {d: model.to_scorer(d) for d in ("float32", "float16", "int8")}
        scorer = sizes["float32"]
        assert scorer.n_buckets == int(np.count_nonzero(touched)) < 2**18 // 10
        assert sorted(scorer.keys[scorer.keys != 0xFFFFFFFF]) == np.flatnonzero(touched).tolist()
        assert sizes["int8"].nbytes < sizes["float16"].nbytes < scorer.nbytes
        assert sizes["int8"].factors.nbytes * 4 == scorer.factors.nbytes
        assert scorer.nbytes < (model.zn_.nbytes + model.vg_.nbytes) / 20
        assert model.to_scorer("int8", "dense").factors.shape == (2**18, *scorer.factors.shape[1:])


def test_scorer_files_are_small_and_map(fm, ffm, tmp_path):
    for (model, test), dtype in ((fm, "int8"), (fm, "float32"), (ffm, "float16")):
        model_path, path = tmp_path / "model.fctr", tmp_path / "scorer.fctr"
        model.save(model_path)
        scorer = model.to_scorer(dtype)
        scorer.save(path)
        assert path.stat().st_size < scorer.nbytes + 8192  # the tables and a header
        assert path.stat().st_size < model_path.stat().st_size / 2
        for mmap in (False, True):
            again = load(path, mmap=mmap)
            assert isinstance(again, FactorScorer) and again.get_params() == scorer.get_params()
            assert isinstance(again.factors, np.memmap) == mmap
            np.testing.assert_array_equal(again.predict_proba(test), scorer.predict_proba(test))
            row = criteo_rows(1, seed=3)[0][0]
            assert again.predict_one(row) == scorer.predict_one(row)
        again = pickle.loads(pickle.dumps(scorer))
        np.testing.assert_array_equal(again.predict_proba(test), scorer.predict_proba(test))


def test_threads_score_a_batch_like_one(fm, ffm):
    for model, test in (fm, ffm):
        scorer = model.to_scorer("float16")
        np.testing.assert_array_equal(scorer.predict_proba(test, n_jobs=3),
                                      scorer.predict_proba(test))


def test_rows_without_field_ids(fm, ffm):
    # FM: every entry interacts, as the model scores them; FFM needs the field ids
    model, test = fm
    bare = HashedRows(test.indptr, test.indices, test.values)
    np.testing.assert_allclose(model.to_scorer().decision_function(bare),
                               model.decision_function(bare), rtol=1e-5, atol=1e-6)
    model, test = ffm
    with pytest.raises(ValueError, match="needs the field id of every entry"):
        model.to_scorer().predict_proba(HashedRows(test.indptr, test.indices, test.values))


@pytest.mark.parametrize("kind", ["fm", "ffm"])
def test_empty_batches_and_rows(request, kind):
    model, test = request.getfixturevalue(kind)
    scorer = model.to_scorer("float32")
    empty = HashedRows(np.array([0]), np.array([], np.int32), np.array([]),
                       fields=np.array([], np.uint16))
    assert scorer.predict_proba(empty).shape == (0, 2)
    rows = HashedRows(np.array([0, 0, 2, 2]), test.indices[:2], test.values[:2],
                      fields=test.fields[:2])
    np.testing.assert_allclose(scorer.predict_proba(rows, n_jobs=2), model.predict_proba(rows),
                               atol=1e-7)
    bare = HashedRows(np.array([0, 0, 0]), np.array([], np.int32), np.array([]),
                      fields=np.array([], np.uint16))
    assert scorer.decision_function(bare).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("kind", ["fm", "ffm"])
def test_bad_batches_are_refused(request, kind):
    model, _ = request.getfixturevalue(kind)
    scorer = model.to_scorer("int8")
    rows = HashedRows(np.array([0, 1, 3]), np.array([5, 7, 1 << 18]), np.ones(3),
                      fields=np.array([1, 1, 2], np.uint16))
    with pytest.raises(ValueError, match=r"row indices must lie in \[0, 262144\): row 1"):
        scorer.predict_proba(rows)
    out = np.empty(2)
    with pytest.raises(ValueError):  # fields not as many as the entries
        scorer._table.score(rows.indptr, rows.indices, rows.values, np.ones(2, np.uint16), out,
                            0, 1, False)
    with pytest.raises(ValueError):  # rows beyond the batch
        scorer._table.score(rows.indptr, rows.indices, rows.values, rows.fields, out, 0, 3,
                            False)
    if kind == "ffm":
        far = HashedRows(np.array([0, 2]), np.array([5, 7]), np.ones(2),
                         fields=np.array([1, 900], np.uint16))
        with pytest.raises(ValueError, match=r"field ids must lie in \[0, 40\): row 0"):
            scorer.predict_proba(far)


def test_bad_choices_and_tables_are_named(fm):
    model, _ = fm
    with pytest.raises(ValueError, match="dtype must be one of"):
        model.to_scorer("int4")
    with pytest.raises(ValueError, match="layout must be one of"):
        model.to_scorer("int8", "packed")
    scorer = model.to_scorer("float32")
    state = scorer.state._asdict()
    full = state["keys"].copy()
    full[full == 0xFFFFFFFF] = 1
    with pytest.raises(ValueError, match="no empty slot"):
        FactorScorer.from_state(scorer.get_params(), scorer.hasher, {**state, "keys": full})
    rows = state["rows"].copy()
    rows[np.flatnonzero(state["keys"] != 0xFFFFFFFF)[0]] = scorer.n_buckets
    with pytest.raises(ValueError, match="points to row"):
        FactorScorer.from_state(scorer.get_params(), scorer.hasher, {**state, "rows": rows})
    with pytest.raises(ValueError, match="factors must be a C-contiguous"):
        FactorScorer.from_state(scorer.get_params(), scorer.hasher,
                                {**state, "factors": state["factors"][:-1]})


def test_float16_overflow_is_named():
    hasher = FeatureHasher(bits=18)
    coef, vg = np.zeros(2**18), np.zeros((2**18, 4))
    coef[7] = 1e6  # beyond float16's 65504
    with pytest.raises(ValueError, match="up to 65504 as float16"):
        FactorScorer.from_factors(hasher, coef, vg, seed=1, init_std=0.1, dtype="float16")
    int8 = FactorScorer.from_factors(hasher, coef, vg, seed=1, init_std=0.1, dtype="int8")
    assert int8.weights[int8.rows[int8.keys == 7][0]] == 127


def test_unlearned_buckets_score_as_the_model():
    # l1 prunes every linear weight: the table holds the touched latent vectors only
    model = FMClassifier(bits=18, k=3, l1=1e9, init_std=0.3).fit(
        [{"C1": "a", "C2": "b"}, {"C1": "c", "C2": "d"}], [1, 0])
    scorer = model.to_scorer()
    assert scorer.n_buckets == 4
    for row in ({"C1": "a", "C2": "b"}, {"C1": "zz", "C2": "yy"}, {"C3": "new"}, {}):
        assert scorer.predict_one(row) == pytest.approx(model.predict_one(row), abs=1e-7)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("kind,dtype", [("fm", "int8"), ("ffm", "float16")])
def test_the_service_serves_factor_scorers_as_predict_one(tmp_path, kind, dtype):
    from fastapi.testclient import TestClient
    from service_models import LABELS, MODELS, ROWS, line_of, positional_of

    from fastctr.service import create_app

    scorer = MODELS[kind](bits=18).fit(ROWS[:300], LABELS[:300]).to_scorer(dtype)
    path = tmp_path / "scorer.fctr"
    scorer.save(path)
    with TestClient(create_app(path, reload_poll=0, mmap=True)) as client:
        assert client.get("/model").json()["class"] == "FactorScorer"
        for row in ROWS[300:310]:
            for body in ({"features": row}, {"line": line_of(row)}, positional_of(row)):
                answer = client.post("/predict", json=body)
                assert answer.status_code == 200, answer.text
                assert answer.json()["ctr_probability"] == scorer.predict_one(row)
        rows = ROWS[300:400]
        for form in ({"features": r} for r in rows), ({"line": line_of(r)} for r in rows):
            answer = client.post("/predict", json={"rows": list(form)})
            assert answer.status_code == 200, answer.text
            np.testing.assert_allclose(answer.json()["predictions"],
                                       [scorer.predict_one(r) for r in rows], atol=1e-12)


# -- crafted files and odd rows, in child interpreters (a crash is a counted failure) ------------
def test_crafted_factor_scorer_files_are_refused():
    from model_files import CHECK, FACTOR_SCORERS, crafted_items

    names = {name for name, _, _ in FACTOR_SCORERS}
    with tempfile.TemporaryDirectory() as d:
        items = [item for item in crafted_items(d) if item[0] in names]
        crafted = items if LONG else random.Random(1).sample(items, min(len(items), 150))
        valid = [(name, -1) for name in sorted(names)]
        results = run_batches(CHECK, valid + crafted, env={"FASTCTR_CRAFTED_DIR": d})
    assert all(r.startswith("accepted") for r in results[:len(valid)]), results[:len(valid)]
    bad = [(item, r) for item, r in zip(crafted, results[len(valid):]) if r != "refused"]
    print(f"{len(crafted)} crafted FactorScorer files (of {len(items)}): {len(bad)} not refused")
    assert not bad, bad[:20]
