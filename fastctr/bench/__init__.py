"""The comparisons behind ``fastctr bench``: fastctr against Vowpal Wabbit, River,
scikit-learn and LightGBM on the same rows (:mod:`.peers`), and ``fastctr serve`` against a
hand-written service under load (:mod:`.serve_load`). An application on top of the library;
the core never imports it."""

#: the HTTP servers ``fastctr serve --server`` runs under (and ``fastctr bench --serve``)
SERVERS = ("granian", "uvicorn")

#: the default: granian over RSGI, the faster under load (at 100 connections on one core,
#: 1.7x uvicorn's requests/s and a p99 of 6-7 ms against 10-122 ms; see the README)
DEFAULT_SERVER = "granian"
