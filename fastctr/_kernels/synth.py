"""numba kernels for the synthetic Criteo stream (see ``fastctr.datasets``).

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
TABLE_BITS = 12  # quantile buckets per field: 4096
LOG_TABLE_SIZE = 4096  # log(1 + x) is looked up below this
MAX_INT_DIGITS = 10
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
def derive_keys(seed_key, n_fields):
    """Per-(purpose, field) keys, so row/weight/latent/token streams never collide."""
    keys = np.empty((4, n_fields), dtype=np.uint64)
    for purpose in range(4):
        base = _hash(seed_key, purpose + 1)
        for j in range(n_fields):
            keys[purpose, j] = _hash(base, j + 1)
    return keys


@njit(cache=True, inline="always")
def _log1p_int(x, log_table):
    if x < LOG_TABLE_SIZE:
        return log_table[max(x, 0)]
    return np.log(1.0 + x)


@njit(cache=True, inline="always")
def _draw_row(row_key, keys, model, group_u, ints, present, cats):
    """Draw one row's features into ``ints``/``present``/``cats``; return its logit.

    ``cats[c] == -1`` marks a missing categorical value.  Fields in a missing
    group share one uniform; the others use spare bits of their value hash.
    """
    (miss_group, miss_thr, neg_thr, num_table, num_params, log_table,
     cat_table, cat_params, latent_cap, pairs, pair_scale) = model
    for g in range(group_u.shape[0]):
        group_u[g] = _hash(row_key, _SLOT_GROUP + g) & _MASK16
    logit = 0.0
    for j in range(N_NUMERIC):
        h = _hash(row_key, _SLOT_VALUE + j)
        u = h >> _SH48
        u_miss = group_u[miss_group[j]] if miss_group[j] >= 0 else u
        if u_miss < miss_thr[j]:
            present[j] = False
            logit += num_params[j, 1]
            continue
        present[j] = True
        if u >= np.uint64(65536) - neg_thr[j]:
            # rare negatives (I2): mostly -1, a quarter -2; no effect beyond log(1 + 0)
            x = -1 - np.int64((h & np.uint64(3)) == np.uint64(0))
        else:
            x = _pick(num_table, j, h, _SH16)
        ints[j] = x
        logit += num_params[j, 0] * (_log1p_int(x, log_table) - num_params[j, 2])
    for c in range(N_CATEGORICAL):
        j = N_NUMERIC + c
        h = _hash(row_key, _SLOT_VALUE + j)
        u_miss = group_u[miss_group[j]] if miss_group[j] >= 0 else (h >> _SH16) & _MASK16
        if u_miss < miss_thr[j]:
            cats[c] = -1
            logit += cat_params[c, 1]
            continue
        v = _pick(cat_table, c, h, _SH32)
        cats[c] = v
        logit += cat_params[c, 0] * _gauss(_hash(keys[_KEY_WEIGHT, c], v))
    for p in range(pairs.shape[0]):
        ca, cb = pairs[p, 0], pairs[p, 1]
        va, vb = cats[ca], cats[cb]
        if 0 <= va < latent_cap[ca] and 0 <= vb < latent_cap[cb]:
            ha = _hash(keys[_KEY_LATENT, ca], va)
            hb = _hash(keys[_KEY_LATENT, cb], vb)
            dot = 0.0
            for k in range(N_LATENT):
                dot += _lane(ha, k) * _lane(hb, k)
            logit += pair_scale[p] * dot
    return logit


@njit(cache=True, inline="always")
def _write_int(out, pos, x):
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
def fill_tsv(out, row_start, n_rows, seed_key, labeled, bias, model):
    """Write rows [row_start, row_start + n_rows) as Criteo TSV into ``out``.

    Returns the number of bytes written; ``out`` must hold ``n_rows * MAX_ROW_BYTES``.
    """
    keys = derive_keys(seed_key, N_CATEGORICAL)
    group_u = np.zeros(model[0].max() + 1, dtype=np.uint64)
    ints = np.zeros(N_NUMERIC, dtype=np.int64)
    present = np.zeros(N_NUMERIC, dtype=np.bool_)
    cats = np.zeros(N_CATEGORICAL, dtype=np.int64)
    pos = 0
    for r in range(n_rows):
        row_key = _hash(keys[_KEY_ROW, 0], row_start + r)
        logit = _draw_row(row_key, keys, model, group_u, ints, present, cats)
        if labeled:
            p = 1.0 / (1.0 + np.exp(-(logit + bias)))
            u = np.float64(_hash(row_key, _SLOT_LABEL) >> np.uint64(11)) * _INV53
            out[pos] = 49 if u < p else 48
            out[pos + 1] = 9
            pos += 2
        for j in range(N_NUMERIC):
            if present[j]:
                pos = _write_int(out, pos, ints[j])
            out[pos] = 9
            pos += 1
        for c in range(N_CATEGORICAL):
            if cats[c] >= 0:
                pos = _write_hex8(out, pos, _hash(keys[_KEY_TOKEN, c], cats[c]))
            out[pos] = 9
            pos += 1
        out[pos - 1] = 10  # the last tab becomes the newline
    return pos


@njit(cache=True)
def row_logits(row_start, n_rows, seed_key, model):
    """The hidden model's logits (without bias) for rows [row_start, row_start + n_rows)."""
    keys = derive_keys(seed_key, N_CATEGORICAL)
    group_u = np.zeros(model[0].max() + 1, dtype=np.uint64)
    ints = np.zeros(N_NUMERIC, dtype=np.int64)
    present = np.zeros(N_NUMERIC, dtype=np.bool_)
    cats = np.zeros(N_CATEGORICAL, dtype=np.int64)
    logits = np.empty(n_rows, dtype=np.float64)
    for r in range(n_rows):
        row_key = _hash(keys[_KEY_ROW, 0], row_start + r)
        logits[r] = _draw_row(row_key, keys, model, group_u, ints, present, cats)
    return logits
