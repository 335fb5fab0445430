"""VW, libsvm, libffm and CSV readers against the written-out formats in tests/naive.py:
bit-for-bit rows, gzip, stdin, block and batch boundaries, worded errors, skip mode, learning."""
import gzip
import io
import logging
import re
import subprocess
import sys

import numpy as np
import pytest

from fastctr import FTRLClassifier, ParseError
from fastctr.io import sources
from fastctr.io.criteo import read_criteo
from fastctr.io.csv import read_csv
from fastctr.io.detect import detect_format, hasher_for, read_data
from fastctr.io.sparse import read_libffm, read_libsvm, read_vw
from fastctr.online.metrics import roc_auc

import naive

BITS = 18
NAMESPACES = ["user", "ad", " ", "é"]
ALPHABET = list("abcxyz0189_-.") + ["é", "文"]


def _token(rng, max_len=8):
    return "".join(rng.choice(ALPHABET, rng.integers(1, max_len + 1))).encode()


def _number(rng):
    return rng.choice(["3", "-2.5", "1e-3", "0.25", "7"]).encode()


def _vw_lines(rng, n):
    lines = []
    for _ in range(n):
        head = [rng.choice([b"1", b"-1", b"0", b"+1", b"1.0"])]
        if rng.random() < 0.5:
            head.append(rng.choice([b"2", b"0.5", b"1e1"]))
        # no tag, an 'tag, or a bare tag touching the bar
        line = b" ".join(head) + rng.choice([b" ", b" 'tag", b" 'tag ", b" tag"])
        for ns in rng.permutation(NAMESPACES)[: rng.integers(1, 4)]:
            name = b"" if ns == " " else ns.encode()
            if name and rng.random() < 0.2:
                name += b":" + _number(rng)
            features = [_token(rng) + (b":" + _number(rng) if rng.random() < 0.3 else b"")
                        for _ in range(rng.integers(0, 6))]
            line += b"|" + name + b" " + rng.choice([b" ", b"\t"]).join(features) + b" "
        lines.append(line)
    return lines


def _svm_lines(rng, n, ffm=False, max_index=2**BITS):
    lines = []
    for _ in range(n):
        tokens = [rng.choice([b"1", b"-1", b"0", b"+1"])]
        for _ in range(rng.integers(0, 8)):
            field = b"%d:" % rng.integers(0, 5) if ffm else b""
            tokens.append(field + b"%d:" % rng.integers(0, max_index) + _number(rng))
        lines.append(b" ".join(tokens))
    return lines


def _rows(batches):
    """Every row as (label, weight, [(bucket, value, field id)]), values as float32."""
    out = []
    for b in batches:
        for r in range(b.n_rows):
            s = slice(b.indptr[r], b.indptr[r + 1])
            entries = list(zip(b.indices[s].tolist(), b.values[s].tolist(), b.fields[s].tolist()))
            out.append((None if b.labels is None else float(b.labels[r]),
                        1.0 if b.weights is None else float(b.weights[r]), entries))
    return out


def _f32(entries):
    return [(i, float(np.float32(v)), f) for i, v, f in entries]


def _data(lines, crlf_every=7):
    """Lines joined with a few CRLF endings and blank lines, as a log file would be."""
    return b"".join(line + (b"\r\n" if i % crlf_every == 0 else b"\n") + (b"\n" if i % 11 == 0 else b"")
                    for i, line in enumerate(lines))


@pytest.fixture(scope="module")
def vw_data():
    lines = _vw_lines(np.random.default_rng(1), 3_000)
    return lines, _data(lines)


def _vw_expected(lines, hasher):
    expected = []
    for line in lines:
        label, weight, entries = naive.vw_line(line, list(hasher.fields), BITS)
        expected.append((label, float(np.float32(weight)), _f32(entries)))
    return expected


def test_vw_matches_the_reference(vw_data):
    lines, data = vw_data
    hasher = hasher_for("vw", namespaces=NAMESPACES, bits=BITS)
    got = _rows(read_vw(data, hasher, batch_size=500))
    assert got == _vw_expected(lines, hasher)


