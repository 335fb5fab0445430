"""Prefetching, chunked parallel parsing, Hogwild training, prediction while training."""
import gzip
import io
import logging
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from fastctr import (
    FeatureHasher,
    FTRLClassifier,
    HashedRows,
    ParseError,
    hasher_for,
    read_criteo,
    read_data,
)
from fastctr.io import sources
from fastctr.io.ahead import read_ahead
from fastctr.io.datasets import criteo_rows, make_criteo
from fastctr.online.metrics import roc_auc
from fastctr.online.training import Progress, parsed_in_parallel, train

QUIET = Progress(enabled=False)


@pytest.fixture(scope="module")
def batches(synthetic_tsv):
    return list(read_criteo(synthetic_tsv, FeatureHasher(bits=18), batch_size=2_000))


def test_read_ahead_keeps_order_and_content(batches):
    again = list(read_ahead(iter(batches)))
    assert len(again) == len(batches) and all(a is b for a, b in zip(again, batches))


def test_read_ahead_raises_the_readers_error():
    data = b"".join(make_criteo(50, seed=1)) + b"oops\n"
    with pytest.raises(ParseError, match="line 51"):
        list(read_ahead(read_criteo(data, FeatureHasher(bits=18), batch_size=10, labeled=True)))


def test_read_ahead_stops_its_thread_when_the_consumer_stops(batches):
    closed = []

    def source():
        try:
            yield from batches
        finally:
            closed.append(True)

    before = threading.active_count()
    ahead = read_ahead(source(), depth=1)
    next(ahead)
    ahead.close()
    assert threading.active_count() == before and closed == [True]


def test_prefetch_gives_the_same_model(batches):
    quiet = Progress(enabled=False)
    a, b = FTRLClassifier(bits=18), FTRLClassifier(bits=18)
    ra = train(a, batches, progress=quiet)
    rb = train(b, batches, progress=quiet, prefetch=True)
    np.testing.assert_array_equal(a.zn_, b.zn_)
    assert ra["log_loss"] == rb["log_loss"]


def test_hogwild_learns_as_well_as_sequential(batches):
    test = batches[-1]
    scores = {}
    for n_jobs in (1, 2, 4):
        model = FTRLClassifier(bits=18, n_jobs=n_jobs)
        for batch in batches[:-1]:
            model.partial_fit(batch)
        assert np.all(np.isfinite(model.zn_)) and model.n_rows_seen_ == 18_000
        scores[n_jobs] = roc_auc(test.labels, model.predict_proba(test)[:, 1])
    assert abs(scores[2] - scores[1]) < 0.01 and abs(scores[4] - scores[1]) < 0.01


def _wide_rows(n_rows: int, width: int = 40, bits: int = 18) -> HashedRows:
    """Random labelled rows of ``width`` entries each, built without parsing (fast)."""
    rng = np.random.default_rng(7)
    return HashedRows(np.arange(n_rows + 1, dtype=np.int64) * width,
                      rng.integers(0, 2**bits, n_rows * width, dtype=np.int32),
                      np.ones(n_rows * width, np.float32),
                      np.tile(np.arange(width, dtype=np.uint16), n_rows),
                      (rng.random(n_rows) < 0.25).astype(np.float32))


def _slice_intervals(model, rows: HashedRows) -> list[tuple[float, float]]:
    """(start, end) of each kernel call of one partial_fit: the instance's _learn is wrapped
    (instrumentation only: the real kernel runs)."""
    learn, intervals = model._learn, []

    def timed(part, p):
        start = time.perf_counter()
        learn(part, p)
        intervals.append((start, time.perf_counter()))

    model._learn = timed
    model.partial_fit(rows)
    del model._learn
    return sorted(intervals)


