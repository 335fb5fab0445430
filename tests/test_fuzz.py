"""Fuzzers kept in the suite (issue 13): crafted model files, random and mutated inputs to
every reader, odd rows to predict_one on every model and scorer.

Each input that could crash runs in a child interpreter (many inputs per child; a crash or a
stall is counted against the input it happened on, and a new child goes on), so a crash is
a counted failure, never a dead pytest. CI-sized by default; ``FASTCTR_FUZZ_LONG=1`` runs
every crafted file and many more random inputs.
"""
import os
import random
import tempfile

from child import run_batches

LONG = os.environ.get("FASTCTR_FUZZ_LONG") == "1"


def _sample(items: list, n: int, seed: int = 0) -> list:
    return items if LONG or len(items) <= n else random.Random(seed).sample(items, n)


def _bad(items, results, ok) -> list:
    return [(item, r) for item, r in zip(items, results) if not ok(r)]


def test_crafted_model_files_are_refused():
    # Valid files of every class (FTRL, FM, FFM with tables stored by rows and whole;
    # Scorers of every dtype and layout) mutated in their headers and arrays, the CRC
    # recomputed: each must be refused with ModelFileError (never crash, hang or load),
    # and the valid files must still load, predict and learn.
    from model_files import CHECK, crafted_items, valid_names

    with tempfile.TemporaryDirectory() as d:
        items = crafted_items(d)
        crafted = _sample(items, 300)
        valid = [(name, -1) for name in valid_names()]
        results = run_batches(CHECK, valid + crafted, env={"FASTCTR_CRAFTED_DIR": d})
    valid_results, crafted_results = results[:len(valid)], results[len(valid):]
    assert all(r.startswith("accepted") for r in valid_results), list(zip(valid, valid_results))
    bad = _bad(crafted, crafted_results, lambda r: r == "refused")
    print(f"{len(crafted)} crafted files (of {len(items)}): {len(bad)} not refused")
    assert not bad, bad[:20]
