"""Peer comparison: fastctr against Vowpal Wabbit, River, scikit-learn and LightGBM.

Every peer learns the same training rows in the same order (one pass, except LightGBM, a
batch learner) and is scored on the same later test rows. Each peer runs in its own fresh
process pinned to one CPU, so its peak memory (``ru_maxrss``) is its own and no learner gets
more than one core. Peers that are not installed are skipped with a note, never faked.

Features are matched: peers that do not read Criteo TSV themselves get the tokens fastctr
hashes (numeric fields binned with fastctr's ``bin`` transform, categorical values as they
are), one field per VW namespace; that conversion is timed apart from training
(``prep_s``). Speed ratios compare each learner on its own native input.

Entry point: :func:`run_comparison` (the ``fastctr bench --peers`` command).
"""
from __future__ import annotations

import gzip
import importlib
import itertools
import json
import logging
import math
import multiprocessing
import os
import resource
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fastctr.io.hashing import CRITEO_FIELDS, CRITEO_NUMERIC
from fastctr.online import metrics

log = logging.getLogger(__name__)

REAL_DATA = "criteo_kaggle_labeled_dedup.tsv.gz"
REAL_TRAIN_ROWS = 8_000  # rows 1-8000 train, 8001-10000 test: the time-ordered Kaggle head
REAL_TEST_ROWS = 2_000
SUSPICIOUS_AUC = 0.95  # above this on CTR data, suspect leakage before celebrating
MAX_SHARED_LINES = 0.01  # fraction of test lines also in training that counts as a leak
REFERENCE = "fastctr-ftrl"
LATENCY_ROWS = 10_000  # distinct test rows that predict_one calls cycle through

#: one namespace letter per Criteo field (I1..I13: a..m, C1..C26: n..z, A..M)
VW_NAMESPACES = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLM"
#: namespace pairs (C1 x C5, C2 x C8) for VW's -q and --lrq: two of the synthetic stream's
#: hidden interactions, also plausible on real Criteo data
VW_PAIRS = ("nr", "ou")


class LeakageError(ValueError):
    """Test rows were also training rows."""


@dataclass
class Settings:
    """What every peer shares: data files, sizes, hashing bits and fastctr's FTRL parameters."""

    train_path: str
    test_path: str
    n_train: int
    n_test: int
    bits: int = 22
    alpha: float = field(default_factory=lambda: _ftrl_default("alpha"))
    beta: float = field(default_factory=lambda: _ftrl_default("beta"))
    l1: float = field(default_factory=lambda: _ftrl_default("l1"))
    l2: float = field(default_factory=lambda: _ftrl_default("l2"))
    river_rows: int = 50_000
    river_fm_rows: int = 10_000
    latency_calls: int = 2_000
    sgd_batch: int = 10_000
    lgbm_rounds: int = 100
    workdir: str = ""


def _ftrl_default(name: str) -> float:
    from fastctr.models.ftrl import FTRLClassifier

    return FTRLClassifier().get_params()[name]


@dataclass
class PeerResult:
    """One row of the comparison table (rates in rows/s, latencies in microseconds)."""

    peer: str
    kind: str
    settings: str
    train_rows: int = 0
    prep_s: float = 0.0
    train_s: float = 0.0
    train_rows_per_s: float = math.nan
    predict_one_median_us: float = math.nan
    predict_one_p99_us: float = math.nan
    predict_rows_per_s: float = math.nan
    auc: float = math.nan
    log_loss: float = math.nan
    peak_rss_mb: float = math.nan
    rss_growth_mb: float = math.nan
    notes: list[str] = field(default_factory=list)


# -- data --------------------------------------------------------------------------------


