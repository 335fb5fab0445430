"""Cold start: what a fresh process pays before and for its first predictions.

Three measurements, each over fresh interpreters (the numba cache warm: an unmeasured first
run fills it), medians reported:

* **steps**: one child times (CPU milliseconds), in order, ``import fastctr``,
  ``fastctr.load``, then the first and second call of each kind of prediction (a batch
  ``predict_proba`` of dict rows and of a reader's rows, ``predict_one`` of a dict and of a
  tab-separated line), for an FTRL, FM and FFM model and a Scorer;
* **import**: the whole process ``python -c "import fastctr"`` against ``import numpy`` (the
  floor: numpy is a core dependency), run in turn;
* **predict**: the whole process ``fastctr predict MODEL DATA -o FILE`` of an FTRL model on
  ``--rows`` test rows against Vowpal Wabbit scoring the same rows with a model of the same
  data (``vw -t -i MODEL -d DATA -p FILE`` through its Python package, as the peer
  comparison runs it; skipped when vowpalwabbit is not installed), run in turn.

Whole-process figures are wall seconds and CPU seconds (user + system, the OS's accounting of
the finished child); ratios are medians of the pairs run back to back.

    python benches/bench_cold_start.py [--runs 9] [--bits 22] [--rows 8000]
    pytest benches/bench_cold_start.py --benchmark-enable        # the same, as a benchmark

The tests that the first calls compile nothing and that prediction never imports numba are
in tests/test_cold_start.py.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: the installed ``fastctr`` command, as a user runs it (beside this interpreter)
_SCRIPT = Path(sys.executable).parent / "fastctr"
FASTCTR = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "fastctr.cli"]

# CPU time of the child (process_time): on a shared, loaded machine wall time mostly measures
# the wait for a core; single-threaded steps cost the same CPU either way.
CHILD = r"""
import json, sys, time
clock = time.process_time
t0 = clock()
import fastctr
t1 = clock()
model = fastctr.load(sys.argv[1])
t2 = clock()
batch = next(iter(fastctr.read_criteo(sys.argv[2], model.hasher_)))
rows = [{"C1": "68fd1e64", "I1": 3, "C2": "80e26c9b"}] * 100
line = "3\t\t\t\t\t\t\t\t\t\t\t\t\t68fd1e64\t80e26c9b"
times = {"import": t1 - t0, "load": t2 - t1}
calls = [("predict_proba rows", lambda: model.predict_proba(batch)),
         ("predict_one dict", lambda: model.predict_one(rows[0])),
         ("predict_one line", lambda: model.predict_one(line))]
if not isinstance(model, fastctr.Scorer):  # a Scorer scores hashed rows only
    calls.insert(0, ("predict_proba dicts", lambda: model.predict_proba(rows)))
for kind, call in calls:
    for which in ("first", "second"):
        start = clock()
        call()
        times[f"{kind} {which}"] = clock() - start
