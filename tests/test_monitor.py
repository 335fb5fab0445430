"""QualityMonitor (issue 16, point 2): the windowed figures equal a from-scratch computation
over the last `window` impressions (fastctr.online.metrics, scikit-learn and plain numpy)."""
import json
import threading

import numpy as np
import pytest
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import roc_auc_score

from fastctr.online import metrics
from fastctr.online.monitor import PSI_FLOOR, QualityMonitor
from fastctr.online.score_bins import ScoreBins, binned_auc

FIXED = 2.0**-33


def stream(n, seed, shift=0.0, overpredict=1.0):
    """A calibrated model's probabilities (times ``overpredict``) and clicks (CTR ~3%)."""
    rng = np.random.default_rng(seed)
    true = 1.0 / (1.0 + np.exp(-rng.normal(-4.0 + shift, 1.0, n)))
    y = (rng.random(n) < true).astype(np.uint8)
    return np.minimum(1.0, overpredict * true), y


def feed(monitor, p, y, rng, checkpoint=None):
    """Random batch sizes, single items through add(), one batch larger than the window."""
    sizes = list(rng.integers(1, 3000, 6)) + [monitor.window + 1234] + [1] * 40
    sizes += list(rng.integers(1, 500, 8))
    start = 0
    for size in sizes:
        stop = min(p.size, start + int(size))
        if stop - start == 1:
            monitor.add(float(p[start]), int(y[start]))
        else:
            monitor.update(p[start:stop], y[start:stop])
        start = stop
        if checkpoint:
            checkpoint(stop)
    return start


def scratch_psi(ref, win, groups):
    """PSI over the snapshot's groups, shares counted from the raw scores."""
    total = 0.0
    for g in groups:
        low, high = g["p_low"], g["p_high"]
        e = np.mean((ref >= low) & ((ref < high) | (high == 1.0)))
        a = np.mean((win >= low) & ((win < high) | (high == 1.0)))
        assert g["reference_share"] == pytest.approx(e, abs=1e-12)
        assert g["window_share"] == pytest.approx(a, abs=1e-12)
        e, a = max(e, PSI_FLOOR), max(a, PSI_FLOOR)
        total += (a - e) * np.log(a / e)
    return total


def check_against_scratch(stats, p, y, reference, bins):
    json.dumps(stats, allow_nan=False)  # plain Python numbers only
    assert stats["rows"] == p.size and stats["clicks"] == int(y.sum())
    assert stats["ctr"] == pytest.approx(y.mean(), rel=1e-12)
    # Fixed point: a mean is off by at most 2**-33 (each item's rounding error).
    assert stats["mean_prediction"] == pytest.approx(p.mean(), abs=FIXED)
    assert stats["calibration"] == pytest.approx(metrics.calibration(y, p),
                                                 abs=FIXED / y.mean())
    assert stats["log_loss"] == pytest.approx(metrics.log_loss(y, p), abs=FIXED)
    assert stats["log_loss"] == pytest.approx(sk_log_loss(y, p, labels=[0, 1]), abs=FIXED)
    assert stats["normalized_entropy"] == pytest.approx(metrics.normalized_entropy(y, p),
                                                        rel=1e-7)
    # The binned AUC is the exact AUC of the bin indices, within its bound of the exact one.
    assert stats["auc"] == pytest.approx(metrics.roc_auc(y, bins.index(p)), abs=1e-12)
    exact = roc_auc_score(y, p)
    assert abs(stats["auc"] - exact) <= stats["auc_max_error"] + 1e-12
    assert stats["auc_max_error"] < 2e-3
    # Calibration buckets: about equal counts, each matching its score range.
    buckets = stats["buckets"]
    assert sum(b["rows"] for b in buckets) == p.size
    for b in buckets:
        inside = (p >= b["p_low"]) & ((p < b["p_high"]) | (b["p_high"] == 1.0))
        assert b["rows"] == inside.sum() and b["clicks"] == y[inside].sum()
        assert b["mean_prediction"] == pytest.approx(p[inside].mean(), abs=FIXED)
        assert b["ctr"] == pytest.approx(y[inside].mean(), rel=1e-12)
        assert 0.5 * p.size / len(buckets) < b["rows"] < 1.5 * p.size / len(buckets)
    drift = stats["drift"]
    assert drift["psi"] == pytest.approx(scratch_psi(reference, p, drift["groups"]), abs=1e-12)