def prepare_synthetic(n_train: int, n_test: int, workdir: Path, *, seed: int = 0,
                      test_start: int | None = None) -> tuple[range, range]:
    """Write rows [0, n_train) of ``make_criteo`` to train.tsv and the later rows to test.tsv.

    ``test_start`` (default ``n_train``) exists to test the leakage check; the returned row
    ranges are what :func:`check_split` verifies.
    """
    from fastctr.io.datasets import make_criteo

    start = n_train if test_start is None else test_start
    train, test = range(0, n_train), range(start, start + n_test)
    with open(workdir / "train.tsv", "wb") as ftrain, open(workdir / "test.tsv", "wb") as ftest:
        for i, line in enumerate(_lines(make_criteo(max(train.stop, test.stop), seed=seed))):
            if i in train:
                ftrain.write(line)
            if i in test:
                ftest.write(line)
    return train, test


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    for chunk in chunks:
        yield from chunk.splitlines(keepends=True)


def prepare_real(workdir: Path, data_dir: str | os.PathLike | None = None) -> tuple[range, range]:
    """Rows 1-8000 of the real Criteo sample to train.tsv, rows 8001-10000 to test.tsv."""
    path = real_data_path(data_dir)
    train = range(0, REAL_TRAIN_ROWS)
    test = range(REAL_TRAIN_ROWS, REAL_TRAIN_ROWS + REAL_TEST_ROWS)
    with gzip.open(path, "rb") as f:
        lines = f.readlines()[: test.stop]
    if len(lines) < test.stop:
        raise ValueError(f"{path}: {len(lines)} rows, need {test.stop}")
    (workdir / "train.tsv").write_bytes(b"".join(lines[train.start:train.stop]))
    (workdir / "test.tsv").write_bytes(b"".join(lines[test.start:test.stop]))
    return train, test


def real_data_path(data_dir: str | os.PathLike | None = None) -> Path:
    """The real sample: ``data_dir``, else $FASTCTR_DATA, else ../shared/data of the repo."""
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    folder = Path(data_dir or os.environ.get("FASTCTR_DATA") or default)
    path = folder / REAL_DATA
    if not path.exists():
        raise FileNotFoundError(f"no real Criteo sample at {path}: set FASTCTR_DATA to its folder")
    return path


def check_split(train: range, test: range, train_path: Path, test_path: Path) -> int:
    """Raise :class:`LeakageError` if the test rows overlap the training rows.

    Checks the row ranges, then the content (test lines that also occur in training, which
    a deduplicated log should not have). Returns the number of shared lines.
    """
    overlap = range(max(train.start, test.start), min(train.stop, test.stop))
    if len(overlap):
        raise LeakageError(f"test rows {test.start}..{test.stop - 1} overlap training rows "
                           f"{train.start}..{train.stop - 1} ({len(overlap)} rows)")
    with open(train_path, "rb") as f:
        seen = {hash(line) for line in f}
    with open(test_path, "rb") as f:
        shared = sum(hash(line) in seen for line in f)
    if shared > MAX_SHARED_LINES * max(len(test), 1):
        raise LeakageError(f"{shared} of {len(test)} test lines also occur in the training file")
    return shared


def iter_tsv(path: str, limit: int | None = None) -> Iterator[tuple[int, list[str]]]:
    """(label, the 39 raw field strings) of the first ``limit`` lines ('' when missing).

    Streams, so that a peer's peak memory is its learner's, not a Python copy of the file.
    """
    width = len(CRITEO_FIELDS)
    with open(path, encoding="ascii") as f:
        for line in itertools.islice(f, limit):
            label, *values = line.rstrip("\r\n").split("\t")
            yield int(label), values + [""] * (width - len(values))


def read_tsv(path: str, limit: int | None = None) -> tuple[np.ndarray, list[list[str]]]:
    """Labels and raw field strings of the first ``limit`` lines, as a whole (small files)."""
    pairs = list(iter_tsv(path, limit))
    return np.array([p[0] for p in pairs], np.int8), [p[1] for p in pairs]


def _batches(path: str, size: int) -> Iterator[list[tuple[int, list[str]]]]:
    rows = iter_tsv(path)
    while batch := list(itertools.islice(rows, size)):
        yield batch


def numeric_bin(value: str) -> int:
    """fastctr's ``bin`` transform (see :mod:`fastctr.io.hashing`): the token a count becomes."""
    x = float(value)
    return math.floor(x) if x <= 2 else 3 + math.floor(math.log(x) ** 2)