times["numba loaded"] = "numba" in sys.modules
print(json.dumps(times))
"""

VW_PREDICT = ("import sys; from vowpalwabbit import Workspace; "
              "Workspace(f'--quiet -t -i {sys.argv[1]} -d {sys.argv[2]} -p {sys.argv[3]}').finish()")


def save_models(folder: Path, bits: int, train_rows: int, test_rows: int) -> dict[str, Path]:
    """FTRL, FM and FFM models and a Scorer learned from synthetic rows, saved in ``folder``
    with the data (``train.tsv``, ``test.tsv``)."""
    from fastctr import FFMClassifier, FMClassifier, FTRLClassifier, read_criteo
    from fastctr.io.datasets import make_criteo

    (folder / "train.tsv").write_bytes(b"".join(make_criteo(train_rows, seed=1)))
    (folder / "test.tsv").write_bytes(b"".join(make_criteo(test_rows, seed=2)))
    paths = {}
    for name, model in (("ftrl", FTRLClassifier(bits=bits)),
                        ("fm", FMClassifier(bits=bits, k=4)),
                        ("ffm", FFMClassifier(bits=min(bits, 18), k=4))):
        for batch in read_criteo(str(folder / "train.tsv"), model.hasher_):
            model.partial_fit(batch)
        paths[name] = folder / f"{name}.fctr"
        model.save(paths[name])
        if name == "ftrl":
            paths["scorer"] = folder / "scorer.fctr"
            model.to_scorer().save(paths["scorer"])
    return paths


def cold_start(path: Path, data: Path, runs: int) -> dict[str, float]:
    """Median seconds of each step over ``runs`` fresh interpreters (after one unmeasured)."""
    samples = []
    for i in range(runs + 1):
        out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(data)], cwd=ROOT,
                             check=True, capture_output=True, text=True).stdout
        if i:  # the first child may compile what numba's cache lacks
            samples.append(json.loads(out))
    return {k: statistics.median(s[k] for s in samples) for k in samples[0]}


def whole_process(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one run of ``argv``, start-up included."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def in_turn(a: list[str], b: list[str], runs: int) -> dict[str, float]:
    """Medians of A's and B's wall and CPU seconds, and of the ratios A/B pair by pair, over
    ``runs`` pairs run A B A B ... (after one unmeasured pair)."""
    pairs = [(whole_process(a), whole_process(b)) for _ in range(runs + 1)][1:]
    med = statistics.median
    return {"A wall": med(p[0][0] for p in pairs), "A cpu": med(p[0][1] for p in pairs),
            "B wall": med(p[1][0] for p in pairs), "B cpu": med(p[1][1] for p in pairs),
            "A/B wall": med(p[0][0] / p[1][0] for p in pairs),
            "A/B cpu": med(p[0][1] / p[1][1] for p in pairs)}


def vw_model(folder: Path, bits: int) -> tuple[Path, Path] | None:
    """A VW logistic model of train.tsv and test.tsv as VW text, or None without VW."""
    try:
        from vowpalwabbit import Workspace
    except ImportError:
        return None
    from fastctr.bench.peers import convert_to_vw

    for name in ("train", "test"):
        convert_to_vw(str(folder / f"{name}.tsv"), str(folder / f"{name}.vw"))
    model = folder / "vw.model"
    Workspace(f"--quiet --loss_function logistic --link logistic -b {bits} "
              f"-d {folder / 'train.vw'} -f {model}").finish()
    return model, folder / "test.vw"


def process_comparisons(folder: Path, paths: dict[str, Path], bits: int,
                        runs: int) -> dict[str, dict[str, float]]:
    """``import fastctr`` against ``import numpy``; ``fastctr predict`` against VW's."""
    report = {"import fastctr vs import numpy": in_turn(
        [sys.executable, "-c", "import fastctr"], [sys.executable, "-c", "import numpy"], runs)}
    predict = [*FASTCTR, "predict", str(paths["ftrl"]), str(folder / "test.tsv"),
               "-o", str(folder / "p.txt")]
    vw = vw_model(folder, bits)
    if vw is None:
        print("vowpalwabbit is not installed: fastctr predict is not compared with VW")
    else:
        report["fastctr predict vs vw -t"] = in_turn(
            predict, [sys.executable, "-c", VW_PREDICT, str(vw[0]), str(vw[1]),
                      str(folder / "vw.preds")], runs)
    return report


def test_cold_start(benchmark, enabled, tmp_path):
    bits, runs = (22, 5) if enabled else (18, 1)
    paths = save_models(tmp_path, bits, 100_000 if enabled else 2_000, 8_000 if enabled else 500)

    def measure():
        steps = {n: cold_start(p, tmp_path / "test.tsv", runs) for n, p in paths.items()}
        return steps, process_comparisons(tmp_path, paths, bits, runs)

    steps, processes = benchmark.pedantic(measure, rounds=1, iterations=1)
    for name, times in steps.items():
        for step, seconds in times.items():
            benchmark.extra_info[f"{name} {step} ms"] = round(seconds * 1e3, 2)
        assert times["predict_proba rows first"] < 1.0  # a smoke check; the figures are the point
    for name, figures in processes.items():
        for what, value in figures.items():
            benchmark.extra_info[f"{name}: {what}"] = round(value, 4)
    assert not steps["ftrl"]["numba loaded"] and not steps["scorer"]["numba loaded"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="fresh interpreters per figure")
    parser.add_argument("--bits", type=int, default=22, help="FTRL and FM buckets (FFM: <= 18)")
    parser.add_argument("--rows", type=int, default=8_000, help="test rows fastctr predict scores")
    parser.add_argument("--train-rows", type=int, default=100_000, help="rows the models learn")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = save_models(folder, args.bits, args.train_rows, args.rows)
        steps = {name: cold_start(path, folder / "test.tsv", args.runs)
                 for name, path in paths.items()}
        processes = process_comparisons(folder, paths, args.bits, args.runs)
    print(f"steps: median of {args.runs} fresh interpreters, warm numba cache, CPU "
          f"milliseconds (predict_proba rows: a reader batch of {args.rows} test rows)")
    print(f"{'step':<28}" + "".join(f"{name:>10}" for name in steps))
    for step in dict.fromkeys(k for times in steps.values() for k in times):
        cells = (steps[n].get(step) for n in steps)
        print(f"{step:<28}" + "".join(
            f"{'':>10}" if c is None else f"{str(c):>10}" if isinstance(c, bool)
            else f"{c * 1e3:10.2f}" for c in cells))
    print(f"\nwhole processes: median of {args.runs} pairs run in turn, seconds")
    for name, figures in processes.items():
        print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