def test_window_equals_recompute_over_the_last_items():
    window = 5000
    monitor = QualityMonitor(window=window, reference_window=3000)
    p, y = stream(30_000, seed=1, shift=np.linspace(0.0, 1.0, 30_000))
    seen = []

    def checkpoint(t):
        seen.append(t)
        if t >= 1000:  # enough clicks for both classes in the window
            lo = max(0, t - window)
            check_against_scratch(monitor.snapshot(), p[lo:t], y[lo:t], p[:min(t, 3000)],
                                  monitor.bins)

    n = feed(monitor, p, y, np.random.default_rng(2), checkpoint)
    assert len(seen) > 40 and n > 2 * window  # the window turned over more than once
    stats = monitor.snapshot()
    assert stats["rows_seen"] == n and stats["drift"]["reference_complete"]
    assert stats["drift"]["psi"] > 0.1  # the scores drifted by +1 logit over the stream


def test_add_stores_what_update_stores():
    p, y = stream(6000, seed=3)
    one, batch = QualityMonitor(window=2500), QualityMonitor(window=2500)
    for pi, yi in zip(p.tolist(), y.tolist()):
        one.add(pi, yi)
    batch.update(p[:3500], y[:3500])
    batch.update(p[3500:], y[3500:])
    a, b = one.snapshot(), batch.snapshot()
    # Integers equal; the fixed-point log loss may differ by an ulp of math.log vs np.log.
    assert a["buckets"] == b["buckets"] and a["drift"] == b["drift"]
    assert a["log_loss"] == pytest.approx(b["log_loss"], rel=1e-12)
    assert {k: v for k, v in a.items() if k not in ("log_loss", "normalized_entropy")} == \
        {k: v for k, v in b.items() if k not in ("log_loss", "normalized_entropy")}


def test_snapshot_is_json_ready_with_none_where_undefined():
    monitor = QualityMonitor(window=100)
    monitor.update([], [])
    empty = monitor.snapshot()
    json.dumps(empty, allow_nan=False)
    assert empty["rows"] == 0 and empty["ctr"] is None and empty["auc"] is None
    assert empty["drift"]["psi"] is None and empty["buckets"] == []
    monitor.update(np.full(50, 0.1), np.zeros(50))  # one class: no clicks
    stats = monitor.snapshot()
    json.dumps(stats, allow_nan=False)
    assert stats["ctr"] == 0.0 and stats["log_loss"] == pytest.approx(-np.log(0.9))
    assert stats["calibration"] is None and stats["auc"] is None
    assert stats["normalized_entropy"] is None and stats["drift"]["psi"] == 0.0


def test_check_warns_on_calibration_and_drift():
    window = 20_000
    quiet = QualityMonitor(window=window)
    quiet.update(*stream(3 * window, seed=4))
    assert quiet.check() == []
    over = QualityMonitor(window=window)
    over.update(*stream(window, seed=5, overpredict=1.5))
    (warning,) = over.check()
    assert warning.startswith("calibration 1.") and "outside [0.9, 1.1]" in warning
    assert QualityMonitor(window=window, calibration_range=(0.5, 2.0)).check() == []
    drifted = QualityMonitor(window=window)
    drifted.update(*stream(window, seed=6))  # the reference
    drifted.update(*stream(window, seed=7, shift=1.0))
    warnings = drifted.check()
    assert any(w.startswith("score drift: PSI") for w in warnings), warnings
    assert drifted.snapshot()["drift"]["psi"] > 0.2
    # A reference from the drifted distribution itself: no drift.
    drifted.set_reference(stream(window, seed=8, shift=1.0)[0])
    assert drifted.snapshot()["drift"]["psi"] < 0.02
    drifted.reset_reference()
    assert drifted.snapshot()["drift"]["reference_rows"] == 0
    drifted.update(*stream(100, seed=9))
    assert drifted.snapshot()["drift"]["reference_rows"] == 100