def tokens(values: Sequence[str]) -> list[tuple[int, str]]:
    """(field position, token) of every present field: numeric values binned as fastctr does."""
    n_numeric = len(CRITEO_NUMERIC)
    return [(j, str(numeric_bin(v)) if j < n_numeric else v) for j, v in enumerate(values) if v]


def vw_line(label: int | None, values: Sequence[str]) -> str:
    """A VW text line with one namespace per field, e.g. ``1 |a 3 |n 68fd1e64 ...``."""
    head = "" if label is None else ("1" if label else "-1")
    return head + "".join(f" |{VW_NAMESPACES[j]} {tok}" for j, tok in tokens(values))


def dict_row(values: Sequence[str]) -> dict[str, int | str]:
    """The raw request fastctr's ``predict_one`` takes: present fields only, counts as int."""
    n_numeric = len(CRITEO_NUMERIC)
    return {name: (int(float(v)) if j < n_numeric else v)
            for j, (name, v) in enumerate(zip(CRITEO_FIELDS, values)) if v}


# -- timing ------------------------------------------------------------------------------


def latency_us(fn: Callable[[Any], Any], inputs: Sequence, calls: int) -> tuple[float, float]:
    """Median and p99 of one call in microseconds, over ``calls`` calls cycling ``inputs``.

    A warm-up pass comes first; each call is timed alone (perf_counter_ns adds ~0.05 us).
    """
    for x in inputs[: min(len(inputs), 100)]:
        fn(x)
    times = np.empty(calls)
    clock = time.perf_counter_ns
    for i in range(calls):
        x = inputs[i % len(inputs)]
        t0 = clock()
        fn(x)
        times[i] = clock() - t0
    return float(np.median(times) / 1e3), float(np.percentile(times, 99) / 1e3)


def _score(result: PeerResult, y: np.ndarray, p: np.ndarray) -> None:
    p = np.clip(np.asarray(p, np.float64), 1e-15, 1 - 1e-15)
    result.auc = metrics.roc_auc(y, p)
    result.log_loss = metrics.log_loss(y, p)


# -- peers ---------------------------------------------------------------------------------


def _fastctr_model(s: Settings, name: str):
    if name == "ftrl":
        from fastctr.models.ftrl import FTRLClassifier

        return FTRLClassifier(alpha=s.alpha, beta=s.beta, l1=s.l1, l2=s.l2, bits=s.bits)
    from fastctr.models import fm

    if name == "ffm":  # its state is 2**bits x 40 fields x 2k: at 2**22 it would be ~10 GB
        return fm.FFMClassifier()
    return fm.FMClassifier(bits=s.bits)


def _warm_up(s: Settings, name: str) -> None:
    """Load or compile the numba kernels on a throwaway model, as a server would at start."""
    from fastctr.io.criteo import read_criteo

    model = _fastctr_model(s, name)
    batch = next(iter(read_criteo(s.train_path, model.hasher_, batch_size=1_000)))
    model.partial_fit(batch)
    model.predict_proba(batch)


def run_fastctr(s: Settings, name: str) -> PeerResult:
    """fastctr end to end from the TSV file: parse + hash + learn, then the same for test."""
    from fastctr.io.criteo import read_criteo

    _warm_up(s, name)
    model = _fastctr_model(s, name)
    r = PeerResult(f"fastctr-{name}", "online, 1 pass", repr(model))
    if model.bits != s.bits:
        r.notes.append(f"2**{model.bits} buckets (its default), not 2**{s.bits}")
    t0 = time.perf_counter()
    learn_s = 0.0
    for batch in read_criteo(s.train_path, model.hasher_):
        t1 = time.perf_counter()
        model.partial_fit(batch)
        learn_s += time.perf_counter() - t1
        r.train_rows += batch.n_rows
    r.train_s = time.perf_counter() - t0
    r.train_rows_per_s = r.train_rows / r.train_s
    r.notes.append(f"training = parse + hash + learn from the TSV file; learning alone "
                   f"{r.train_rows / learn_s:,.0f} rows/s")
    t0 = time.perf_counter()
    ys, ps = [], []
    for batch in read_criteo(s.test_path, model.hasher_):
        ys.append(batch.labels)
        ps.append(model.predict_proba(batch)[:, 1])
    r.predict_rows_per_s = s.n_test / (time.perf_counter() - t0)
    _score(r, np.concatenate(ys), np.concatenate(ps))
    _, raw = read_tsv(s.test_path, LATENCY_ROWS)
    requests = [dict_row(v) for v in raw]
    r.predict_one_median_us, r.predict_one_p99_us = latency_us(model.predict_one, requests,
                                                               s.latency_calls)
    # the raw TSV line is what VW's predict gets (a text line it parses): time that form too
    lines = ["\t".join(v).encode() for v in raw]
    median, p99 = latency_us(model.predict_one, lines, s.latency_calls)
    r.notes.append(f"predict_one on the raw TSV line instead of a dict: {median:.2f} us median, "
                   f"{p99:.2f} us p99")
    return r


