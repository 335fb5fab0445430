"""Small model files: a model's state tables are stored by touched bucket (format version 2),
load back bit for bit, and files of format version 1 (every table whole) still load."""
import json
import struct

import numpy as np
import pytest

from fastctr import FFMClassifier, FMClassifier, FTRLClassifier, ModelFileError, Scorer, load, read_criteo
from fastctr.serving import files as persist


@pytest.fixture(scope="module")
def batch(synthetic_tsv):
    return next(iter(read_criteo(synthetic_tsv, FTRLClassifier(bits=22).hasher_,
                                 batch_size=2_000)))


@pytest.fixture(scope="module")
def batch18(synthetic_tsv):
    return next(iter(read_criteo(synthetic_tsv, FTRLClassifier(bits=18).hasher_,
                                 batch_size=2_000)))


def _header(path) -> dict:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[8:16])
    return json.loads(raw[16 : 16 + n])


@pytest.mark.parametrize("cls, params", [
    (FTRLClassifier, {"bits": 22}),
    (FMClassifier, {"bits": 20, "k": 4}),
    (FFMClassifier, {"bits": 18, "k": 2}),
])
def test_state_is_stored_by_touched_bucket_and_loads_bit_for_bit(cls, params, synthetic_tsv,
                                                                 tmp_path):
    model = cls(**params)
    for batch in read_criteo(synthetic_tsv, model.hasher_, batch_size=2_000):
        model.partial_fit(batch)
        break
    model.zn_[7] = (-0.0, 0.0)  # a row whose only set bit is a sign: kept, bit for bit
    path = tmp_path / "m.fctr"
    model.save(path)
    dense = sum(a.nbytes for a in model.state if isinstance(a, np.ndarray))
    assert path.stat().st_size < dense / 10  # 2,000 rows touch a few % of the buckets
    header = _header(path)
    assert header["format_version"] == 2 and "zn_" in header["sparse"]
    for mmap in (False, True):
        again = load(path, mmap=mmap)
        for name in model.State._fields:
            ours, theirs = getattr(model, f"{name}_"), getattr(again, f"{name}_")
            if isinstance(ours, np.ndarray):
                assert theirs.dtype == ours.dtype and theirs.shape == ours.shape
                assert theirs.tobytes() == ours.tobytes(), name
            else:
                assert theirs == ours
        np.testing.assert_array_equal(again.predict_proba(batch), model.predict_proba(batch))


def test_an_ftrl_file_is_small(batch, tmp_path):
    # was 64 MiB whatever the data: 2**22 buckets x (z, sqrt n) x 8 bytes
    model = FTRLClassifier(bits=22).partial_fit(batch)
    path = tmp_path / "m.fctr"
    model.save(path)
    touched = int(model.zn_.any(axis=1).sum())
    assert path.stat().st_size < touched * 20 + 8_192


def test_a_table_mostly_touched_is_stored_whole_and_mappable(tmp_path, batch18):
    model = FTRLClassifier(bits=18).partial_fit(batch18)
    model.zn_[:, 1] = 1.0  # every bucket touched: whole is smaller than by rows
    path = tmp_path / "m.fctr"
    model.save(path)
    assert _header(path)["format_version"] == 1  # nothing sparse: older fastctr reads it
    mapped = load(path, mmap=True)
    assert isinstance(mapped.zn_, np.memmap)
    np.testing.assert_array_equal(mapped.zn_, model.zn_)


def test_scorer_files_stay_mappable(tmp_path, batch18):
    model = FTRLClassifier(bits=18).partial_fit(batch18)
    for layout in ("dense", "sparse"):
        scorer = model.to_scorer(layout=layout)
        path = tmp_path / f"{layout}.fctr"
        scorer.save(path)
        mapped = load(path, mmap=True)
        assert isinstance(mapped, Scorer)
        assert any(isinstance(a, np.memmap) for a in mapped.state if isinstance(a, np.ndarray))
        np.testing.assert_array_equal(mapped.predict_proba(batch18), scorer.predict_proba(batch18))


def test_version_1_files_still_load(tmp_path, batch18, monkeypatch):
    model = FMClassifier(bits=18, k=2).partial_fit(batch18)
    path = tmp_path / "v1.fctr"
    with monkeypatch.context() as m:  # the writer of version 1: every table whole
        m.setattr(persist, "_sparse_tables", lambda arrays: (arrays, {}))
        model.save(path)
    header = _header(path)
    assert header["format_version"] == 1 and "sparse" not in header
    assert path.stat().st_size > model.zn_.nbytes + model.vg_.nbytes
    again = load(path)
    assert again.zn_.tobytes() == model.zn_.tobytes()
    assert again.vg_.tobytes() == model.vg_.tobytes()


@pytest.mark.parametrize("rows, message", [
    (np.array([3, 2], np.uint32), "not ascending"),
    (np.array([2, 1 << 18], np.uint32), "not ascending"),
    (np.array([2, 3], np.int64), "missing or do not fit"),
])
def test_bad_sparse_rows_are_a_model_file_error(rows, message, tmp_path):
    state = {"zn_.rows": rows, "zn_.values": np.ones((2, 2))}
    sparse = {"zn_": {"dtype": "<f8", "shape": [1 << 18, 2]}}
    with pytest.raises(ModelFileError, match=message):
        persist._dense_tables(state, sparse, tmp_path / "m.fctr")


def test_an_untouched_table_is_stored_as_no_rows(tmp_path):
    # one row of one field: FFM's latent table has no touched bucket (an empty (0, F, 2k) array)
    model = FFMClassifier(bits=18).fit([{"C1": "a"}], [1])
    path = tmp_path / "m.fctr"
    model.save(path)
    for mmap in (False, True):
        again = load(path, mmap=mmap)
        assert again.vg_.tobytes() == model.vg_.tobytes()
        assert again.predict_one({"C1": "a"}) == model.predict_one({"C1": "a"})
