"""Prefetching, Hogwild training and prediction while another thread trains."""
import threading

import numpy as np
import pytest

from fastctr import FeatureHasher, FTRLClassifier, ParseError, read_criteo
from fastctr.datasets import criteo_rows, make_criteo
from fastctr.metrics import roc_auc
from fastctr.training import Progress, prefetched, train


@pytest.fixture(scope="module")
def batches(synthetic_tsv):
    return list(read_criteo(synthetic_tsv, FeatureHasher(bits=18), batch_size=2_000))


def test_prefetched_keeps_order_and_content(batches):
    again = list(prefetched(iter(batches)))
    assert len(again) == len(batches) and all(a is b for a, b in zip(again, batches))


def test_prefetched_raises_the_readers_error():
    data = b"".join(make_criteo(50, seed=1)) + b"oops\n"
    with pytest.raises(ParseError, match="line 51"):
        list(prefetched(read_criteo(data, FeatureHasher(bits=18), batch_size=10, labeled=True)))


def test_prefetched_stops_its_thread_when_the_consumer_stops(batches):
    before = threading.active_count()
    for _ in prefetched(iter(batches), depth=1):
        break
    assert threading.active_count() == before


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
