"""numba kernels for the synthetic Criteo stream (see ``fastctr.io.datasets``).

Every random draw is a counter-based hash of (seed, row, slot), so row ``i`` is
the same whatever chunk it lands in, and the hidden model's weights are hashes
of (seed, field, value id), so no per-value tables are needed.  Values are
drawn from small per-field quantile tables (they stay in L2 cache), which also
avoids a transcendental call per field.
"""

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK16 = np.uint64(0xFFFF)
_MASK32 = np.uint64(0xFFFFFFFF)
_INV16 = 1.0 / 65536.0
_INV53 = 1.0 / 9007199254740992.0
_SQRT3 = np.sqrt(3.0)

N_NUMERIC = 13
N_CATEGORICAL = 26
N_LATENT = 4
BLOCK_ROWS = 512  # rows drawn field by field at a time; the work arrays stay in L2
TABLE_BITS = 12  # quantile buckets per field: 4096
LOG_TABLE_SIZE = 4096  # log(1 + x) is looked up below this
MAX_INT_DIGITS = 10  # the count tables top out near 10**8
# label + 13 signed ints + 26 tokens + 40 separators, with slack
MAX_ROW_BYTES = 2 + N_NUMERIC * (MAX_INT_DIGITS + 1) + N_CATEGORICAL * 8 + 40 + 16

# Key purposes: each derived stream is independent of the others.
_KEY_ROW, _KEY_WEIGHT, _KEY_LATENT, _KEY_TOKEN = 0, 1, 2, 3
# Slots of one row's hash stream: values per field, shared missing draws, label.
_SLOT_VALUE, _SLOT_GROUP, _SLOT_LABEL = 0, 64, 128

_BUCKET_MASK = np.uint64((1 << TABLE_BITS) - 1)
_SH16 = np.uint64(16)
_SH32 = np.uint64(32)
_SH48 = np.uint64(48)


