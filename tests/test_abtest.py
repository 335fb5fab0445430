"""A/B tests (issue 16, point 4): stable assignment in the configured proportions, per-arm
statistics and differences equal to a from-scratch computation, and intervals that cover a
known true difference at their nominal rate."""
import json
import math
from statistics import NormalDist

import mmh3
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fastctr.online import metrics
from fastctr.online.abtest import ABTest, assign_arm

IDS = [f"unit-{i}" for i in range(100_000)]


def test_assignment_is_stable_and_follows_the_formula():
    arms = [("a", 0.5), ("b", 0.3), ("c", 0.2)]
    test, again = ABTest(arms), ABTest(list(arms))
    cuts = np.cumsum([0.5, 0.3, 0.2]) / 1.0
    for unit in IDS[:5000]:
        arm = test.assign(unit)
        assert arm == again.assign(unit) == test.assign(unit) == assign_arm(unit, arms)
        u = mmh3.hash(unit, 0, signed=False) / 2**32
        assert arm == "abc"[int(np.searchsorted(cuts, u, side="right"))]


@pytest.mark.parametrize("arms", [[("control", 0.9), ("challenger", 0.1)],
                                  [("a", 5.0), ("b", 3.0), ("c", 2.0)],
                                  [("a", 1.0), ("b", 1.0)]])
def test_split_is_within_half_a_point_of_the_weights_over_100k_units(arms):
    test = ABTest(arms)
    got = [test.assign(unit) for unit in IDS]
    total = sum(w for _, w in arms)
    for name, weight in arms:
        share = got.count(name) / len(IDS)
        assert abs(share - weight / total) < 0.005, (name, share)  # sd <= 0.0016


def test_seeds_give_independent_splits():
    arms = [("a", 1.0), ("b", 1.0)]
    first = [assign_arm(u, arms, seed=0) for u in IDS[:20_000]]
    second = [assign_arm(u, arms, seed=1) for u in IDS[:20_000]]
    agree = np.mean([x == y for x, y in zip(first, second)])
    assert abs(agree - 0.5) < 0.02


def simulate(rng, n, scores, truth):
    """``n`` impressions scored uniformly from ``scores``, clicked with ``truth``'s rates."""
    pick = rng.integers(0, len(scores), n)
    p = np.asarray(scores)[pick]
    y = (rng.random(n) < np.asarray(truth)[pick]).astype(np.uint8)
    return p, y


def expected_loss(scores, truth):
    """The exact expected log loss of impressions from :func:`simulate`."""
    s, q = np.asarray(scores), np.asarray(truth)
    return float(np.mean(-(q * np.log(s) + (1 - q) * np.log1p(-s))))


def test_report_equals_a_from_scratch_computation():
    rng = np.random.default_rng(0)
    test = ABTest([("control", 0.8), ("challenger", 0.2)], confidence=0.9)
    data = {"control": simulate(rng, 30_000, [0.01, 0.03, 0.08], [0.01, 0.035, 0.07]),
            "challenger": simulate(rng, 9_000, [0.012, 0.04, 0.1], [0.015, 0.03, 0.09])}
    for arm, (p, y) in data.items():
        for chunk in np.array_split(np.arange(p.size), 7):
            test.update(arm, p[chunk], y[chunk])
    test.add("challenger", 0.2, True)
    data["challenger"] = tuple(np.append(a, v) for a, v in zip(data["challenger"], (0.2, 1)))
    report = test.report()
    json.dumps(report, allow_nan=False)
    for stats in report["arms"]:
        p, y = data[stats["arm"]]
        assert (stats["impressions"], stats["clicks"]) == (p.size, y.sum())
        assert stats["ctr"] == pytest.approx(y.mean(), rel=1e-12)
        assert stats["mean_prediction"] == pytest.approx(p.mean(), rel=1e-12)
        assert stats["calibration"] == pytest.approx(metrics.calibration(y, p), rel=1e-12)
        assert stats["log_loss"] == pytest.approx(metrics.log_loss(y, p), rel=1e-12)
        assert abs(stats["auc"] - roc_auc_score(y, p)) <= stats["auc_max_error"] + 1e-12
    (comparison,) = report["comparisons"]
    (pa, ya), (pb, yb) = data["control"], data["challenger"]
    z = NormalDist().inv_cdf(0.95)
    ra, rb = ya.mean(), yb.mean()
    se = math.sqrt(ra * (1 - ra) / ya.size + rb * (1 - rb) / yb.size)
    la, lb = (-np.log(np.where(y == 1, p, 1 - p)) for p, y in ((pa, ya), (pb, yb)))
    se_loss = math.sqrt(la.var(ddof=1) / la.size + lb.var(ddof=1) / lb.size)
    for key, d, s in (("ctr_difference", rb - ra, se),
                      ("log_loss_difference", lb.mean() - la.mean(), se_loss)):
        got = comparison[key]
        assert got["estimate"] == pytest.approx(d, rel=1e-9)
        assert got["std_error"] == pytest.approx(s, rel=1e-9)
        assert got["ci_low"] == pytest.approx(d - z * s, rel=1e-9)
        assert got["ci_high"] == pytest.approx(d + z * s, rel=1e-9)
        p_value = 2 * (1 - NormalDist().cdf(abs(d) / s))
        assert got["p_value"] == pytest.approx(p_value, rel=1e-6, abs=1e-12)


