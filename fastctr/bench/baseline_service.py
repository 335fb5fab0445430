"""The service a team would write by hand today: FastAPI around River's ``LogisticRegression``.

The baseline of ``fastctr bench --serve`` (issues 15 and 16): the same endpoints and bodies as
``fastctr serve`` (``POST /predict`` with ``{"features": {...}}`` or ``{"rows": [...]}``,
``POST /feedback`` with ``{"request_id", "click"}``), written the usual way: pydantic request
models, a one-hot dict per row (``"C1=68fd1e64": 1.0``), ``predict_proba_one`` row by row,
and the features of each prediction kept in a dict until its feedback comes (bounded: the
oldest dropped first). Run it under uvicorn::

    BASELINE_MODEL=river.pkl uvicorn fastctr.bench.baseline_service:app --port 8001

``BASELINE_MODEL`` is a pickled River model (:func:`train_baseline` writes one); without
it the model starts untrained.
"""
from __future__ import annotations

import os
import pickle
import uuid
from collections import OrderedDict

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from river import linear_model, optim

MAX_PENDING = 1_000_000  # predictions kept for their feedback


class Row(BaseModel):
    features: dict[str, str | int | float | None]
    request_id: str | None = None


class Batch(BaseModel):
    rows: list[Row]


class Feedback(BaseModel):
    request_id: str
    click: int


def one_hot(features: dict) -> dict[str, float]:
    """River's input: one indicator per present field and value."""
    return {f"{k}={v}": 1.0 for k, v in features.items() if v is not None and v != ""}


def new_model() -> linear_model.LogisticRegression:
    return linear_model.LogisticRegression(optimizer=optim.FTRLProximal())


def train_baseline(rows: list[dict], labels: list[int], path: str) -> None:
    """Train the baseline's model on ``rows`` (one pass, in order) and pickle it to ``path``.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "river.pkl")
    >>> train_baseline([{"C1": "a"}, {"C1": "b"}] * 5, [1, 0] * 5, path)
    >>> os.path.getsize(path) > 0
    True
    """
    model = new_model()
    for row, label in zip(rows, labels):
        model.learn_one(one_hot(row), bool(label))
    with open(path, "wb") as f:
        pickle.dump(model, f)


def _load() -> linear_model.LogisticRegression:
    path = os.environ.get("BASELINE_MODEL")
    if not path:
        return new_model()
    with open(path, "rb") as f:
        return pickle.load(f)


app = FastAPI(title="baseline: FastAPI + River")
model = _load()
pending: OrderedDict[str, dict[str, float]] = OrderedDict()


def _predict(row: Row) -> tuple[float, str]:
    x = one_hot(row.features)
    p = model.predict_proba_one(x).get(True, 0.0)
    rid = row.request_id or uuid.uuid4().hex
    pending[rid] = x
    if len(pending) > MAX_PENDING:
        pending.popitem(last=False)
    return p, rid


@app.post("/predict")
async def predict(body: Row | Batch) -> dict:
    if isinstance(body, Batch):
        scored = [_predict(row) for row in body.rows]
        return {"predictions": [p for p, _ in scored], "request_ids": [r for _, r in scored]}
    p, rid = _predict(body)
    return {"ctr_probability": p, "request_id": rid}


@app.post("/feedback")
async def feedback(body: Feedback) -> dict:
    x = pending.pop(body.request_id, None)
    if x is None:
        raise HTTPException(404, f"unknown request_id {body.request_id!r}")
    model.learn_one(x, bool(body.click))
    return {"learned": 1}


@app.get("/health")
async def health() -> dict:
    return {"status": "ok"}