@njit(cache=True, inline="always")
def _mix(x):
    """splitmix64 finalizer: a bijective, well-avalanched 64-bit mix."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def _hash(key, counter):
    return _mix(key + np.uint64(counter) * _GOLDEN)


@njit(cache=True, inline="always")
def _gauss(h):
    """Approximately standard normal (Irwin-Hall of four 16-bit uniforms)."""
    s = (h & _MASK16) + ((h >> _SH16) & _MASK16) + ((h >> _SH32) & _MASK16) + (h >> _SH48)
    return (np.float64(s) * _INV16 - 2.0) * _SQRT3


@njit(cache=True, inline="always")
def _lane(h, k):
    """k-th 16-bit lane of h mapped to [-1, 1)."""
    return np.float64((h >> np.uint64(16 * k)) & _MASK16) * (2.0 * _INV16) - 1.0


@njit(cache=True, inline="always")
def _pick(table, f, h, offset_bits):
    """Quantile-table draw: bucket from the low bits, uniform id inside it from 32 high bits."""
    b = np.int64(h & _BUCKET_MASK)
    lo = table[f, b]
    span = np.uint64(table[f, b + 1] - lo + 1)
    return lo + np.int64((((h >> offset_bits) & _MASK32) * span) >> _SH32)


@njit(cache=True)
def _derive_keys(seed_key, n_fields):
    """Per-(purpose, field) keys, so row/weight/latent/token streams never collide."""
    keys = np.empty((4, n_fields), dtype=np.uint64)
    for purpose in range(4):
        base = _hash(seed_key, purpose + 1)
        for j in range(n_fields):
            keys[purpose, j] = _hash(base, j + 1)
    return keys


@njit(cache=True, inline="always")
def _log1p_int(x, log_table):
    """log(1 + max(x, 0)), from the table for the common small counts."""
    if x < LOG_TABLE_SIZE:
        return log_table[max(x, 0)]
    return np.log(1.0 + x)


@njit(cache=True)
def _draw_block(row_start, keys, model, row_keys, group_u, ints, present, cats, logits):
    """Draw rows [row_start, row_start + len(logits)) field by field; fill the logits.

    Field-major order keeps many independent rows in flight per loop.  Writes
    ``row_keys``, ``ints``/``present`` (numeric) and ``cats`` (categorical
    ids, -1 = missing).
    Fields in a missing group share one uniform; the others use spare bits of
    their value hash.
    """
    (miss_group, miss_thr, neg_thr, num_table, num_params, log_table,
     cat_table, cat_params, latent_cap, pairs, pair_scale) = model
    n = logits.shape[0]
    for r in range(n):
        row_keys[r] = _hash(keys[_KEY_ROW, 0], row_start + r)
        logits[r] = 0.0
    for g in range(group_u.shape[0]):
        for r in range(n):
            group_u[g, r] = _hash(row_keys[r], _SLOT_GROUP + g) & _MASK16
    for j in range(N_NUMERIC):
        # the top neg_thr values of the spare 16-bit lane mean "negative"
        g, thr, neg = miss_group[j], miss_thr[j], np.uint64(65536) - neg_thr[j]
        weight, miss_weight, center = num_params[j, 0], num_params[j, 1], num_params[j, 2]
        for r in range(n):
            h = _hash(row_keys[r], _SLOT_VALUE + j)
            u = h >> _SH48
            if (group_u[g, r] if g >= 0 else u) < thr:
                present[r, j] = False
                logits[r] += miss_weight
                continue
            present[r, j] = True
            if u >= neg:
                # rare negatives (I2): mostly -1, a quarter -2; effect as for 0
                x = -1 - np.int64((h & np.uint64(3)) == np.uint64(0))
            else:
                x = _pick(num_table, j, h, _SH16)
            ints[r, j] = x
            logits[r] += weight * (_log1p_int(x, log_table) - center)
    for c in range(N_CATEGORICAL):
        j = N_NUMERIC + c
        g, thr = miss_group[j], miss_thr[j]
        weight, miss_weight, key = cat_params[c, 0], cat_params[c, 1], keys[_KEY_WEIGHT, c]
        for r in range(n):
            h = _hash(row_keys[r], _SLOT_VALUE + j)
            if (group_u[g, r] if g >= 0 else (h >> _SH16) & _MASK16) < thr:
                cats[r, c] = -1
                logits[r] += miss_weight
                continue
            v = _pick(cat_table, c, h, _SH32)
            cats[r, c] = v
            logits[r] += weight * _gauss(_hash(key, v))
    for p in range(pairs.shape[0]):
        ca, cb, scale = pairs[p, 0], pairs[p, 1], pair_scale[p]
        cap_a, cap_b = latent_cap[ca], latent_cap[cb]
        key_a, key_b = keys[_KEY_LATENT, ca], keys[_KEY_LATENT, cb]
        for r in range(n):
            va, vb = cats[r, ca], cats[r, cb]
            if 0 <= va < cap_a and 0 <= vb < cap_b:
                ha, hb = _hash(key_a, va), _hash(key_b, vb)
                dot = 0.0
                for k in range(N_LATENT):
                    dot += _lane(ha, k) * _lane(hb, k)
                logits[r] += scale * dot


@njit(cache=True, inline="always")
def _write_int(out, pos, x):
    """Decimal x at out[pos:]; returns the end position."""
    if x < 0:
        out[pos] = 45  # '-'
        pos += 1
        x = -x
    n = 1
    t = x // 10
    while t > 0:
        n += 1
        t //= 10
    end = pos + n
    for k in range(1, n + 1):
        out[end - k] = 48 + x % 10
        x //= 10
    return end


@njit(cache=True, inline="always")
def _write_hex8(out, pos, h):
    """The high 32 bits of h as 8 lowercase hex digits, low nibble first (SWAR, no lookups)."""
    x = h >> _SH32
    x = (x | (x << _SH16)) & np.uint64(0x0000FFFF0000FFFF)
    x = (x | (x << np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
    x = (x | (x << np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    # one nibble per byte; bytes >= 10 get the extra offset from ':' to 'a'
    letters = ((x + np.uint64(0x0606060606060606)) >> np.uint64(4)) & np.uint64(0x0101010101010101)
    x += np.uint64(0x3030303030303030) + letters * np.uint64(0x27)
    for k in range(8):
        out[pos + k] = np.uint8((x >> np.uint64(8 * k)) & np.uint64(0xFF))
    return pos + 8


@njit(cache=True)
def _scratch(model):
    """Per-block work arrays: row keys, group uniforms, ints, present flags, ids, logits."""
    return (
        np.empty(BLOCK_ROWS, dtype=np.uint64),
        np.empty((model[0].max() + 1, BLOCK_ROWS), dtype=np.uint64),
        np.empty((BLOCK_ROWS, N_NUMERIC), dtype=np.int64),
        np.empty((BLOCK_ROWS, N_NUMERIC), dtype=np.bool_),
        np.empty((BLOCK_ROWS, N_CATEGORICAL), dtype=np.int64),
        np.empty(BLOCK_ROWS, dtype=np.float64),
    )


@njit(cache=True, nogil=True)
def fill_tsv(out, row_start, n_rows, seed_key, labeled, bias, model):
    """Write rows [row_start, row_start + n_rows) as Criteo TSV into ``out``.

    Releases the GIL, so a stream can be generated while other threads parse and learn.

    ``model`` is the tuple built by ``fastctr.io.datasets._model``.  Returns the
    number of bytes written; ``out`` must hold ``n_rows * MAX_ROW_BYTES``.
    """
    keys = _derive_keys(seed_key, N_CATEGORICAL)
    row_keys, group_u, ints, present, cats, logits = _scratch(model)
    pos = 0
    for block in range(0, n_rows, BLOCK_ROWS):
        n = min(BLOCK_ROWS, n_rows - block)
        start = row_start + block
        _draw_block(start, keys, model, row_keys, group_u, ints, present, cats, logits[:n])
        for r in range(n):
            if labeled:
                p = 1.0 / (1.0 + np.exp(-(logits[r] + bias)))
                u = np.float64(_hash(row_keys[r], _SLOT_LABEL) >> np.uint64(11)) * _INV53
                out[pos] = 49 if u < p else 48
                out[pos + 1] = 9
                pos += 2
            for j in range(N_NUMERIC):
                if present[r, j]:
                    pos = _write_int(out, pos, ints[r, j])
                out[pos] = 9
                pos += 1
            for c in range(N_CATEGORICAL):
                if cats[r, c] >= 0:
                    pos = _write_hex8(out, pos, _hash(keys[_KEY_TOKEN, c], cats[r, c]))
                out[pos] = 9
                pos += 1
            out[pos - 1] = 10  # the last tab becomes the newline
    return pos


@njit(cache=True)
def row_logits(row_start, n_rows, seed_key, model):
    """The hidden model's logits (without bias) for rows [row_start, row_start + n_rows)."""
    keys = _derive_keys(seed_key, N_CATEGORICAL)
    row_keys, group_u, ints, present, cats, _ = _scratch(model)
    logits = np.empty(n_rows, dtype=np.float64)
    for block in range(0, n_rows, BLOCK_ROWS):
        n = min(BLOCK_ROWS, n_rows - block)
        _draw_block(row_start + block, keys, model, row_keys, group_u, ints, present,
                    cats, logits[block:block + n])
    return logits
