"""Core benchmarks: parse + hash, FTRL training and prediction, with VW and River in the run.

Groups are ``operation|model|size``. Every throughput benchmark records rows and rows/s in
``extra_info``; peers name the fastctr benchmark they are compared with (``vs``), and the
summary at the end prints the ratios. Data is the synthetic ``make_criteo`` stream.
"""
from __future__ import annotations

import gzip
import itertools
import json
import time
import timeit
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from fastctr import FeatureHasher, FTRLClassifier, HashedRows, read_criteo
from fastctr.bench.peers import read_tsv, tokens, vw_line
from fastctr.io.datasets import criteo_rows, make_criteo
from fastctr.io.hashing import CRITEO_FIELDS
from fastctr.online.training import Progress, train

BITS = 22
ROUNDS = 5  # rounds of a pedantic (throughput) benchmark; the median is reported
BATCH = 100_000


def _join(n_rows: int, seed: int = 0) -> bytes:
    return b"".join(make_criteo(n_rows, seed=seed))


def _per_call(benchmark, fn: Callable, inputs: Sequence, vs: str | None = None) -> None:
    """Time ``fn(x)`` for x cycling ``inputs``; hot = one input, cold = many distinct ones.

    Both go through the same ``next(cycle)`` harness, whose own cost is recorded as
    ``harness_ns`` so it can be subtracted.
    """
    cyc = itertools.cycle(inputs)
    probe = itertools.cycle(inputs)
    benchmark.extra_info["harness_ns"] = round(
        min(timeit.repeat(lambda: next(probe), number=20_000, repeat=5)) / 20_000 * 1e9, 1)
    benchmark.extra_info["distinct_inputs"] = len(inputs)
    if vs:
        benchmark.extra_info["vs"] = vs
    benchmark(lambda: fn(next(cyc)))


# -- data ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def hasher() -> FeatureHasher:
    return FeatureHasher(bits=BITS)


@pytest.fixture(scope="session")
def train_bytes(sizes) -> bytes:
    return _join(sizes.train)


@pytest.fixture(scope="session")
def hashed(train_bytes, hasher) -> list[HashedRows]:
    return list(read_criteo(train_bytes, hasher, batch_size=BATCH))


@pytest.fixture(scope="session")
def tsv_files(tmp_path_factory, train_bytes) -> dict[str, str]:
    """The training rows as a plain and a gzipped (level 1) TSV file on disk."""
    folder = tmp_path_factory.mktemp("tsv")
    (folder / "train.tsv").write_bytes(train_bytes)
    with gzip.open(folder / "train.tsv.gz", "wb", compresslevel=1) as f:
        f.write(train_bytes)
    return {"tsv": str(folder / "train.tsv"), "tsv.gz": str(folder / "train.tsv.gz")}


@pytest.fixture(scope="session")
def model(hashed) -> FTRLClassifier:
    m = FTRLClassifier(bits=BITS)
    for batch in hashed:
        m.partial_fit(batch)
    return m


@pytest.fixture(scope="session")
def raw_rows(sizes) -> list[dict]:
    """Distinct request rows with all 39 fields present (the worst case: 39 hashes).

    A field missing from a synthetic row takes that field's value from the next row that
    has it, so every row stays a plausible draw.
    """
    rows, _ = criteo_rows(sizes.distinct * 2, seed=1)
    pools = {f: itertools.cycle([r[f] for r in rows if f in r]) for f in CRITEO_FIELDS}
    full = [{f: r[f] if f in r else next(pools[f]) for f in CRITEO_FIELDS} for r in rows]
    return full[: sizes.distinct]


@pytest.fixture(scope="session")
def hashed_pairs(raw_rows, hasher) -> list[tuple[np.ndarray, np.ndarray]]:
    rows = hasher.transform(raw_rows)
    return [(rows.indices[a:b].copy(), rows.values[a:b].copy())
            for a, b in zip(rows.indptr[:-1], rows.indptr[1:])]


# -- fastctr -------------------------------------------------------------------------------


