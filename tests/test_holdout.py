"""--holdout-fraction / train(holdout=HoldOut(F)): a hashed fraction of the rows is not
learned and is scored by the final model (issue 14, point 7)."""
import json

import numpy as np
import pytest

from fastctr import load, read_data
from fastctr.cli import main
from fastctr.io.datasets import make_criteo
from fastctr.io.rows import HashedRows
from fastctr.online.holdout import HoldOut, held_out, take
from fastctr.online.metrics import evaluation_report


def test_the_choice_ignores_entry_and_row_order():
    rng = np.random.default_rng(0)
    n = 4_000
    indptr = np.arange(0, 3 * n + 1, 3)
    indices = rng.integers(0, 1 << 20, 3 * n)
    values = rng.choice([1.0, 0.5, 2.0], 3 * n)
    rows = HashedRows(indptr, indices, values, labels=rng.integers(0, 2, n))
    mask = held_out(rows, 0.25)
    assert 0.22 < mask.mean() < 0.28
    order = rng.permutation(n)  # rows shuffled, and the entries of each row reversed
    entries = (3 * order[:, None] + np.array([2, 1, 0])).ravel()
    shuffled = HashedRows(indptr, indices[entries], values[entries])
    assert np.array_equal(held_out(shuffled, 0.25), mask[order])
    kept = take(rows, mask)
    assert kept.n_rows == mask.sum() and np.array_equal(kept.labels, rows.labels[mask])
    assert np.array_equal(kept.indices, indices.reshape(n, 3)[mask].ravel())
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        HoldOut(1.0)


def _train(args, capsys):
    status = main(["train", *map(str, args)])
    out = capsys.readouterr().out
    return status, (json.loads(out) if status == 0 else out)


def test_cli_reports_the_held_out_rows_scored_by_the_final_model(tmp_path, capsys):
    data = tmp_path / "d.tsv"
    data.write_bytes(b"".join(make_criteo(6_000, seed=7)))
    model_path = tmp_path / "m.fctr"
    status, out = _train([data, "--bits", "18", "--holdout-fraction", "0.2", "-o", model_path],
                         capsys)
    assert status == 0
    held = out["held_out"]
    assert 900 < held["rows"] < 1_500 and held["fraction"] == 0.2
    assert out["progressive"]["rows"] + held["rows"] == 6_000 and "holdout" not in out
    assert 0.6 < held["auc"] < 1 and 0 < held["normalized_entropy"] < 1
    # exactly `fastctr eval` of the saved model on those rows
    model = load(model_path)
    assert model.n_rows_seen_ == out["progressive"]["rows"]
    batch = next(iter(read_data(data, model=model, batch_size=6_000)))
    rows = take(batch, held_out(batch, 0.2))
    expected = evaluation_report(rows.labels, model.predict_proba(rows)[:, 1])
    for key in ("rows", "auc", "log_loss", "normalized_entropy", "ctr"):
        assert held[key] == pytest.approx(expected[key], abs=1e-6), key
    # the same rows are held out of the lines in another order
    lines = data.read_bytes().splitlines(True)
    data.write_bytes(b"".join(lines[::-1]))
    status, again = _train([data, "--bits", "18", "--holdout-fraction", "0.2", "-o", model_path],
                           capsys)
    assert status == 0 and again["held_out"]["rows"] == held["rows"]


def test_cli_refuses_bad_fractions_and_several_epochs(tmp_path, capsys, caplog):
    data = tmp_path / "d.tsv"
    data.write_bytes(b"".join(make_criteo(500, seed=1)))
    for bad in ("0", "1", "-0.1", "x"):
        with pytest.raises(SystemExit) as exit_info:
            main(["train", str(data), "--holdout-fraction", bad])
        assert exit_info.value.code == 2
        assert "--holdout-fraction" in capsys.readouterr().err
    status = main(["train", str(data), "--bits", "18", "--holdout-fraction", "0.1",
                   "--epochs", "2", "-o", str(tmp_path / "m.fctr")])
    assert status == 2 and "--holdout-fraction holds rows out of one pass" in caplog.text
    assert not (tmp_path / "m.fctr").exists()
