"""FM and FFM serving artifacts: file sizes and load times of the model and of its
FactorScorers, and their single-row and batch speeds against the model's own, on the real
Criteo sample (and synthetic rows when it is missing).

    python benches/fm_scorer.py [--data /work/shared/data] [--runs 5]

Times are thread CPU time (medians of ``--runs``). Single-row: a loop of ``predict_one`` over
1,000 dict rows (ns per row). Batch: ``predict_proba`` of the held-out rows, one thread
(rows/s). Load: ``fastctr.load`` of the model, ``load(mmap=True)`` of a scorer. The model
file stores its float64 state by touched bucket (format version 2); the scorer files hold
the materialised tables only.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from fastctr import FFMClassifier, FMClassifier, load, read_criteo
from fastctr.io.datasets import criteo_rows, make_criteo


def _median_time(fn, runs: int) -> float:
    """Median thread CPU time of ``runs`` calls: the machine's other load (a shared CI box)
    does not count, its cache and memory-bandwidth sharing still does."""
    times = []
    for _ in range(runs):
        start = time.thread_time()
        fn()
        times.append(time.thread_time() - start)
    return statistics.median(times)


def measure(name: str, model, test, dicts, folder: Path, runs: int) -> None:
    path = folder / "model.fctr"
    model.save(path)
    load_ms = _median_time(lambda: load(path), runs) * 1e3
    one = _median_time(lambda: [model.predict_one(r) for r in dicts], runs) / len(dicts) * 1e9
    batch = test.n_rows / _median_time(lambda: model.predict_proba(test), runs)
    print(f"{name:<24} {'model':<16} {path.stat().st_size / 2**20:9.2f} MiB  load "
          f"{load_ms:7.1f} ms  predict_one {one:7.0f} ns  batch {batch / 1e6:6.2f} M rows/s")
    for layout in ("sparse", "dense"):
        for dtype in ("float32", "float16", "int8"):
            scorer = model.to_scorer(dtype, layout)
            scorer.save(path)
            load_ms = _median_time(lambda: load(path, mmap=True), runs) * 1e3
            one = _median_time(lambda s=scorer: [s.predict_one(r) for r in dicts],
                               runs) / len(dicts) * 1e9
            batch = test.n_rows / _median_time(lambda s=scorer: s.predict_proba(test), runs)
            print(f"{'':<24} {layout + ' ' + dtype:<16} {path.stat().st_size / 2**20:9.2f} MiB  "
                  f"mmap {load_ms:7.1f} ms  predict_one {one:7.0f} ns  batch "
                  f"{batch / 1e6:6.2f} M rows/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/shared/data")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    real = Path(args.data) / "criteo_kaggle_labeled_dedup.tsv.gz"
    dicts, _ = criteo_rows(1000, seed=11)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not real.exists():
            real = folder / "synthetic.tsv"
            real.write_bytes(b"".join(make_criteo(20_000, seed=0)))
        for name, model in (("FM k=8, bits=22", FMClassifier()),
                            ("FFM k=4, bits=18", FFMClassifier())):
            (rows,) = read_criteo(str(real), model.hasher_, batch_size=10**7)
            split = rows.n_rows * 4 // 5
            model.partial_fit(rows[:split])
            name = f"{name}, {split} rows"
            measure(name, model, rows[split:], dicts, folder, args.runs)
    print(f"({os.cpu_count()} CPUs; single-row: ns per row over {len(dicts)} dict rows)")


if __name__ == "__main__":
    main()