def test_parse_hash(benchmark, sizes, hasher, record_rate, size_label):
    data = _join(sizes.parse)
    benchmark.group = f"parse_hash|criteo|{size_label(sizes.parse)}"
    n = benchmark.pedantic(lambda: sum(b.n_rows for b in read_criteo(data, hasher, batch_size=BATCH)),
                           rounds=ROUNDS, warmup_rounds=1)
    assert n == sizes.parse
    record_rate(benchmark, sizes.parse)


def _fit(model: FTRLClassifier, batches) -> int:
    rows = 0
    for batch in batches:
        model.partial_fit(batch)
        rows += batch.n_rows
    return rows


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_train_ftrl(benchmark, sizes, hashed, record_rate, size_label, n_jobs):
    """FTRL on hashed rows in memory; a fresh 2**22 model per round; ``n_jobs=2`` learns
    each batch in two threads at once (Hogwild)."""
    benchmark.group = f"train|ftrl|{size_label(sizes.train)}"
    n = benchmark.pedantic(
        _fit, setup=lambda: ((FTRLClassifier(bits=BITS, n_jobs=n_jobs), hashed), {}),
        rounds=ROUNDS, warmup_rounds=1)
    assert n == sizes.train
    record_rate(benchmark, sizes.train, vs=None if n_jobs == 1 else "test_train_ftrl[1]")


@pytest.mark.parametrize("fmt", ["tsv", "tsv.gz"])
def test_train_e2e(benchmark, sizes, tsv_files, fmt, record_rate, size_label):
    """End to end from a file on disk: read (gunzip) + parse + hash + learn."""
    benchmark.group = f"train|ftrl|e2e-{fmt}"

    def run(model: FTRLClassifier) -> int:
        return _fit(model, read_criteo(tsv_files[fmt], model.hasher_, batch_size=BATCH))

    n = benchmark.pedantic(run, setup=lambda: ((FTRLClassifier(bits=BITS),), {}),
                           rounds=ROUNDS, warmup_rounds=1)
    assert n == sizes.train
    record_rate(benchmark, sizes.train)


def _train_tsv(path: str, threads: int) -> int:
    model = FTRLClassifier(bits=BITS)
    batches = read_criteo(path, model.hasher_, batch_size=BATCH)
    return train(model, batches, threads=threads, progress=Progress(enabled=False))["rows"]


@pytest.mark.parametrize("threads", [1, 2])
def test_train_threads(benchmark, sizes, tsv_files, threads, record_rate):
    """``fastctr train --threads N``: train() from the TSV file with progressive validation;
    with two threads both parse, and one of them learns the parsed batches in order.

    On a shared machine the load drifts between two benchmarks, so the two-thread run also
    times a one-thread run before each of its rounds (in the untimed setup): ``speedup`` is
    the median of those pairs' ratios, both runs of a pair under the same load.
    """
    benchmark.group = "train|ftrl|e2e-threads"
    one_thread: list[float] = []

    def setup() -> tuple:
        if threads > 1:
            start = time.perf_counter()
            _train_tsv(tsv_files["tsv"], 1)
            one_thread.append(time.perf_counter() - start)
        return (tsv_files["tsv"], threads), {}

    n = benchmark.pedantic(_train_tsv, setup=setup, rounds=ROUNDS, warmup_rounds=1)
    assert n == sizes.train
    # no ``vs`` ratio between the two benchmarks: they run minutes apart, under other loads
    record_rate(benchmark, sizes.train)
    if threads > 1 and benchmark.stats is not None:
        pairs = np.array(one_thread[-ROUNDS:]) / np.array(benchmark.stats.stats.data)
        benchmark.extra_info["speedup"] = round(float(np.median(pairs)), 3)
        benchmark.extra_info["speedup_pairs"] = [round(float(r), 3) for r in pairs]


