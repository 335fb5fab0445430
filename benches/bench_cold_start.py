"""Cold start: what a fresh process pays before and for its first predictions.

Each measurement is a new interpreter (the numba cache warm: a first child fills it) that
times, in order: ``import fastctr``, ``fastctr.load``, then the first and second call of each
kind of prediction (a batch ``predict_proba`` of dict rows, ``predict_one`` of a dict and of
a tab-separated line). Medians over the children are reported.

    python benches/bench_cold_start.py [--runs 9] [--bits 22]   # the table
    pytest benches/bench_cold_start.py --benchmark-enable        # the same, as a benchmark

The test that the first calls compile nothing is tests/test_cold_start.py.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
clock = time.perf_counter
t0 = clock()
import fastctr
t1 = clock()
model = fastctr.load(sys.argv[1])
t2 = clock()
rows = [{"C1": "68fd1e64", "I1": 3, "C2": "80e26c9b"}] * 100
line = "3\t\t\t\t\t\t\t\t\t\t\t\t\t68fd1e64\t80e26c9b"
times = {"import": t1 - t0, "load": t2 - t1}
for kind, call in (("predict_proba", lambda: model.predict_proba(rows)),
                   ("predict_one dict", lambda: model.predict_one(rows[0])),
                   ("predict_one line", lambda: model.predict_one(line))):
    for which in ("first", "second"):
        start = clock()
        call()
        times[f"{kind} {which}"] = clock() - start
print(json.dumps(times))
"""


def save_models(folder: Path, bits: int) -> dict[str, Path]:
    """An FTRL, FM and FFM model trained on a few synthetic rows, saved in ``folder``."""
    from fastctr import FFMClassifier, FMClassifier, FTRLClassifier, read_criteo
    from fastctr.io.datasets import make_criteo

    data = folder / "rows.tsv"
    data.write_bytes(b"".join(make_criteo(2_000, seed=1)))
    paths = {}
    for name, model in (("ftrl", FTRLClassifier(bits=bits)),
                        ("fm", FMClassifier(bits=bits, k=4)),
                        ("ffm", FFMClassifier(bits=min(bits, 18), k=4))):
        for batch in read_criteo(str(data), model.hasher_):
            model.partial_fit(batch)
        paths[name] = folder / f"{name}.fctr"
        model.save(paths[name])
    return paths


def cold_start(path: Path, runs: int) -> dict[str, float]:
    """Median seconds of each step over ``runs`` fresh interpreters (after one unmeasured)."""
    samples = []
    for i in range(runs + 1):
        out = subprocess.run([sys.executable, "-c", CHILD, str(path)], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
        if i:  # the first child may compile what numba's cache lacks
            samples.append(json.loads(out))
    return {k: statistics.median(s[k] for s in samples) for k in samples[0]}


def test_cold_start(benchmark, enabled, tmp_path):
    paths = save_models(tmp_path, 22 if enabled else 18)
    runs = 5 if enabled else 1
    report = benchmark.pedantic(lambda: {n: cold_start(p, runs) for n, p in paths.items()},
                                rounds=1, iterations=1)
    for name, times in report.items():
        for step, seconds in times.items():
            benchmark.extra_info[f"{name} {step} ms"] = round(seconds * 1e3, 2)
        assert times["predict_proba first"] < 1.0  # a smoke check; the figures are the point


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="fresh interpreters per model")
    parser.add_argument("--bits", type=int, default=22, help="FTRL and FM buckets (FFM: <= 18)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = save_models(Path(tmp), args.bits)
        report = {name: cold_start(path, args.runs) for name, path in paths.items()}
    steps = list(next(iter(report.values())))
    print(f"median of {args.runs} fresh interpreters, warm numba cache, milliseconds")
    print(f"{'step':<24}" + "".join(f"{name:>10}" for name in report))
    for step in steps:
        print(f"{step:<24}" + "".join(f"{report[n][step] * 1e3:10.2f}" for n in report))


if __name__ == "__main__":
    main()
