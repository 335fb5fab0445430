"""A/B tests between models: deterministic arm assignment and per-arm statistics.

**Assignment.** A unit (a user, else a request) goes to arm ``i`` of arms
``(name_1, w_1), ..., (name_m, w_m)`` when

    T_(i-1) <= h < T_i,   h = MurmurHash3_x86_32(utf8(unit_id), seed) (unsigned),
    T_i = round(2**32 * (w_1 + ... + w_i) / (w_1 + ... + w_m)),  T_0 = 0, T_m = 2**32,

so a unit always gets the same arm, arms get their weight's share of units, and another
``seed`` makes an independent split (``mmh3.hash(unit_id, seed, signed=False)``).

**Statistics** (per arm, over every labelled impression fed, ``n`` of them, ``c`` clicked):
impressions, clicks, CTR ``c / n``, mean prediction, calibration ``sum p / c``, log loss
(mean of the clipped per-impression losses), AUC over fixed score bins with its error bound
(:mod:`fastctr.online.score_bins`). Each challenger ``B`` is compared with the control ``A``
by normal approximations, at confidence ``1 - alpha`` (``z = Phi^-1(1 - alpha / 2)``):

* CTR: ``d = c_B / n_B - c_A / n_A``, unpooled standard error
  ``se = sqrt(r_A (1 - r_A) / n_A + r_B (1 - r_B) / n_B)`` (``r`` the CTRs);
* log loss: ``d = mean_B - mean_A`` of the per-impression losses, Welch's standard error
  ``se = sqrt(s_A^2 / n_A + s_B^2 / n_B)`` with ``s^2`` the sample variance (n - 1), kept
  from per-batch sums of squared deviations merged exactly (Chan et al.);

interval ``d +- z se`` and two-sided p-value ``2 (1 - Phi(|d| / se)) = erfc(|d| / (se sqrt 2))``.
The same ``se`` gives both, so ``p < alpha`` exactly when the interval excludes 0. Both are
``None`` when ``se`` is 0 or an arm has fewer than 2 impressions. With the large samples of a
CTR test the normal quantile is what Welch's t gives (at 1,000 impressions per arm the 95%
quantiles differ by 0.2%).
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_right
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

import mmh3
import numpy as np
from numpy.typing import ArrayLike

from fastctr.online.score_bins import (
    ScoreBins,
    binned_auc,
    check_labelled,
    check_one,
    item_log_loss,
    one_log_loss,
)

__all__ = ["assign_arm", "ABTest", "difference"]

_HASH_RANGE = 2**32


def _thresholds(arms: Sequence[tuple[str, float]]) -> tuple[list[str], list[int]]:
    """Arm names and their upper hash thresholds ``T_i`` (see the module docstring)."""
    if not arms:
        raise ValueError("arms must name at least one (name, weight)")
    names = [str(name) for name, _ in arms]
    if len(set(names)) != len(names):
        raise ValueError(f"arm names must be unique, got {names}")
    weights = [float(weight) for _, weight in arms]
    if not all(math.isfinite(w) and w > 0.0 for w in weights):
        raise ValueError(f"arm weights must be finite and > 0, got {weights}")
    total, cum, upper = sum(weights), 0.0, []
    for w in weights[:-1]:
        cum += w
        upper.append(round(_HASH_RANGE * cum / total))
    return names, upper + [_HASH_RANGE]


def _pick(unit_id: str, seed: int, names: list[str], upper: list[int]) -> str:
    return names[bisect_right(upper, mmh3.hash(unit_id, seed, signed=False))]


def assign_arm(unit_id: str, arms: Sequence[tuple[str, float]], seed: int = 0) -> str:
    """The arm of a unit, by a stable hash of its id (formula in the module docstring).

    Parameters
    ----------
    unit_id : str
        What is randomised: a user id, else a request id.
    arms : sequence of (name, weight)
        Arms and their positive weights (normalised to shares).
    seed : int, default 0
        MurmurHash3 seed; another seed gives an independent split.

    Examples
    --------
    >>> arms = [("control", 0.9), ("challenger", 0.1)]
    >>> [assign_arm(f"user-{i}", arms) for i in range(3)]
    ['control', 'challenger', 'control']
    """
    return _pick(unit_id, seed, *_thresholds(arms))


def difference(estimate: float, std_error: float, confidence: float) -> dict[str, Any]:
    """``estimate``, ``std_error``, ``ci_low``, ``ci_high`` and two-sided ``p_value``.

    Examples
    --------
    >>> d = difference(0.002, 0.001, 0.95)
    >>> round(d["ci_low"], 5), round(d["ci_high"], 5), round(d["p_value"], 4)
    (4e-05, 0.00396, 0.0455)
    """
    if not std_error > 0.0:
        return {"estimate": estimate, "std_error": None, "ci_low": None, "ci_high": None,
                "p_value": None}
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    return {"estimate": estimate, "std_error": std_error,
            "ci_low": estimate - z * std_error, "ci_high": estimate + z * std_error,
            "p_value": math.erfc(abs(estimate) / (std_error * math.sqrt(2.0)))}


class _Arm:
    """Running sums of one arm: counts, sum of p, log-loss mean and M2, AUC bins."""

    def __init__(self, n_bins: int) -> None:
        self.n = 0
        self.clicks = 0
        self.sum_p = 0.0
        self.loss_mean = 0.0
        self.loss_m2 = 0.0  # sum of squared deviations from loss_mean
        self.counts = np.zeros((n_bins, 2), dtype=np.int64)
        self._counts_one = memoryview(self.counts.reshape(-1))  # fast single-item access

    def add(self, bins: np.ndarray, p: np.ndarray, y: np.ndarray, loss: np.ndarray) -> None:
        k = p.size
        np.add.at(self.counts.reshape(-1), 2 * bins.astype(np.intp) + y, 1)
        self.clicks += int(y.sum())
        self.sum_p += float(p.sum())
        # Chan et al.'s merge of (n, mean, M2) with the batch's: exact, no cancellation.
        mean = float(loss.mean())
        m2 = float(((loss - mean) ** 2).sum())
        n = self.n + k
        delta = mean - self.loss_mean
        self.loss_m2 += m2 + delta * delta * self.n * k / n
        self.loss_mean += delta * k / n
        self.n = n

    def add_one(self, b: int, p: float, click: int, loss: float) -> None:
        """:meth:`add` of one item, without numpy calls (Welford's update of mean and M2)."""
        self._counts_one[2 * b + click] += 1
        self.n += 1
        self.clicks += click
        self.sum_p += p
        delta = loss - self.loss_mean
        self.loss_mean += delta / self.n
        self.loss_m2 += delta * (loss - self.loss_mean)

    def stats(self) -> dict[str, Any]:
        n, clicks = self.n, self.clicks
        auc, auc_error = binned_auc(self.counts[:, 1], self.counts[:, 0])
        return {"impressions": n, "clicks": clicks,
                "ctr": clicks / n if n else None,
                "mean_prediction": self.sum_p / n if n else None,
                "calibration": self.sum_p / clicks if clicks else None,
                "log_loss": self.loss_mean if n else None,
                "auc": auc, "auc_max_error": auc_error}

    def loss_variance(self) -> float:
        return self.loss_m2 / (self.n - 1)


class ABTest:
    """Arms, their assignment, and their statistics from labelled impressions.

    Parameters
    ----------
    arms : sequence of (name, weight)
        Arms and their positive weights, e.g. ``[("control", 0.9), ("challenger", 0.1)]``.
    control : str, optional
        The arm the others are compared with; default the first.
    seed : int, default 0
        Assignment hash seed (see :func:`assign_arm`).
    confidence : float, default 0.95
        Confidence of the reported intervals.
    n_bins : int, default 8192
        Score bins of the per-arm AUC.

    Examples
    --------
    >>> test = ABTest([("control", 0.5), ("challenger", 0.5)])
    >>> test.update("control", [0.1, 0.2, 0.6], [0, 0, 1])
    >>> test.update("challenger", [0.3, 0.4, 0.5, 0.2], [0, 1, 1, 0])
    >>> report = test.report()
    >>> [(a["arm"], a["impressions"], a["clicks"]) for a in report["arms"]]
    [('control', 3, 1), ('challenger', 4, 2)]
    >>> round(report["comparisons"][0]["ctr_difference"]["estimate"], 4)
    0.1667
    """

    def __init__(self, arms: Sequence[tuple[str, float]], control: str | None = None,
                 seed: int = 0, confidence: float = 0.95, n_bins: int = 8192) -> None:
        self._names, self._upper = _thresholds(arms)
        self.weights = {name: float(w) for name, (_, w) in zip(self._names, arms)}
        self.control = self._names[0] if control is None else control
        if self.control not in self.weights:
            raise ValueError(f"control {self.control!r} is not an arm: {self._names}")
        if not 0.0 < confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {confidence}")
        self.seed = int(seed)
        self.confidence = float(confidence)
        self.bins = ScoreBins(n_bins)
        self._arms = {name: _Arm(n_bins) for name in self._names}
        self._lock = threading.Lock()

    def assign(self, unit_id: str) -> str:
        """The arm of ``unit_id`` (:func:`assign_arm` with this test's arms and seed)."""
        return _pick(unit_id, self.seed, self._names, self._upper)

    def update(self, arm: str, p: ArrayLike, y: ArrayLike) -> None:
        """Credit labelled impressions to the arm that scored them.

        Raises
        ------
        ValueError
            If ``arm`` is unknown, or on invalid ``p``/``y`` (see
            :meth:`fastctr.online.monitor.QualityMonitor.update`).
        """
        stats = self._arm(arm)
        p, y = check_labelled(p, y)
        if p.size:
            bins, loss = self.bins.index(p), item_log_loss(p, y)
            with self._lock:
                stats.add(bins, p, y, loss)

    def add(self, arm: str, p: float, click: int | bool) -> None:
        """Credit one labelled impression (see :meth:`update`); no numpy call."""
        stats = self._arm(arm)
        p, c = check_one(p, click)
        b, loss = self.bins.index_one(p), one_log_loss(p, c)
        with self._lock:
            stats.add_one(b, p, c, loss)

    def report(self) -> dict[str, Any]:
        """Per-arm statistics and each challenger's differences to the control, JSON-ready.

        Returns
        -------
        dict
            ``control``, ``confidence``, ``arms`` (per arm: ``arm``, ``weight`` and the
            statistics of the module docstring) and ``comparisons`` (per challenger:
            ``arm``, ``control``, ``ctr_difference`` and ``log_loss_difference``, each with
            ``estimate``, ``std_error``, ``ci_low``, ``ci_high``, ``p_value``; None where
            undefined).
        """
        with self._lock:
            arms = [{"arm": name, "weight": self.weights[name], **self._arms[name].stats()}
                    for name in self._names]
            comparisons = [self._compare(self._arms[self.control], self._arms[name], name)
                           for name in self._names if name != self.control]
        return {"control": self.control, "confidence": self.confidence, "arms": arms,
                "comparisons": comparisons}

    def _arm(self, name: str) -> _Arm:
        if name not in self._arms:
            raise ValueError(f"arm {name!r} is not an arm of this test: {self._names}")
        return self._arms[name]

    def _compare(self, a: _Arm, b: _Arm, name: str) -> dict[str, Any]:
        out: dict[str, Any] = {"arm": name, "control": self.control}
        if a.n < 2 or b.n < 2:
            empty = difference(0.0, 0.0, self.confidence)
            return {**out, "ctr_difference": {**empty, "estimate": None},
                    "log_loss_difference": {**empty, "estimate": None}}
        ra, rb = a.clicks / a.n, b.clicks / b.n
        se_ctr = math.sqrt(ra * (1.0 - ra) / a.n + rb * (1.0 - rb) / b.n)
        se_loss = math.sqrt(a.loss_variance() / a.n + b.loss_variance() / b.n)
        return {**out,
                "ctr_difference": difference(rb - ra, se_ctr, self.confidence),
                "log_loss_difference": difference(b.loss_mean - a.loss_mean, se_loss,
                                                  self.confidence)}
