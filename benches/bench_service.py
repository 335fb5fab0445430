"""The service in process: what ``POST /predict`` adds over ``predict_one``, and batch rows/s.

Requests are direct ASGI calls on the app (no network, no HTTP parsing: what the service's
own code costs), timed one by one in thread CPU time (``time.thread_time``: on a shared
machine, wall time also counts the time other processes hold the core); medians are
reported. In the same run:

* ``predict_one``: the model alone, on the same rows (the baseline of the single-row overhead);
* ``/predict``: fastctr's route (orjson body, cheap checks, compiled hash and score), without
  and with ``learn`` (the hashed row kept for feedback);
* ``pydantic route``: a FastAPI route validating a pydantic request model (what one writes
  by hand) around the same ``predict_one``;
* batches of 1,000 rows: ``/predict`` with ``{"rows": [...]}`` of dict rows against
  ``orjson.loads`` of the same body plus ``hasher.transform`` and ``predict_proba`` called
  directly; and of the same rows as tab-separated lines.

    python benches/bench_service.py [--calls 3000] [--bits 22]   # the table
    pytest benches/bench_service.py                               # a smoke run
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import orjson
from fastapi import FastAPI
from pydantic import BaseModel

from fastctr import FTRLClassifier
from fastctr.io.datasets import criteo_rows

#: the CPU time of this thread (what a call costs, not how long others held the core)
CLOCK = time.thread_time


def asgi_post(app, path: str, body: bytes, content_type: bytes = b"application/json"):
    """A coroutine function posting ``body`` to ``path`` on ``app``; returns (status, body)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
             "query_string": b"", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 1),
             "headers": [(b"content-type", content_type),
                         (b"content-length", str(len(body)).encode())]}
    message = {"type": "http.request", "body": body, "more_body": False}

    async def call():
        out = []

        async def receive():
            return message

        async def send(m):
            out.append(m)

        await app(dict(scope), receive, send)
        return out[0]["status"], b"".join(m.get("body", b"") for m in out[1:])

    return call


class HandBody(BaseModel):
    features: dict[str, str | int | float | None]


class HandAnswer(BaseModel):
    ctr_probability: float


def line_of(row: dict, fields) -> str:
    """A dict row as the tab-separated line of its fields' values in schema order."""
    return "\t".join("" if row.get(f) is None else str(row[f]) for f in fields)


def pydantic_app(model) -> FastAPI:
    """The route one writes by hand: a pydantic request model, a response model."""
    app = FastAPI()

    @app.post("/predict", response_model=HandAnswer)
    async def predict(body: HandBody) -> HandAnswer:
        return HandAnswer(ctr_probability=model.predict_one(body.features))

    return app


def interleaved_us(variants: dict, repeat: int, block: int = 50) -> dict:
    """Median microseconds of one call of each variant. ``variants``: name -> (calls, is
    async). The variants take turns, ``block`` calls at a time (caches stay warm within a
    block), so that a slow spell of the machine (another process, a frequency change) falls
    on all of them alike."""
    times: dict = {name: [] for name in variants}

    async def run():
        for first in range(0, repeat, block):
            for name, (calls, is_async) in variants.items():
                for i in range(first, min(first + block, repeat)):
                    f = calls[i % len(calls)]
                    start = CLOCK()
                    if is_async:
                        status, body = await f()
                        elapsed = CLOCK() - start
                        if status != 200:
                            raise RuntimeError(f"{name}: {status}: {body[:200]!r}")
                    else:
                        f()
                        elapsed = CLOCK() - start
                    times[name].append(elapsed)

    asyncio.run(run())
    return {name: 1e6 * statistics.median(t) for name, t in times.items()}


