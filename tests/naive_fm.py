"""Slow, obviously correct references for FM (Rendle 2010) and FFM (Juan et al. 2016).

Pure Python over dicts, one row at a time, pairwise sums written out in O(n^2) straight from
the papers' formulas; no numpy in the math. The linear part is FTRL-Proximal (McMahan et al.
2013, Algorithm 1), the latent part AdaGrad, with the conventions the kernels document:

* entries of field 0 (the bias) are linear only;
* latent vectors start as ``init_value(seed, key, init_std * sqrt(3))`` (splitmix64 -> uniform)
  with AdaGrad accumulators at 1;
* gradients are clipped per coordinate to +-GRAD_CLIP; sample weights scale every gradient;
* FM: every entry's gradient is taken at the row's pre-update state, then applied in entry
  order (a bucket repeated in a row gets two updates, as in Vowpal Wabbit);
* FFM: libFFM's per-pair update, pairs (j, l), j < l, in row order.
"""
from __future__ import annotations

import math

GRAD_CLIP = 1e4
MARGIN_CLIP = 35.0
MASK64 = (1 << 64) - 1


def init_value(seed: int, key: int, scale: float) -> float:
    """splitmix64(seed + key * golden ratio), top 53 bits as a uniform on [-scale, scale)."""
    x = (seed + key * 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    x ^= x >> 31
    u = (x >> 11) / 2.0**53
    return scale * (2.0 * u - 1.0)


def sigmoid(m: float) -> float:
    m = min(max(m, -MARGIN_CLIP), MARGIN_CLIP)
    return 1.0 / (1.0 + math.exp(-m))


def clip(g: float) -> float:
    return min(max(g, -GRAD_CLIP), GRAD_CLIP)


def dot(a, b) -> float:
    return sum(x * y for x, y in zip(a, b))


class _Linear:
    """FTRL-Proximal, Algorithm 1 of McMahan et al. (2013), per coordinate."""

    def __init__(self, alpha, beta, l1, l2):
        self.alpha, self.beta, self.l1, self.l2 = alpha, beta, l1, l2
        self.z: dict[int, float] = {}
        self.n: dict[int, float] = {}

    def w(self, i: int) -> float:
        z, n = self.z.get(i, 0.0), self.n.get(i, 0.0)
        if abs(z) <= self.l1:
            return 0.0
        sign = 1.0 if z > 0 else -1.0
        return -(z - sign * self.l1) / ((self.beta + math.sqrt(n)) / self.alpha + self.l2)

    def update(self, idx, val, w_before, g_row):
        for i, x, w in zip(idx, val, w_before):
            g = clip(g_row * x)
            n = self.n.get(i, 0.0)
            sigma = (math.sqrt(n + g * g) - math.sqrt(n)) / self.alpha
            self.z[i] = self.z.get(i, 0.0) + g - sigma * w
            self.n[i] = n + g * g


class NaiveFM:
    """y_hat(x) = w . x + sum_{j<l} <v_{i_j}, v_{i_l}> x_j x_l (Rendle 2010, eq. 1)."""

    def __init__(self, k, alpha, beta, l1, l2, eta, l2_v, init_std, seed):
        self.k, self.eta, self.l2_v = k, eta, l2_v
        self.scale, self.seed = init_std * math.sqrt(3.0), seed
        self.lin = _Linear(alpha, beta, l1, l2)
        self.V: dict[int, list[float]] = {}
        self.G: dict[int, list[float]] = {}

    def v(self, i: int) -> list[float]:
        if i not in self.V:
            return [init_value(self.seed, i * self.k + c, self.scale) for c in range(self.k)]
        return self.V[i]

    def touch(self, i: int) -> None:
        if i not in self.V:
            self.V[i] = self.v(i)
            self.G[i] = [1.0] * self.k

    def margin(self, idx, val, fld) -> float:
        m = sum(self.lin.w(i) * x for i, x in zip(idx, val))
        n = len(idx)
        for j in range(n):
            for l in range(j + 1, n):
                if fld[j] != 0 and fld[l] != 0:
                    m += dot(self.v(idx[j]), self.v(idx[l])) * val[j] * val[l]
        return m

    def gradient_v(self, idx, val, fld, j) -> list[float]:
        """d(pairwise term)/d v_{i_j} = x_j * sum_{l != j} v_{i_l} x_l (Rendle 2010, eq. 4)."""
        grad = [0.0] * self.k
        for l in range(len(idx)):
            if l != j and fld[l] != 0:
                vl = self.v(idx[l])
                for c in range(self.k):
                    grad[c] += vl[c] * val[l]
        return [val[j] * gc for gc in grad]

    def learn(self, idx, val, fld, y, weight=1.0) -> float:
        """One logistic-loss step; returns the probability before the update."""
        p = sigmoid(self.margin(idx, val, fld))
        g_row = (p - y) * weight
        w_before = [self.lin.w(i) for i in idx]
        active = [j for j in range(len(idx)) if fld[j] != 0]
        v_before = {j: list(self.v(idx[j])) for j in active}
        grads = {j: self.gradient_v(idx, val, fld, j) for j in active}
        self.lin.update(idx, val, w_before, g_row)
        for j in active:
            i = idx[j]
            self.touch(i)
            for c in range(self.k):
                g = clip(g_row * grads[j][c] + weight * self.l2_v * v_before[j][c])
                self.G[i][c] += g * g
                self.V[i][c] -= self.eta * g / math.sqrt(self.G[i][c])
        return p


class NaiveFFM:
    """phi(x) = w . x + r * sum_{j<l} <v_{i_j, f_l}, v_{i_l, f_j}> x_j x_l (Juan et al. 2016)."""

    def __init__(self, k, n_fields, alpha, beta, l1, l2, eta, l2_v, init_std, seed, normalize):
        self.k, self.nf, self.eta, self.l2_v = k, n_fields, eta, l2_v
        self.scale, self.seed, self.normalize = init_std * math.sqrt(3.0), seed, normalize
        self.lin = _Linear(alpha, beta, l1, l2)
        self.V: dict[tuple[int, int], list[float]] = {}
        self.G: dict[tuple[int, int], list[float]] = {}

    def v(self, i: int, f: int) -> list[float]:
        if (i, f) not in self.V:
            key = (i * self.nf + f) * self.k
            self.V[(i, f)] = [init_value(self.seed, key + c, self.scale) for c in range(self.k)]
            self.G[(i, f)] = [1.0] * self.k
        return self.V[(i, f)]

    def r(self, val, fld) -> float:
        norm = sum(x * x for x, f in zip(val, fld) if f != 0)
        return 1.0 / norm if self.normalize and norm > 0 else 1.0

    def pairs(self, fld):
        n = len(fld)
        return [(j, l) for j in range(n) for l in range(j + 1, n) if fld[j] != 0 and fld[l] != 0]

    def margin(self, idx, val, fld) -> float:
        m = sum(self.lin.w(i) * x for i, x in zip(idx, val))
        r = self.r(val, fld)
        pair = 0.0
        for j, l in self.pairs(fld):
            pair += dot(self.v(idx[j], fld[l]), self.v(idx[l], fld[j])) * val[j] * val[l]
        return m + pair * r

    def learn(self, idx, val, fld, y, weight=1.0) -> float:
        p = sigmoid(self.margin(idx, val, fld))
        g_row = (p - y) * weight
        w_before = [self.lin.w(i) for i in idx]
        self.lin.update(idx, val, w_before, g_row)
        r = self.r(val, fld)
        for j, l in self.pairs(fld):  # libFFM: both vectors of a pair, one AdaGrad step each
            a, b = (idx[j], fld[l]), (idx[l], fld[j])
            va, vb = self.v(*a), self.v(*b)
            kappa = g_row * val[j] * val[l] * r
            for c in range(self.k):
                v1, v2 = va[c], vb[c]
                g1 = clip(kappa * v2 + weight * self.l2_v * v1)
                g2 = clip(kappa * v1 + weight * self.l2_v * v2)
                self.G[a][c] += g1 * g1
                va[c] -= self.eta * g1 / math.sqrt(self.G[a][c])
                self.G[b][c] += g2 * g2
                vb[c] -= self.eta * g2 / math.sqrt(self.G[b][c])
        return p
