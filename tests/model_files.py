"""Crafted model files: valid files of every class, and mutations of their headers and arrays
with the checksum recomputed (the CRC catches accidents, not lies).

Every mutation makes a file that disagrees with itself or with its class (a dtype, shape,
offset, size, class, parameter or table invariant), so loading must refuse it with
ModelFileError: a file that loads is a silent acceptance, a dead child a crash.
"""
from __future__ import annotations

import copy
import json
import os
import struct
import zlib
from functools import partial

import numpy as np

MAGIC = b"FASTCTR\0"
ALIGN = 64
ROWS = [{"C1": "a", "C2": "b", "I1": 3}, {"C1": "b", "I2": 1.5}, {"C3": "c", "I1": 700}] * 4
LABELS = [1, 0, 1] * 4
FFM_FIELDS = ["a", "b", "c"]
FFM_ROWS = [{"a": "x", "b": "y"}, {"a": "z", "c": "w"}, {"b": "q", "c": "r"}] * 4
#: (file name, layout, dtype) of the FactorScorer files, of the FM and the FFM model
FACTOR_SCORERS = [("fm-scorer-sparse", "sparse", "int8"), ("fm-scorer-dense", "dense", "float16"),
                  ("ffm-scorer-sparse", "sparse", "float32"), ("ffm-scorer-dense", "dense", "int8")]


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def parse(data: bytes) -> tuple[dict, dict]:
    """A valid file's header and its arrays' bytes by name."""
    (n,) = struct.unpack("<Q", data[8:16])
    header = json.loads(data[16:16 + n])
    arrays = {a["name"]: data[a["offset"]:a["offset"] + a["nbytes"]] for a in header["arrays"]}
    return header, arrays


def build(header: dict, arrays: dict, mutate_header=None, header_len: int | None = None) -> bytes:
    """A file with ``arrays`` laid out after ``header`` (offsets, sizes and file size filled
    in), ``mutate_header`` then applied to the header only (the bytes stay where the clean
    layout put them), and a correct CRC."""
    h = copy.deepcopy(header)
    room = _align(len(json.dumps(h)) + 4096)  # header padded with spaces to a fixed length
    offset = _align(16 + room)
    specs = {a["name"]: a for a in h["arrays"]}
    placed = []
    for name, raw in arrays.items():
        spec = specs[name]
        spec["offset"], spec["nbytes"] = offset, len(raw)
        placed.append((offset, raw))
        offset = _align(offset + len(raw))
    end = placed[-1][0] + len(placed[-1][1]) if placed else 16 + room
    h["file_size"] = end + 4
    if mutate_header is not None:
        mutate_header(h)
    text = json.dumps(h).encode()
    text += b" " * max(0, room - len(text))
    body = bytearray(MAGIC + struct.pack("<Q", header_len if header_len is not None else len(text))
                     + text)
    body += b"\0" * (end - len(body))
    for at, raw in placed:
        body[at:at + len(raw)] = raw
    return bytes(body) + struct.pack("<I", zlib.crc32(body))


def valid_files() -> dict[str, bytes]:
    """One valid file per class and storage: FTRL, FM and FFM with state tables stored by
    touched bucket (version 2) and whole (version 1), Scorers of every dtype and layout, and
    FM and FFM FactorScorers of both layouts."""
    import tempfile

    from fastctr import FFMClassifier, FMClassifier, FTRLClassifier

    models = {
        "ftrl": FTRLClassifier(bits=18).fit(ROWS, LABELS),
        "fm": FMClassifier(bits=18, k=2).fit(ROWS, LABELS),
        "ffm": FFMClassifier(bits=18, k=2, fields=FFM_FIELDS).fit(FFM_ROWS, LABELS),
    }
    for dtype in ("float32", "float16", "int8"):
        for layout in ("sparse", "dense"):
            models[f"scorer-{dtype}-{layout}"] = models["ftrl"].to_scorer(dtype, layout)
    for name, layout, dtype in FACTOR_SCORERS:
        models[name] = models[name.split("-")[0]].to_scorer(dtype, layout)
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for name, model in models.items():
            path = os.path.join(d, name)
            model.save(path)
            with open(path, "rb") as f:
                out[name] = f.read()
    for name in ("ftrl", "fm", "ffm"):  # the same state stored whole: format version 1
        header, arrays = parse(out[name])
        whole = {}
        for table, spec in header.pop("sparse").items():
            rows = np.frombuffer(arrays.pop(f"{table}.rows"), np.uint32)
            dense = np.zeros(spec["shape"], spec["dtype"])
            dense[rows] = np.frombuffer(arrays.pop(f"{table}.values"),
                                        spec["dtype"]).reshape((-1, *spec["shape"][1:]))
            whole[table] = dense.tobytes()
            header["arrays"] = [a for a in header["arrays"] if not a["name"].startswith(table)]
            header["arrays"].append({"name": table, "dtype": spec["dtype"],
                                     "shape": spec["shape"]})
        header["format_version"] = 1
        out[f"{name}-whole"] = build(header, whole)
    return out