def test_vw_namespaces_are_discovered_and_unlabelled_lines_read():
    data = b"'t1| a b:2 |ad x\n|ad y\n"
    reader = read_vw(data)
    assert reader.hasher.fields == (" ", "ad") and not reader.labeled
    (batch,) = reader
    assert batch.labels is None and batch.fields.tolist() == [0, 1, 1, 2, 0, 2]


def test_vw_unknown_namespace_goes_to_other():
    hasher = hasher_for("vw", namespaces=["a"], unknown_namespace="other", bits=BITS)
    (batch,) = read_vw(b"1 |a x |zz y\n", hasher, unknown_namespace="other")
    seed = naive.murmur(b"zz", 0)  # the feature keeps its own namespace's hash
    assert batch.fields.tolist() == [0, 1, 2]
    assert batch.indices[2] == naive.murmur(b"y", seed) & (2**BITS - 1)


@pytest.mark.parametrize("ffm", [False, True])
@pytest.mark.parametrize("hash_indices", [False, True])
def test_libsvm_and_libffm_match_the_reference(ffm, hash_indices):
    max_index = 10**12 if hash_indices else 2**BITS
    lines = _svm_lines(np.random.default_rng(2), 2_000, ffm, max_index=max_index)
    hasher = hasher_for("libffm", n_fields=5, bits=BITS) if ffm else hasher_for("libsvm", bits=BITS)
    read = read_libffm if ffm else read_libsvm
    got = _rows(read(_data(lines), hasher, hash_indices=hash_indices, batch_size=300))
    expected = []
    for line in lines:
        label, entries = naive.svm_line(line, BITS, ffm, hash_indices)
        expected.append((label, 1.0, _f32(entries)))
    assert got == expected


AVAZU_HEADER = b"id,click,hour,C1,banner_pos,site_id,device_ip"


def _avazu_lines(rng, n):
    return [b"%d,%d,%s,%s,%d,%s,%s" % (i, rng.integers(0, 2), _number(rng), _token(rng, 3),
                                        rng.integers(0, 3), _token(rng), b"" if i % 5 else _token(rng))
            for i in range(n)]


def test_csv_matches_the_reference():
    lines = _avazu_lines(np.random.default_rng(3), 2_000)
    options = dict(label="click", ignore=["id"], numeric=["hour"])
    hasher = hasher_for("csv", AVAZU_HEADER + b"\n", bits=BITS, **options)
    assert hasher.fields == ("hour", "C1", "banner_pos", "site_id", "device_ip")
    got = _rows(read_csv(_data([AVAZU_HEADER] + lines), hasher, label="click", batch_size=300))
    header = AVAZU_HEADER.decode().split(",")
    expected = []
    for line in lines:
        label, entries = naive.csv_line(line, header, "click", hasher.fields, hasher.numeric, BITS)
        expected.append((label, 1.0, _f32(entries)))
    assert got == expected


def test_fields_of_every_length_split_where_the_separator_is():
    """The delimiter scan flags separators 64 bytes at a time (16 per compare): tokens of
    0-40 bytes, so separators fall at every offset of several windows per line, with tabs and
    non-ASCII bytes inside comma-separated fields, split exactly where Python splits."""
    rng = np.random.default_rng(5)
    alphabet = list("ab\t9\u00e9\u20ac")  # \u00e9 and \u20ac are 2 and 3 UTF-8 bytes

    def token(n):
        return "".join(rng.choice(alphabet, n)).encode()

    header = b"click,a,b,c,d,e"
    lines = [b",".join([b"%d" % (i % 2)] + [token((i * k) % 41) for k in (1, 7, 3, 11, 5)])
             for i in range(600)]
    hasher = hasher_for("csv", header + b"\n", bits=BITS, label="click")
    got = _rows(read_csv(_data([header] + lines), hasher, label="click"))
    names = header.decode().split(",")
    expected = []
    for line in lines:
        label, entries = naive.csv_line(line, names, "click", hasher.fields, hasher.numeric, BITS)
        expected.append((label, 1.0, _f32(entries)))
    assert got == expected


