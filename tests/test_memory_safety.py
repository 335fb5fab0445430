"""Memory safety of the compiled core: inputs whose Python code (``__str__``, ``__float__``, a
key's ``__eq__``) or another thread changes or frees a dict row while it is being hashed.

Each case runs in a child interpreter with freed memory poisoned (tests/child.py), so a
use-after-free is a deterministic crash counted as a failure, never a dead pytest.
"""
from child import assert_child_ok

PRELUDE = r'''
import sys, threading, uuid
import numpy as np
from fastctr import FeatureHasher, FFMClassifier, FMClassifier, FTRLClassifier

def fitted(cls):
    m = cls(bits=18)
    m.partial_fit([{"C1": "a", "C2": "b", "I1": 3}, {"C1": "b", "I2": 1.5}], [1, 0])
    return m

MODELS = {"ftrl": fitted(FTRLClassifier), "fm": fitted(FMClassifier), "ffm": fitted(FFMClassifier)}
MODELS["scorer"] = MODELS["ftrl"].to_scorer("float32", "sparse")
MODELS["dense-int8"] = MODELS["ftrl"].to_scorer("int8", "dense")
MODELS["fm-scorer"] = MODELS["fm"].to_scorer("float16", "sparse")
MODELS["ffm-scorer"] = MODELS["ffm"].to_scorer("int8", "dense")

class ClearsRowOnStr:
    """A categorical value whose str() empties the row that holds it."""
    def __init__(self, row): self.row = row
    def __str__(self):
        self.row.clear()
        return "cleared"

class ClearsRowOnFloat:
    """A numeric value whose float() empties the row that holds it."""
    def __init__(self, row): self.row = row
    def __float__(self):
        self.row.clear()
        return 7.0

class ClearsRowOnEq:
    """A key equal to "C5" (same hash) whose comparison empties the row that holds it."""
    def __init__(self): self.row = None
    def __hash__(self): return hash("C5")
    def __eq__(self, other):
        if self.row is not None:
            self.row.clear()
        return other == "C5"

def fresh(text):  # a str owned by the row alone: freed as soon as the row lets it go
    return "".join([text, "-", str(len(text))])

def evil_rows():
    """(row, the plain row it must hash as) pairs; the items after the evil one are freed
    when it runs."""
    out = []
    row = {"C1": fresh("a"), "C2": None, "C3": fresh("x" * 100), "I3": 2.5, "C4": fresh("y")}
    row["C2"] = ClearsRowOnStr(row)
    out.append((row, {"C1": fresh("a"), "C2": "cleared", "C3": fresh("x" * 100), "I3": 2.5,
                      "C4": fresh("y")}))
    row = {"C1": fresh("a"), "I1": None, "C3": fresh("z" * 50), "I2": 4}
    row["I1"] = ClearsRowOnFloat(row)
    out.append((row, {"C1": fresh("a"), "I1": 7.0, "C3": fresh("z" * 50), "I2": 4}))
    key = ClearsRowOnEq()
    row = {"C1": fresh("a"), key: fresh("k"), "C6": fresh("w" * 30), "C7": fresh("v")}
    key.row = row
    out.append((row, {"C1": fresh("a"), "C5": fresh("k"), "C6": fresh("w" * 30),
                      "C7": fresh("v")}))
    return out
'''


def test_predict_one_survives_a_row_freed_while_hashed():
    # every model and scorer; the answer is the row's as it was when the call began
    assert_child_ok(PRELUDE + '''
for name, m in MODELS.items():
    for _ in range(20):
        for row, plain in evil_rows():
            assert m.predict_one(row) == m.predict_one(plain), (name, row, plain)
print("ok")
''')