def measure(calls: int = 3000, bits: int = 22, batch: int = 1000, batches: int = 30) -> dict:
    from fastctr.service import create_app

    rows, labels = criteo_rows(max(batch, 2000), seed=1)
    model = FTRLClassifier(bits=bits).fit(rows, labels)
    folder = Path(tempfile.mkdtemp())
    path = folder / "model.fctr"
    model.save(path)
    served = create_app(path, reload_poll=0)
    untimed = create_app(path, reload_poll=0)
    untimed.telemetry = None  # what /metrics and /stats cost a request: their per-request part
    learning = create_app(path, learn=True, reload_poll=0, max_impressions=10 * calls)
    hand = pydantic_app(model)
    hasher = model.hasher_
    sample = rows[:1000]
    bodies = [orjson.dumps({"features": r}) for r in sample]
    singles = {"predict_one_us": ([lambda r=r: model.predict_one(r) for r in sample], False)}
    for name, app in (("route_us", served), ("route_learn_us", learning),
                      ("pydantic_route_us", hand), ("route_untimed_us", untimed)):
        singles[name] = ([asgi_post(app, "/predict", b) for b in bodies], True)
    interleaved_us(singles, 200)  # warms caches and compiled paths up
    report = interleaved_us(singles, calls)
    report["overhead_us"] = report["route_us"] - report["predict_one_us"]
    report["overhead_learn_us"] = report["route_learn_us"] - report["predict_one_us"]
    report["telemetry_us"] = report["route_us"] - report["route_untimed_us"]

    body = orjson.dumps({"rows": [{"features": r} for r in rows[:batch]]})
    lines = orjson.dumps({"rows": [{"line": line_of(r, hasher.fields)} for r in rows[:batch]]})
    text = "\n".join(line_of(r, hasher.fields) for r in rows[:batch]).encode()
    scorer_path = folder / "scorer.fctr"
    model.to_scorer("float32", "dense").save(scorer_path)
    scoring = create_app(scorer_path, reload_poll=0)
    tsv = b"text/tab-separated-values"

    def direct():
        features = [row["features"] for row in orjson.loads(body)["rows"]]
        return model.predict_proba(hasher.transform(features))

    batched = {"batch_route_ms": ([asgi_post(served, "/predict", body)], True),
               "batch_lines_route_ms": ([asgi_post(served, "/predict", lines)], True),
               "batch_tsv_route_ms": ([asgi_post(served, "/predict", text, tsv)], True),
               "batch_tsv_scorer_ms": ([asgi_post(scoring, "/predict", text, tsv)], True),
               "batch_tsv_learn_ms": ([asgi_post(learning, "/predict", text, tsv)], True),
               "batch_decode_ms": ([lambda: orjson.loads(body)], False),
               "batch_direct_ms": ([direct], False)}
    interleaved_us(batched, 2)
    report.update({name: us / 1e3 for name, us in
                   interleaved_us(batched, batches, block=3).items()})
    report["batch_rows"] = batch
    for name in list(report):
        if name.startswith("batch_") and name.endswith("_ms"):
            report[name[:-3] + "_rows_per_s"] = batch / report[name] * 1e3
    return report


#: the batch measures, as the table names them
BATCH_ROWS = (
    ("batch_route", "/predict {n} rows as JSON objects"),
    ("batch_decode", "orjson.loads of that body alone"),
    ("batch_direct", "decode + transform + predict_proba, called directly"),
    ("batch_lines_route", "/predict {n} rows as JSON lines"),
    ("batch_tsv_route", "/predict {n} rows as a tab-separated body"),
    ("batch_tsv_learn", "the same, learning (rows kept for feedback)"),
    ("batch_tsv_scorer", "the same, served from a dense float32 Scorer file"),
)


def table(r: dict) -> str:
    return "\n".join([
        "| measure (median) | value |",
        "|---|---|",
        f"| predict_one (39-field dict) | {r['predict_one_us']:.1f} us |",
        f"| /predict single row (ASGI) | {r['route_us']:.1f} us (+{r['overhead_us']:.1f} us) |",
        f"| /predict single row, learn (row kept) | {r['route_learn_us']:.1f} us "
        f"(+{r['overhead_learn_us']:.1f} us) |",
        f"| FastAPI + pydantic route, same predict_one | {r['pydantic_route_us']:.1f} us |",
        f"| /predict without the request metrics (counter, histogram, latency ring) | "
        f"{r['route_untimed_us']:.1f} us ({r['telemetry_us']:+.1f} us with them) |",
        *(f"| {what.format(n=r['batch_rows'])} | {r[name + '_ms']:.2f} ms = "
          f"{r[name + '_rows_per_s'] / 1e6:.2f}M rows/s |" for name, what in BATCH_ROWS),
    ])


def test_service_bench_smoke():
    r = measure(calls=50, bits=18, batch=100, batches=3)
    assert r["route_us"] > 0
    assert all(r[name + "_rows_per_s"] > 0 for name, _ in BATCH_ROWS)
    assert table(r).count("rows/s") == len(BATCH_ROWS)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--bits", type=int, default=22)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=30)
    args = parser.parse_args()
    print(table(measure(args.calls, args.bits, args.batch, args.batches)))
