"""The CLI as a new user meets it (issue 14, points 2, 4, 5, 6, 7): models that remember how
their data was read, outputs checked before work, a truncated gzip that keeps its rows,
one-line messages with one exit-code convention, and a complete set of options."""
import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fastctr import FTRLClassifier, load
from fastctr.cli import EXIT_CODES, main
from fastctr.io.datasets import criteo_rows, make_criteo
from fastctr.online.training import Progress, train

FASTCTR = str(Path(sys.executable).parent / "fastctr")


def run(*args, stdin=None, cwd=None):
    return subprocess.run([FASTCTR, *map(str, args)], input=stdin, capture_output=True, cwd=cwd)


def one_line_error(out, status: int, *parts: str) -> str:
    """The run failed with ``status``, a single stderr line naming every part, no traceback."""
    err = out.stderr.decode()
    assert out.returncode == status, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    for part in parts:
        assert part in last, (part, last)
    return last


@pytest.fixture(scope="module")
def csv_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("csv")
    rows, labels = criteo_rows(3_000, seed=6)
    header = "id,click,hour,site,app"
    lines = [f"{i},{y},{r.get('I1', '')},{r.get('C1', '')},{r.get('C2', '')}"
             for i, (r, y) in enumerate(zip(rows, labels))]
    train, test = folder / "train.csv", folder / "test.csv"
    train.write_text("\n".join([header] + lines[:2_000]) + "\n")
    test.write_text("\n".join([header] + lines[2_000:]) + "\n")
    unlabelled = folder / "new.csv"
    unlabelled.write_text("\n".join(["id,hour,site,app"] + [
        ",".join(x for k, x in enumerate(line.split(",")) if k != 1) for line in lines[2_000:]])
        + "\n")
    return folder, train, test, unlabelled


