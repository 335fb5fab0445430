"""Fuzzers kept in the suite (issue 13): crafted model files (checksum recomputed), damaged
model files (cut or bit-flipped), random and mutated inputs to every reader (as bytes, buffers,
chunks, files and damaged gzip), odd rows to predict_one on every model and scorer.

Each input that could crash runs in a child interpreter (many inputs per child; a crash or a
stall is counted against the input it happened on, and a new child goes on), so a crash is
a counted failure, never a dead pytest. CI-sized by default; ``FASTCTR_FUZZ_LONG=1`` runs
every crafted file and many more random inputs.
"""
import os
import random
import tempfile

from child import run_batches

LONG = os.environ.get("FASTCTR_FUZZ_LONG") == "1"


def _sample(items: list, n: int, seed: int = 0) -> list:
    return items if LONG or len(items) <= n else random.Random(seed).sample(items, n)


def _bad(items, results, ok) -> list:
    return [(item, r) for item, r in zip(items, results) if not ok(r)]


def test_crafted_model_files_are_refused():
    # Valid files of every class (FTRL, FM, FFM with tables stored by rows and whole;
    # Scorers of every dtype and layout) mutated in their headers and arrays, the CRC
    # recomputed: each must be refused with ModelFileError (never crash, hang or load),
    # and the valid files must still load, predict and learn.
    from model_files import CHECK, crafted_items, valid_names

    with tempfile.TemporaryDirectory() as d:
        items = crafted_items(d)
        crafted = _sample(items, 300)
        valid = [(name, -1) for name in valid_names()]
        results = run_batches(CHECK, valid + crafted, env={"FASTCTR_CRAFTED_DIR": d})
    valid_results, crafted_results = results[:len(valid)], results[len(valid):]
    assert all(r.startswith("accepted") for r in valid_results), list(zip(valid, valid_results))
    bad = _bad(crafted, crafted_results, lambda r: r == "refused")
    print(f"{len(crafted)} crafted files (of {len(items)}): {len(bad)} not refused")
    assert not bad, bad[:20]


DAMAGED_CHECK = r'''
import os, random, tempfile
from fastctr import ModelFileError, load
from model_files import crafted_file

_dir = tempfile.mkdtemp()

def check(item):
    name, kind, seed = item
    data = bytearray(crafted_file(os.environ["FASTCTR_CRAFTED_DIR"], name, -1)[1])
    rng = random.Random(seed)
    if kind == "cut":
        del data[rng.randrange(len(data)):]
    else:  # one, two or eight flipped bits anywhere: header, arrays, padding or checksum
        for _ in range(rng.choice((1, 1, 2, 8))):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    path = os.path.join(_dir, "m.fctr")
    with open(path, "wb") as f:
        f.write(data)
    for mmap in (False, True):
        try:
            load(path, mmap=mmap)
        except ModelFileError:
            continue
        except Exception as e:
            return f"wrong error {type(e).__name__}: {str(e)[:200]}"
        return f"accepted (mmap={mmap})"
    return "refused"
'''

N_DAMAGED = 7200 if LONG else 240