def test_check_is_silent_below_min_rows():
    monitor = QualityMonitor(window=10_000, min_rows=1000)
    monitor.update(np.full(999, 0.5), np.zeros(999))
    assert monitor.check() == []  # 999 rows
    monitor.add(0.5, 1)
    assert monitor.check() == ["calibration 500.000 outside [0.9, 1.1] over the last 1000 "
                               "labelled impressions"]
    monitor = QualityMonitor(window=10_000, min_rows=1001)
    monitor.update(np.full(1000, 0.5), np.arange(1000) == 0)
    assert monitor.check() == []


def test_concurrent_updates_lose_nothing():
    p, y = stream(40_000, seed=10)
    shared = QualityMonitor(window=40_000, reference_window=40_000)
    parts = np.array_split(np.arange(p.size), 4)

    def work(idx):
        for chunk in np.array_split(idx, 100):
            shared.update(p[chunk[:-1]], y[chunk[:-1]])
            shared.add(float(p[chunk[-1]]), int(y[chunk[-1]]))

    threads = [threading.Thread(target=work, args=(idx,)) for idx in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    alone = QualityMonitor(window=40_000, reference_window=40_000)
    alone.update(p, y)
    a, b = shared.snapshot(), alone.snapshot()
    assert (a["rows"], a["clicks"], a["buckets"], a["drift"]) == \
        (b["rows"], b["clicks"], b["buckets"], b["drift"])
    assert a["auc"] == b["auc"] and a["log_loss"] == pytest.approx(b["log_loss"], rel=1e-12)


@pytest.mark.parametrize("p, y, match", [
    ([0.1, 1.2], [0, 1], "probabilities"),
    ([0.1, np.nan], [0, 1], "probabilities"),
    ([0.1, 0.2], [0, 2], "clicks"),
    ([0.1, 0.2], [0], "different lengths"),
])
def test_bad_input_is_a_value_error(p, y, match):
    monitor = QualityMonitor(window=10)
    with pytest.raises(ValueError, match=match):
        monitor.update(p, y)
    with pytest.raises(ValueError, match="click"):
        monitor.add(0.5, 3)
    with pytest.raises(ValueError, match="probability"):
        monitor.add(-0.1, 1)
    assert monitor.snapshot()["rows"] == 0


def test_bad_parameters_are_value_errors():
    for window in (0, 1e5, True):
        with pytest.raises(ValueError, match="window"):
            QualityMonitor(window=window)
    with pytest.raises(ValueError, match="at least one"):
        QualityMonitor().set_reference([])
    with pytest.raises(ValueError, match="calibration_range"):
        QualityMonitor(calibration_range=(1.1, 0.9))
    with pytest.raises(ValueError, match="n_bins"):
        ScoreBins(n_bins=70_000)


def test_score_bins_are_monotone_and_exact_at_edges():
    bins = ScoreBins(n_bins=512, logit_range=8.0)
    p = np.concatenate(([0.0, 1.0], bins.edges, np.nextafter(bins.edges, 0.0),
                        np.random.default_rng(11).random(1000)))
    index = bins.index(p)
    assert [bins.index_one(x) for x in p.tolist()] == index.tolist()
    order = np.argsort(p, kind="stable")
    assert (np.diff(index[order].astype(int)) >= 0).all()
    for k in (0, 7, 511):
        low, high = bins.bounds(k, k)
        assert bins.index_one(low) == k and (k == 511 or bins.index_one(high) == k + 1)


def test_binned_auc_bound_holds_with_ties():
    rng = np.random.default_rng(12)
    for _ in range(20):
        p = rng.choice(np.linspace(0.0, 1.0, 30), 400)  # many exact ties
        y = (rng.random(400) < p).astype(np.uint8)
        bins = ScoreBins(n_bins=8, logit_range=2.0)
        counts = np.zeros((8, 2), dtype=np.int64)
        np.add.at(counts, (bins.index(p), y), 1)
        auc, bound = binned_auc(counts[:, 1], counts[:, 0])
        assert auc == pytest.approx(roc_auc_score(y, bins.index(p)), abs=1e-12)
        assert abs(auc - roc_auc_score(y, p)) <= bound + 1e-12