def test_tsv_with_a_header_and_no_label():
    (batch,) = read_csv(b"a\tb\nx\t1\n", sep="\t")
    assert batch.labels is None and batch.fields.tolist() == [0, 1, 2]


def _blocks_and_batches(monkeypatch, read, data, **kw):
    whole = _rows(read(data, batch_size=100_000, **kw))
    monkeypatch.setattr(sources, "BLOCK_BYTES", 97)  # lines straddle blocks everywhere
    batches = list(read(io.BytesIO(gzip.compress(data)), batch_size=77, **kw))
    assert all(b.n_rows == 77 for b in batches[:-1])
    return whole, _rows(batches)


@pytest.mark.parametrize("fmt", ["vw", "libsvm", "libffm", "csv"])
def test_gzip_blocks_and_batches_do_not_change_rows(fmt, monkeypatch, tmp_path):
    rng = np.random.default_rng(4)
    lines = {"vw": lambda: _vw_lines(rng, 1_000), "libsvm": lambda: _svm_lines(rng, 1_000),
             "libffm": lambda: _svm_lines(rng, 1_000, ffm=True),
             "csv": lambda: [AVAZU_HEADER] + _avazu_lines(rng, 1_000)}[fmt]()
    data = _data(lines)[:-1]  # no final newline
    path = tmp_path / "log.txt"
    path.write_bytes(data)
    hasher = hasher_for(fmt, path, bits=BITS, label="click") if fmt == "csv" else \
        hasher_for(fmt, path, bits=BITS)
    opts = {"label": "click"} if fmt == "csv" else {}
    whole, pieces = _blocks_and_batches(monkeypatch, lambda src, **kw: read_data(src, fmt, hasher, **kw),
                                        data, **opts)
    assert pieces == whole and len(whole) == 1_000


def test_a_long_line_grows_the_batch():
    line = b"1 |a " + b" ".join(b"f%d" % i for i in range(5_000))
    (batch,) = read_vw(line + b"\n" + line + b"\n", batch_size=2)
    assert batch.nnz == 2 * 5_001


@pytest.mark.parametrize("fmt, data, options", [
    ("vw", b"1 2 |a x y:2\n0 |b z\n", {"namespaces": ["a", "b"]}),
    ("libsvm", b"1 3:1 5:2\n0 7:1\n", {}),
    ("libffm", b"1 0:3:1 1:5:2\n0 1:7:1\n", {"n_fields": 2}),
    ("csv", b"click,a,b\n1,x,y\n0,z,\n", {"label": "click"}),
])
def test_stdin_is_read(fmt, data, options):
    code = ("import sys; from fastctr.io.detect import read_data, hasher_for;"
            f"h = hasher_for({fmt!r}, {data!r}, bits=18, **{options!r});"
            f"opts = {{'label': 'click'}} if {fmt!r} == 'csv' else {{}};"
            f"print(*[b.nnz for b in read_data('-', {fmt!r}, h, **opts)])")
    out = subprocess.run([sys.executable, "-c", code], input=gzip.compress(data),
                         capture_output=True, check=True)
    assert out.stdout.strip() == b"5"  # nnz: bias + 2 features, then bias + 1