VW_MODES = {
    "sgd": ("", "VW default (adaptive, normalized, invariant SGD, lr 0.5)"),
    "ftrl": ("--ftrl --ftrl_alpha {alpha} --ftrl_beta {beta} --l1 {l1} --l2 {l2}",
             "VW --ftrl with fastctr's alpha, beta, l1, l2"),
    "q": (" ".join(f"-q {p}" for p in VW_PAIRS), f"VW SGD with -q {' -q '.join(VW_PAIRS)} (C1xC5, C2xC8)"),
    "lrq": (" ".join(f"--lrq {p}8" for p in VW_PAIRS), "VW SGD with --lrq rank 8 on C1xC5, C2xC8"),
}


def convert_to_vw(src: str, dst: str) -> None:
    """TSV to VW text with fastctr's tokens, one namespace per field."""
    with open(dst, "w") as f:
        f.writelines(vw_line(label, v) + "\n" for label, v in iter_tsv(src))


def _vw_data(s: Settings) -> float:
    """Convert train and test to VW text once for all VW modes; the conversion's seconds."""
    work = Path(s.workdir)
    timing = work / "vw-prep-seconds"
    if not timing.exists():
        t0 = time.perf_counter()
        convert_to_vw(s.train_path, str(work / "train.vw"))
        convert_to_vw(s.test_path, str(work / "test.vw"))
        timing.write_text(repr(time.perf_counter() - t0))
    return float(timing.read_text())


def run_vw(s: Settings, mode: str) -> PeerResult:
    """VW through its own driver on a VW text file (its fastest path), one pass."""
    from vowpalwabbit import Workspace

    extra, what = VW_MODES[mode]
    extra = extra.format(alpha=s.alpha, beta=s.beta, l1=s.l1, l2=s.l2)
    work = Path(s.workdir)
    model_path, preds_path = work / f"vw-{mode}.model", work / f"vw-{mode}.preds"
    args = f"--quiet -b {s.bits} --loss_function logistic --link logistic {extra}".strip()
    r = PeerResult(f"vw-{mode}", "online, 1 pass", f"{what}: {args}", train_rows=s.n_train)
    r.prep_s = _vw_data(s)
    with open(work / "test.vw") as f:
        labeled = f.read().splitlines()
    y_test = np.array([line.startswith("1") for line in labeled], np.int8)
    test_lines = [line.split(" ", 1)[1] for line in labeled[:LATENCY_ROWS]]
    t0 = time.perf_counter()
    Workspace(f"{args} -d {work / 'train.vw'} -f {model_path}").finish()
    r.train_s = time.perf_counter() - t0
    r.train_rows_per_s = s.n_train / r.train_s
    t0 = time.perf_counter()
    Workspace(f"--quiet -t -i {model_path} -d {work / 'test.vw'} -p {preds_path}").finish()
    r.predict_rows_per_s = s.n_test / (time.perf_counter() - t0)
    _score(r, y_test, np.loadtxt(preds_path, ndmin=1))
    vw = Workspace(f"--quiet -t -i {model_path}")
    r.predict_one_median_us, r.predict_one_p99_us = latency_us(vw.predict, test_lines,
                                                               s.latency_calls)
    vw.finish()
    r.notes.append("prep = TSV to VW text in Python (done once for all VW modes); "
                   "predict_one parses a VW text line")
    return r


