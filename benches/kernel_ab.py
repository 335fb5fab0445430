"""Thread-time medians of the hot batch paths, for a before/after comparison of two trees.

Run it in each tree in turn, alternating, so both sides meet the same machine load::

    for i in 1 2 3; do
        (cd ../before && PYTHONPATH=$PWD python benches/kernel_ab.py)
        (cd ../after && PYTHONPATH=$PWD python benches/kernel_ab.py)
    done

It times parse+hash of 200K synthetic Criteo rows (``read_criteo``), five epochs of FTRL
``partial_fit`` over them (1M rows) and ``decision_function`` over them, using only the
public API, so it runs unchanged on older trees.
"""
import io
import statistics
import time

from fastctr import FTRLClassifier, read_criteo

try:
    from fastctr.io.datasets import make_criteo
except ImportError:  # a tree from before the io subpackage
    from fastctr.datasets import make_criteo


def thread_time_median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        fn()
        times.append(time.thread_time() - start)
    return statistics.median(times)


def main() -> None:
    data = b"".join(make_criteo(200_000, seed=3))
    hasher = FTRLClassifier(bits=22).hasher_

    def parse():
        return list(read_criteo(io.BytesIO(data), hasher, batch_size=1 << 16))

    batches = parse()

    def fit():
        model = FTRLClassifier(bits=22)
        for _ in range(5):
            for batch in batches:
                model.partial_fit(batch)

    trained = FTRLClassifier(bits=22)
    for batch in batches:
        trained.partial_fit(batch)

    def margins():
        for batch in batches:
            trained.decision_function(batch)

    print(f"parse+hash 200K {thread_time_median(parse, 5) * 1e3:.0f} ms, "
          f"FTRL fit 1M {thread_time_median(fit, 3) * 1e3:.0f} ms, "
          f"margin 200K {thread_time_median(margins, 5) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