def test_transform_predict_proba_and_fit_survive_rows_freed_while_hashed():
    assert_child_ok(PRELUDE + '''
hasher = FeatureHasher(bits=18)
for _ in range(5):
    pairs = evil_rows()
    rows, plain = [r for r, _ in pairs], [p for _, p in pairs]
    a, b = hasher.transform(rows), hasher.transform(plain)
    assert np.array_equal(a.indices, b.indices) and np.array_equal(a.values, b.values)
    for name in ("ftrl", "fm", "ffm"):
        m = MODELS[name]
        pairs = evil_rows()
        p = m.predict_proba([r for r, _ in pairs])
        assert np.array_equal(p, m.predict_proba([q for _, q in pairs])), name
        pairs = evil_rows()
        m2 = type(m)(bits=18).fit([r for r, _ in pairs], [1, 0, 1])
        m3 = type(m)(bits=18).fit([q for _, q in pairs], [1, 0, 1])
        assert m2.predict_one({"C1": "a"}) == m3.predict_one({"C1": "a"}), name
print("ok")
''')


def test_scalars_only_refuses_evil_values_without_running_them():
    # the service's batch check (transform(..., scalars_only=True)) raises on a value that
    # is not a JSON scalar before any of its Python code runs: the rows stay whole, and a
    # key with its own __eq__ (not a str) is checked through owned references
    assert_child_ok(PRELUDE + '''
hasher = FeatureHasher(bits=18)
for _ in range(20):
    pairs = evil_rows()
    rows = [r for r, _ in pairs]
    sizes = [len(r) for r in rows]
    for i, row in enumerate(rows):
        str_keys = all(type(k) is str for k in row)
        try:
            hasher.transform([{"C1": fresh("ok")}, row], scalars_only=True)
        except TypeError as e:
            assert str(e).startswith("row 1: a value is not"), e
        else:  # only the row whose evil part is its key has scalar values
            assert not str_keys, row
    for i in range(len(rows) - 1):  # (the key's own __eq__ may run: that row is copied)
        assert len(rows[i]) == sizes[i], (i, rows[i])
print("ok")
''')


def test_transform_survives_a_value_that_empties_the_list_of_rows():
    # The batch hasher walks the list of rows: a value's str() that empties the list must
    # not make it read past the list's end.
    assert_child_ok(PRELUDE + '''
class ClearsList:
    def __init__(self, rows): self.rows = rows
    def __str__(self):
        del self.rows[:]
        return "gone"
rows = [{"C1": fresh("a")} for _ in range(50)]
rows[0]["C2"] = ClearsList(rows)
out = FeatureHasher(bits=18).transform(rows)
assert out.n_rows == 50, out.n_rows
print("ok")
''')


def test_uuid_values_in_a_row_shared_with_a_writer_thread():
    # A uuid.UUID's str() runs Python code, so the GIL can pass to a thread that replaces
    # the row's values (freeing the old ones) while the row is half hashed.
    assert_child_ok(PRELUDE + '''
sys.setswitchinterval(1e-6)
row = {f"C{j}": uuid.uuid4() if j % 2 else fresh("b" * (30 + j)) for j in range(1, 27)}
row["I1"] = 5
stop = False
def writer():
    i = 0
    while not stop:
        i += 1
        for j in range(2, 27, 2):  # each replaced value is freed
            row[f"C{j}"] = fresh("c" * (30 + (i + j) % 9))
        row["C25"] = uuid.uuid4() if i % 2 else fresh("e")
t = threading.Thread(target=writer)
t.start()
try:
    hasher = FeatureHasher(bits=18)
    for i in range(2000):
        for m in MODELS.values():
            p = m.predict_one(row)
            assert 0.0 <= p <= 1.0, p
        if i % 50 == 0:
            hasher.transform([row] * 20)
finally:
    stop = True
    t.join()
print("ok")
''')


