"""The live quality monitor's cost per labelled impression does not grow with its window.

Monitors with windows of 1,000 and 1,000,000 impressions (filled, so every update also
evicts) are fed the same stream: one impression at a time (``add``) and in batches of 100
and 1,000 (``update``; no larger than the smallest window, or the batch's
head would never enter it). Rounds alternate between the windows so machine load hits both
alike; the median time per impression over the rounds is reported, with the ratio of the
largest window to the smallest (~1 when the cost is independent of the window), and the
cost of one ``snapshot()`` (O(score bins), also independent of the window).

    python benches/bench_monitor.py [--rounds 15]      # the table
    pytest benches/bench_monitor.py --benchmark-enable  # the same, as a benchmark
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from fastctr.online.monitor import QualityMonitor

WINDOWS = (1_000, 1_000_000)
STREAM = 20_000  # impressions per round and operation


def _stream(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = 1.0 / (1.0 + np.exp(-rng.normal(-4.0, 1.0, n)))
    return p, (rng.random(n) < p).astype(np.uint8)


def _feed(monitor: QualityMonitor, op: str, p: np.ndarray, y: np.ndarray) -> float:
    """Seconds per impression to feed ``p, y`` to ``monitor`` by ``op``."""
    if op == "add":
        items = list(zip(p.tolist(), y.tolist()))
        start = time.perf_counter()
        for pi, yi in items:
            monitor.add(pi, yi)
    else:
        size = int(op.split()[1])
        start = time.perf_counter()
        for i in range(0, p.size, size):
            monitor.update(p[i:i + size], y[i:i + size])
    return (time.perf_counter() - start) / p.size


def _snapshot_seconds(monitor: QualityMonitor, calls: int = 20) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        monitor.snapshot()
    return (time.perf_counter() - start) / calls


def measure(rounds: int, windows=WINDOWS, stream: int = STREAM) -> dict[str, dict[int, float]]:
    """Median seconds per impression of each operation and window, plus ``snapshot``."""
    monitors = {w: QualityMonitor(window=w) for w in windows}
    for w, monitor in monitors.items():
        monitor.update(*_stream(w, seed=0))  # full: every later item evicts one
    p, y = _stream(stream, seed=1)
    ops = ("add", "update 100", "update 1000")
    samples: dict[str, dict[int, list[float]]] = {op: {w: [] for w in windows}
                                                  for op in (*ops, "snapshot")}
    for _ in range(rounds):
        for op in ops:
            for w, monitor in monitors.items():
                samples[op][w].append(_feed(monitor, op, p, y))
        for w, monitor in monitors.items():
            samples["snapshot"][w].append(_snapshot_seconds(monitor))
    return {op: {w: statistics.median(s) for w, s in by_w.items()}
            for op, by_w in samples.items()}


def table(report: dict[str, dict[int, float]]) -> str:
    windows = sorted(next(iter(report.values())))
    lines = [f"{'operation':<14}" + "".join(f"{'window ' + format(w, ','):>18}" for w in windows)
             + f"{'ratio':>8}"]
    for op, by_w in report.items():
        unit = "us/call" if op == "snapshot" else "us/impression"
        cells = "".join(f"{by_w[w] * 1e6:>18.3f}" for w in windows)
        lines.append(f"{op:<14}{cells}{by_w[windows[-1]] / by_w[windows[0]]:>8.2f}  {unit}")
    return "\n".join(lines)


def test_monitor_cost_is_independent_of_the_window(benchmark, enabled):
    rounds, stream = (15, STREAM) if enabled else (1, 2_000)
    report = benchmark.pedantic(lambda: measure(rounds, stream=stream), rounds=1, iterations=1)
    for op, by_w in report.items():
        for w, seconds in by_w.items():
            benchmark.extra_info[f"{op} window {w} us"] = round(seconds * 1e6, 3)
    print("\n" + table(report))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="alternating rounds (median)")
    args = parser.parse_args()
    print(f"median of {args.rounds} rounds of {STREAM:,} impressions, full windows")
    print(table(measure(args.rounds)))


if __name__ == "__main__":
    main()
