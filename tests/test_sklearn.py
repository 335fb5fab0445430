"""scikit-learn compatibility (1.6+ tags API) and the parameter validation defects of issue 12."""
import subprocess
import sys

import numpy as np
import pytest

from fastctr import FeatureHasher, FFMClassifier, FMClassifier, FTRLClassifier, InvalidParameterError

sklearn = pytest.importorskip("sklearn")
pd = pytest.importorskip("pandas")

from sklearn.base import clone, is_classifier  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

CLASSES = [FTRLClassifier, FMClassifier, FFMClassifier]


def click_rows(n=400, seed=0):
    """Dict rows whose click probability depends on two categorical fields."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 6, n), rng.integers(0, 4, n)
    p = 1 / (1 + np.exp(-(1.5 * (a % 2) - 1.0 * (b == 0) - 0.3)))
    y = (rng.random(n) < p).astype(int)
    rows = [{"site": f"s{i}", "ad": f"a{j}"} for i, j in zip(a, b)]
    return rows, y


def model(cls, **kw):
    return cls(bits=18, fields=["site", "ad"], alpha=0.3, **kw)


@pytest.fixture(params=["dicts", "frame"])
def data(request):
    rows, y = click_rows()
    return (rows if request.param == "dicts" else pd.DataFrame(rows)), y


# -- the defects ------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", CLASSES)
def test_negative_bits_is_a_clear_error_at_first_use(cls):
    est = cls(bits=-1)  # __init__ stores only, as scikit-learn requires
    assert est.get_params()["bits"] == -1
    message = (rf"The 'bits' parameter of {cls.__name__} must be an int in the range \[18, 30\]\. "
               r"Got -1 instead\.")
    for learn in (est.fit, est.partial_fit):
        with pytest.raises(InvalidParameterError, match=message):
            learn([{"C1": "a"}], [1])


@pytest.mark.parametrize("cls", CLASSES)
def test_bits_below_18_refused_on_prehashed_input(cls):
    rows = FeatureHasher(bits=18, fields=["a"]).transform([{"a": "x"}, {"a": "y"}])
    for X in (rows, rows.to_csr(1 << 18)):
        with pytest.raises(ValueError, match=r"'bits' parameter .* \[18, 30\]\. Got 17 instead"):
            cls(bits=17, fields=["a"]).partial_fit(X, [0, 1])


@pytest.mark.parametrize("cls", CLASSES)
def test_negative_hash_seed_refused_before_anything_is_learned(cls, tmp_path):
    with pytest.raises(ValueError, match=rf"The 'hash_seed' parameter of {cls.__name__} must be an "
                                         r"int in the range \[0, 4294967295\]\. Got -5 instead\."):
        cls(bits=18, hash_seed=-5).fit([{"C1": "a"}], [1])
    top = cls(bits=18, hash_seed=2**32 - 1).fit([{"C1": "a"}], [1])  # the largest seed saves
    top.save(tmp_path / "m.fctr")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"alpha": 0}, r"'alpha' parameter of FMClassifier must be a float in the range \(0\.0, inf\)"),
        ({"l1": float("nan")}, r"'l1' parameter .* \[0\.0, inf\)\. Got nan"),
        ({"epochs": 1.0}, r"'epochs' parameter .* an int in the range \[1, inf\)\. Got 1\.0"),
        ({"n_jobs": True}, r"'n_jobs' parameter .* Got True"),
        ({"k": 257}, r"'k' parameter .* \[1, 256\]"),
        ({"numeric_transform": "sqrt"}, r"'numeric_transform' parameter of FMClassifier must be a "
                                        r"str among \{'bin', 'value', 'log1p'\}"),
        ({"crosses": [("C1", "zz")]}, r"'crosses' parameter of FMClassifier must pair fields"),
        ({"fields": ["a", "a"]}, r"'fields' parameter of FMClassifier must be None or a sequence"),
    ],
)
def test_estimator_messages_name_the_estimator_and_hashing_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FMClassifier(bits=18, **kwargs).fit([{"C1": "a"}], [1])


def test_a_parameter_set_after_fit_is_checked_at_predict():
    est = FTRLClassifier(bits=18).fit([{"C1": "a"}], [1])
    est.l1 = -1.0
    with pytest.raises(InvalidParameterError, match="'l1' parameter of FTRLClassifier"):
        est.predict([{"C1": "a"}])


def test_invalid_parameter_error_is_value_and_type_error():
    assert issubclass(InvalidParameterError, ValueError)
    assert issubclass(InvalidParameterError, TypeError)


# -- scikit-learn's tools -----------------------------------------------------------------------
def test_sklearn_is_not_imported_by_fastctr():
    code = ("import sys, fastctr; m = fastctr.FTRLClassifier(bits=18).fit([{'C1': 'a'}], [1]); "
            "m.predict([{'C1': 'a'}]); assert not any(k.split('.')[0] == 'sklearn' "
            "for k in sys.modules), 'sklearn imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("cls", CLASSES)
def test_tags_and_clone(cls):
    est = model(cls)
    tags = est.__sklearn_tags__()
    assert is_classifier(est) and tags.estimator_type == "classifier"
    assert tags.input_tags.dict and tags.input_tags.two_d_array and tags.requires_fit
    assert tags.input_tags.sparse == (cls is not FFMClassifier)
    assert not tags.classifier_tags.multi_class and not tags.non_deterministic
    assert model(cls, n_jobs=2).__sklearn_tags__().non_deterministic
    twin = clone(est)
    assert twin is not est and twin.get_params() == est.get_params()


@pytest.mark.parametrize("cls", CLASSES)
def test_cross_val_score(cls, data):
    X, y = data
    accuracy = cross_val_score(model(cls), X, y, cv=3)
    auc = cross_val_score(model(cls), X, y, cv=3, scoring="roc_auc")
    assert accuracy.shape == auc.shape == (3,)
    assert np.all((0.5 < accuracy) & (accuracy <= 1)), accuracy
    assert np.all(auc > 0.6), auc


@pytest.mark.parametrize("cls", CLASSES)
def test_grid_search(cls, data):
    X, y = data
    search = GridSearchCV(model(cls), {"alpha": [0.001, 0.3], "l1": [0.0, 1.0]}, cv=3,
                          scoring="roc_auc").fit(X, y)
    assert search.best_params_["alpha"] == 0.3  # a rate 300 times smaller learns little
    best = search.best_estimator_
    assert best.alpha == 0.3 and best.is_fitted
    assert best.predict(X[:5] if isinstance(X, list) else X.iloc[:5]).shape == (5,)
    assert search.score(X, y) > 0.6


@pytest.mark.parametrize("cls", CLASSES)
def test_pipeline(cls, data):
    from sklearn.preprocessing import FunctionTransformer

    X, y = data
    pipe = make_pipeline(FunctionTransformer(lambda X: X), model(cls)).fit(X, y)
    direct = model(cls).fit(X, y)
    np.testing.assert_array_equal(pipe.predict_proba(X), direct.predict_proba(X))
    assert pipe.score(X, y) == direct.score(X, y)


def test_score_is_accuracy_with_weights():
    rows, y = click_rows(200)
    est = model(FTRLClassifier).fit(rows, y)
    hit = est.predict(rows) == y
    assert est.score(rows, y) == pytest.approx(hit.mean())
    w = np.linspace(0, 1, 200)
    assert est.score(rows, y, sample_weight=w) == pytest.approx(np.average(hit, weights=w))
    assert est.score(rows, 2 * y - 1) == est.score(rows, y)  # {-1, 1} labels are clicks too


# -- 2-D numeric arrays ------------------------------------------------------------------------
@pytest.mark.parametrize("cls", CLASSES)
def test_array_columns_are_numeric_fields_x0_x1(cls):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3)) * 3
    X[0, 1] = np.nan  # missing, as in a DataFrame
    y = (X[:, 0] > 0).astype(int)
    names = ["x0", "x1", "x2"]
    from_array = cls(bits=18, fields=names, numeric=names).fit(X, y)
    as_dicts = [{k: v for k, v in zip(names, row) if v == v} for row in X.tolist()]
    from_dicts = cls(bits=18, fields=names, numeric=names).fit(as_dicts, y)
    np.testing.assert_array_equal(from_array.predict_proba(X), from_dicts.predict_proba(as_dicts))
    assert from_array.n_features_in_ == 3
    assert from_array.predict_one(as_dicts[3]) == pytest.approx(from_array.predict_proba(X[3:4])[0, 1])
    # with the default schema the array is hashed the same way: the hashing needs no names
    # (FFM's latent table has one vector per field of its schema, so its state differs)
    if cls is not FFMClassifier:
        np.testing.assert_array_equal(cls(bits=18).fit(X, y).predict_proba(X),
                                      from_array.predict_proba(X))
    assert np.array_equal(cls(bits=18).fit(X.tolist(), y).predict(X), from_array.predict(X))
    with pytest.raises(ValueError, match="X has 2 features, but .* is expecting 3 features"):
        from_array.predict(X[:, :2])
    with pytest.raises(ValueError, match="infinity"):
        from_array.predict(np.full((1, 3), np.inf))
    with pytest.raises(ValueError, match="Expected a 2-D array"):
        from_array.predict(X[0])


# -- scikit-learn's estimator checks ---------------------------------------------------------
LABELS = ("targets are clicks: labels must be {0, 1}, {-1, 1} or bool; this check's y has other "
          "values (several classes, {1, 2} or strings)")
WEIGHTS = ("online learning: a row of weight w takes one gradient step scaled by w, which is not "
           "w repeated steps under FTRL's and AdaGrad's per-coordinate rates")
LABEL_CHECKS = ["check_estimators_dtypes", "check_sample_weights_pandas_series",
                "check_sample_weights_not_an_array", "check_sample_weights_shape",
                "check_sample_weights_not_overwritten", "check_classifier_data_not_an_array",
                "check_classifiers_classes"]


def expected_failed_checks(est):
    failed = dict.fromkeys(LABEL_CHECKS, LABELS)
    failed["check_sample_weight_equivalence_on_dense_data"] = WEIGHTS
    if isinstance(est, FFMClassifier):
        sparse = ("FFM needs the field id of every entry; a scipy sparse matrix has none "
                  "(FFM declares sparse=False and refuses it with a message naming sparse input)")
        failed["check_sample_weight_equivalence_on_sparse_data"] = sparse
    else:
        failed["check_sample_weight_equivalence_on_sparse_data"] = WEIGHTS
    return failed


@parametrize_with_checks(
    [FTRLClassifier(bits=18), FMClassifier(bits=18),
     FFMClassifier(bits=18, k=1, fields=[f"x{j}" for j in range(40)])],
    expected_failed_checks=expected_failed_checks,
    xfail_strict=True,  # a listed check that starts passing must leave the list
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
