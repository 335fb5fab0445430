"""Factorization machine benchmarks: training rows/s and single-row serving latency, with peers.

Run the timed version with::

    FASTCTR_BENCH_ROWS=100000 pytest benches/bench_fm.py --benchmark-enable \
        --benchmark-group-by=group --benchmark-columns=min,median,mean,rounds

Under plain ``pytest benches/bench_fm.py`` (benchmarks disabled) every function runs once on
small data as a smoke test. Data: ``make_criteo`` synthetic Criteo rows (39 raw fields, bias
included after hashing), hashed once outside the timings. Warm-up rounds exclude numba
compile time and the first-touch page faults of the state tables: the timings are steady-state
passes over rows the model has seen. Peers (River's FMClassifier, Vowpal Wabbit ``--lrq``)
get the same hashed rows (River as ``{bucket: value}`` dicts, VW as one namespace of bucket
ids); River is timed on a subset of the rows, marked in the test name, as it runs at a few
thousand rows/s. Compare rows/s (``extra_info``) rather than raw times when sizes differ.
"""
from __future__ import annotations

import itertools
import os

import pytest

from fastctr.io.criteo import read_criteo
from fastctr.io.datasets import criteo_rows, make_criteo
from fastctr.io.hashing import CRITEO_FIELDS, FeatureHasher
from fastctr.models.fm import FFMClassifier, FMClassifier
from fastctr.models.ftrl import FTRLClassifier