def test_add_one_at_a_time_equals_update():
    rng = np.random.default_rng(3)
    one, batch = ABTest([("a", 1.0), ("b", 1.0)]), ABTest([("a", 1.0), ("b", 1.0)])
    for arm, q in (("a", [0.01, 0.05]), ("b", [0.02, 0.04])):
        p, y = simulate(rng, 3000, [0.01, 0.03], q)
        for pi, yi in zip(p.tolist(), y.tolist()):
            one.add(arm, pi, yi)
        batch.update(arm, p[:1000], y[:1000])
        batch.update(arm, p[1000:], y[1000:])
    a, b = one.report(), batch.report()
    for x, y in zip(a["arms"], b["arms"]):
        assert (x["impressions"], x["clicks"], x["auc"]) == (y["impressions"], y["clicks"], y["auc"])
        assert x["log_loss"] == pytest.approx(y["log_loss"], rel=1e-12)
    for key in ("ctr_difference", "log_loss_difference"):
        assert a["comparisons"][0][key] == pytest.approx(b["comparisons"][0][key], rel=1e-9)


def test_report_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    test = ABTest([("a", 1.0), ("b", 1.0)])
    (pa, ya), (pb, yb) = (simulate(rng, 20_000, [0.02, 0.05], q) for q in ([0.02, 0.05],
                                                                           [0.025, 0.05]))
    test.update("a", pa, ya)
    test.update("b", pb, yb)
    got = test.report()["comparisons"][0]
    la, lb = (-np.log(np.where(y == 1, p, 1 - p)) for p, y in ((pa, ya), (pb, yb)))
    welch = stats.ttest_ind(lb, la, equal_var=False)
    # Normal vs Student-t at ~40K degrees of freedom: equal to ~1e-4.
    assert got["log_loss_difference"]["p_value"] == pytest.approx(welch.pvalue, abs=1e-3)
    ci = welch.confidence_interval(0.95)
    assert got["log_loss_difference"]["ci_low"] == pytest.approx(ci.low, rel=1e-3)
    assert got["log_loss_difference"]["ci_high"] == pytest.approx(ci.high, rel=1e-3)
    d = got["ctr_difference"]
    assert d["ci_high"] - d["estimate"] == pytest.approx(stats.norm.ppf(0.975) * d["std_error"])
    assert d["p_value"] == pytest.approx(2 * stats.norm.sf(abs(d["estimate"]) / d["std_error"]))


def test_intervals_cover_the_true_difference_at_the_nominal_rate():
    scores = [0.005, 0.02, 0.06]
    truth = {"control": [0.005, 0.02, 0.06], "challenger": [0.007, 0.024, 0.055]}
    true_ctr = np.mean(truth["challenger"]) - np.mean(truth["control"])
    true_loss = expected_loss(scores, truth["challenger"]) - expected_loss(scores,
                                                                          truth["control"])
    covered = {"ctr_difference": 0, "log_loss_difference": 0}
    seeds = 200
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)
        test = ABTest([("control", 0.5), ("challenger", 0.5)])
        for arm, q in truth.items():
            test.update(arm, *simulate(rng, 20_000, scores, q))
        comparison = test.report()["comparisons"][0]
        for key, true in (("ctr_difference", true_ctr), ("log_loss_difference", true_loss)):
            covered[key] += comparison[key]["ci_low"] <= true <= comparison[key]["ci_high"]
    for key, count in covered.items():
        assert 0.9 <= count / seeds <= 0.99, (key, count / seeds)


def test_undefined_statistics_are_none():
    test = ABTest([("a", 1.0), ("b", 1.0)])
    report = test.report()
    json.dumps(report, allow_nan=False)
    assert report["arms"][0]["ctr"] is None
    assert report["comparisons"][0]["ctr_difference"]["ci_low"] is None
    test.update("a", np.full(10, 0.1), np.zeros(10))
    test.update("b", np.full(10, 0.1), np.zeros(10))
    report = test.report()
    json.dumps(report, allow_nan=False)
    (comparison,) = report["comparisons"]
    assert comparison["ctr_difference"]["estimate"] == 0.0
    assert comparison["ctr_difference"]["p_value"] is None  # no clicks: se is 0
    assert report["arms"][0]["calibration"] is None and report["arms"][0]["auc"] is None


@pytest.mark.parametrize("arms, control, match", [
    ([], None, "at least one"),
    ([("a", 1.0), ("a", 2.0)], None, "unique"),
    ([("a", 1.0), ("b", 0.0)], None, "> 0"),
    ([("a", 1.0), ("b", float("nan"))], None, "finite"),
    ([("a", 1.0)], "b", "not an arm"),
])
def test_bad_arms_are_value_errors(arms, control, match):
    with pytest.raises(ValueError, match=match):
        ABTest(arms, control=control)


def test_feedback_for_an_unknown_arm_is_a_value_error():
    test = ABTest([("a", 1.0)])
    with pytest.raises(ValueError, match="not an arm"):
        test.add("z", 0.1, 1)
    with pytest.raises(ValueError, match="clicks"):
        test.update("a", [0.1], [5])
