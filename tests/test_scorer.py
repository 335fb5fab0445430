"""The compact serving Scorer: agreement with the live model, quantisation loss, files."""
import numpy as np
import pytest

from fastctr import FeatureHasher, FTRLClassifier, HashedRows, ModelFileError, Scorer, load, read_criteo
from fastctr.io.datasets import criteo_rows
from fastctr.online.metrics import roc_auc


@pytest.fixture(scope="module")
def model(synthetic_tsv):
    rows = next(iter(read_criteo(synthetic_tsv, FeatureHasher(bits=20), batch_size=20_000)))
    return FTRLClassifier(bits=20).partial_fit(rows[:15_000]), rows[15_000:]


@pytest.mark.parametrize("layout", ["sparse", "dense"])
def test_float32_scorer_matches_the_live_model(model, layout):
    fitted, test = model
    scorer = fitted.to_scorer("float32", layout)
    np.testing.assert_allclose(scorer.predict_proba(test), fitted.predict_proba(test), atol=1e-6)
    dicts, _ = criteo_rows(200, seed=8)
    for row in dicts:
        assert scorer.predict_one(row) == pytest.approx(fitted.predict_one(row), abs=1e-6)
    assert scorer.n_weights == np.count_nonzero(fitted.coef_)


@pytest.mark.parametrize("layout", ["sparse", "dense"])
@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_quantised_scorers_keep_the_auc(model, dtype, layout):
    fitted, test = model
    exact = roc_auc(test.labels, fitted.predict_proba(test)[:, 1])
    quantised = roc_auc(test.labels, fitted.to_scorer(dtype, layout).predict_proba(test)[:, 1])
    assert abs(exact - quantised) <= 0.001


def test_sparse_and_dense_layouts_score_alike(model):
    fitted, test = model
    for dtype in ("float32", "float16", "int8"):
        sparse, dense = fitted.to_scorer(dtype, "sparse"), fitted.to_scorer(dtype, "dense")
        np.testing.assert_array_equal(sparse.decision_function(test), dense.decision_function(test))
        assert sparse.n_weights == dense.n_weights


def test_threads_score_a_batch_like_one(model):
    fitted, test = model
    scorer = fitted.to_scorer("float32", "dense")
    np.testing.assert_array_equal(scorer.predict_proba(test, n_jobs=3), scorer.predict_proba(test))


@pytest.mark.parametrize("layout", ["sparse", "dense"])
@pytest.mark.parametrize("bad", [1 << 20, -1])
def test_indices_beyond_the_table_are_refused(model, layout, bad):
    fitted, _ = model
    rows = HashedRows(np.array([0, 1, 3]), np.array([5, 7, bad]), np.ones(3))
    scorer = fitted.to_scorer("int8", layout)
    with pytest.raises(ValueError, match=r"row indices must lie in \[0, 1048576\): row 1"):
        scorer.predict_proba(rows)
    with pytest.raises(ValueError, match="row 1 has one outside"):
        scorer.decision_function(rows, n_jobs=2)


def test_empty_batches_and_rows(model):
    fitted, _ = model
    scorer = fitted.to_scorer("float32", "dense")
    assert scorer.predict_proba(HashedRows(np.array([0]), np.array([]), np.array([]))).shape == (0, 2)
    rows = HashedRows(np.array([0, 0, 1, 1]), np.array([3]), np.ones(1))
    np.testing.assert_allclose(scorer.predict_proba(rows, n_jobs=2),
                               fitted.predict_proba(rows), atol=1e-7)
    assert scorer.decision_function(rows)[[0, 2]].tolist() == [0.0, 0.0]


def test_int8_on_real_rows_loses_at_most_0001_auc(real_criteo):
    rows = next(iter(read_criteo(real_criteo, FeatureHasher(), batch_size=20_000)))
    fitted = FTRLClassifier().fit(rows[:8000])
    test = rows[8000:10000]
    exact = roc_auc(test.labels, fitted.predict_proba(test)[:, 1])
    int8 = roc_auc(test.labels, fitted.to_scorer("int8").predict_proba(test)[:, 1])
    assert exact - int8 <= 0.001


def test_tables_shrink_with_the_dtype(model):
    fitted, _ = model
    sizes = {d: fitted.to_scorer(d) for d in ("float32", "float16", "int8")}
    assert sizes["int8"].weights.nbytes * 4 == sizes["float32"].weights.nbytes
    assert sizes["int8"].nbytes < sizes["float16"].nbytes < sizes["float32"].nbytes
    assert sizes["float32"].nbytes < fitted.zn_.nbytes / 20  # far smaller than the state
    dense = {d: fitted.to_scorer(d, "dense").nbytes for d in ("float32", "int8")}
    assert dense["float32"] == 4 * dense["int8"] == 4 * 2**20


@pytest.mark.parametrize("layout", ["sparse", "dense"])
@pytest.mark.parametrize("dtype", ["float32", "float16", "int8"])
def test_save_load_and_mmap(model, tmp_path, dtype, layout):
    fitted, test = model
    scorer = fitted.to_scorer(dtype, layout)
    path = tmp_path / "scorer.fctr"
    scorer.save(path)
    for mmap in (False, True):
        again = load(path, mmap=mmap)
        assert isinstance(again, Scorer) and (again.dtype, again.layout) == (dtype, layout)
        np.testing.assert_array_equal(again.predict_proba(test), scorer.predict_proba(test))
    assert isinstance(load(path, mmap=True).weights, np.memmap)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ModelFileError, match="truncated"):
        load(path)


def test_bad_dtype_or_layout_is_named(model):
    fitted, _ = model
    with pytest.raises(ValueError, match="dtype must be one of"):
        fitted.to_scorer("int4")
    with pytest.raises(ValueError, match="layout must be one of"):
        fitted.to_scorer("int8", "packed")


def test_empty_model_scores_one_half():
    fitted = FTRLClassifier(bits=18, l1=1e9).fit([{"C1": "a"}], [1])  # every weight pruned
    for layout in ("sparse", "dense"):
        scorer = fitted.to_scorer(layout=layout)
        assert scorer.n_weights == 0 and scorer.predict_one({"C1": "a"}) == 0.5