N_ROWS = int(os.environ.get("FASTCTR_BENCH_ROWS", "20000"))
ROUNDS = int(os.environ.get("FASTCTR_BENCH_ROUNDS", "3"))
N_FFM = max(N_ROWS // 5, 1000)
N_RIVER = max(min(N_ROWS // 20, 5000), 200)


def _label(n: int) -> str:
    return f"{n // 1000}K" if n % 1000 == 0 else str(n)


@pytest.fixture(scope="module")
def rows22():
    return next(iter(read_criteo(make_criteo(N_ROWS, seed=0), FeatureHasher(bits=22), batch_size=N_ROWS)))


@pytest.fixture(scope="module")
def rows18():
    return next(iter(read_criteo(make_criteo(N_FFM, seed=0), FeatureHasher(bits=18), batch_size=N_FFM)))


def _train(benchmark, model, rows):
    model.partial_fit(rows)  # compile, touch the pages: the timed passes are steady state
    benchmark.pedantic(model.partial_fit, args=(rows,), rounds=ROUNDS, warmup_rounds=1, iterations=1)
    if benchmark.stats is not None:
        benchmark.extra_info["rows_per_s"] = rows.n_rows / benchmark.stats.stats.mean
    benchmark.extra_info["rows"] = rows.n_rows


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.benchmark(group=f"train|fm8|{_label(N_ROWS)}")
def test_train_fm8(benchmark, rows22, n_jobs):
    """``n_jobs=2`` learns the batch in two threads at once (Hogwild)."""
    _train(benchmark, FMClassifier(k=8, n_jobs=n_jobs), rows22)
    if n_jobs > 1:
        benchmark.extra_info["vs"] = "test_train_fm8[1]"


@pytest.mark.benchmark(group=f"train|fm8|{_label(N_ROWS)}")
def test_train_ftrl_reference(benchmark, rows22):
    _train(benchmark, FTRLClassifier(), rows22)


@pytest.mark.benchmark(group=f"train|ffm4|{_label(N_FFM)}")
def test_train_ffm4(benchmark, rows18):
    _train(benchmark, FFMClassifier(k=4), rows18)


def _river_dicts(rows, n):
    out = []
    for r in range(n):
        a, b = rows.indptr[r], rows.indptr[r + 1]
        out.append({int(i): float(v) for i, v in zip(rows.indices[a:b], rows.values[a:b])})
    return out


@pytest.mark.benchmark(group=f"train|fm8|{_label(N_ROWS)}")
def test_train_river_fm8_subset(benchmark, rows22):
    facto = pytest.importorskip("river.facto")
    from river import optim

    X = _river_dicts(rows22, N_RIVER)
    y = [bool(v) for v in rows22.labels[:N_RIVER]]
    model = facto.FMClassifier(n_factors=8, weight_optimizer=optim.SGD(0.01),
                               latent_optimizer=optim.SGD(0.01), seed=0)

    def run():
        for x, t in zip(X, y):
            model.learn_one(x, t)

    benchmark.pedantic(run, rounds=1, warmup_rounds=0, iterations=1)
    if benchmark.stats is not None:
        benchmark.extra_info["rows_per_s"] = N_RIVER / benchmark.stats.stats.mean
    benchmark.extra_info["rows"] = N_RIVER
    benchmark.extra_info["vs"] = "test_train_fm8[1]"


def _vw_lines(rows, n):
    lines = []
    for r in range(n):
        a, b = rows.indptr[r], rows.indptr[r + 1]
        feats = " ".join(f"{i}:{v:g}" for i, v in zip(rows.indices[a:b], rows.values[a:b]))
        lines.append(f"{1 if rows.labels[r] else -1} |a {feats}")
    return lines


@pytest.mark.benchmark(group=f"train|fm8|{_label(N_ROWS)}")
def test_train_vw_lrq8(benchmark, rows22):
    vw = pytest.importorskip("vowpalwabbit")
    lines = _vw_lines(rows22, N_ROWS)
    ws = vw.Workspace("--quiet --loss_function logistic -b 22 --lrq aa8 --lrqdropout")

    def run():
        for line in lines:
            ws.learn(line)

    run()
    benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=0, iterations=1)
    if benchmark.stats is not None:
        benchmark.extra_info["rows_per_s"] = N_ROWS / benchmark.stats.stats.mean
    benchmark.extra_info["rows"] = N_ROWS
    benchmark.extra_info["vs"] = "test_train_fm8[1]"
    ws.finish()


# -- single-row serving -------------------------------------------------------------------------
def _raw39_rows(n):
    """Raw dict rows with all 39 Criteo fields present (gaps filled from the next rows)."""
    rows, _ = criteo_rows(n + 50, seed=1)
    full = []
    for r in range(n):
        row = dict(rows[r])
        for other in rows[r + 1 :]:
            if len(row) == len(CRITEO_FIELDS):
                break
            for key in CRITEO_FIELDS:
                row.setdefault(key, other.get(key))
            row = {k: v for k, v in row.items() if v is not None}
        full.append(row)
    return full


@pytest.fixture(scope="module")
def fitted_fm(rows22):
    return FMClassifier(k=8).fit(rows22)


@pytest.fixture(scope="module")
def fitted_ffm(rows18):
    return FFMClassifier(k=4).fit(rows18)


def _latency(benchmark, predict, rows, hot):
    predict(rows[0])  # builds the scorer
    if hot:
        benchmark.pedantic(predict, args=(rows[0],), rounds=ROUNDS * 100, warmup_rounds=10,
                           iterations=1000)
    else:
        it = itertools.cycle(rows)
        benchmark.pedantic(lambda: predict(next(it)), rounds=ROUNDS * 100, warmup_rounds=10,
                           iterations=1000)
    if benchmark.stats is not None:
        benchmark.extra_info["median_us"] = benchmark.stats.stats.median * 1e6


@pytest.mark.benchmark(group="predict_one|fm8|raw39")
@pytest.mark.parametrize("hot", [True, False], ids=["hot", "cold"])
def test_predict_one_fm8(benchmark, fitted_fm, hot):
    rows = _raw39_rows(1000 if N_ROWS >= 100_000 else 100)
    assert all(len(r) == 39 for r in rows)
    _latency(benchmark, fitted_fm.predict_one, rows, hot)


@pytest.mark.benchmark(group="predict_one|fm8|raw39")
@pytest.mark.parametrize("hot", [True, False], ids=["hot", "cold"])
def test_predict_one_ftrl_reference(benchmark, rows22, hot):
    model = FTRLClassifier().fit(rows22)
    _latency(benchmark, model.predict_one, _raw39_rows(1000 if N_ROWS >= 100_000 else 100), hot)


@pytest.mark.benchmark(group="predict_one|ffm4|raw39")
def test_predict_one_ffm4(benchmark, fitted_ffm):
    _latency(benchmark, fitted_ffm.predict_one, _raw39_rows(100), hot=True)