def _river_rows(path: str, limit: int) -> tuple[np.ndarray, list[dict[str, float]]]:
    y, raw = read_tsv(path, limit)
    return y, [{f"{CRITEO_FIELDS[j]}={tok}": 1.0 for j, tok in tokens(v)} for v in raw]


def run_river(s: Settings, mode: str) -> PeerResult:
    """River learn_one on a prefix of the training rows (one-hot token dicts): it is slow.

    Test predictions use the same number of leading test rows.
    """
    from river import facto, linear_model, optim

    if mode == "ftrl":
        model = linear_model.LogisticRegression(
            optimizer=optim.FTRLProximal(alpha=s.alpha, beta=s.beta, l1=s.l1, l2=s.l2))
    else:
        model = facto.FMClassifier(n_factors=8, seed=0)
    n = min(s.n_train, s.river_rows if mode == "ftrl" else s.river_fm_rows)
    r = PeerResult(f"river-{mode}", "online, 1 pass", repr(model).replace("\n", " "),
                   train_rows=n)
    t0 = time.perf_counter()
    y, rows = _river_rows(s.train_path, n)
    y_test, test_rows = _river_rows(s.test_path, n)
    r.prep_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for x, label in zip(rows, y):
        model.learn_one(x, bool(label))
    r.train_s = time.perf_counter() - t0
    r.train_rows_per_s = n / r.train_s
    t0 = time.perf_counter()
    p = [model.predict_proba_one(x).get(True, 0.0) for x in test_rows]
    r.predict_rows_per_s = len(test_rows) / (time.perf_counter() - t0)
    _score(r, y_test, p)
    r.predict_one_median_us, r.predict_one_p99_us = latency_us(model.predict_proba_one,
                                                               test_rows, s.latency_calls)
    if n < s.n_train:
        r.notes.append(f"SUBSET: trained on the first {n:,} of {s.n_train:,} rows and tested on the "
                       f"first {len(y_test):,} test rows (too slow for all); rows/s from the "
                       "subset, AUC/log loss not comparable")
    return r


def _sklearn_tokens(values: Sequence[str]) -> list[str]:
    return [f"{CRITEO_FIELDS[j]}={tok}" for j, tok in tokens(values)]


def run_sklearn(s: Settings) -> PeerResult:
    """FeatureHasher + SGDClassifier(log_loss).partial_fit on streamed batches, one pass."""
    from sklearn.feature_extraction import FeatureHasher
    from sklearn.linear_model import SGDClassifier

    hasher = FeatureHasher(n_features=2**s.bits, input_type="string")
    model = SGDClassifier(loss="log_loss")
    r = PeerResult("sklearn-sgd", "online, 1 pass (mini-batches)",
                   f"FeatureHasher(2**{s.bits}, string) + SGDClassifier(log_loss).partial_fit, "
                   f"batches of {s.sgd_batch:,}", train_rows=s.n_train)
    clock = time.perf_counter
    for batch in _batches(s.train_path, s.sgd_batch):
        t0 = clock()
        toks = [_sklearn_tokens(v) for _, v in batch]
        t1 = clock()
        model.partial_fit(hasher.transform(toks), [y for y, _ in batch], classes=[0, 1])
        r.prep_s += t1 - t0
        r.train_s += clock() - t1
    r.train_rows_per_s = s.n_train / r.train_s
    y_test, ps, predict_s = [], [], 0.0
    for batch in _batches(s.test_path, s.sgd_batch):
        toks = [_sklearn_tokens(v) for _, v in batch]
        t0 = clock()
        ps.append(model.predict_proba(hasher.transform(toks))[:, 1])
        predict_s += clock() - t0
        y_test += [y for y, _ in batch]
    r.predict_rows_per_s = s.n_test / predict_s
    _score(r, np.array(y_test), np.concatenate(ps))
    _, raw = read_tsv(s.test_path, LATENCY_ROWS)
    r.predict_one_median_us, r.predict_one_p99_us = latency_us(
        lambda t: model.predict_proba(hasher.transform([t])), [_sklearn_tokens(v) for v in raw],
        s.latency_calls)
    r.notes.append("training includes FeatureHasher.transform; prep = TSV to token lists, "
                   "streamed per batch")
    return r