def test_predict_batch(benchmark, sizes, model, hasher, record_rate, size_label):
    rows = next(iter(read_criteo(_join(sizes.predict, seed=1), hasher, batch_size=sizes.predict)))
    benchmark.group = "predict|ftrl|batch"
    p = benchmark.pedantic(model.predict_proba, args=(rows,), rounds=ROUNDS, warmup_rounds=1)
    assert p.shape == (sizes.predict, 2)
    record_rate(benchmark, sizes.predict)


@pytest.mark.parametrize("cache", ["hot", "cold"])
def test_predict_one_raw39(benchmark, model, raw_rows, cache):
    """A raw dict row of 39 fields: hashed and scored in one compiled call."""
    benchmark.group = "predict_one|ftrl|raw39"
    _per_call(benchmark, model.predict_one, raw_rows[:1] if cache == "hot" else raw_rows)


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("dtype, layout", [("float32", "sparse"), ("float32", "dense"),
                                           ("int8", "dense")])
def test_scorer_predict_batch(benchmark, sizes, model, hasher, record_rate, dtype, layout, n_jobs):
    """The serving Scorer on a batch of hashed rows, in one or two threads."""
    rows = next(iter(read_criteo(_join(sizes.predict, seed=1), hasher, batch_size=sizes.predict)))
    scorer = model.to_scorer(dtype, layout)
    benchmark.group = f"predict|scorer-{dtype}-{layout}|batch"
    p = benchmark.pedantic(scorer.predict_proba, args=(rows, n_jobs), rounds=ROUNDS,
                           warmup_rounds=1)
    assert p.shape == (sizes.predict, 2)
    record_rate(benchmark, sizes.predict)


@pytest.mark.parametrize("dtype", ["float32", "int8"])
@pytest.mark.parametrize("cache", ["hot", "cold"])
def test_scorer_predict_one_raw39(benchmark, model, raw_rows, cache, dtype):
    """The serving artifact (model.to_scorer, dense) on a raw dict row of 39 fields."""
    benchmark.group = f"predict_one|scorer-{dtype}|raw39"
    _per_call(benchmark, model.to_scorer(dtype, "dense").predict_one,
              raw_rows[:1] if cache == "hot" else raw_rows)


def _request_text(form: str, row: dict) -> bytes:
    if form == "json":
        return json.dumps(row).encode()
    return "\t".join(str(row[name]) for name in CRITEO_FIELDS).encode()


def _decoded(form: str, text: bytes) -> dict | bytes:
    """The request as a service hands it over: a fresh dict, or a fresh copy of the line."""
    return json.loads(text) if form == "json" else bytes(memoryview(text))


@pytest.mark.parametrize("form", ["json", "line"])
@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_scorer_predict_one_request(benchmark, model, raw_rows, dtype, form):
    """A service's call: every request a distinct row, just received (not timed): a dict
    decoded from JSON, or the raw tab-separated line of the 39 values (a Criteo test-set
    line). Each call is timed alone, so ``p99_us`` is the 99th percentile of calls;
    ``harness_ns`` is the timer's own cost in each."""
    texts = itertools.cycle([_request_text(form, row) for row in raw_rows])
    benchmark.group = f"predict_one|scorer-{dtype}|request-{form}"
    timer = time.perf_counter
    benchmark.extra_info["harness_ns"] = round(
        float(np.median([-(timer() - timer()) for _ in range(10_000)])) * 1e9, 1)
    benchmark.pedantic(model.to_scorer(dtype, "dense").predict_one,
                       setup=lambda: ((_decoded(form, next(texts)),), {}),
                       rounds=2 * len(raw_rows), warmup_rounds=100)
    if benchmark.stats is not None:  # None in the smoke run (benchmarks disabled)
        benchmark.extra_info["p99_us"] = round(
            float(np.percentile(benchmark.stats.stats.data, 99)) * 1e6, 3)


@pytest.mark.parametrize("cache", ["hot", "cold"])
def test_predict_one_hashed(benchmark, model, hashed_pairs, cache):
    """A pre-hashed (indices, values) pair of 40 entries (bias + 39 fields)."""
    benchmark.group = "predict_one|ftrl|hashed"
    _per_call(benchmark, model.predict_one, hashed_pairs[:1] if cache == "hot" else hashed_pairs)


