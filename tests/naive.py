"""Slow, obviously correct references for the compiled code (plain Python, no numpy tricks)."""
import math
import struct

import mmh3


def murmur(data, seed):
    return mmh3.hash(data, seed, signed=False)


def hash_row(row, fields, numeric, bits, hash_seed=0, numeric_transform="bin", crosses=()):
    """The hashing spec of fastctr.io.hashing, written out: a list of (bucket, value, field id)."""
    mask = (1 << bits) - 1
    full = {}  # field -> (32-bit hash, value)
    for name in fields:
        x = row.get(name)
        if x is None or x == "" or (isinstance(x, float) and math.isnan(x)):
            continue
        seed = murmur(name.encode(), hash_seed)
        if name in numeric:
            x = float(x)
            if numeric_transform == "bin":
                b = math.floor(x) if x <= 2 else 3 + math.floor(math.log(x) ** 2)
                full[name] = (murmur(struct.pack("<q", b), seed), 1.0)
            elif numeric_transform == "value":
                full[name] = (seed, x)
            else:
                full[name] = (seed, math.copysign(math.log1p(abs(x)), x))
        else:
            full[name] = (murmur(str(x).encode(), seed), 1.0)
    out = [(murmur(b"", hash_seed) & mask, 1.0, 0)]
    for f, name in enumerate(fields):
        if name in full:
            out.append((full[name][0] & mask, full[name][1], f + 1))
    for c, (a, b) in enumerate(crosses):
        if a in full and b in full:
            h = murmur(struct.pack("<I", full[b][0]), full[a][0])
            out.append((h & mask, full[a][1] * full[b][1], 1 + len(fields) + c))
    return out


class FTRLProximal:
    """Algorithm 1 of McMahan et al. (KDD 2013), per-coordinate FTRL-Proximal, transcribed.

    Rows are lists of (i, x_i) entries; every entry is one coordinate of the algorithm.
    """

    def __init__(self, alpha, beta, l1, l2):
        self.alpha, self.beta, self.l1, self.l2 = alpha, beta, l1, l2
        self.z = {}
        self.n = {}

    def w(self, i):
        z, n = self.z.get(i, 0.0), self.n.get(i, 0.0)
        if abs(z) <= self.l1:
            return 0.0
        sign = 1.0 if z > 0 else -1.0
        return -(z - sign * self.l1) / ((self.beta + math.sqrt(n)) / self.alpha + self.l2)

    def predict(self, row):
        m = sum(self.w(i) * x for i, x in row)
        m = max(min(m, 35.0), -35.0)
        return 1.0 / (1.0 + math.exp(-m))

    def learn(self, row, y, weight=1.0):
        """Update on one row; returns the probability predicted before the update."""
        w = [self.w(i) for i, _ in row]
        p = self.predict(row)
        for (i, x), w_i in zip(row, w):
            g = (p - y) * x * weight
            n = self.n.get(i, 0.0)
            sigma = (math.sqrt(n + g * g) - math.sqrt(n)) / self.alpha
            self.z[i] = self.z.get(i, 0.0) + g - sigma * w_i
            self.n[i] = n + g * g
        return p


# -- the text formats of fastctr.io.sparse and fastctr.io.csv, written out -------------------------
def _bias(bits, hash_seed):
    return (murmur(b"", hash_seed) & ((1 << bits) - 1), 1.0, 0)


def _label(token):
    x = float(token)
    assert x in (-1.0, 0.0, 1.0), token
    return 1.0 if x > 0 else 0.0


def vw_line(line, fields, bits, hash_seed=0):
    """A VW text line -> (label or None, weight, [(bucket, value, field id)])."""
    mask = (1 << bits) - 1
    head, _, rest = line.partition(b"|")
    tokens = head.split()
    if tokens and (not head[-1:].isspace() or tokens[-1].startswith(b"'")):
        tokens.pop()  # the tag
    label = _label(tokens[0]) if tokens else None
    weight = float(tokens[1]) if len(tokens) > 1 else 1.0
    out = [_bias(bits, hash_seed)]
    for chunk in rest.split(b"|"):
        if chunk[:1].isspace() or not chunk:
            name, scale, features = b" ", 1.0, chunk.split()
        else:
            first, *features = chunk.split()
            name, _, s = first.partition(b":")
            scale = float(s) if s else 1.0
        seed = murmur(name, hash_seed)
        field = fields.index(name.decode()) + 1
        for token in features:
            feature, _, v = token.partition(b":")
            out.append((murmur(feature, seed) & mask, (float(v) if v else 1.0) * scale, field))
    return label, weight, out


def svm_line(line, bits, ffm=False, hash_indices=False, hash_seed=0):
    """A libsvm (or libffm) line -> (label, [(bucket, value, field id)])."""
    label, *tokens = line.split()
    out = [_bias(bits, hash_seed)]
    for token in tokens:
        parts = token.split(b":")
        field, index, value = (int(parts[0]), parts[1], parts[2]) if ffm else (0, *parts)
        name = str(field) if ffm else "features"
        bucket = murmur(index, murmur(name.encode(), hash_seed)) & ((1 << bits) - 1) \
            if hash_indices else int(index)
        out.append((bucket, float(value), field + 1))
    return _label(label), out


def csv_line(line, header, label, fields, numeric, bits, sep=b","):
    """A CSV line under its header -> (label, [(bucket, value, field id)])."""
    row = dict(zip(header, line.decode().split(sep.decode())))
    y = _label(row.pop(label))
    return y, hash_row(row, fields, numeric, bits)