def _lgbm_matrix(path: str, n_rows: int, codes: list[dict[str, int]],
                 learn_codes: bool) -> tuple[np.ndarray, np.ndarray]:
    """Labels and a float32 matrix streamed from a TSV file: counts as numbers, categorical
    values as integer codes (new codes when ``learn_codes``, else NaN when unseen); NaN is
    missing."""
    n_numeric = len(CRITEO_NUMERIC)
    y = np.empty(n_rows, np.int8)
    X = np.full((n_rows, len(CRITEO_FIELDS)), np.nan, np.float32)
    for i, (label, values) in enumerate(iter_tsv(path, n_rows)):
        y[i] = label
        for j, v in enumerate(values):
            if not v:
                continue
            if j < n_numeric:
                X[i, j] = float(v)
            else:
                c = codes[j - n_numeric]
                X[i, j] = c.setdefault(v, len(c)) if learn_codes else c.get(v, np.nan)
    return y, X


def run_lightgbm(s: Settings) -> PeerResult:
    """LightGBM, batch: counts as numbers, categorical values as codes, one thread."""
    import lightgbm

    params = {"objective": "binary", "num_leaves": 63, "learning_rate": 0.1,
              "num_threads": 1, "verbose": -1, "seed": 0}
    r = PeerResult("lightgbm", f"BATCH, {s.lgbm_rounds} boosting rounds (multi-pass)",
                   f"{params}, categorical codes", train_rows=s.n_train)
    t0 = time.perf_counter()
    codes: list[dict[str, int]] = [{} for _ in range(len(CRITEO_FIELDS) - len(CRITEO_NUMERIC))]
    y, X = _lgbm_matrix(s.train_path, s.n_train, codes, learn_codes=True)
    y_test, X_test = _lgbm_matrix(s.test_path, s.n_test, codes, learn_codes=False)
    r.prep_s = time.perf_counter() - t0
    categorical = list(range(len(CRITEO_NUMERIC), len(CRITEO_FIELDS)))
    t0 = time.perf_counter()
    data = lightgbm.Dataset(X, y, categorical_feature=categorical)
    booster = lightgbm.train(params, data, num_boost_round=s.lgbm_rounds)
    r.train_s = time.perf_counter() - t0
    r.train_rows_per_s = s.n_train / r.train_s
    t0 = time.perf_counter()
    p = booster.predict(X_test)
    r.predict_rows_per_s = s.n_test / (time.perf_counter() - t0)
    _score(r, y_test, p)
    r.predict_one_median_us, r.predict_one_p99_us = latency_us(
        booster.predict, [X_test[i:i + 1] for i in range(min(s.n_test, LATENCY_ROWS))],
        s.latency_calls)
    r.notes.append("batch learner: sees every row many times; rows/s = training rows / total "
                   "training time; predict_one on a pre-encoded 1x39 row")
    return r


#: peer name -> (module that must import, runner); fastctr FM/FFM only if fastctr.models.fm exists
PEERS: dict[str, tuple[str, Callable[[Settings], PeerResult]]] = {
    "fastctr-ftrl": ("fastctr.models.ftrl", lambda s: run_fastctr(s, "ftrl")),
    "fastctr-fm": ("fastctr.models.fm", lambda s: run_fastctr(s, "fm")),
    "fastctr-ffm": ("fastctr.models.fm", lambda s: run_fastctr(s, "ffm")),
    **{f"vw-{m}": ("vowpalwabbit", lambda s, m=m: run_vw(s, m)) for m in VW_MODES},
    "river-ftrl": ("river", lambda s: run_river(s, "ftrl")),
    "river-fm": ("river", lambda s: run_river(s, "fm")),
    "sklearn-sgd": ("sklearn", run_sklearn),
    "lightgbm": ("lightgbm", run_lightgbm),
}


