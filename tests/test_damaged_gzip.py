"""A truncated gzip file: every complete line before the damage is read, the true count of
bytes and lines is reported, in one thread and in chunks (issue 14, point 5)."""
import gzip
import zlib

import pytest

from fastctr import read_criteo
from fastctr.exceptions import DamagedDataError
from fastctr.io.datasets import make_criteo
from fastctr.io.hashing import FeatureHasher
from fastctr.io.sources import first_line

HASHER = FeatureHasher(bits=18)


@pytest.fixture(scope="module", params=[0.3, 0.7])
def truncated(tmp_path_factory, request):
    """A gzip file under 1 MiB of text cut at a fraction, and its complete lines."""
    text = b"".join(make_criteo(3_000, seed=1))
    packed = gzip.compress(text, compresslevel=1)
    cut = packed[: int(len(packed) * request.param)]
    path = tmp_path_factory.mktemp("gz") / "cut.tsv.gz"
    path.write_bytes(cut)
    prefix = zlib.decompressobj(wbits=31).decompress(cut)
    return path, len(prefix), prefix.count(b"\n")


def test_every_complete_line_before_the_damage_is_read(truncated):
    path, text_bytes, lines = truncated
    rows = 0
    with pytest.raises(DamagedDataError) as error:
        for batch in read_criteo(path, HASHER, batch_size=1_000):
            rows += batch.n_rows
    assert rows == lines > 0
    assert f"after {text_bytes:,} bytes of text" in str(error.value)
    assert f"the {lines:,} complete lines before it were read" in str(error.value)
    assert error.value.lines == lines and error.value.text_bytes == text_bytes


def test_chunks_read_the_same_rows_and_keep_mode_warns(truncated, caplog):
    path, _, lines = truncated
    reader = read_criteo(path, HASHER)
    reader.on_damage = "keep"
    rows = 0
    for chunk in reader.chunks(700):
        rows += sum(b.n_rows for b in chunk.parse())
        chunk.done()
    assert rows == lines and reader.damage.lines == lines
    assert "truncated or corrupt" in caplog.text


def test_the_head_of_a_small_damaged_file_is_readable(truncated):
    path, _, _ = truncated
    assert first_line(path).count(b"\t") == 39