def test_concurrent_predict_one_with_python_values_is_not_mixed_up():
    # Thread A's rows hold uuid values (their str() can hand the GIL to thread B); thread B
    # scores plain rows with the same model. Each must get exactly its serial answer.
    assert_child_ok(PRELUDE + '''
sys.setswitchinterval(1e-6)
u = [uuid.UUID(int=i) for i in range(1, 40)]
rows_a = [{f"C{j}": u[(i + j) % 39] for j in range(1, 27)} for i in range(10)]
rows_b = [{"C1": "a", "C2": "b", "I1": 3, "C9": str(i)} for i in range(10)]

def check(m):
    want_a = [m.predict_one(r) for r in rows_a]
    want_b = [m.predict_one(r) for r in rows_b]
    bad = []
    def score(rows, want):
        for _ in range(300):
            for r, w in zip(rows, want):
                got = m.predict_one(r)
                if got != w:
                    bad.append((got, w))
    threads = [threading.Thread(target=score, args=a)
               for a in ((rows_a, want_a), (rows_b, want_b))]
    for t in threads: t.start()
    for t in threads: t.join()
    assert not bad, (m, bad[:5])

for m in (MODELS["ftrl"], MODELS["fm"], MODELS["scorer"], MODELS["fm-scorer"]):
    check(m)
print("ok")
''', timeout=300)



GUARD_PAGE = r'''
import ctypes, mmap
import numpy as np
from fastctr import FeatureHasher, read_criteo, read_libffm, read_libsvm, read_vw

PAGE = mmap.PAGESIZE
_maps = []  # keep the mappings alive

def at_guard_page(data):
    """``data`` as a memoryview whose last byte is the last one before an unreadable page."""
    mm = mmap.mmap(-1, 2 * PAGE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(mm))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    assert libc.mprotect(base + PAGE, PAGE, 0) == 0, ctypes.get_errno()  # PROT_NONE
    mm[PAGE - len(data):PAGE] = data
    _maps.append(mm)
    return memoryview(mm)[PAGE - len(data):PAGE]

def parse(reader, chunk):
    """The reader's compiled parser over one chunk (the public readers copy memoryview
    chunks they cannot use as they are): (rows, end, lines, errors)."""
    from fastctr.io.reader import Batch
    errors = np.zeros((1, 5), np.int64)
    return reader._parse(chunk, 0, Batch(4, 4 * reader._width()), errors)
'''


def test_number_parsing_stays_inside_a_chunk_that_ends_at_a_guard_page():
    # A blank or whitespace-only number ends where the chunk ends: a C parser that skips
    # whitespace (strtod) would walk past the newline into the unreadable page.
    out = assert_child_ok(GUARD_PAGE + r'''
hasher = FeatureHasher(bits=18)
ffm = FeatureHasher(fields=[f"f{i}" for i in range(4)], bits=18)
cases = [
    ("criteo", lambda c: read_criteo(c, hasher, labeled=True), [b"1\t \n", b"0\t\x0b\n",
                                                                b"1\t1e\n", b"1\t2.5\n"]),
    ("vw", lambda c: read_vw(c, hasher), [b"1 |C1 x:\x0b\n", b"\x0b|C1 x\n", b"1 \x0c |C1 x\n",
                                         b"1 |C1:\x0b x\n", b"1 |C1 x:2.5\n"]),
    ("libsvm", lambda c: read_libsvm(c, hasher), [b"1 3:\x0b\n", b"\x0b 3:1\n", b"1 3:1.5\n"]),
    ("libffm", lambda c: read_libffm(c, ffm), [b"1 0:3:\x0b\n", b"\x0c 0:3:1\n",
                                               b"1 0:3:0.5\n"]),
]
for name, read, lines in cases:
    for i, line in enumerate(lines):
        n_rows, end, n_lines, n_errors = parse(read([]), at_guard_page(line))
        # the last line of each case is valid, the others each hold one bad number
        assert (n_rows, n_errors, n_lines) == ((1, 0, 1) if i == len(lines) - 1 else (0, 1, 1)), (
            name, line, n_rows, n_errors)
print("ok")
''')
    assert out.endswith("ok\n")