def _set(path: list, value):
    def mutate(h):
        target = h
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return mutate


def _both(key: str, value):
    """A hashing parameter changed in params and hasher alike (so they still agree)."""
    def mutate(h):
        if key in h["params"]:
            h["params"][key] = value
        h["hasher"][key] = value
    return mutate


BAD_DTYPES = ["|O", "<f2", "<f4", "<f8", "<i8", ">f8", "<c16", "|V16", "|b1", "<M8[s]", "|u1",
              "nonsense", 3, None]


def mutations(name: str, data: bytes):
    """(label, build) of every crafted variant of one valid file: ``build()`` makes its
    bytes (lazily: files with whole state tables are megabytes each)."""
    header, arrays = parse(data)
    n = len(header["arrays"])

    def variant(mutate=None, **kwargs):
        return partial(build, header, arrays, mutate, **kwargs)

    for i, spec in enumerate(header["arrays"]):
        a = spec["name"]
        for dtype in BAD_DTYPES:
            if dtype != spec["dtype"]:
                yield f"{a}.dtype={dtype}", variant(_set(["arrays", i, "dtype"], dtype))
        shape = spec["shape"]
        for bad in ([shape[0] * 2, *shape[1:]], [max(shape[0] // 2, 1), *shape[1:]], [],
                    [-1, *shape[1:]], [2**62, *shape[1:]], [*shape, 1], "x", [1.5]):
            if bad != shape:
                yield f"{a}.shape={bad}", variant(_set(["arrays", i, "shape"], bad))
        for label, fix in (("zero", lambda h, i=i: 0),
                           ("misaligned", lambda h, i=i: h["arrays"][i]["offset"] + 8),
                           ("past-end", lambda h, i=i: h["file_size"] - 4),
                           ("negative", lambda h, i=i: -64), ("huge", lambda h, i=i: 2**62),
                           ("in-header", lambda h, i=i: 64),
                           ("overlap", lambda h, i=i: h["arrays"][i - 1]["offset"] if i else 16),
                           ("text", lambda h, i=i: "64")):
            def mutate(h, i=i, fix=fix):
                h["arrays"][i]["offset"] = fix(h)
            yield f"{a}.offset={label}", variant(mutate)
        for label, fix in (("zero", lambda s: 0), ("plus8", lambda s: s + 8),
                           ("minus8", lambda s: s - 8), ("huge", lambda s: 2**62)):
            if spec.get("nbytes", len(arrays[a])) and fix(len(arrays[a])) != len(arrays[a]):
                def mutate(h, i=i, fix=fix):
                    h["arrays"][i]["nbytes"] = fix(h["arrays"][i]["nbytes"])
                yield f"{a}.nbytes={label}", variant(mutate)
        rest = {k: v for k, v in arrays.items() if k != a}
        kept = [s for s in header["arrays"] if s["name"] != a]
        yield f"drop-{a}", partial(build, {**header, "arrays": kept}, rest)
    if n:
        def duplicate(h):
            h["arrays"].append(dict(h["arrays"][0]))
        yield "duplicate-array-entry", variant(duplicate)
    extra = {**arrays, "evil": np.arange(8, dtype=np.float64).tobytes()}
    evil = {"name": "evil", "dtype": "<f8", "shape": [8]}
    yield "unknown-array", partial(build, {**header, "arrays": [*header["arrays"], evil]}, extra)
    # the class and its parameters
    from fastctr.serving.registry import MODEL_CLASSES
    for cls in list(MODEL_CLASSES) + ["object", "OnlineClassifier", 7]:
        if cls != header["class"]:
            yield f"class={cls}", variant(_set(["class"], cls))
    for bits in (17, 19, 30, 31, -1, "18", 18.5):
        if header["params"].get("layout") == "sparse" and bits in (19, 30):
            continue  # a sparse table does not record its buckets' range: a well-formed scorer
        yield f"bits={bits}", variant(_both("bits", bits))
    if "k" in header["params"]:
        for k in (1, 3, 0, -2, 2**40):
            yield f"k={k}", variant(_set(["params", "k"], k))
    if header["class"] == "FFMClassifier":
        fields = header["hasher"]["fields"]
        yield "one-field-less", variant(_both("fields", fields[:-1]))
        yield "one-field-more", variant(_both("fields", [*fields, "zz"]))
    if header["class"] in ("Scorer", "FactorScorer"):
        for dtype in ("float32", "float16", "int8", "float64", "object"):
            if dtype != header["params"]["dtype"]:
                yield f"params.dtype={dtype}", variant(_set(["params", "dtype"], dtype))
        for scale in (float("nan"), float("inf"), -1.0, 0.0, "x"):
            for name in ("scale", "factor_scale"):
                if name in header["scalars"]:
                    yield f"{name}={scale}", variant(_set(["scalars", name], scale))
        layout = header["params"].get("layout")
        yield "layout-swapped", variant(_set(
            ["params", "layout"], "dense" if layout == "sparse" else "sparse"))
        if "keys" in arrays:
            keys = np.frombuffer(arrays["keys"], np.uint32)
            full = keys.copy()
            full[full == 0xFFFFFFFF] = 3  # no empty slot: a lookup of a missing bucket spins
            yield "keys-full", partial(build, header, {**arrays, "keys": full.tobytes()})
            out = keys.copy()
            out[np.flatnonzero(out != 0xFFFFFFFF)[0]] = (1 << header["hasher"]["bits"]) + 5
            yield "key-out-of-range", partial(build, header, {**arrays, "keys": out.tobytes()})
            # a Scorer's weights are per slot, a FactorScorer's per row, its slots' rows in "rows"
            per_slot = "rows" if "rows" in arrays else "weights"
            odd = {**arrays, "keys": keys[:-1].tobytes(),
                   per_slot: arrays[per_slot][:len(arrays[per_slot]) * (len(keys) - 1) // len(keys)]}
            yield "table-not-power-of-two", partial(build, header, odd,
                                                    _shrink_table(len(keys) - 1, ("keys", per_slot)))
        if "rows" in arrays:  # a FactorScorer's slot pointing past its rows
            rows = np.frombuffer(arrays["rows"], np.uint32).copy()
            rows[np.flatnonzero(keys != 0xFFFFFFFF)[0]] = len(arrays["weights"])
            yield "row-out-of-range", partial(build, header, {**arrays, "rows": rows.tobytes()})
        if header["class"] == "FactorScorer":
            for value in (-1, 2**53, 2**64, "x", None, 1.5):
                yield f"seed={value}", variant(_set(["scalars", "seed"], value))
            for value in (-1.0, float("nan"), float("inf"), "x", None, True):
                yield f"init_std={value}", variant(_set(["params", "init_std"], value))
            for value in ("yes", None, 2):
                yield f"normalize={value}", variant(_set(["params", "normalize"], value))
            if header["params"]["dtype"] != "int8":  # a stored value that is not finite
                weights = bytearray(arrays["weights"])
                weights[-4 if header["params"]["dtype"] == "float32" else -2:] = (
                    b"\x00\x00\xc0\x7f" if header["params"]["dtype"] == "float32" else b"\x00\x7e")
                yield "weight-nan", partial(build, header, {**arrays, "weights": bytes(weights)})
    else:
        for label, value in (("negative", -1), ("text", "x"), ("float", 1.5), ("none", None)):
            yield f"n_rows_seen={label}", variant(_set(["scalars", "n_rows_seen_"], value))
        if "seed_" in header["scalars"]:
            for value in (-1, 2**64, "x", None):
                yield f"seed={value}", variant(_set(["scalars", "seed_"], value))
    for table, spec in (header.get("sparse") or {}).items():
        for dtype in ("|O", "<f4", "<i8"):
            yield f"sparse.{table}.dtype={dtype}", variant(_set(["sparse", table, "dtype"], dtype))
        for shape in ([spec["shape"][0] * 2, *spec["shape"][1:]], [spec["shape"][0] // 2, *spec["shape"][1:]],
                      [*spec["shape"][:-1], spec["shape"][-1] * 2], [2**40, *spec["shape"][1:]]):
            yield f"sparse.{table}.shape={shape}", variant(_set(["sparse", table, "shape"], shape))
    for label, value in (("2**62", 2**62), ("2**40", 2**40), ("zero", 0)):
        yield f"header-length={label}", variant(header_len=value)
    yield "file_size-in-header-only", variant(_set(["file_size"], 10**15))


def _shrink_table(slots: int, names: tuple[str, ...]):
    def mutate(h):
        for spec in h["arrays"]:
            if spec["name"] in names:
                spec["shape"] = [slots]
    return mutate


def crafted_files(valid: dict[str, bytes]) -> list[tuple[str, object]]:
    """(label, build) of every mutation of every valid file."""
    return [(f"{name}: {label}", make) for name, data in valid.items()
            for label, make in mutations(name, data)]


#: the child-side check of one crafted file (tests/child.py run_batches)
CHECK = r'''
import math, os, tempfile
import numpy as np
from fastctr import ModelFileError, load
from model_files import crafted_file

_dir = tempfile.mkdtemp()

def check(item):
    label, data = crafted_file(os.environ["FASTCTR_CRAFTED_DIR"], *item)
    path = os.path.join(_dir, "m.fctr")
    with open(path, "wb") as f:
        f.write(data)
    for mmap in (False, True):
        try:
            model = load(path, mmap=mmap)
        except ModelFileError:
            continue
        except Exception as e:
            return f"wrong error {type(e).__name__}: {str(e)[:200]}"
        fields = model.hasher_.fields
        row = {name: "1" for name in fields[:4]}
        p = model.predict_one(row)
        if hasattr(model, "partial_fit") and not mmap:
            model.partial_fit([row] * 3, [1, 0, 1])
            p = model.predict_one(row)
        return f"accepted (mmap={mmap}, p={p})"
    return "refused"
'''


def crafted_items(directory: str) -> list[tuple[str, int]]:
    """Write the valid files to ``directory``; (file name, mutation number) of every crafted
    variant, for children to rebuild with :func:`crafted_file` (bytes are made lazily)."""
    items = []
    for name, data in valid_files().items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)
        items += [(name, i) for i in range(sum(1 for _ in mutations(name, data)))]
    return items


_LISTS: dict = {}


def valid_names() -> list[str]:
    """The names of the valid files (written by :func:`crafted_items`)."""
    names = ["ftrl", "fm", "ffm", "ftrl-whole", "fm-whole", "ffm-whole"]
    return names + [f"scorer-{d}-{lay}" for d in ("float32", "float16", "int8")
                    for lay in ("sparse", "dense")] + [name for name, _, _ in FACTOR_SCORERS]


def crafted_file(directory: str, name: str, i: int) -> tuple[str, bytes]:
    """The label and bytes of mutation ``i`` of the valid file ``name`` in ``directory``
    (``i = -1``: the valid file itself)."""
    if i < 0:
        with open(os.path.join(directory, name), "rb") as f:
            return f"{name}: valid", f.read()
    if name not in _LISTS:
        with open(os.path.join(directory, name), "rb") as f:
            _LISTS[name] = list(mutations(name, f.read()))
    label, make = _LISTS[name][i]
    return f"{name}: {label}", make()
