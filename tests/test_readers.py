"""Criteo TSV reader: formats, gzip, stdin, batching, bad lines, bounded memory."""
import gzip
import io
import logging
import subprocess
import sys
import threading
import tracemalloc

import numpy as np
import pytest

from fastctr import FeatureHasher, ParseError, read_criteo
from fastctr.io import sources
from fastctr.io.datasets import make_criteo, write_criteo
from fastctr.io.reader import MAX_ERROR_EXAMPLES

HASHER = FeatureHasher(bits=18)


def _concat(batches):
    batches = list(batches)
    indptr = np.concatenate([[0]] + [b.indptr[1:] + off for b, off in
                                     zip(batches, np.cumsum([0] + [b.nnz for b in batches[:-1]]))])
    return (indptr, np.concatenate([b.indices for b in batches]),
            np.concatenate([b.labels for b in batches]) if batches[0].labels is not None else None)


def test_batches_and_block_boundaries_do_not_change_rows(synthetic_tsv, monkeypatch):
    whole = _concat(read_criteo(synthetic_tsv, HASHER, batch_size=50_000))
    monkeypatch.setattr(sources, "BLOCK_BYTES", 777)  # lines straddle blocks everywhere
    batches = list(read_criteo(io.BytesIO(synthetic_tsv), HASHER, batch_size=3_000))
    assert [b.n_rows for b in batches] == [3_000] * 6 + [2_000]
    for got, expected in zip(_concat(batches), whole):
        np.testing.assert_array_equal(got, expected)


def test_gzip_detected_by_content_and_final_newline_optional(tmp_path, synthetic_tsv):
    data = synthetic_tsv[:-1]  # no final newline
    path = tmp_path / "clicks.tsv"  # gzip bytes under a plain name
    path.write_bytes(gzip.compress(data))
    got = _concat(read_criteo(path, HASHER))
    expected = _concat(read_criteo(synthetic_tsv, HASHER))
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


def test_gzip_is_inflated_ahead_and_the_thread_ends_with_the_reader(tmp_path, synthetic_tsv):
    path = tmp_path / "clicks.tsv.gz"
    path.write_bytes(gzip.compress(synthetic_tsv))
    before = threading.active_count()
    batches = iter(read_criteo(path, HASHER, batch_size=1_000))
    next(batches)
    assert any(t.name == "fastctr-read-ahead" for t in threading.enumerate())
    batches.close()  # a consumer that stops early
    assert threading.active_count() == before


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_damaged_gzip_names_the_file_after_the_rows_before_it(tmp_path, synthetic_tsv, damage):
    packed = gzip.compress(synthetic_tsv * 3, compresslevel=1)  # several blocks of text
    if damage == "truncated":
        packed = packed[: len(packed) // 2]
    else:
        packed = packed[:-8] + bytes(8)  # the trailer's CRC and length no longer match
    path = tmp_path / "clicks.tsv.gz"
    path.write_bytes(packed)
    rows = 0
    with pytest.raises(ParseError, match=r"clicks.tsv.gz: the gzip data is truncated or corrupt"):
        for batch in read_criteo(path, HASHER, batch_size=1_000):
            rows += batch.n_rows
    assert rows > 0


def test_unlabelled_rows_detected_from_field_count(tmp_path):
    labelled = b"".join(make_criteo(100, seed=3))
    unlabelled = b"".join(make_criteo(100, seed=3, labeled=False))
    path = tmp_path / "test.tsv"
    path.write_bytes(unlabelled)
    (batch,) = read_criteo(path, HASHER)
    assert batch.labels is None and batch.n_rows == 100
    (with_labels,) = read_criteo(labelled, HASHER)
    np.testing.assert_array_equal(batch.indices, with_labels.indices)


def test_crlf_blank_and_short_lines_are_tolerated():
    line = b"1\t5" + b"\t" * 13 + b"68fd1e64" + b"\t" * 25
    short = b"0\t5"  # trailing empty fields stripped
    (batch,) = read_criteo(line + b"\r\n\n" + short + b"\n", HASHER, labeled=True)
    assert batch.n_rows == 2
    assert batch.labels.tolist() == [1.0, 0.0]
    assert batch.fields.tolist() == [0, 1, 14, 0, 1]


def test_bad_line_raises_with_file_line_and_field(tmp_path):
    good = b"".join(make_criteo(5, seed=1))
    bad = b"1\t12x" + b"\t" * 38 + b"\n"
    path = tmp_path / "bad.tsv"
    path.write_bytes(good + bad + good)
    with pytest.raises(ParseError) as err:
        list(read_criteo(path, HASHER))
    message = str(err.value)
    assert str(path) in message and "line 6" in message and "'I1'" in message
    assert "expected a number" in message and "b'12x'" in message


@pytest.mark.parametrize(
    "line, what",
    [
        (b"2\t1" + b"\t" * 38, "field 'label' (column 1): expected a label 0 or 1, got b'2'"),
        (b"\t1" + b"\t" * 38, "found an empty field"),
        (b"1\t1" + b"\t" * 39 + b"extra", "more fields than the schema's 40"),
    ],
)
def test_each_kind_of_bad_line_is_worded(line, what):
    with pytest.raises(ParseError, match="line 1: .*" + __import__("re").escape(what)):
        list(read_criteo(line + b"\n", HASHER, labeled=True))


def test_skip_counts_bad_lines_and_keeps_the_rest(caplog):
    good = b"".join(make_criteo(10, seed=2))
    bad = b"x\t1" + b"\t" * 38 + b"\n"
    data = good + bad * 7 + good
    reader = read_criteo(data, HASHER, on_error="skip")
    with caplog.at_level(logging.WARNING):
        rows = sum(b.n_rows for b in reader)
    assert rows == 20
    assert reader.errors.count == 7
    assert len(reader.errors.examples) == MAX_ERROR_EXAMPLES
    assert "line 11" in reader.errors.examples[0]
    assert "skipped 7 bad lines" in caplog.text


def test_stdin_is_read(tmp_path):
    data = b"".join(make_criteo(1_000, seed=4))
    code = ("import sys; from fastctr import read_criteo, FeatureHasher;"
            "print(sum(b.n_rows for b in read_criteo('-', FeatureHasher(bits=18))))")
    out = subprocess.run([sys.executable, "-c", code], input=gzip.compress(data),
                         capture_output=True, check=True)
    assert out.stdout.strip() == b"1000"


def test_missing_file_is_named():
    with pytest.raises(FileNotFoundError, match="nope.tsv"):
        list(read_criteo("nope.tsv", HASHER, labeled=True))


def test_bad_reader_options():
    with pytest.raises(ValueError, match="on_error"):
        read_criteo(b"", HASHER, on_error="ignore")
    with pytest.raises(ValueError, match="batch_size"):
        read_criteo(b"", HASHER, batch_size=0)


def test_memory_is_bounded_by_the_batch(tmp_path):
    """Streaming a 36 MB file in 5K-row batches holds one block and about one batch."""
    path = write_criteo(tmp_path / "big.tsv.gz", 200_000, seed=5)
    tracemalloc.start()
    rows = 0
    for batch in read_criteo(path, HASHER, batch_size=5_000):
        rows += batch.n_rows
        del batch
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert rows == 200_000
    # one 5K batch is ~5K * 40 entries * 10 bytes = 2 MB; the stream is ~36 MB of text
    assert peak < 12e6, peak