@pytest.mark.parametrize("fmt, line, what", [
    ("vw", b"2 |a x", "token 1: expected a label -1, 0 or 1, got b'2'"),
    ("vw", b"|a x", "expected a label -1, 0 or 1 first (before the first '|')"),
    ("vw", b"1 -3 |a x", "importance weight in [0, 1e6] (MAX_WEIGHT) after the label, got b'-3'"),
    ("vw", b"1 2 3 |a x", "got an extra token b'3'"),
    ("vw", b"1 a x", "expected '|' before the features"),
    ("vw", b"1 |nope x", "token 2: namespace b'nope' is not among the hasher's fields ['a']"),
    ("vw", b"1 |a :3", "token 3: expected feature[:value], got b':3'"),
    ("vw", b"1 |a x:y", "token 3: expected a number after ':', got b'y'"),
    ("vw", b"1 |a:s x", "token 2: expected a number after ':', got b's'"),
    ("libsvm", b"yes 1:1", "token 1: expected a label -1, 0 or 1, got b'yes'"),
    ("libsvm", b"1 1:1 x:2", "token 3: expected index:value with an integer index >= 0, got b'x:2'"),
    ("libsvm", b"1 7", "token 2: expected index:value"),
    ("libsvm", b"1 1:z", "token 2: expected a number after ':', got b'z'"),
    ("libsvm", b"1 999999999:1", "index b'999999999' is not below 2**bits = 262144"),
    ("libffm", b"1 1:1", "token 2: expected field:index:value with an integer index >= 0, got b'1:1'"),
    ("libffm", b"1 9:1:1", "token 2: field b'9' is not below the hasher's 2 fields: pass n_fields="),
    ("libffm", b"1 0:x:1", "token 2: expected field:index:value with an integer index >= 0"),
    ("csv", b"2,x", "field 'click' (column 1): expected a label 0 or 1, got b'2'"),
    ("csv", b"1,x,y", "more fields than the schema's 2"),
])
def test_each_kind_of_bad_line_is_worded(fmt, line, what, tmp_path):
    header = b"click,a\n" if fmt == "csv" else b""
    good = {"vw": b"1 |a x\n", "libsvm": b"1 1:1\n", "libffm": b"1 0:1:1\n", "csv": b"0,x\n"}[fmt]
    path = tmp_path / "bad.log"
    path.write_bytes(header + good + line + b"\n")
    hasher = hasher_for(fmt, path, namespaces=["a"], n_fields=2, label="click", bits=BITS)
    opts = {"label": "click"} if fmt == "csv" else {}
    line_no = 3 if fmt == "csv" else 2
    with pytest.raises(ParseError, match=f"{re.escape(str(path))}, line {line_no}: .*{re.escape(what)}"):
        list(read_data(path, fmt, hasher, **opts))


def test_skip_counts_bad_lines_and_keeps_the_rest(caplog):
    data = b"1 |a x\n" * 10 + b"1 |a x:y\n" * 7 + b"0 |a z\n" * 10
    reader = read_vw(data, hasher_for("vw", namespaces=["a"], bits=BITS), on_error="skip")
    with caplog.at_level(logging.WARNING):
        batches = list(reader)
    assert sum(b.n_rows for b in batches) == 20 and batches[0].labels.sum() == 10
    assert reader.errors.count == 7 and "line 11" in reader.errors.examples[0]
    assert "skipped 7 bad lines" in caplog.text


def test_csv_header_problems_are_named():
    with pytest.raises(ValueError, match=r"columns \['click'\] are not in the header \['a', 'b'\]"):
        list(read_csv(b"a,b\nx,y\n", hasher_for("csv", b"a,b\n"), label="click"))
    with pytest.raises(ValueError, match="quoted CSV is not supported"):
        hasher_for("csv", b'"a","b"\n')
    with pytest.raises(ValueError, match="cannot read ahead"):
        read_csv("-", label="click")


def test_format_detection():
    criteo = b"1" + b"\t" * 39
    assert [detect_format(x) for x in (criteo, criteo[2:], b"1 |a", b"0 1:2:3", b"1 3:1",
                                       AVAZU_HEADER)] == ["criteo", "criteo", "vw", "libffm",
                                                          "libsvm", "csv"]
    for line in (b"1 2 3", b"1,2,3", b"1 3:1 0:1:1"):
        with pytest.raises(ValueError, match="cannot tell the format .* pass format="):
            detect_format(line)
    with pytest.raises(ValueError, match=r"The 'format' parameter of read_data must be a str among "
                                         r"\{'auto', 'criteo', .*\}\. Got 'parquet' instead\."):
        read_data(b"", "parquet")
    with pytest.raises(ValueError, match=r"The 'format' parameter of hasher_for .* Got 'auto'"):
        hasher_for("auto")


