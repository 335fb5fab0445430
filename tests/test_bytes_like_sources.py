"""Every public reader takes any contiguous bytes-like buffer (bytes, bytearray, memoryview,
mmap, a numpy array), as a whole source or as chunks, and reads it as it reads bytes."""
import mmap

import numpy as np
import pytest

from fastctr import read_criteo, read_csv, read_data, read_libffm, read_libsvm, read_vw
from fastctr.io import sources

CRITEO = (b"1\t3" + b"\t" * 12 + b"\tab" + b"\t" * 25 + b"\n0\t\t7" + b"\t" * 11 + b"\tcd"
          + b"\t" * 25 + b"\n")
DATA = {
    "vw": (read_vw, b"1 2 |a x y:2\n-1 |b z\n"),
    "libsvm": (read_libsvm, b"1 3:1 5:2\n0 4:1\n"),
    "libffm": (read_libffm, b"1 0:3:1 1:5:2\n0 1:4:1\n"),
    "csv": (lambda s, **k: read_csv(s, label="click", **k), b"click,a,b\n1,x,y\n0,z,\n"),
    "criteo": (read_criteo, CRITEO),
}


def _rows(reader) -> list:
    """Everything a reader yields, to compare two reads."""
    return [(b.indptr.tolist(), b.indices.tolist(), b.values.tolist(), b.fields.tolist(),
             None if b.labels is None else b.labels.tolist(),
             None if b.weights is None else b.weights.tolist()) for b in reader]


@pytest.fixture
def mapped(tmp_path):
    maps = []

    def make(data: bytes) -> mmap.mmap:
        path = tmp_path / f"{len(maps)}.bin"
        path.write_bytes(data)
        with open(path, "rb") as f:
            maps.append(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
        return maps[-1]

    yield make
    for m in maps:
        m.close()


def _buffers(data: bytes, mapped) -> dict:
    cut = len(data) // 2 + 1  # inside a line
    return {
        "bytearray": bytearray(data),
        "memoryview": memoryview(data),
        "memoryview of a slice": memoryview(b"xx" + data + b"yy")[2:-2],
        "mmap": mapped(data),
        "numpy uint8": np.frombuffer(data, np.uint8),
        "memoryview chunks": [memoryview(data)[:cut], memoryview(data)[cut:]],
        "mixed chunks": (bytearray(data[:cut]), mapped(data[cut:])),
        "chunks from a generator": (memoryview(data)[i:i + 7] for i in range(0, len(data), 7)),
    }


@pytest.mark.parametrize("fmt", list(DATA))
def test_every_reader_reads_any_bytes_like_buffer_as_bytes(fmt, mapped):
    reader, data = DATA[fmt]
    expected = _rows(reader(data))
    assert sum(len(b[4] or b[0][1:]) for b in expected) == 2
    for kind, buffer in _buffers(data, mapped).items():
        if kind == "chunks from a generator" and fmt in ("vw", "libffm", "csv"):
            buffer = list(buffer)  # a generator cannot be read twice to discover the fields
        assert _rows(reader(buffer)) == expected, kind
    options = {"label": "click"} if fmt == "csv" else {}
    for kind, buffer in _buffers(data, mapped).items():
        if kind != "chunks from a generator":  # the format is read off the first line
            assert _rows(read_data(buffer, **options)) == expected, kind


def test_a_buffer_is_not_copied_whole(monkeypatch):
    # other buffers than bytes are cut into blocks: memory holds one block, not a second copy
    monkeypatch.setattr(sources, "BLOCK_BYTES", 64)
    data = b"1 3:1 5:2\n" * 100
    blocks, name = sources.open_source(memoryview(data))
    sizes = [len(b) for b in blocks]
    assert name == "<bytes>" and max(sizes) == 64 and sum(sizes) == len(data)
    assert _rows(read_libsvm(bytearray(data))) == _rows(read_libsvm(data))


def test_bad_buffers_and_chunks_are_named():
    with pytest.raises(TypeError, match="contiguous"):
        list(read_libsvm(memoryview(b"1 3:1\n" * 4)[::2]))
    with pytest.raises(TypeError, match=r"<chunks>: chunk 2 is a str; every chunk must be bytes-like"):
        list(read_libsvm([b"1 3:1\n", "1 4:1\n"]))
