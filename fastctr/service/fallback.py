"""What serves when the model cannot (``fastctr serve --fallback simple.fctr`` or
``--fallback-ctr 0.01``).

The fallback scores a request when the primary model file fails to load at start (the
service starts on the fallback and the file watcher swaps the primary in once its file
loads) or when scoring with the primary raises anything but a client's mistake. Either way
``/health`` says degraded with the reason, answers carry the fallback's ``model_version``
(``prior-0.01`` for a constant, else the file's checksum) and ``/metrics`` counts
``fastctr_fallback_rows_total``. The fallback never learns: its answers are kept as markers
(:func:`~fastctr.service.stores.fallback_marker`), so their feedback gets a 409 saying so.
"""
from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np

from fastctr.io.hashing import FeatureHasher
from fastctr.service.served import ServedModel


class ConstantModel:
    """A constant click probability, with the interface the service scores through.

    Rows are checked as the Criteo schema's (I1..I13, C1..C26; positional rows too), other
    keys ignored: the prior reads no feature.

    Examples
    --------
    >>> ConstantModel(0.01).predict_one({"C1": "a", "anything": 3})
    0.01
    """

    def __init__(self, ctr: float) -> None:
        if not 0.0 < ctr < 1.0:
            raise ValueError(f"a prior CTR must be in (0, 1); got {ctr!r}")
        self.ctr = float(ctr)
        self.hasher_ = FeatureHasher(unknown="ignore")

    def predict_one(self, row) -> float:
        return self.ctr

    def predict_proba(self, rows) -> np.ndarray:
        out = np.empty((rows.n_rows, 2))
        out[:, 0], out[:, 1] = 1.0 - self.ctr, self.ctr
        return out

    def get_params(self) -> dict:
        return {"ctr": self.ctr}


def fallback_model(path: str | None = None, ctr: float | None = None) -> ServedModel | None:
    """The fallback of ``--fallback PATH`` (loaded now: a bad file stops the start) or of
    ``--fallback-ctr CTR``; None when neither is given."""
    if path is not None:
        return ServedModel.load(Path(path))
    if ctr is None:
        return None
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return ServedModel(ConstantModel(ctr), Path(f"prior-{ctr:g}"), f"prior-{ctr:g}",
                       (0, 0, 0), now, learnable=False)
