"""Cold start: ``import fastctr``, loading an FTRL model or a Scorer and predicting with it
never import numba (the prediction path is compiled Cython); an FM or FFM model loaded in a
fresh process has every numba kernel its first predictions call ready, so the first call of
each kind (a batch ``predict_proba`` of dicts or of a reader's rows, ``predict_one`` of a dict
or a line) compiles and loads nothing.

Checked by what is imported and by numba's own counters, not by a clock: each of fastctr's
numba dispatchers keeps its compiled signatures and its cache hits and misses; they must not
move during the first calls. (The timings are in benches/bench_cold_start.py.)
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fastctr import FFMClassifier, FMClassifier, FTRLClassifier
from fastctr.io.datasets import make_criteo

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys
import fastctr
from fastctr.io.criteo import read_criteo

def dispatchers():
    # every numba dispatcher of fastctr's kernel modules, however it got imported
    found = {}
    for name, module in list(sys.modules.items()):
        if name.startswith("fastctr.") and module is not None:
            for attr, obj in vars(module).items():
                if hasattr(obj, "stats") and hasattr(obj, "signatures"):
                    found[f"{obj.py_func.__module__}.{obj.py_func.__name__}"] = obj
    return found

def counters():
    return {name: [len(d.signatures), sum(d.stats.cache_hits.values()),
                   sum(d.stats.cache_misses.values())] for name, d in dispatchers().items()}

path, data, mmap = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
model = fastctr.load(path, mmap=mmap)
before = counters()
line = open(data).readline().rstrip("\n").split("\t", 1)[1]  # a test-set line: no label
batch = next(iter(read_criteo(data, model.hasher_)))
dicts = [{"C1": "68fd1e64", "I1": 3}, {"C2": "80e26c9b"}]
model.predict_proba(dicts)
model.predict_proba(batch)
model.decision_function(batch)
model.predict_one(dicts[0])
model.predict_one(line)
after = counters()
print(json.dumps({"moved": {k: [before.get(k), v] for k, v in after.items()
                            if before.get(k) != v},
                  "dispatchers": len(after)}))
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("cold") / "rows.tsv"
    path.write_bytes(b"".join(make_criteo(300, seed=3)))
    return path


@pytest.mark.parametrize("cls, mmap", [(FMClassifier, False), (FMClassifier, True),
                                       (FFMClassifier, False)])
def test_first_predictions_after_load_compile_nothing(cls, mmap, data, tmp_path):
    from fastctr import read_criteo

    model = cls(bits=18, k=2)
    for batch in read_criteo(str(data), model.hasher_):
        model.partial_fit(batch)
    path = tmp_path / "model.fctr"
    model.save(path)
    # twice: the first child may compile what the numba cache lacks (during load, not after)
    for _ in range(2):
        run = subprocess.run([sys.executable, "-c", CHILD, str(path), str(data), str(int(mmap))],
                             cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.splitlines()[-1])
    assert report["dispatchers"] > 0  # the probe sees the kernels at all
    assert report["moved"] == {}, (
        "the first predictions after load compiled or loaded kernels "
        "(name: [signatures, cache hits, cache misses] before and after): "
        f"{report['moved']}")


NUMBA_FREE = r"""
import json, sys
import fastctr
imported = {"import fastctr": "numba" in sys.modules}
import fastctr.cli
imported["import fastctr.cli"] = "numba" in sys.modules
path, data, mmap = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
model = fastctr.load(path, mmap=mmap)
imported["load"] = "numba" in sys.modules
line = open(data).readline().rstrip("\n").split("\t", 1)[1]  # a test-set line: no label
batch = next(iter(fastctr.read_criteo(data, model.hasher_)))
model.predict_one({"C1": "68fd1e64", "I1": 3})
model.predict_one(line)
model.predict_proba(batch)
if isinstance(model, fastctr.FTRLClassifier):
    model.predict_proba([{"C1": "68fd1e64", "I1": 3}, {"C2": "80e26c9b"}])
    model.decision_function(batch)
    model.predict(batch)
imported["predictions"] = "numba" in sys.modules
fastctr.cli.main(["predict", path, data, "-o", sys.argv[4]])
imported["fastctr predict"] = "numba" in sys.modules
print(json.dumps(imported))
"""


@pytest.mark.parametrize("kind, mmap", [("ftrl", False), ("ftrl", True), ("scorer", False),
                                        ("scorer", True)])
def test_prediction_never_imports_numba(kind, mmap, data, tmp_path):
    """import fastctr, loading an FTRL model or a Scorer, its first predictions of every kind
    and `fastctr predict` leave numba unloaded: a process that only predicts never pays for
    it (~0.6 s of CPU to import)."""
    from fastctr import read_criteo

    model = FTRLClassifier(bits=18)
    for batch in read_criteo(str(data), model.hasher_):
        model.partial_fit(batch)
    path = tmp_path / "model.fctr"
    (model if kind == "ftrl" else model.to_scorer()).save(path)
    run = subprocess.run([sys.executable, "-c", NUMBA_FREE, str(path), str(data), str(int(mmap)),
                          str(tmp_path / "p.txt")], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr
    imported = json.loads(run.stdout.splitlines()[-1])
    assert imported == dict.fromkeys(imported, False), f"numba imported by: {imported}"
    assert len((tmp_path / "p.txt").read_text().split()) == 300  # the CLI did predict


def test_learning_still_loads_numba_when_first_needed(data):
    """The other side: the kernels load on the first call that learns."""
    code = ("import sys, fastctr; rows = [{'C1': 'a'}, {'C1': 'b'}] * 5; "
            "assert 'numba' not in sys.modules; "
            "fastctr.FTRLClassifier(bits=18).fit(rows, [1, 0] * 5); print('numba' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[-1] == "True"
