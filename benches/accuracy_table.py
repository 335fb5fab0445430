"""Progressive-validation accuracy across kinds of data: fastctr (defaults, --tune) vs VW vs River.

Every learner reads the same rows in the same order, once, and predicts each row before
learning it (VW's ``-p`` while training; River's predict_proba_one then learn_one). Data:

* ``criteo-real``: the first 10,000 rows (time order) of the real Kaggle sample in
  ``$FASTCTR_DATA`` (default ../shared/data); skipped when absent.
* ``criteo-syn``: ``make_criteo`` rows (one-hot categorical values, binned counts).
* ``avazu``: ``make_avazu`` CSV (21 hashed categorical columns and the hour; ``id`` ignored).
* ``text``: ``make_text`` VW lines (TF-IDF values in (0, 1], L2-normalised rows, like RCV1).

Peers get the tokens fastctr hashes: one VW namespace per field (Criteo counts binned as
fastctr bins them), River dicts ``{"field=token": 1.0}`` (text: ``{word: tf-idf}``).

fastctr's defaults carry alpha, beta, l1 and l2 to the size of the feature values measured on
the first batch (``value_scale="auto"``); "value_scale=1" is the model without that (what the
defaults were before). "VW --ftrl (fastctr's values)" is VW's FTRL given the values fastctr's
default FTRL learned with (after that scaling): an independent check of the same model.

    .venv/bin/python benches/accuracy_table.py --rows 50000            # a few minutes
    .venv/bin/python benches/accuracy_table.py --rows 20000 --only text
"""
from __future__ import annotations

import argparse
import gzip
import os
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from fastctr import FFMClassifier, FMClassifier, FTRLClassifier
from fastctr.bench.peers import VW_NAMESPACES, vw_line
from fastctr.io.datasets import make_avazu, make_criteo, make_text
from fastctr.io.detect import hasher_for, read_data
from fastctr.online import metrics
from fastctr.online.training import Progress, train, warm_up

