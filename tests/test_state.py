"""Typed model state and hyperparameters: model.state / from_state, scorers that never keep a
stale hyperparameter, and the constants numba and Cython must share."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fastctr._ext import _score
from fastctr._kernels import fm as fm_kernels
from fastctr._kernels import ftrl as ftrl_kernels
from fastctr._kernels import scorer as table_kernels
from fastctr.io.datasets import criteo_rows
from fastctr.models.base import OnlineClassifier
from fastctr.models.fm import FFMClassifier, FMClassifier, _FactorizationBase
from fastctr.models.ftrl import FTRLClassifier
from fastctr.serving.files import MAGIC, load

BITS = 18
CLASSES = [FTRLClassifier, FMClassifier, FFMClassifier]


@pytest.fixture(scope="module")
def data():
    return criteo_rows(600, seed=4)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("param, value", [("l1", 0.0), ("alpha", 0.7), ("beta", 0.2), ("l2", 5.0)])
def test_predict_one_reads_current_hyperparameters(cls, param, value, data):
    rows, y = data
    model = cls(bits=BITS).fit(rows, y)
    row = rows[3]
    before = model.predict_one(row)  # builds and caches the scorer
    setattr(model, param, value)
    after = model.predict_one(row)
    assert after != before  # the parameter matters for this row
    assert after == pytest.approx(model.predict_proba([row])[0, 1], abs=1e-12)


@pytest.mark.parametrize("cls", [FMClassifier, FFMClassifier])
def test_predict_one_reads_current_init_std(cls, data):
    rows, y = data
    model = cls(bits=BITS, init_std=0.1).fit(rows[:50], y[:50])
    unseen = {"C1": "never-seen", "C2": "also-new", "C3": "x"}  # untouched: seeded init vectors
    before = model.predict_one(unseen)
    model.set_params(init_std=0.5)
    after = model.predict_one(unseen)
    assert after != before
    assert after == pytest.approx(model.predict_proba([unseen])[0, 1], abs=1e-12)


@pytest.mark.parametrize("cls", CLASSES)
def test_state_round_trip(cls, data):
    rows, y = data
    model = cls(bits=BITS).fit(rows[:300], y[:300])
    state = model.state
    assert isinstance(state, cls.State) and state.n_rows_seen == 300
    twin = cls.from_state(model.get_params(), model.hasher_, state)
    np.testing.assert_array_equal(twin.predict_proba(rows), model.predict_proba(rows))
    assert twin.predict_one(rows[1]) == model.predict_one(rows[1])
    # continued training is identical: from_state of a copy, both learn the rest
    copied = cls.State(*(np.array(x) if isinstance(x, np.ndarray) else x for x in state))
    twin = cls.from_state(model.get_params(), model.hasher_.get_params(), copied._asdict())
    model.partial_fit(rows[300:], y[300:])
    twin.partial_fit(rows[300:], y[300:])
    for name, a, b in zip(cls.State._fields, model.state, twin.state):
        assert np.array_equal(a, b), name
    assert twin.state.n_rows_seen == 600


def test_fm_state_carries_the_seed(data):
    rows, y = data
    model = FMClassifier(bits=BITS, random_state=None).fit(rows[:100], y[:100])
    assert model.state.seed == model.seed_
    twin = FMClassifier.from_state(model.get_params(), model.hasher_, model.state)
    unseen = {"C1": "never-seen", "C2": "also-new"}
    assert twin.predict_one(unseen) == model.predict_one(unseen)


def test_from_state_rejects_what_does_not_fit(data):
    rows, y = data
    model = FMClassifier(bits=BITS, k=4).fit(rows[:50], y[:50])
    params, hasher, state = model.get_params(), model.hasher_, model.state
    with pytest.raises(ValueError, match=r"state 'vg' must be a C-contiguous float64 array of "
                                         r"shape \(262144, 16\) for these parameters; got "
                                         r"float64 \(262144, 8\)"):
        FMClassifier.from_state({**params, "k": 8}, hasher, state)
    with pytest.raises(ValueError, match="state 'zn' must be .* float64"):
        FMClassifier.from_state(params, hasher, state._replace(zn=state.zn.astype(np.float32)))
    with pytest.raises(ValueError, match=r"state 'seed' must be an int in \[0, 2\*\*53\)"):
        FMClassifier.from_state(params, hasher, state._replace(seed=-1))
    with pytest.raises(ValueError, match="state 'n_rows_seen' must be an int >= 0"):
        FMClassifier.from_state(params, hasher, state._replace(n_rows_seen=-5))
    with pytest.raises(ValueError, match=r"missing \['seed'\], unknown \['extra'\]"):
        FMClassifier.from_state(params, hasher, {"zn": state.zn, "vg": state.vg, "n_rows_seen": 1,
                                                 "extra": 0})
    with pytest.raises(ValueError, match="the hasher does not match"):
        FMClassifier.from_state(params, {**hasher.get_params(), "hash_seed": 9}, state)


def test_state_before_fit_raises():
    from fastctr import NotFittedError

    with pytest.raises(NotFittedError):
        _ = FTRLClassifier(bits=BITS).state


@pytest.mark.parametrize("cls", CLASSES)
def test_model_files_keep_their_array_names(cls, data, tmp_path):
    """The state's arrays keep their names in files: zn_, vg_, seed_, ... (a table stored by
    touched bucket as its name's .rows and .values, named in the header's sparse)."""
    rows, y = data
    model = cls(bits=BITS).fit(rows[:100], y[:100])
    path = tmp_path / "m.fctr"
    model.save(path)
    raw = path.read_bytes()
    n = int.from_bytes(raw[len(MAGIC):len(MAGIC) + 8], "little")
    header = json.loads(raw[len(MAGIC) + 8:len(MAGIC) + 8 + n])
    sparse = set(header.get("sparse", {}))
    stored = {spec["name"] for spec in header["arrays"]}
    assert {f"{t}.{part}" for t in sparse for part in ("rows", "values")} <= stored
    names = {n for n in stored if "." not in n} | sparse | set(header["scalars"])
    assert names == {f"{field}_" for field in cls.State._fields}
    loaded = load(path)
    np.testing.assert_array_equal(loaded.predict_proba(rows), model.predict_proba(rows))


def test_hooks_are_abstract():
    with pytest.raises(TypeError, match="abstract"):
        OnlineClassifier()
    with pytest.raises(TypeError, match="abstract"):
        _FactorizationBase()
    assert {"_hyper", "_allocate", "_learn", "_margins", "_make_scorer"} <= \
        OnlineClassifier.__abstractmethods__


def test_constants_shared_by_numba_and_cython():
    assert _score.MARGIN_CLIP == ftrl_kernels.MARGIN_CLIP
    assert _score.SPLITMIX64 == (int(fm_kernels._GOLDEN), int(fm_kernels._M1), int(fm_kernels._M2))
    assert _score.INIT_SCALE == fm_kernels.INIT_SCALE_PER_STD
    assert _score.TABLE_HASH == table_kernels.GOLDEN
    assert _score.TABLE_EMPTY == int(table_kernels.EMPTY)


def test_probabilities_are_the_reference_sigmoid_bit_for_bit():
    from naive_fm import sigmoid
    rng = np.random.default_rng(0)
    m = np.concatenate([rng.normal(0, 5, 2000), [0.0, -0.0, 35.0, -35.0, 1e300, -np.inf, np.inf]])
    p = _score.probabilities(m)
    assert p.shape == (len(m), 2)
    assert p[:, 1].tolist() == [sigmoid(x) for x in m]
    assert p[:, 0].tolist() == [1.0 - sigmoid(x) for x in m]
    assert _score.probabilities(np.empty(0)).shape == (0, 2)


def test_batch_and_single_row_probabilities_agree_bit_for_bit(data):
    rows, y = data
    model = FTRLClassifier(bits=BITS).fit(rows, y)
    assert model.predict_proba(rows)[:, 1].tolist() == [model.predict_one(r) for r in rows]


def test_margin_clip_is_the_one_both_paths_use(data):
    """A margin far beyond the clip gives the same probability from both paths."""
    rows, y = data
    model = FTRLClassifier(bits=BITS, alpha=1000.0, l1=0.0, l2=0.0, epochs=5)
    model.fit(rows[:50], np.ones(50))
    m = model.decision_function(rows[:1])[0]
    assert m > ftrl_kernels.MARGIN_CLIP
    p = 1.0 / (1.0 + np.exp(-ftrl_kernels.MARGIN_CLIP))
    assert model.predict_one(rows[0]) == p == model.predict_proba(rows[:1])[0, 1]
