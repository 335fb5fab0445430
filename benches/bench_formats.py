"""Parse + hash throughput of every log format, with VW's own text parser in the same run.

Groups are ``parse_hash|<format>|<size>``. The rows are the same synthetic ``make_criteo``
rows written out in each format (VW: one namespace per field; libsvm/libffm: the buckets
fastctr hashed them to; CSV: a header and commas), so the figures differ by format only.
"""
from __future__ import annotations

import pytest

from fastctr import read_criteo
from fastctr.bench.peers import VW_NAMESPACES, vw_line
from fastctr.io.datasets import make_criteo
from fastctr.io.detect import hasher_for, read_data
from fastctr.io.hashing import CRITEO_FIELDS

BITS = 22
ROUNDS = 5
BATCH = 100_000
FORMATS = ("criteo", "vw", "libsvm", "libffm", "csv")
VW_ARGS = f"--quiet -b {BITS} --noconstant"


def _as_formats(tsv: bytes) -> dict[str, bytes]:
    """The Criteo TSV rows written out in every format."""
    lines = [line.split(b"\t") for line in tsv.splitlines()]
    (hashed,) = read_criteo(tsv, hasher_for("criteo", bits=BITS), batch_size=len(lines))
    svm, ffm, vw = [], [], []
    for r, (label, *values) in enumerate(lines):
        s = slice(hashed.indptr[r] + 1, hashed.indptr[r + 1])  # past the bias
        pairs = list(zip(hashed.fields[s].tolist(), hashed.indices[s].tolist()))
        svm.append(label + b"".join(b" %d:1" % i for _, i in pairs))
        ffm.append(label + b"".join(b" %d:%d:1" % (f - 1, i) for f, i in pairs))
        vw.append(vw_line(int(label), [v.decode() for v in values]).encode())
    header = b"label," + ",".join(CRITEO_FIELDS).encode()
    return {"criteo": tsv, "vw": b"\n".join(vw) + b"\n", "libsvm": b"\n".join(svm) + b"\n",
            "libffm": b"\n".join(ffm) + b"\n",
            "csv": b"\n".join([header] + [b",".join(x) for x in lines]) + b"\n"}


@pytest.fixture(scope="module")
def data(sizes) -> dict[str, bytes]:
    return _as_formats(b"".join(make_criteo(sizes.parse, seed=0)))


def _hasher_options(fmt: str) -> dict:
    return {"csv": {"label": "label", "numeric": [f"I{i}" for i in range(1, 14)]},
            "vw": {"namespaces": list(VW_NAMESPACES)},
            "libffm": {"n_fields": len(CRITEO_FIELDS)}}.get(fmt, {})


@pytest.mark.parametrize("fmt", FORMATS)
def test_parse_hash(benchmark, sizes, data, fmt, record_rate, size_label):
    source = data[fmt]
    hasher = hasher_for(fmt, source, bits=BITS, **_hasher_options(fmt))
    reader_opts = {"label": "label"} if fmt == "csv" else {}
    benchmark.group = f"parse_hash|{fmt}|{size_label(sizes.parse)}"
    n = benchmark.pedantic(
        lambda: sum(b.n_rows for b in read_data(source, fmt, hasher, batch_size=BATCH, **reader_opts)),
        rounds=ROUNDS, warmup_rounds=1)
    assert n == sizes.parse
    record_rate(benchmark, sizes.parse)


def test_vw_parse_lines(benchmark, sizes, data, record_rate, size_label):
    """VW's own parser over the same lines: ``Workspace.parse`` + ``finish_example`` per line."""
    vw = pytest.importorskip("vowpalwabbit")
    lines = data["vw"].decode().splitlines()
    ws = vw.Workspace(VW_ARGS)
    benchmark.group = f"parse_hash|vw|{size_label(sizes.parse)}"

    def run() -> None:
        for line in lines:
            ws.finish_example(ws.parse(line))

    benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=1)
    record_rate(benchmark, len(lines), vs="test_parse_hash[vw]")
    ws.finish()

