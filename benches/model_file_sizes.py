"""Model file sizes and save/load times, state tables stored whole (format version 1) and by
touched bucket (version 2), for FTRL, FM and FFM on the real Criteo sample and FTRL on 1M
synthetic rows.

    python benches/model_file_sizes.py [--data /work/shared/data] [--runs 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

from fastctr import FFMClassifier, FMClassifier, FTRLClassifier, load, read_criteo
from fastctr.io.datasets import make_criteo
from fastctr.serving import files


def _timed(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, model, folder: Path, runs: int) -> None:
    path = folder / "m.fctr"
    for version, patch in (("v1 whole", mock.patch.object(files, "_sparse_tables",
                                                         lambda arrays: (arrays, {}))),
                           ("v2 sparse", mock.patch.object(files, "_sparse_tables",
                                                           files._sparse_tables))):
        with patch:
            save_s = _timed(lambda: model.save(path), runs)
        load_s = _timed(lambda: load(path), runs)
        print(f"{name:<34} {version:<10} {os.path.getsize(path) / 2**20:10.2f} MiB "
              f"save {save_s * 1e3:8.1f} ms  load {load_s * 1e3:8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/shared/data")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    real = Path(args.data) / "criteo_kaggle_labeled_dedup.tsv.gz"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        synthetic = folder / "synthetic.tsv"
        synthetic.write_bytes(b"".join(make_criteo(1_000_000, seed=0)))
        cases = [("FTRL, real sample", FTRLClassifier(), real),
                 ("FM k=8, real sample", FMClassifier(), real),
                 ("FFM k=4, real sample", FFMClassifier(), real),
                 ("FTRL, 1M synthetic rows", FTRLClassifier(), synthetic)]
        for name, model, data in cases:
            if not Path(data).exists():
                print(f"{name}: {data} is missing, skipped")
                continue
            for batch in read_criteo(str(data), model.hasher_):
                model.partial_fit(batch)
            name = f"{name} {model.bits}b"
            measure(name, model, folder, args.runs)


if __name__ == "__main__":
    main()