def test_damaged_model_files_are_refused():
    # Accidents, the checksum not recomputed: valid files of every class cut short or with
    # flipped bits must be refused with ModelFileError, plain and mapped.
    from model_files import crafted_items, valid_names

    names = valid_names()
    per_name = -(-N_DAMAGED // len(names))
    items = [(name, ("cut", "flip")[i % 2], i) for name in names for i in range(per_name)]
    with tempfile.TemporaryDirectory() as d:
        crafted_items(d)  # writes the valid files
        results = run_batches(DAMAGED_CHECK, items, env={"FASTCTR_CRAFTED_DIR": d})
    bad = _bad(items, results, lambda r: r == "refused")
    print(f"{len(items)} damaged model files: {len(bad)} not refused")
    assert not bad, bad[:20]


# -- readers: random and mutated bytes in every format ---------------------------------------
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SEEDS = {
    "criteo": b"1\t3\t\t7\t1e3\t-2\t0.5\t\t\t\t\t\t\t1\ta1b2\tc3\t\t\td4\n0\t\t2\n",
    "vw": b"1 2.5 'tag|user age:3 x |ad a1 b:-0.5\n-1 |user y\n0 |ad:2 z\n",
    "libsvm": b"+1 3:1 70:0.5\n-1 3:1e2\n0 5:-2\n",
    "libffm": b"1 0:3:1 2:70:0.5\n0 1:2:1e-3\n",
    "csv": b"click,hour,site\n1,14,a\n0,,b\n1,3.5,\n",
}
SPECIAL = b"\t \n\r\x0b\x0c\x00\xff:|'-+.eE0123456789nainfNAN,\""


@st.composite
def mutated(draw, fmt):
    data = bytearray(SEEDS[fmt] * draw(st.integers(1, 3)))
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "repeat"]))
        piece = bytes(draw(st.lists(st.sampled_from(list(SPECIAL)), min_size=1, max_size=8)))
        if op == "insert":
            data[at:at] = piece
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 8))]
        elif op == "replace":
            data[at:at + len(piece)] = piece
        else:
            data[at:at] = data[at:at + draw(st.integers(1, 40))] * draw(st.integers(1, 3))
    return fmt, bytes(data)


#: how an input reaches the reader: bytes, another buffer, chunks, a file, a gzip file
#: (whole, cut or with a flipped byte: damage inside the head read ahead for detection too)
CONTAINERS = ("bytes", "memoryview", "chunks", "path", "gzip")


@st.composite
def reader_inputs(draw):
    formats = list(SEEDS)
    fmt, data = draw(st.one_of(*(mutated(f) for f in formats),
                               st.tuples(st.sampled_from(formats), st.binary(max_size=200))))
    container = draw(st.sampled_from(CONTAINERS))
    damage = None
    if container == "gzip":
        damage = draw(st.one_of(st.none(), st.tuples(st.sampled_from(["cut", "flip"]),
                                                     st.integers(0, 2**16), st.integers(1, 255))))
    cuts = draw(st.lists(st.integers(0, 2**16), max_size=3)) if container == "chunks" else []
    return {"format": draw(st.sampled_from([fmt, "auto"])), "data": data, "as": container,
            "damage": damage, "cuts": cuts}


READER_CHECK = r'''
import gzip, os, re, tempfile
import numpy as np
from fastctr import ParseError, read_data
from fastctr.exceptions import DamagedDataError

DIR = tempfile.mkdtemp()

def source_of(item):
    """The input as the reader gets it, its name in errors, and whether its text is known."""
    data, kind = item["data"], item["as"]
    if kind == "bytes":
        return data, "<bytes>", True
    if kind == "memoryview":
        return memoryview(bytearray(data)), "<bytes>", True
    if kind == "chunks":
        bounds = [0, *sorted(c % (len(data) + 1) for c in item["cuts"]), len(data)]
        return [memoryview(data)[a:b] for a, b in zip(bounds, bounds[1:])], "<chunks>", True
    raw = bytearray(gzip.compress(data, mtime=0) if kind == "gzip" else data)
    if item["damage"]:
        op, at, x = item["damage"]
        at %= len(raw)
        if op == "cut":
            del raw[at:]
        else:
            raw[at] ^= x
    path = os.path.join(DIR, "input.gz" if kind == "gzip" else "input.txt")
    with open(path, "wb") as f:
        f.write(raw)
    return path, path, item["damage"] is None

def judge(error, name, text):
    """A ParseError is "refused" when it names the source and, unless it is about the whole
    source (damaged gzip, no VW namespace to discover), a line of it."""
    message = str(error)
    if not message.startswith(name):
        return f"does not name {name}: {message[:200]}"
    line = re.match(r", line (\d+): ", message[len(name):])
    if line is None:
        whole = isinstance(error, DamagedDataError) or message[len(name):].startswith(": no VW namespace")
        return "refused" if whole else f"names no line: {message[:200]}"
    if text is not None and not 1 <= int(line[1]) <= text.count(b"\n") + 1:
        return f"names a line that is not there: {message[:200]}"
    return "refused"

def check(item):
    source, name, known = source_of(item)
    options = {"label": "click"} if item["format"] == "csv" else {}
    try:
        for batch in read_data(source, format=item["format"], batch_size=64, **options):
            if not np.isfinite(batch.values).all():
                return "NaN"
        return "ok"
    except ParseError as e:
        return judge(e, name, item["data"] if known else None)
    except Exception as e:  # refused, but not with a ParseError naming the source and line
        return f"error {type(e).__name__}: {str(e)[:200]}"
'''

