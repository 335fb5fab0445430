"""Model files: identical predictions, bit-identical resume, clear errors, atomic writes."""
import json
import os
import struct

import numpy as np
import pytest

from fastctr import FeatureHasher, FTRLClassifier, ModelFileError, load, read_criteo
from fastctr.serving import files as persist


@pytest.fixture(scope="module")
def rows(synthetic_tsv):
    return next(iter(read_criteo(synthetic_tsv, FeatureHasher(bits=18), batch_size=4_000)))


@pytest.fixture
def saved(tmp_path, rows):
    model = FTRLClassifier(bits=18, alpha=0.2, crosses=[("C1", "C2")]).partial_fit(rows)
    path = tmp_path / "model.fctr"
    model.save(path)
    return model, path


def test_load_gives_identical_model(saved, rows):
    model, path = saved
    again = load(path)
    assert type(again) is FTRLClassifier and again.hasher_ == model.hasher_
    assert {k: v for k, v in again.get_params().items() if k != "crosses"} == {
        k: v for k, v in model.get_params().items() if k != "crosses"}
    np.testing.assert_array_equal(again.zn_, model.zn_)
    np.testing.assert_array_equal(again.predict_proba(rows), model.predict_proba(rows))
    row = {"C1": "68fd1e64", "C2": "80e26c9b", "I1": 4}
    assert again.predict_one(row) == model.predict_one(row)


def test_mmap_load_predicts_the_same(saved, rows):
    # the state is stored by touched bucket: mmap rebuilds it in memory (tests/test_small_files.py
    # maps a table stored whole and a Scorer)
    model, path = saved
    mapped = load(path, mmap=True)
    np.testing.assert_array_equal(mapped.zn_, model.zn_)
    np.testing.assert_array_equal(mapped.predict_proba(rows), model.predict_proba(rows))


def test_header_is_versioned_json(saved):
    _, path = saved
    raw = path.read_bytes()
    assert raw[:8] == b"FASTCTR\0"
    (n,) = struct.unpack("<Q", raw[8:16])
    header = json.loads(raw[16 : 16 + n])
    assert header["format_version"] == persist.FORMAT_VERSION
    assert header["class"] == "FTRLClassifier"
    assert header["hasher"]["crosses"] == [["C1", "C2"]]
    assert header["file_size"] == len(raw)


def test_truncated_file_is_rejected(saved):
    _, path = saved
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ModelFileError, match="truncated"):
        load(path)


def test_corrupted_byte_is_rejected(saved):
    _, path = saved
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        load(path)


@pytest.mark.parametrize("content, message", [
    (b"PK\x03\x04 a zip file, not a model", "not a fastctr model"),
    (b"", "not a fastctr model"),
    (b"FASTCTR\0" + struct.pack("<Q", 5) + b"{bad", "header is unreadable"),
])
def test_other_files_are_rejected(tmp_path, content, message):
    path = tmp_path / "x.fctr"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        load(path)


def test_newer_format_version_is_named(saved):
    _, path = saved
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[8:16])
    header = raw[16 : 16 + n].replace(b'"format_version": 2', b'"format_version": 9')
    path.write_bytes(raw[:16] + header + raw[16 + n :])
    with pytest.raises(ModelFileError, match="format version 9.*upgrade fastctr"):
        load(path)


def test_failed_write_leaves_the_old_file(saved, monkeypatch, rows):
    model, path = saved
    before = path.read_bytes()

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(persist.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        FTRLClassifier(bits=18).partial_fit(rows[:10]).save(path)
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]  # no temporary file left behind


def test_unfitted_model_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="has not learned"):
        FTRLClassifier().save(tmp_path / "m.fctr")