@pytest.mark.parametrize("call, message", [
    (lambda: read_criteo(b"", batch_size=0), r"The 'batch_size' parameter of read_criteo must be an "
                                             r"int in the range \[1, inf\)\. Got 0 instead\."),
    (lambda: read_criteo(b"", on_error="ignore"), r"'on_error' parameter of read_criteo must be a str "
                                                  r"among \{'raise', 'skip'\}"),
    (lambda: read_criteo(b"", labeled="yes"), r"'labeled' parameter of read_criteo must be None or a bool"),
    (lambda: read_criteo(b"", hasher={"bits": 18}), r"'hasher' parameter of read_criteo must be None or "
                                                    r"an instance of 'FeatureHasher'"),
    (lambda: read_vw(b"", unknown_namespace="drop"), r"'unknown_namespace' parameter of read_vw"),
    (lambda: read_libsvm(b"", hash_indices=1), r"'hash_indices' parameter of read_libsvm must be a bool"),
    (lambda: read_libffm(b"", n_fields=0), r"'n_fields' parameter of read_libffm"),
    (lambda: read_csv(b"a\n", sep=",,"), r"The 'sep' parameter of read_csv must be one byte"),
    (lambda: read_csv(b"a\n", ignore="a"), r"'ignore' parameter of read_csv must be a sequence"),
    (lambda: read_data(b"", batch_size=1.5), r"'batch_size' parameter of read_data .* Got 1\.5"),
])
def test_reader_parameters_are_checked_in_scikit_learn_words(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def _synthetic(rng, n, n_fields=4, n_values=30):
    """Categorical rows with a hidden logistic model: (values[n, fields], labels)."""
    values = rng.integers(0, n_values, (n, n_fields))
    effect = rng.normal(0, 1.5, (n_fields, n_values))
    margin = effect[np.arange(n_fields), values].sum(1) - 0.5
    return values, (rng.random(n) < 1 / (1 + np.exp(-margin))).astype(int)


def _as_format(fmt, values, labels):
    n_values = values.max() + 1
    rows = []
    for v, y in zip(values, labels):
        if fmt == "vw":
            rows.append(b"%d |f " % (2 * y - 1) + b" ".join(b"c%d_%d" % (f, x) for f, x in enumerate(v)))
        elif fmt == "libsvm":
            rows.append(b"%d " % y + b" ".join(b"%d:1" % (f * n_values + x) for f, x in enumerate(v)))
        elif fmt == "libffm":
            rows.append(b"%d " % y + b" ".join(b"%d:%d:1" % (f, f * n_values + x) for f, x in enumerate(v)))
        else:
            rows.append(b"%d," % y + b",".join(b"v%d" % x for x in v))
    header = [b"click," + b",".join(b"c%d" % f for f in range(values.shape[1]))] if fmt == "csv" else []
    return b"\n".join(header + rows) + b"\n"


@pytest.mark.parametrize("fmt", ["vw", "libsvm", "libffm", "csv"])
def test_ftrl_learns_from_each_format(fmt):
    values, labels = _synthetic(np.random.default_rng(5), 12_000)
    data = _as_format(fmt, values, labels)
    hasher = hasher_for(fmt, data, bits=BITS, label="click")
    model = FTRLClassifier(**hasher.get_params())
    options = {"label": "click"} if fmt == "csv" else {}
    batches = list(read_data(data, "auto", hasher, batch_size=1_000, **options))
    for batch in batches[:10]:
        model.partial_fit(batch)
    test = batches[10:]
    p = np.concatenate([model.predict_proba(b)[:, 1] for b in test])
    assert roc_auc(np.concatenate([b.labels for b in test]), p) > 0.6