N_READER = 8000 if LONG else 300
N_PREDICT = 13500 if LONG else 300  # x 13 models: 175,500 calls in the long run


def draw(strategy, n: int) -> list:
    """``n`` examples of ``strategy`` as hypothesis generates them (derandomized: the same
    inputs on every run), to be run in child processes in batches: hypothesis drives the
    inputs, the children count the crashes."""
    out = []

    @settings(max_examples=n, derandomize=True, deadline=None, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(x):
        out.append(x)

    collect()
    return out


def test_readers_never_crash_hang_or_yield_nan_and_name_file_and_line():
    # every failure is a ParseError naming the source (path, <bytes>, <chunks>) and, for a
    # bad line, a line that is there (issue 13, defects 3 and 12)
    inputs = draw(reader_inputs(), N_READER)
    results = run_batches(READER_CHECK, inputs)
    print(f"{len(inputs)} reader inputs:", {r: results.count(r) for r in ("ok", "refused")},
          f"{sum(r not in ('ok', 'refused') for r in results)} other")
    broken = _bad(inputs, results, lambda r: not (r == "NaN" or str(r).startswith(("CRASH", "HANG",
                                                                                  "EXIT"))))
    assert not broken, broken[:10]
    unnamed = _bad(inputs, results, lambda r: r in ("ok", "refused"))
    assert not unnamed, unnamed[:10]


# -- predict_one: odd rows on every model and scorer -------------------------------------------
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e39, -1e39, 1e308, -0.0]),
    st.text(max_size=12), st.binary(max_size=12), st.sampled_from(["nan", "inf", " 3", "1e400"]),
    st.lists(st.integers(), max_size=2), st.uuids())
KEYS = st.one_of(st.sampled_from(["I1", "I2", "C1", "C2", "C26", "a", "b"]), st.text(max_size=4),
                 st.integers(0, 3))
ROWS = st.one_of(
    st.dictionaries(KEYS, VALUES, max_size=8),
    st.text(alphabet="\t 0123456789.eE-+naif\n\r", max_size=60),
    st.binary(max_size=60),
    st.tuples(st.lists(st.integers(-(2**33), 2**33), max_size=4),
              st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=4)),
)