# -- 2. models remember how their data was read ---------------------------------------------
def test_csv_model_evaluates_and_predicts_without_repeating_options(csv_files, capsys):
    folder, train, test, unlabelled = csv_files
    model_path = folder / "m.fctr"
    # no --format and no --label: the format is detected, the label column found by name
    assert main(["train", str(train), "--ignore", "id", "--numeric", "hour",
                 "-o", str(model_path)]) == 0
    model = load(model_path)
    assert model.reader_settings_ == {"format": "csv", "sep": ",", "numeric": ["hour"],
                                      "ignore": ["id"], "label": "click"}
    assert model.hasher_.fields == ("hour", "site", "app")
    capsys.readouterr()
    assert main(["eval", str(model_path), str(test), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == 1_000 and 0.5 < report["auc"] < 1
    assert main(["predict", str(model_path), str(test)]) == 0
    labelled = np.array(capsys.readouterr().out.split(), float)
    # unlabelled rows of the same schema (no click column) predict the same
    assert main(["predict", str(model_path), str(unlabelled)]) == 0
    np.testing.assert_array_equal(np.array(capsys.readouterr().out.split(), float), labelled)


def test_conflicting_schema_options_are_an_error(csv_files):
    folder, train, test, _ = csv_files
    model_path = folder / "c.fctr"
    assert run("train", train, "--ignore", "id", "-o", model_path).returncode == 0
    one_line_error(run("eval", model_path, test, "--format", "vw"), 2,
                   "--format vw conflicts with the model", "csv")
    one_line_error(run("eval", model_path, test, "--numeric", "hour"), 2,
                   "--numeric hour conflicts with the model")


def test_old_model_files_without_reader_settings_still_load(tmp_path):
    from fastctr import FTRLClassifier

    model = FTRLClassifier(bits=18).fit([{"C1": "a"}, {"C1": "b"}], [1, 0])
    model.save(tmp_path / "old.fctr")
    assert load(tmp_path / "old.fctr").reader_settings_ is None
    tsv = tmp_path / "x.tsv"
    tsv.write_bytes(b"".join(make_criteo(50, seed=1)))
    out = run("predict", tmp_path / "old.fctr", tsv)  # the format detected
    assert out.returncode == 0 and len(out.stdout.split()) == 50


def test_vw_trains_with_the_default_format(tmp_path):
    path = tmp_path / "rcv.vw"
    path.write_text("".join(f"{1 if i % 3 else -1} |w t{i % 7}:0.5 t{i % 5}:1.5\n" for i in range(500)))
    out = run("train", path, "-o", tmp_path / "m.fctr")
    assert out.returncode == 0, out.stderr
    assert load(tmp_path / "m.fctr").reader_settings_ == {"format": "vw"}


def test_ambiguous_and_binary_data_name_the_file(tmp_path):
    tsv = tmp_path / "narrow.tsv"
    tsv.write_text("1\ta\tb\n0\tc\td\n")
    one_line_error(run("train", tsv), 2, str(tsv), "could be criteo or csv",
                   "--format criteo or --format csv")
    binary = tmp_path / "blob.dat"
    binary.write_bytes(bytes(range(256)) * 16)
    one_line_error(run("train", binary, "--format", "auto"), 2, str(binary), "not a text log")


# -- 4. output checked before work ------------------------------------------------------------
@pytest.mark.parametrize("where, says", [
    ("nodir/x.fctr", "does not exist"),
    ("adir", "is a directory"),
    ("afile/x.fctr", "is not a directory"),
])
def test_bad_output_fails_before_training(tmp_path, where, says):
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("")
    start = time.perf_counter()
    out = run("train", "--rows", "5000000", "-o", tmp_path / where)
    line = one_line_error(out, 2, str(tmp_path / where), says)
    assert "kernels ready" not in out.stderr.decode(), line  # before any work
    assert time.perf_counter() - start < 20


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs procfs")
def test_unwritable_output_fails_before_training():
    one_line_error(run("train", "--rows", "5000000", "-o", "/proc/self/x.fctr"), 2,
                   "/proc/self/x.fctr", "cannot write the model")


def test_train_without_output_writes_model_fctr_and_says_so(tmp_path):
    out = run("train", "--rows", "3000", "--report-every", "1000", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "model.fctr").is_file()
    assert b"model written to model.fctr (the default" in out.stderr


# -- 5. truncated gzip keeps what it can ------------------------------------------------------
@pytest.mark.parametrize("threads", ["1", "2"])
def test_truncated_gzip_writes_the_model_of_the_rows_before(tmp_path, threads):
    import zlib

    packed = gzip.compress(b"".join(make_criteo(4_000, seed=3)), compresslevel=1)
    cut = packed[: len(packed) // 2]  # under 1 MiB of text
    lines = zlib.decompressobj(wbits=31).decompress(cut).count(b"\n")
    path = tmp_path / "cut.tsv.gz"
    path.write_bytes(cut)
    out = run("train", path, "-o", tmp_path / "m.fctr", "--bits", "18", "--threads", threads,
              "--batch-size", "500")
    assert out.returncode == 3, out.stderr
    report = json.loads(out.stdout)
    assert report["progressive"]["rows"] == lines > 0
    assert f"the {lines:,} complete lines before it were read" in report["damaged"][0]
    assert b"after 0 bytes" not in out.stderr
    assert load(tmp_path / "m.fctr").n_rows_seen_ == lines
    assert b"was written to" in out.stderr and b"Traceback" not in out.stderr


# -- 6. messages, not tracebacks --------------------------------------------------------------
def test_directory_as_data_and_as_model(tmp_path):
    one_line_error(run("train", tmp_path), 2, f"DATA {str(tmp_path)!r} is a directory")
    one_line_error(run("eval", tmp_path, tmp_path), 2, "is a directory")


def test_wrong_format_suggests_the_right_one(tmp_path):
    tsv = tmp_path / "clicks.tsv"
    tsv.write_bytes(b"".join(make_criteo(20, seed=1)))
    one_line_error(run("train", tsv, "--format", "vw"), 2, str(tsv), "try --format criteo")
    csv = tmp_path / "clicks.csv"
    csv.write_text("id,click,site\n1,0,a\n2,1,b\n")
    one_line_error(run("train", csv, "--format", "criteo"), 2, str(csv), "try --format csv")


def test_messages_use_cli_words(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_bytes(b"".join(make_criteo(3, seed=1)) + b"1\tNaNx" + b"\t" * 38 + b"\n")
    line = one_line_error(run("train", path), 2, "line 4", "--on-error skip")
    assert "on_error=" not in line


def test_empty_input_is_a_data_error_and_json_has_no_nan(tmp_path, csv_files):
    empty = tmp_path / "empty.tsv"
    empty.write_bytes(b"")
    line = one_line_error(run("train", empty, "--format", "criteo"), 2, "no rows", "empty")
    assert "partial_fit" not in line
    assert not (tmp_path / "model.fctr").exists()
    folder, train, _, _ = csv_files
    model_path = folder / "e.fctr"
    assert run("train", train, "--ignore", "id", "-o", model_path).returncode == 0
    header_only = tmp_path / "header.csv"
    header_only.write_text("id,click,hour,site,app\n")
    one_line_error(run("eval", model_path, header_only, "--json"), 2, "no rows")


def test_eval_on_one_class_reports_what_it_can(csv_files, tmp_path):
    folder, train, test, _ = csv_files
    model_path = folder / "o.fctr"
    assert run("train", train, "--ignore", "id", "-o", model_path).returncode == 0
    lines = test.read_text().splitlines()
    ones = tmp_path / "ones.csv"
    ones.write_text("\n".join([lines[0]] + [x for x in lines[1:] if x.split(",")[1] == "1"]) + "\n")
    out = run("eval", model_path, ones, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)  # strict JSON: no bare NaN
    assert report["auc"] is None and report["log_loss"] > 0 and report["ctr"] == 1
    assert any("auc: not defined, every label is 1" in n for n in report["notes"])
    text = run("eval", model_path, ones).stdout.decode()
    assert "auc                  n/a" in text and "note: auc" in text


def test_ctrl_c_is_one_line_exit_130_and_leaves_the_model_path(tmp_path):
    model_path = tmp_path / "m.fctr"
    model_path.write_bytes(b"previous")
    proc = subprocess.Popen([FASTCTR, "train", "--rows", "50000000", "-o", str(model_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    err = b""
    while b"training" not in err and time.monotonic() < deadline:
        err += proc.stderr.read1(4096)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 130, rest
    assert b"Traceback" not in rest
    assert rest.decode().strip().splitlines()[-1] == (
        f"fastctr train: interrupted; {model_path} left as it was")
    assert model_path.read_bytes() == b"previous"


def test_a_set_stop_ends_training_at_the_next_batch():
    """What the command line's SIGINT handler sets: training stops at the next batch even if
    Python's own KeyboardInterrupt was dropped (landed in a finalizer or a background wait)."""
    stop = threading.Event()
    seen = []
    hasher = FTRLClassifier(bits=18).fit([{"C1": "a"}], [1]).hasher_
    rows = hasher.transform([{"C1": "a"}, {"C1": "b"}]).with_targets(np.array([1, 0], np.float32),
                                                                     None)

    def batches():
        for i in range(100):
            if i == 3:
                stop.set()
            seen.append(i)
            yield rows

    model = FTRLClassifier(bits=18)
    with pytest.raises(KeyboardInterrupt):
        train(model, batches(), progress=Progress(stop=stop))
    assert seen == [0, 1, 2, 3] and model.n_rows_seen_ == 8


def test_exit_codes_are_documented():
    out = run("--help").stdout.decode()
    for code in EXIT_CODES:
        assert f"\n  {code:<4} " in out
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert "## Errors" in readme and all(f"| {code} " in readme for code in EXIT_CODES)


# -- 7. a complete CLI ------------------------------------------------------------------------
def test_version_defaults_and_model_parameters_in_help():
    from fastctr import __version__

    assert run("--version").stdout.decode().strip() == f"fastctr {__version__}"
    text = run("train", "--help").stdout.decode()
    for option in ("--k N", "--eta X", "--l2-v X", "--init-std X", "--normalize", "--init MODEL",
                   "--holdout FILE", "--holdout-fraction F", "--value-scale auto|X",
                   "(default: 100000)", "default fm 8, ffm 4"):
        assert option in text, option
    assert "--id-column" in run("predict", "--help").stdout.decode()


def test_model_parameter_options_reach_the_model(tmp_path):
    out = run("train", "--rows", "2000", "--model", "fm", "--k", "3", "--eta", "0.05",
              "--l2-v", "0.001", "--init-std", "0.02", "--bits", "18", "-o", tmp_path / "fm.fctr")
    assert out.returncode == 0, out.stderr
    params = load(tmp_path / "fm.fctr").get_params()
    assert (params["k"], params["eta"], params["l2_v"], params["init_std"]) == (3, 0.05, 0.001, 0.02)
    one_line_error(run("train", "--model", "fm", "--k", "0"), 2, "argument --k")


def test_predict_to_a_file_with_ids_and_labels(csv_files, tmp_path):
    folder, train, test, _ = csv_files
    model_path = folder / "p.fctr"
    assert run("train", train, "--ignore", "id", "-o", model_path).returncode == 0
    out = run("predict", model_path, test, "--id-column", "id", "--with-label",
              "-o", tmp_path / "p.tsv")
    assert out.returncode == 0 and out.stdout == b"", out.stderr
    rows = [line.split("\t") for line in (tmp_path / "p.tsv").read_text().splitlines()]
    expected = [line.split(",") for line in test.read_text().splitlines()[1:]]
    assert [r[0] for r in rows] == [e[0] for e in expected]
    assert [r[2] for r in rows] == [e[1] for e in expected]
    assert all(0 < float(r[1]) < 1 for r in rows)
    numbered = run("predict", model_path, test, "--id-column", "line").stdout.decode().splitlines()
    assert numbered[0].startswith("1\t") and numbered[-1].startswith("1000\t")


def test_train_init_continues_and_holdout_is_reported(tmp_path):
    first, second, holdout = (tmp_path / f"{n}.tsv" for n in ("a", "b", "h"))
    for path, seed in ((first, 1), (second, 2), (holdout, 3)):
        path.write_bytes(b"".join(make_criteo(3_000, seed=seed)))
    assert run("train", first, "--bits", "18", "-o", tmp_path / "a.fctr").returncode == 0
    out = run("train", second, "--init", tmp_path / "a.fctr", "--holdout", holdout,
              "-o", tmp_path / "ab.fctr")
    assert out.returncode == 0, out.stderr
    assert load(tmp_path / "ab.fctr").n_rows_seen_ == 6_000
    report = json.loads(out.stdout)["holdout"]
    assert report["rows"] == 3_000 and 0.5 < report["auc"] < 1 and report["log_loss"] > 0
    one_line_error(run("train", second, "--init", tmp_path / "a.fctr", "--bits", "20"), 2,
                   "--bits cannot change")


def test_read_data_reads_the_way_the_models_data_was_read(csv_files, tmp_path):
    from fastctr import read_data

    folder, train, test, unlabelled = csv_files
    model_path = folder / "r.fctr"
    assert run("train", train, "--ignore", "id", "--numeric", "hour", "-o", model_path).returncode == 0
    model = load(model_path)
    batch = next(iter(read_data(test, model=model)))
    assert batch.n_rows == 1_000 and batch.labels is not None
    unlabelled_batch = next(iter(read_data(unlabelled, model=model, label=None)))
    np.testing.assert_array_equal(model.predict_proba(unlabelled_batch), model.predict_proba(batch))
    with pytest.raises(ValueError, match="the model's data was read as 'csv'"):
        read_data(test, "vw", model=model)