BITS = 20
DATA = Path(os.environ.get("FASTCTR_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def datasets(n: int) -> dict[str, tuple[str, bytes, dict]]:
    """name -> (format, raw bytes, reader options)."""
    out = {}
    real = DATA / "criteo_kaggle_labeled_dedup.tsv.gz"
    if real.exists():
        head = gzip.open(real).read().splitlines(True)[:10_000]
        out["criteo-real"] = ("criteo", b"".join(head), {})
    out["criteo-syn"] = ("criteo", b"".join(make_criteo(n, seed=1)), {})
    out["avazu"] = ("csv", make_avazu(n, seed=1), {"label": "click", "ignore": ["id"]})
    out["text"] = ("vw", make_text(n, seed=1), {})
    return out


def as_vw(fmt: str, raw: bytes) -> tuple[bytes, np.ndarray]:
    """The rows as VW text (one namespace per field) and their 0/1 labels."""
    lines = raw.decode().splitlines()
    if fmt == "vw":
        return raw, np.array([line.startswith("1") for line in lines], np.float64)
    if fmt == "criteo":
        rows = [line.split("\t") for line in lines]
        text = [vw_line(int(r[0]), r[1:]) for r in rows]
    else:
        header = lines[0].split(",")
        keep = [j for j, name in enumerate(header) if name not in ("id", "click")]
        label = header.index("click")
        rows = [line.split(",") for line in lines[1:]]
        text = [("1" if r[label] == "1" else "-1")
                + "".join(f" |{VW_NAMESPACES[i]} {r[j]}" for i, j in enumerate(keep)) for r in rows]
    labels = np.array([t.startswith("1") for t in text], np.float64)
    return ("\n".join(text) + "\n").encode(), labels


def scores(y: np.ndarray, p: np.ndarray, seconds: float) -> dict:
    return {"log_loss": metrics.log_loss(y, p), "auc": metrics.roc_auc(y, p),
            "ne": metrics.normalized_entropy(y, p), "rows_per_s": len(y) / seconds}


def run_fastctr(cls, fmt: str, raw: bytes, opts: dict, tune: bool, **params) -> dict:
    hasher = hasher_for(fmt, raw, bits=BITS, **opts)
    model = cls(bits=BITS, **params,
                **{k: v for k, v in hasher.get_params().items() if k in ("fields", "numeric")})
    warm_up(model)
    reader_opts = {"label": opts["label"]} if fmt == "csv" else {}
    n = raw.count(b"\n") - (fmt == "csv")
    # report_every past the end: the report's AUC window is the whole stream
    report = train(model, read_data(raw, fmt, model.hasher_, **reader_opts), tune=tune,
                   tune_rows=max(1_000, n // 10), report_every=10**9, progress=Progress(enabled=False))
    chosen = report.get("tune", {}).get("chosen", {})
    notes = [f"{k}={v:.3g}" for k, v in chosen.items()]
    if model.value_scale_ != 1.0:
        notes.append(f"value scale {model.value_scale_:.3g}")
    return {"log_loss": report["log_loss"], "ne": report["normalized_entropy"],
            "auc": report["auc"], "rows_per_s": report["rows_per_s"], "note": " ".join(notes),
            "hyper": model._linear_hyper()}


def run_vw(vw_text: bytes, y: np.ndarray, args: str) -> dict:
    from vowpalwabbit import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        data, preds = Path(tmp) / "d.vw", Path(tmp) / "p.txt"
        data.write_bytes(vw_text)
        t0 = time.perf_counter()
        Workspace(f"--quiet -b {BITS} --loss_function logistic --link logistic {args} "
                  f"-d {data} -p {preds}").finish()
        seconds = time.perf_counter() - t0
        return {**scores(y, np.loadtxt(preds), seconds), "note": args or "defaults"}


def run_river(fmt: str, vw_text: bytes, y: np.ndarray) -> dict:
    from river import linear_model

    model = linear_model.LogisticRegression()
    rows = []
    for line in vw_text.decode().splitlines():
        x = {}
        for chunk in line.split("|")[1:]:
            ns, *feats = chunk.split()
            for f in feats:
                name, _, v = f.partition(":")
                x[f"{ns}={name}"] = float(v) if v else 1.0
        rows.append(x)
    p = np.empty(len(rows))
    t0 = time.perf_counter()
    for i, (x, label) in enumerate(zip(rows, y)):
        p[i] = model.predict_proba_one(x).get(True, 0.0)
        model.learn_one(x, bool(label))
    return {**scores(y, np.clip(p, 1e-15, 1 - 1e-15), time.perf_counter() - t0),
            "note": "LogisticRegression() defaults"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000, help="rows of each synthetic set")
    parser.add_argument("--only", action="append", help="data sets to run (default: all)")
    parser.add_argument("--no-river", action="store_true", help="skip River (the slowest)")
    args = parser.parse_args()
    table = []
    for name, (fmt, raw, opts) in datasets(args.rows).items():
        if args.only and name not in args.only:
            continue
        vw_text, y = as_vw(fmt, raw)
        fast = partial(run_fastctr, fmt=fmt, raw=raw, opts=opts)
        used = {}  # the values fastctr's default FTRL learned with, for VW --ftrl

        def vw_ftrl(used=used, vw_text=vw_text, y=y):
            h = used["hyper"]
            return run_vw(vw_text, y, f"--ftrl --ftrl_alpha {h['alpha']:.6g} --ftrl_beta "
                                      f"{h['beta']:.6g} --l1 {h['l1']:.6g} --l2 {h['l2']:.6g}")

        runs = {
            "fastctr FTRL, value_scale=1 (the defaults before)":
                partial(fast, FTRLClassifier, tune=False, value_scale=1.0),
            "fastctr FTRL defaults": partial(fast, FTRLClassifier, tune=False),
            "fastctr FTRL --tune": partial(fast, FTRLClassifier, tune=True),
            "fastctr FM defaults": partial(fast, FMClassifier, tune=False),
            "fastctr FFM defaults": partial(fast, FFMClassifier, tune=False),
            "VW defaults": partial(run_vw, vw_text, y, ""),
            "VW --ftrl (fastctr's values)": vw_ftrl,
        }
        if not args.no_river:
            runs["River LogisticRegression"] = partial(run_river, fmt, vw_text, y)
        for learner, run in runs.items():
            r = run()
            if learner == "fastctr FTRL defaults":
                used.update(r)
            table.append((name, len(y), learner, r))
            print(f"| {name} | {len(y):,} | {learner} | {r['log_loss']:.4f} | {r['auc']:.4f} | "
                  f"{r['ne']:.4f} | {r['rows_per_s']:,.0f} | {r.get('note', '')} |", flush=True)


if __name__ == "__main__":
    print("| data | rows | learner | log loss | AUC | NE | rows/s | note |")
    print("|---|---|---|---|---|---|---|---|")
    main()
