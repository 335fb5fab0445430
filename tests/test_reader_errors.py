"""Every reader error names the file (or <stdin>, <bytes>), the line when there is one, and
what was expected (issue 13, defect 12): the inputs the fuzzers found failing with an error
that named neither."""
import gzip
import subprocess
import sys

import pytest

from fastctr import ParseError, read_csv, read_data, read_libsvm, read_vw
from fastctr.exceptions import DamagedDataError
from fastctr.io.detect import hasher_for

VW = b"1 |user age:3 x |ad a1\n0 |user y\n"


def _write(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("reader", [read_vw, lambda s: read_data(s, "auto")])
def test_a_namespace_that_is_not_utf8_names_file_line_and_namespace(tmp_path, reader):
    path = _write(tmp_path, "ns.vw", VW + b"1 |ad x |\xff\xfeuser y\n")
    with pytest.raises(ParseError, match=rf"^{path}, line 3: namespace b'\\xff\\xfeuser' is not "
                                         r"UTF-8 text: expected UTF-8 namespace names"):
        reader(path)


def test_a_feature_that_is_not_utf8_is_hashed_as_bytes():
    batch = next(iter(read_vw(b"1 |a \xff\xfe z\n")))
    assert batch.n_rows == 1 and batch.nnz == 3


def test_vw_lines_without_a_namespace_name_the_file_and_what_was_expected(tmp_path):
    path = _write(tmp_path, "plain.vw", b"1 a b\n0 c\n")
    with pytest.raises(ParseError, match=rf"^{path}: no VW namespace \('\|name'\) in its first 10 "
                                         r"bytes .* expected lines 'label \[importance\] \[tag\]\|"):
        read_vw(path)


@pytest.mark.parametrize("header, what", [
    (b"click,\xffsite,hour", r"column 2 of the header, b'\\xffsite', is not UTF-8 text: expected "
                             r"UTF-8 column names"),
    (b"click,site,click", r"column 3 of the header is named 'click' like column 1: expected "
                          r"distinct column names"),
    (b"click,,hour", r"column 2 of the header has no name: expected a name for every column"),
    (b"click,site, ", r"column 3 of the header has no name"),
    (b"", r"expected a header naming the columns; the line is empty"),
    (b'"click",site', r"quoted CSV is not supported"),
])
def test_a_bad_csv_header_names_file_line_1_and_the_column(tmp_path, header, what):
    path = _write(tmp_path, "log.csv", header + b"\n1,a,3\n")
    for call in (lambda: read_csv(path, label="click"), lambda: read_data(path, "csv"),
                 lambda: list(read_csv(path, hasher_for("csv", b"click,site\n"), label="click"))):
        with pytest.raises(ParseError, match=rf"^{path}, line 1: {what}"):
            call()


def test_csv_header_errors_name_the_path_not_data(tmp_path):
    path = _write(tmp_path, "log.csv", b"a,b\nx,y\n")
    with pytest.raises(ParseError, match=rf"^{path}, line 1: columns \['click'\] are not in the "
                                         r"header \['a', 'b'\]"):
        read_csv(path, label="click")
    with pytest.raises(ParseError, match=rf"^{path}, line 1: columns \['click'\] are not in the header"):
        list(read_csv(path, hasher_for("csv", b"a,b\n"), label="click"))
    with pytest.raises(ParseError, match=r"^<bytes>, line 1: columns \['click'\]"):
        read_csv(b"a,b\nx,y\n", label="click")


def _damaged_gzip(kind: str, text: bytes) -> bytes:
    data = bytearray(gzip.compress(text, mtime=0))
    if kind == "truncated":
        return bytes(data[:14])
    if kind == "corrupt":
        data[12:20] = b"\xff" * 8
        return bytes(data)
    return b"\x1f\x8b\x09" + bytes(data[3:])  # an unknown compression method in the header


@pytest.mark.parametrize("kind", ["truncated", "corrupt", "bad header"])
@pytest.mark.parametrize("fmt", ["auto", "vw", "csv", "libffm", "criteo", "libsvm"])
def test_gzip_damaged_in_the_head_read_for_detection_names_the_file(tmp_path, kind, fmt):
    # discovery and format detection read the head; the damage is met there, before any line
    text = b"click,site\n1,a\n" if fmt == "csv" else VW if fmt in ("auto", "vw") else b"1 0:1:1\n"
    path = _write(tmp_path, "clicks.gz", _damaged_gzip(kind, text * 50))
    options = {"label": "click"} if fmt == "csv" else {}
    with pytest.raises(DamagedDataError, match=rf"^{path}: the gzip data is truncated or corrupt "
                                               r"after \d+ bytes of text"):
        list(read_data(path, fmt, **options))


def test_a_gzip_head_with_whole_lines_before_the_damage_is_still_read(tmp_path):
    text = VW * 2000
    data = gzip.compress(text, mtime=0)
    path = _write(tmp_path, "clicks.vw.gz", data[: len(data) // 2])
    reader = read_vw(path)  # the namespaces are discovered from the lines before the damage
    with pytest.raises(DamagedDataError, match=rf"^{path}: .* complete lines before it were read"):
        for _ in reader:
            pass


def test_format_detection_errors_name_the_file_and_line_1(tmp_path):
    path = _write(tmp_path, "what.txt", b"1 2 3\n")
    with pytest.raises(ParseError, match=rf"^{path}, line 1: cannot tell the format from b'1 2 3': "
                                         r"expected a Criteo, VW, libsvm, libffm or CSV line"):
        read_data(path)


def test_stdin_errors_name_stdin():
    code = ("from fastctr import read_libsvm\n"
            "try:\n    list(read_libsvm('-'))\nexcept ValueError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], input=b"1 3:1\n1 x:y\n", capture_output=True,
                         timeout=120, check=True)
    assert out.stdout.decode().startswith("<stdin>, line 2: token 2: expected index:value")


def test_chunk_errors_name_the_chunks_and_the_line():
    with pytest.raises(ParseError, match=r"^<chunks>, line 2: token 2"):
        list(read_libsvm([b"1 3:1\n1 ", memoryview(b"x:y\n")]))


def test_a_reader_reused_for_many_bodies_names_each_bodys_bad_line():
    # a service keeps one reader for every request body: the 100th bad body's error is its
    # own (the error report keeps only the first examples), and good bodies still read
    from fastctr import FeatureHasher
    from fastctr.io.reader import DelimitedReader

    hasher = FeatureHasher(["n", "c"], numeric=["n"], bits=18)
    reader = DelimitedReader(b"", ["n", "c"], hasher)
    for i in range(100):
        bad = b"1\tx\n" * (i % 7) + f"oops{i}\ty\n".encode()
        with pytest.raises(ParseError, match=rf"^<bytes>, line {i % 7 + 1}: field 'n' .* b'oops{i}'"):
            reader.read_text(bad, max_rows=10)
        assert reader.read_text(b"2\tz", max_rows=10).n_rows == 1