def test_libffm_field_discovery_checks_the_limit_before_allocating():
    # `1 99999999:1:1` (15 bytes) once made 100M field names before the 65,535 limit was
    # checked; the child's address space is capped so that doing so fails fast.
    out = assert_child_ok(r'''
import resource, tempfile, os
if "asan" not in os.environ.get("LD_PRELOAD", ""):  # AddressSanitizer maps terabytes of shadow
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
from fastctr import ParseError, read_libffm
from fastctr.io.detect import hasher_for
path = os.path.join(tempfile.mkdtemp(), "big.ffm")
with open(path, "wb") as f:
    f.write(b"1 0:1:1\n0 99999999:1:1\n")
for source, name in ((path, path), (b"1 99999999:1:1\n", "<bytes>")):
    for make in (lambda: read_libffm(source), lambda: hasher_for("libffm", source)):
        try:
            make()
        except ParseError as e:
            print(e)
            assert name in str(e) and "line" in str(e) and "65534" in str(e), str(e)
        else:
            raise AssertionError("no ParseError")
print("ok")
''', debug_malloc=False, timeout=120)
    assert out.endswith("ok\n")


# -- defect 10: predict_one answers as batch prediction does, or fails as it does ------------
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fastctr import FeatureHasher, FMClassifier, FTRLClassifier, HashedRows  # noqa: E402


@pytest.fixture(scope="module", params=["value", "log1p"])
def value_model(request):
    rows = [{"I1": 1.5, "C1": "a"}, {"I1": 0.5, "C1": "b"}] * 5
    return FTRLClassifier(bits=18, numeric_transform=request.param).fit(rows, [1, 0] * 5)


@pytest.mark.parametrize("x", [float("inf"), -float("inf"), 1e39, -1e39, "inf", "1e39"])
def test_predict_one_refuses_non_finite_feature_values_as_batch_does(value_model, x):
    row = {"I1": x, "C1": "a"}
    line = "\t".join([str(x)] + [""] * 12 + ["a"])
    try:
        batch = value_model.predict_proba([row])[:, 1]
    except ValueError:
        batch = None
    for one in (row, line):
        if batch is None:
            with pytest.raises(ValueError, match="NaN or infinite"):
                value_model.predict_one(one)
        else:  # log1p of 1e39 is finite: both paths score it
            assert value_model.predict_one(one) == pytest.approx(batch[0])


def test_pre_hashed_rows_refuse_nan_and_indices_that_do_not_fit():
    model = FMClassifier(bits=18, k=2).fit([{"C1": "a"}, {"C1": "b"}] * 5, [1, 0] * 5)
    for indices, values in (([0], [np.nan]), ([0, 3], [1.0, np.inf]),
                            (np.array([2**32 + 5], np.int64), [1.0]),
                            (np.array([-(2**32) + 5], np.int64), [1.0]),
                            (np.array([5.7]), [1.0])):
        with pytest.raises((ValueError, TypeError)):
            model.predict_one((indices, values))
        with pytest.raises((ValueError, TypeError)):
            model.predict_proba(HashedRows(np.array([0, len(values)]), indices, values))
    scorer = FTRLClassifier(bits=18).fit([{"C1": "a"}] * 4, [1, 0] * 2).to_scorer("float32", "dense")
    with pytest.raises(ValueError, match="NaN or infinite"):
        scorer.predict_proba(HashedRows(np.array([0, 1]), [0], [np.nan]))


def test_hashed_rows_keep_int64_and_float_indices_exact_or_refuse():
    with pytest.raises(ValueError, match="int32"):
        HashedRows(np.array([0, 1]), np.array([2**32 + 5], np.int64), [1.0])
    with pytest.raises(TypeError, match="integers"):
        HashedRows(np.array([0, 1]), np.array([5.7]), [1.0])
    rows = HashedRows(np.array([0, 2]), np.array([5, 2**31 - 1], np.int64), [1.0, 1.0])
    assert rows.indices.tolist() == [5, 2**31 - 1]
    assert FeatureHasher(bits=18)  # the hasher itself is unaffected


def test_a_row_with_no_str_key_is_hashed_once_not_for_ever():
    # A row whose items all go through the owned path and convert to nothing (an int key,
    # not a field) once looped for ever holding the GIL (found by tests/test_fuzz.py).
    assert_child_ok(PRELUDE + '''
for m in MODELS.values():
    for row in ({3: None}, {0: 0}, {ClearsRowOnEq(): None}):
        try:
            p = m.predict_one(row)
        except ValueError:  # unknown keys are an error by default
            continue
        assert 0.0 <= p <= 1.0
print("ok")
''', timeout=60)