def importable(module: str) -> bool:
    """Whether ``module`` imports here (a peer that does not is skipped with a note)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _child(name: str, settings: Settings) -> dict:
    """Run one peer in this (spawned) process on one CPU; add its peak memory."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # interpreter + harness
    result = PEERS[name][1](settings)
    result.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result.rss_growth_mb = result.peak_rss_mb - base
    return asdict(result)


def run_peer(name: str, settings: Settings) -> PeerResult:
    """One peer in a fresh process forked from a clean server that preloaded this harness.

    No state is shared with the caller or with other peers, and the harness imports are
    paid once rather than per peer.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        return PeerResult(**pool.submit(_child, name, settings).result())


# -- the comparison --------------------------------------------------------------------------


def run_comparison(*, data: str = "synthetic", rows: int = 1_000_000, test_rows: int = 200_000,
                   out: str | os.PathLike = "bench-results", peers: Sequence[str] | None = None,
                   data_dir: str | os.PathLike | None = None, test_start: int | None = None,
                   **settings: Any) -> dict:
    """Run every installed peer on the same split; write JSON, markdown and a PNG to ``out``.

    Parameters
    ----------
    data : {"synthetic", "real"}
        ``make_criteo`` rows (``rows`` train, the next ``test_rows`` test) or the real
        Criteo sample (rows 1-8000 train, 8001-10000 test).
    rows, test_rows : int
        Sizes of the synthetic split.
    out : path
        Folder for ``peers-<data>.json``, ``.md`` and ``.png``.
    peers : sequence of str, optional
        Names from :data:`PEERS` (default: all).
    data_dir : path, optional
        Folder of the real sample (default $FASTCTR_DATA or ../shared/data).
    test_start : int, optional
        First synthetic test row (default ``rows``); only to exercise the leakage check.
    **settings
        Overrides of :class:`Settings` fields (bits, alpha, river_rows, latency_calls, ...).

    Returns
    -------
    dict
        ``{"results": [...], "skipped": {...}, "notes": [...], "table": str, "files": {...}}``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = list(PEERS if peers is None else peers)
    unknown = sorted(set(names) - set(PEERS))
    if unknown:
        raise ValueError(f"unknown peers {unknown}; choose from {sorted(PEERS)}")
    with tempfile.TemporaryDirectory(prefix="fastctr-bench-") as tmp:
        work = Path(tmp)
        if data == "real":
            train, test = prepare_real(work, data_dir)
        else:
            train, test = prepare_synthetic(rows, test_rows, work, test_start=test_start)
        shared = check_split(train, test, work / "train.tsv", work / "test.tsv")
        s = Settings(str(work / "train.tsv"), str(work / "test.tsv"), len(train), len(test),
                     workdir=tmp, **settings)
        results, skipped = [], {}
        for name in names:
            module = PEERS[name][0]
            if not importable(module):
                skipped[name] = f"{module} is not installed"
                continue
            t0 = time.perf_counter()
            results.append(run_peer(name, s))
            log.info("bench: %s done in %.1f s", name, time.perf_counter() - t0)
    notes = _notes(data, train, test, shared, s, results)
    stem = out / f"peers-{data}"
    files = {"json": str(stem.with_suffix(".json")), "markdown": str(stem.with_suffix(".md")),
             "png": plot(results, stem.with_suffix(".png"))}
    if files["png"] is None:
        notes.append("chart skipped: matplotlib is not installed")
    table = format_table(results, skipped, notes)
    report = {"data": data, "train_rows": [train.start, train.stop],
              "test_rows": [test.start, test.stop], "settings": asdict(s) | {"workdir": None},
              "results": [asdict(r) for r in results], "skipped": skipped, "notes": notes,
              "table": table, "files": files}
    Path(files["markdown"]).write_text(table + "\n")
    Path(files["json"]).write_text(json.dumps(report, indent=2))
    return report