def test_hogwild_threads_run_at_the_same_time():
    rows = _wide_rows(400_000)
    model = FTRLClassifier(bits=18, n_jobs=2).partial_fit(rows[:100])  # compiled, warm
    (a_start, a_end), (b_start, b_end) = _slice_intervals(model, rows)
    shorter = min(a_end - a_start, b_end - b_start)
    overlap = min(a_end, b_end) - max(a_start, b_start)
    # Threads that ran one after the other overlap by nothing; the kernel releases the GIL,
    # so both slices run together for most of their time, even on a loaded machine.
    assert overlap > 0.5 * shorter, (overlap, shorter)
    assert model.n_rows_seen_ == 400_100 and np.all(np.isfinite(model.zn_))


def test_predicting_while_another_thread_trains(batches):
    model = FTRLClassifier(bits=18).partial_fit(batches[0])
    dicts, _ = criteo_rows(200, seed=4)
    errors, outputs = [], []
    done = threading.Event()

    def trainer():
        try:
            for _ in range(3):
                for batch in batches:
                    model.partial_fit(batch)
        except BaseException as e:  # surfaced by the assertion below
            errors.append(e)
        finally:
            done.set()

    def scorer():
        try:
            while not done.is_set():
                outputs.extend(model.predict_one(row) for row in dicts)
                outputs.extend(model.predict_proba(batches[1])[:, 1])
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=trainer)] + [threading.Thread(target=scorer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    out = np.array(outputs)
    assert out.size > 0 and np.all(np.isfinite(out)) and np.all((out >= 0) & (out <= 1))


# -- chunks: the source cut at line ends, parsed anywhere, numbered in order ------------------


def _in_order(reader) -> tuple[list, int]:
    """The rows of reader.chunks() consumed as train(threads > 1) does, and the chunk count."""
    batches, n = [], 0
    for chunk in reader.chunks():
        batches += chunk.parse()
        chunk.done()
        n += 1
    return batches, n


def _same_rows(a, b) -> None:
    for name in ("indices", "values", "fields", "labels"):
        np.testing.assert_array_equal(np.concatenate([getattr(x, name) for x in a]),
                                      np.concatenate([getattr(x, name) for x in b]))


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(sources, "BLOCK_BYTES", 997)  # many chunks; lines straddle blocks


def _csv(n: int) -> bytes:
    rows, labels = criteo_rows(n, seed=3)
    return ("click,site,hour\n" + "".join(f"{y},{r.get('C1', '')},{r.get('I1', '')}\n"
                                          for r, y in zip(rows, labels))).encode()


@pytest.mark.parametrize("fmt", ["criteo", "criteo.gz", "csv", "vw"])
def test_chunks_hold_the_readers_rows(small_blocks, fmt):
    schema = {}
    if fmt.startswith("criteo"):
        data = b"".join(make_criteo(3_000, seed=5))
        data = gzip.compress(data) if fmt.endswith(".gz") else data
    elif fmt == "csv":
        data, schema = _csv(3_000), {"label": "click", "numeric": ["hour"]}
    else:
        data = b"".join(b"%d |a x%d |b y:%d.5\n" % (i % 2 * 2 - 1, i % 7, i % 5) for i in range(3_000))
    name = fmt.split(".")[0]
    hasher = hasher_for(name, gzip.decompress(data) if fmt.endswith(".gz") else data, **schema)

    def reader():
        return read_data(io.BytesIO(data), name, hasher, batch_size=200,
                         **({"label": "click"} if name == "csv" else {}))

    chunked, n_chunks = _in_order(reader())
    assert n_chunks > 10 and all(b.n_rows <= 200 for b in chunked)
    _same_rows(chunked, list(reader()))


def _with_bad_lines() -> bytes:
    lines = b"".join(make_criteo(2_000, seed=6)).splitlines(keepends=True)
    for i in (5, 900, 901, 1777):
        lines[i] = b"1\tNaNx" + b"\t" * 38 + b"\n"
    return b"".join(lines)


def test_chunks_number_and_report_bad_lines_as_the_reader(small_blocks, caplog):
    data = _with_bad_lines()
    sequential = read_criteo(io.BytesIO(data), FeatureHasher(bits=18), batch_size=100, on_error="skip")
    expected = list(sequential)
    chunked = read_criteo(io.BytesIO(data), FeatureHasher(bits=18), batch_size=100, on_error="skip")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        got, _ = _in_order(chunked)
    _same_rows(got, expected)
    assert chunked.errors.count == sequential.errors.count == 4
    assert chunked.errors.examples == sequential.errors.examples
    assert "line 1778: field 'I1'" in chunked.errors.examples[-1]
    assert caplog.text.count("skipped 4 bad lines") == 1


def test_threads_raise_the_first_bad_line_with_its_number(small_blocks):
    reader = read_criteo(io.BytesIO(_with_bad_lines()), FeatureHasher(bits=18), batch_size=100)
    model = FTRLClassifier(bits=18)
    with pytest.raises(ParseError, match=r"line 6: field 'I1'"):
        train(model, reader, threads=2, progress=QUIET)
    assert getattr(model, "n_rows_seen_", 0) <= 5  # no row after the bad line was learned


@pytest.mark.parametrize("threads", [2, 3])
def test_threads_train_the_same_model_as_one(small_blocks, threads):
    data = b"".join(make_criteo(6_000, seed=8))
    reports, models = [], []
    for n in (1, threads):
        model = FTRLClassifier(bits=18)
        reader = read_criteo(io.BytesIO(data), model.hasher_, batch_size=500)
        reports.append(train(model, reader, threads=n, progress=QUIET, report_every=1_000))
        models.append(model)
    np.testing.assert_array_equal(models[0].zn_, models[1].zn_)
    assert models[1].n_rows_seen_ == 6_000 and reports[1]["rows"] == 6_000
    assert reports[1]["log_loss"] == pytest.approx(reports[0]["log_loss"], rel=1e-12)
    assert reports[1]["auc"] == pytest.approx(reports[0]["auc"], rel=1e-12)


def test_parsed_in_parallel_passes_rows_through_and_stops_its_threads(batches):
    before = threading.active_count()
    got = list(parsed_in_parallel(iter(batches), threads=2))
    assert all(a is b for a, b in zip(got, batches)) and len(got) == len(batches)
    for _ in parsed_in_parallel(iter(batches), threads=3):
        break
    assert threading.active_count() == before


@pytest.mark.parametrize("threads", [0, -1, 1.5])
def test_bad_thread_counts_are_refused(batches, threads):
    with pytest.raises(ValueError, match=r"The 'threads' parameter of train must be an int in the "
                                         r"range \[1, inf\)\. Got .* instead\."):
        train(FTRLClassifier(bits=18), batches, threads=threads, progress=QUIET)


def test_one_thread_refuses_chunks(batches):
    reader = read_criteo(b"".join(make_criteo(10, seed=1)), FeatureHasher(bits=18))
    with pytest.raises(TypeError, match="chunks are parsed with threads > 1"):
        train(FTRLClassifier(bits=18), reader.chunks(), progress=QUIET)


WARMED_TRAINING = """
import gc
from numba.core.registry import CPUDispatcher
from fastctr import FFMClassifier, FMClassifier, FTRLClassifier, read_criteo
from fastctr.io.datasets import make_criteo
from fastctr.online.training import Progress, train, warm_up


def compiled():
    return {(d.py_func.__qualname__, sig) for d in gc.get_objects()
            if isinstance(d, CPUDispatcher) for sig in d.signatures}


data = b"".join(make_criteo(3_000, seed=1))
for cls in (FTRLClassifier, FMClassifier, FFMClassifier):
    model = cls()
    warm_up(model)
    before = compiled()
    train(model, read_criteo(data, model.hasher_, batch_size=1_000), report_every=1_000,
          progress=Progress(enabled=False))
    model.predict_proba(next(iter(read_criteo(data, model.hasher_))))
    assert compiled() == before, (cls.__name__, compiled() - before)
    assert model.n_rows_seen_ == 3_000  # the warm-up learned on a clone
print("ok")
"""


def test_warm_up_leaves_nothing_to_compile_for_training():
    """In a fresh interpreter: after warm_up(model), training and predicting it with
    progressive validation meet no kernel signature that is not compiled (or loaded) yet."""
    out = subprocess.run([sys.executable, "-c", WARMED_TRAINING], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