PREDICT_CHECK = r'''
import math
import numpy as np
from fastctr import FFMClassifier, FMClassifier, FTRLClassifier

_rows = [{"I1": 3, "I2": 0.5, "C1": "x", "C2": "y", "a": "p", "b": "q"},
         {"I1": 1, "C1": "z", "C26": "w", "a": "r"}] * 3
MODELS = []
for transform in ("bin", "value", "log1p"):
    for cls, extra in ((FTRLClassifier, {}), (FMClassifier, {"k": 2})):
        MODELS.append(cls(bits=18, numeric_transform=transform, unknown="ignore", **extra)
                      .fit(_rows, [1, 0] * 3))
MODELS.append(FFMClassifier(bits=18, k=2, fields=["a", "b", "C1"], unknown="ignore")
              .fit(_rows, [1, 0] * 3))
FM_LOG1P, FFM = MODELS[5], MODELS[6]
for dtype in ("float32", "float16", "int8"):
    for layout in ("sparse", "dense"):
        MODELS.append(MODELS[0].to_scorer(dtype, layout))
for factors in (FM_LOG1P, FFM):  # the FM and FFM scorers (FactorScorer)
    for dtype in ("float32", "int8"):
        for layout in ("sparse", "dense"):
            MODELS.append(factors.to_scorer(dtype, layout))
assert len(MODELS) == 21
from fastctr._ext._score import RowHasher
HASHER = RowHasher(MODELS[0].hasher_._spec, MODELS[0].hasher_.fields)

def hashed(hash_row, row):
    try:
        return tuple(bytes(part) for part in hash_row(row))
    except (ValueError, TypeError, OverflowError):
        return "refused"

def check(row):
    if not isinstance(row, tuple) and hashed(HASHER.hash_row, row) != hashed(HASHER.hash_row_bytes, row):
        return "hash_row_bytes disagrees with hash_row"
    outcomes = []
    for m in MODELS:
        try:
            p = m.predict_one(row)
        except (ValueError, TypeError, OverflowError):
            outcomes.append("refused")
            continue
        if not (isinstance(p, float) and 0.0 <= p <= 1.0):
            return f"NaN or out of range: {p!r} from {type(m).__name__}"
        outcomes.append("ok")
    return "ok" if "ok" in outcomes else "refused"
'''


def test_predict_one_never_crashes_or_answers_nan():
    rows = draw(ROWS, N_PREDICT)
    results = run_batches(PREDICT_CHECK, rows)
    bad = _bad(rows, results, lambda r: r in ("ok", "refused"))
    print(f"{len(rows)} predict_one rows x 21 models and scorers:",
          {r: results.count(r) for r in set(map(str, results))})
    assert not bad, bad[:10]
    assert results.count("ok") > len(rows) // 4  # (the rows are not all refused)


# -- read_text (the service's request bodies) against iterating the same bytes ------------------
TEXT_CHECK = r'''
import numpy as np
from fastctr import FeatureHasher, ParseError
from fastctr.io.reader import DelimitedReader

HASHER = FeatureHasher(bits=18)
COLUMNS = ("label", *HASHER.fields)  # the Criteo seed's layout
SERVED = DelimitedReader(b"", COLUMNS, HASHER)  # one reader for every body, as a service has
MAX_ROWS = 4

def arrays(batch):
    return [np.asarray(a).tolist() for a in (batch.indptr, batch.indices, batch.values, batch.fields)]

def check(data):
    try:
        got = SERVED.read_text(data, MAX_ROWS)
        got = "too many" if got is None else arrays(got)
    except ParseError as e:
        got = f"refused: {e}"
    try:
        first = next(iter(DelimitedReader(data, COLUMNS, HASHER, batch_size=MAX_ROWS + 1)), None)
        want = ("too many" if first is not None and first.n_rows > MAX_ROWS else
                arrays(first) if first is not None else [[0], [], [], []])
    except ParseError as e:
        want = f"refused: {e}"
    if isinstance(got, list) and not np.isfinite(got[2]).all():
        return "NaN"
    if got != want:
        return f"read_text {str(got)[:150]} but iterating {str(want)[:150]}"
    return "refused" if isinstance(got, str) else "ok"
'''


def test_read_text_agrees_with_iterating_the_same_bytes():
    # the service parses request bodies with read_text: same rows, same errors (naming the
    # line) as reading the bytes as a source, and never a crash, on mutated Criteo lines
    texts = [data for _, data in draw(mutated("criteo"), N_READER // 4)]
    results = run_batches(TEXT_CHECK, texts)
    print(f"{len(texts)} request bodies:", {r: results.count(r) for r in set(map(str, results))
                                            if r in ("ok", "refused", "too many")})
    bad = _bad(texts, results, lambda r: r in ("ok", "refused"))
    assert not bad, bad[:10]
    assert "ok" in results and "refused" in results  # (both ways through are taken)