def _notes(data: str, train: range, test: range, shared: int, s: Settings,
           results: list[PeerResult]) -> list[str]:
    notes = [
        f"data: {data}; train rows {train.start}..{train.stop - 1}, test rows "
        f"{test.start}..{test.stop - 1} (later rows of the same stream); leakage check passed "
        f"(disjoint ranges, {shared} identical lines)",
        f"every peer: same rows in the same order, 2**{s.bits} hash buckets, one pass unless "
        "marked, own process pinned to one CPU",
        "peak RSS: the peer process's maximum resident memory; (+growth) excludes the "
        "interpreter and the harness imports every peer process shares (numpy, numba, fastctr)",
        f"predict_one: median/p99 over {s.latency_calls:,} calls on distinct test rows, each in "
        "the peer's own raw form (fastctr: dict row; VW: text line; River: dict; "
        "scikit-learn: token list; LightGBM: 1x39 array)",
    ]
    for r in results:
        if r.auc > SUSPICIOUS_AUC:
            notes.append(f"SUSPICIOUS: {r.peer} test AUC {r.auc:.3f} > {SUSPICIOUS_AUC}: "
                         "check for leakage")
    return notes


def ratios(results: Sequence[PeerResult]) -> dict[str, tuple[float, float]]:
    """Per peer: (fastctr FTRL's training rows/s / the peer's, peer latency / fastctr's).

    Both read "how many times fastctr FTRL is better" (> 1: fastctr faster).
    """
    ref = next((r for r in results if r.peer == REFERENCE), None)
    if ref is None:
        return {}
    return {r.peer: (ref.train_rows_per_s / r.train_rows_per_s,
                     r.predict_one_median_us / ref.predict_one_median_us) for r in results}


def format_table(results: Sequence[PeerResult], skipped: dict[str, str],
                 notes: Sequence[str]) -> str:
    """The comparison as a markdown table plus its notes."""
    rat = ratios(results)
    head = ("| peer | kind | train rows/s | fastctr speed-up (train) | predict_one median us | "
            "p99 us | fastctr speed-up (latency) | batch predict rows/s | AUC | log loss | "
            "peak RSS MB (+growth) | prep s |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in results:
        train_x, latency_x = rat.get(r.peer, (math.nan, math.nan))
        lines.append(
            f"| {r.peer} | {r.kind} | {r.train_rows_per_s:,.0f} | {train_x:.2f}x | "
            f"{r.predict_one_median_us:.2f} | {r.predict_one_p99_us:.2f} | {latency_x:.2f}x | "
            f"{r.predict_rows_per_s:,.0f} | {r.auc:.4f} | {r.log_loss:.4f} | "
            f"{r.peak_rss_mb:,.0f} (+{r.rss_growth_mb:,.0f}) | {r.prep_s:.2f} |")
    lines.append("")
    lines += [f"- {n}" for n in notes]
    lines += [f"- {r.peer}: {r.settings}" + "".join(f"; {n}" for n in r.notes) for r in results]
    lines += [f"- skipped {name}: {why}" for name, why in skipped.items()]
    return "\n".join(lines)


def plot(results: Sequence[PeerResult], path: Path) -> str | None:
    """Bar charts of training rows/s, predict_one latency and AUC; None without matplotlib."""
    if not importable("matplotlib"):
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    names = [r.peer for r in results]
    panels = [("training rows/s (log)", [r.train_rows_per_s for r in results], True),
              ("predict_one median us (log)", [r.predict_one_median_us for r in results], True),
              ("test AUC", [r.auc for r in results], False)]
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.5 * len(names) + 2))
    for ax, (title, values, log_scale) in zip(axes, panels):
        ax.barh(names, values, color=["tab:red" if n.startswith("fastctr") else "tab:gray"
                                      for n in names])
        ax.set_title(title)
        if log_scale:
            ax.set_xscale("log")
        elif any(np.isfinite(values)):  # AUCs differ in the second decimal: zoom in
            ax.set_xlim(max(0.0, np.nanmin(values) - 0.05), min(1.0, np.nanmax(values) + 0.02))
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)