# -- peers ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def vw_files(tmp_path_factory, tsv_files) -> tuple[str, list[str]]:
    """The training rows as VW text (fastctr's tokens, one namespace per field)."""
    y, raw = read_tsv(tsv_files["tsv"])
    path = tmp_path_factory.mktemp("vw") / "train.vw"
    lines = [vw_line(label, values) for label, values in zip(y, raw)]
    path.write_text("\n".join(lines) + "\n")
    return str(path), lines


VW_ARGS = f"--quiet -b {BITS} --loss_function logistic --link logistic"


def test_vw_train_driver(benchmark, sizes, vw_files, record_rate, size_label):
    """VW's own driver reading its text file (parser thread + learner): its fastest path."""
    vw = pytest.importorskip("vowpalwabbit")
    benchmark.group = f"train|vw|e2e-vwtext-{size_label(sizes.train)}"
    benchmark.pedantic(lambda: vw.Workspace(f"{VW_ARGS} -d {vw_files[0]}").finish(),
                       rounds=ROUNDS, warmup_rounds=1)
    record_rate(benchmark, sizes.train, vs="test_train_e2e[tsv]")


def test_vw_train_lines(benchmark, sizes, vw_files, record_rate, size_label):
    """VW learn() line by line from Python (the per-event API), on the first rows."""
    vw = pytest.importorskip("vowpalwabbit")
    lines = vw_files[1][: sizes.parse]
    benchmark.group = f"train|vw|learn-lines-{size_label(len(lines))}"

    def run(ws) -> None:
        for line in lines:
            ws.learn(line)

    benchmark.pedantic(run, setup=lambda: ((vw.Workspace(VW_ARGS),), {}), rounds=ROUNDS,
                       warmup_rounds=1)
    record_rate(benchmark, len(lines), vs="test_train_e2e[tsv]")


@pytest.fixture(scope="session")
def vw_model(vw_files):
    vw = pytest.importorskip("vowpalwabbit")
    ws = vw.Workspace(f"{VW_ARGS} -d {vw_files[0]}")
    yield ws
    ws.finish()


@pytest.mark.parametrize("cache", ["hot", "cold"])
def test_vw_predict_one_text(benchmark, vw_model, vw_files, cache):
    """VW predict on a text line (parsed on every call): the raw-row path."""
    lines = vw_files[1][:1] if cache == "hot" else vw_files[1][:10_000]
    lines = [line.split(" ", 1)[1] for line in lines]  # drop the label
    benchmark.group = "predict_one|vw|text39"
    _per_call(benchmark, vw_model.predict, lines, vs=f"test_predict_one_raw39[{cache}]")


def test_vw_predict_one_parsed(benchmark, vw_model, vw_files):
    """VW predict on an already parsed example (the pre-hashed path)."""
    example = vw_model.parse(vw_files[1][0].split(" ", 1)[1])
    benchmark.group = "predict_one|vw|parsed"
    _per_call(benchmark, vw_model.predict, [example], vs="test_predict_one_hashed[hot]")
    vw_model.finish_example(example)


def test_river_ftrl_learn_one(benchmark, sizes, tsv_files, record_rate, size_label):
    """River LogisticRegression(FTRLProximal) learn_one on one-hot token dicts."""
    pytest.importorskip("river")
    from river import linear_model, optim

    y, raw = read_tsv(tsv_files["tsv"])
    n = min(sizes.river, len(y))
    rows = [{f"{CRITEO_FIELDS[j]}={t}": 1.0 for j, t in tokens(v)} for v in raw[:n]]
    benchmark.group = f"train|river-ftrl|{size_label(n)}"

    def run(model) -> None:
        for x, label in zip(rows, y[:n]):
            model.learn_one(x, bool(label))

    benchmark.pedantic(
        run, setup=lambda: ((linear_model.LogisticRegression(optimizer=optim.FTRLProximal()),), {}),
        rounds=3, warmup_rounds=1)
    record_rate(benchmark, n, vs="test_train_ftrl[1]")
