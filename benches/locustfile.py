"""Load test of ``fastctr serve`` with locust, for those who prefer it to ``fastctr bench --serve``.

Same traffic as the bench: single rows posted to ``/predict``, batches of 100 rows, and the
request id of one prediction in ``1/FEEDBACK_RATE`` posted back to ``/feedback`` as a click.
Self-contained (no fastctr import): the rows are drawn here, in the Criteo schema (I1..I13
counts, C1..C26 categorical hashes). Start a service, then::

    fastctr serve model.fctr --learn --port 8000
    locust -f benches/locustfile.py --host http://127.0.0.1:8000 --headless -u 100 -r 20 -t 30s

``FEEDBACK_RATE`` (default 0.005) and ``BATCH_SHARE`` (default 0.1, the share of batch
requests) are read from the environment. locust's own client is Python: at high rates it
measures itself more than the service, hence the bench's compiled load generator.
"""
from __future__ import annotations

import os
import random

from locust import FastHttpUser, between, task

FEEDBACK_RATE = float(os.environ.get("FEEDBACK_RATE", "0.005"))
BATCH_SHARE = float(os.environ.get("BATCH_SHARE", "0.1"))
BATCH = 100


def random_row(rng: random.Random) -> dict:
    """A Criteo-like row: most count fields present, categorical values from small vocabularies."""
    row: dict = {f"I{i}": rng.randint(0, 50) for i in range(1, 14) if rng.random() < 0.8}
    row.update({f"C{i}": f"{rng.randrange(1000 * i):08x}" for i in range(1, 27) if rng.random() < 0.9})
    return row


class CtrClient(FastHttpUser):
    wait_time = between(0, 0)  # closed loop: the next request as soon as the answer is in

    def on_start(self) -> None:
        self.rng = random.Random()

    @task
    def predict(self) -> None:
        if self.rng.random() < BATCH_SHARE:
            rows = [{"features": random_row(self.rng)} for _ in range(BATCH)]
            self.client.post("/predict", json={"rows": rows}, name="/predict (batch of 100)")
            return
        with self.client.post("/predict", json={"features": random_row(self.rng)},
                              catch_response=True) as answer:
            if answer.status_code != 200:
                answer.failure(f"/predict answered {answer.status_code}")
                return
            if self.rng.random() < FEEDBACK_RATE:
                self.client.post("/feedback", json={"request_id": answer.json()["request_id"],
                                                    "click": 1})
