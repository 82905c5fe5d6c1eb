"""Exact learning coefficients (real log canonical thresholds) and multiplicities.

Pure Python, no jax: these are the closed forms the estimators are tested against
(science.md, "Exact answers to test against", items 2, 3, 5, 6, 7). Asymptotically
``F_n = n L_n(w0) + lambda log n - (m - 1) log log n + O_p(1)`` (Watanabe 2009).

* Regular model with d parameters: ``lambda = d / 2``, ``m = 1``.
* Reduced-rank regression ``y = B A x`` (A: H x M, B: N x H, true rank r;
  Aoyagi & Watanabe, Neural Networks 18(7), 2005)::

      if N+r <= M+H, M+r <= N+H, H+r <= M+N:
          lambda = [2(H+r)(M+N) - (M-N)^2 - (H+r)^2 (+ 1 if M+H+N+r is odd)] / 8,
          m = 2 if M+H+N+r is odd else 1
      elif M+H < N+r:  lambda = (HM - Hr + Nr)/2,  m = 1
      elif N+H < M+r:  lambda = (HN - Hr + Mr)/2,  m = 1
      else:            lambda = MN/2,              m = 1

* Deep linear network ``f(x) = W_L ... W_1 x``, widths ``H_1`` (input) ... ``H_{L+1}``
  (output), true product of rank r (Aoyagi, Neural Networks 172, 2024). With
  ``M_j = H_j - r``, Sigma the smallest prefix of the sorted M's with ``k = l + 1 >= 2``
  elements such that ``max(Sigma) < min(rest)``, ``sum(Sigma) >= l max(Sigma)``,
  ``sum(Sigma) < l min(rest)``; ``S = sum(Sigma)``, ``Mbar = ceil(S/l)``,
  ``a = S - (Mbar - 1) l``::

      lambda = (-r^2 + r(H_1 + H_{L+1}))/2 + a(l-a)/(4l) - l(l-1)/4 (S/l)^2
               + (1/2) sum_{i<j in Sigma} M_i M_j,
      m = a(l - a) + 1.

  Equivalently ``lambda = (-r^2 + r(H_1 + H_{L+1}))/2 + (1/2) min_T Mval(T)`` over integer
  rank profiles (see :func:`dln_lambda_bruteforce`).
* One-hidden-layer tanh network with zero truth, H hidden units:
  ``lambda = (H + i^2 + i)/(4i + 2)``, ``i = floor(sqrt(H))``, ``m = 2`` iff H is a square.
* Normal-crossing potential ``K = prod_j w_j^{2 k_j}`` (prior positive at 0):
  ``lambda = min_j 1/(2 k_j)``, m = number of j attaining the minimum.

Everything is computed in exact rational arithmetic (:class:`fractions.Fraction`); the
public functions return floats (and, for :func:`dln_lambda`, the exact Fraction too).
"""
from __future__ import annotations

import itertools
import math
import numbers
from fractions import Fraction
from typing import NamedTuple, Sequence, Tuple

__all__ = ["rrr_lambda", "rrr_multiplicity", "DLNCoefficient", "dln_lambda",
           "dln_lambda_bruteforce", "regular_lambda", "normal_crossing_lambda", "tanh_lambda"]


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _check_rrr(M, H, N, r) -> None:
    for name, v in (("M", M), ("H", H), ("N", N)):
        if not _is_int(v) or v < 1:
            raise ValueError(f"rrr: {name} must be a positive integer, got {v!r}")
    if not _is_int(r) or not 0 <= r <= min(M, H, N):
        raise ValueError(f"rrr: true rank r must be an integer in [0, min(M, H, N)] = "
                         f"[0, {min(M, H, N)}], got {r!r}")


def _rrr_exact(M: int, H: int, N: int, r: int) -> Tuple[Fraction, int]:
    _check_rrr(M, H, N, r)
    if N + r <= M + H and M + r <= N + H and H + r <= M + N:
        odd = (M + H + N + r) % 2
        return (Fraction(2 * (H + r) * (M + N) - (M - N) ** 2 - (H + r) ** 2 + odd, 8),
                2 if odd else 1)
    if M + H < N + r:
        return Fraction(H * M - H * r + N * r, 2), 1
    if N + H < M + r:
        return Fraction(H * N - H * r + M * r, 2), 1
    return Fraction(M * N, 2), 1


def rrr_lambda(M: int, H: int, N: int, r: int) -> float:
    """Learning coefficient of reduced-rank regression ``y = B A x`` (A: H x M, B: N x H)
    at a true rank ``r`` (Aoyagi & Watanabe, Neural Networks 18(7), 2005, Main Theorem;
    science.md, exact answer 2)::

        if N+r <= M+H, M+r <= N+H, H+r <= M+N:
            lambda = [2(H+r)(M+N) - (M-N)^2 - (H+r)^2] / 8          (M+H+N+r even)
            lambda = [2(H+r)(M+N) - (M-N)^2 - (H+r)^2 + 1] / 8      (M+H+N+r odd)
        elif M+H < N+r:  lambda = (HM - Hr + Nr) / 2
        elif N+H < M+r:  lambda = (HN - Hr + Mr) / 2
        else:            lambda = MN / 2

    Raises ValueError unless M, H, N >= 1 and 0 <= r <= min(M, H, N) are integers.
    """
    return float(_rrr_exact(M, H, N, r)[0])


def rrr_multiplicity(M: int, H: int, N: int, r: int) -> int:
    """Multiplicity m of :func:`rrr_lambda`'s pole (Aoyagi & Watanabe 2005, Main Theorem):
    2 in the first branch (N+r <= M+H, M+r <= N+H, H+r <= M+N) when M+H+N+r is odd, else 1;
    1 in the other branches. It agrees with Aoyagi 2024's ``m = a(l-a) + 1`` for one hidden
    layer (there l = 2 and a = 1 exactly when M+H+N+r is odd)."""
    return _rrr_exact(M, H, N, r)[1]


class DLNCoefficient(NamedTuple):
    """Aoyagi's (2024) answer for a deep linear network.

    ``lam``: lambda as a float; ``multiplicity``: m; ``exact``: lambda as a Fraction;
    ``subset``: the chosen Sigma as 0-based indices into ``widths`` (sorted by M_j, then
    index); ``l``: ``len(subset) - 1``; ``a``: ``S - (Mbar - 1) l``."""
    lam: float
    multiplicity: int
    exact: Fraction
    subset: Tuple[int, ...]
    l: int
    a: int


def _check_dln(widths, r) -> Tuple[Tuple[int, ...], int]:
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
        raise ValueError(f"dln: widths must be a list of positive integers, got {widths!r}")
    widths = tuple(widths)
    if len(widths) < 2:
        raise ValueError(f"dln: widths needs at least 2 entries (input and output), got {list(widths)}")
    bad = [h for h in widths if not _is_int(h) or h < 1]
    if bad:
        raise ValueError(f"dln: widths must be positive integers, got {bad[0]!r} in {list(widths)}")
    if not _is_int(r) or not 0 <= r <= min(widths):
        raise ValueError(f"dln: true rank r must be an integer in [0, min(widths)] = "
                         f"[0, {min(widths)}], got {r!r}")
    return tuple(int(h) for h in widths), int(r)


def dln_lambda(widths: Sequence[int], r: int) -> DLNCoefficient:
    """Learning coefficient and multiplicity of the deep linear network
    ``f(x) = W_L ... W_1 x`` (no bias), ``widths = [H_1 (input), ..., H_{L+1} (output)]``,
    ``W_j: H_{j+1} x H_j``, at a true product matrix of rank ``r`` (Aoyagi, "Consideration on
    the learning efficiency of multiple-layered neural networks with linear units", Neural
    Networks 172, 2024, Main Theorem; science.md, exact answer 5).

    Algorithm: ``M_j = H_j - r`` (j = 1..L+1), sorted ascending; Sigma is the shortest prefix
    with ``k = l + 1 >= 2`` elements such that ``max(Sigma) < min(rest)``,
    ``sum(Sigma) >= l max(Sigma)`` and ``sum(Sigma) < l min(rest)`` (the conditions on the
    rest are void when the rest is empty, so the full list always qualifies if nothing
    shorter does: if a prefix meets the second condition but fails the third, the next
    prefix meets the second). With ``S = sum(Sigma)``, ``Mbar = ceil(S/l)``,
    ``a = S - (Mbar - 1) l`` (1 <= a <= l)::

        lambda = (-r^2 + r(H_1 + H_{L+1}))/2 + a(l-a)/(4l) - l(l-1)/4 (S/l)^2
                 + (1/2) sum_{i<j in Sigma} M_i M_j
        m      = a(l - a) + 1

    One matrix (two widths) is the regular linear model: the formula gives
    ``lambda = H_1 H_2 / 2``, ``m = 1`` for every true W. One hidden layer reproduces
    :func:`rrr_lambda` / :func:`rrr_multiplicity`.

    Raises ValueError unless ``widths`` has >= 2 positive integers and
    ``0 <= r <= min(widths)``.
    """
    widths, r = _check_dln(widths, r)
    Ms = [h - r for h in widths]
    order = sorted(range(len(Ms)), key=lambda j: (Ms[j], j))
    sM = [Ms[j] for j in order]
    for k in range(2, len(sM) + 1):
        l, sig, rest = k - 1, sM[:k], sM[k:]
        S = sum(sig)
        if S < l * sig[-1]:
            continue
        if rest and not (sig[-1] < rest[0] and S < l * rest[0]):
            continue
        break
    else:  # unreachable: the full list always qualifies (see docstring)
        raise AssertionError(f"dln: no admissible subset for widths {list(widths)}, r = {r}")
    Mbar = -(-S // l)
    a = S - (Mbar - 1) * l
    pairs = sum(x * y for x, y in itertools.combinations(sig, 2))
    lam = (Fraction(-r * r + r * (widths[0] + widths[-1]), 2) + Fraction(a * (l - a), 4 * l)
           - Fraction(l * (l - 1), 4) * Fraction(S, l) ** 2 + Fraction(pairs, 2))
    return DLNCoefficient(lam=float(lam), multiplicity=a * (l - a) + 1, exact=lam,
                          subset=tuple(order[:k]), l=l, a=a)


def dln_lambda_bruteforce(widths: Sequence[int], r: int) -> Fraction:
    """Deep-linear-network lambda by exhaustive minimisation over rank profiles (the
    equivalent form of Aoyagi 2024's theorem given in science.md, exact answer 5)::

        lambda = (-r^2 + r(H_1 + H_{L+1}))/2 + (1/2) min_T Mval(T),
        Mval(T) = (M_1 - t_1)(M_2 - t_1) + sum_{j=2}^{L} (t_{j-1} - t_j)(M_{j+1} - t_j),

    with ``M_j = H_j - r`` (j = 1..L+1, L = number of weight matrices = len(widths) - 1) and
    T the integer profiles ``t_1 >= t_2 >= ... >= t_L = 0`` with ``t_1 <= min(M_1, M_2)``
    and ``t_j <= M_{j+1}`` (j = 2..L). Reading used: there are L entries t_1..t_L, one per
    weight matrix, the last one fixed at 0; for L = 1 the profile is ``t_1 = 0`` and
    ``Mval = M_1 M_2`` (regular: lambda = H_1 H_2 / 2). This reading reproduces every public
    check value of science.md and agrees with :func:`dln_lambda` on all small cases tested.
    Intended for small networks (cost ~ prod_j (M_j + 1)). Returns the exact Fraction.
    """
    widths, r = _check_dln(widths, r)
    M = [h - r for h in widths]
    L = len(widths) - 1
    base = Fraction(-r * r + r * (widths[0] + widths[-1]), 2)
    if L == 1:
        return base + Fraction(M[0] * M[1], 2)
    best = None

    def rec(j: int, prev: int, acc: int) -> None:
        # choose t_j (1-based j = 2..L) given t_{j-1} = prev; acc is Mval so far
        nonlocal best
        if best is not None and acc >= best:      # every term is >= 0 (t_j <= M_{j+1})
            return
        if j == L:                                # t_L = 0
            val = acc + prev * M[L]
            if best is None or val < best:
                best = val
            return
        for t in range(min(prev, M[j]) + 1):
            rec(j + 1, t, acc + (prev - t) * (M[j] - t))

    for t1 in range(min(M[0], M[1]) + 1):
        rec(2, t1, (M[0] - t1) * (M[1] - t1))
    return base + Fraction(best, 2)


def regular_lambda(d: int) -> float:
    """A regular model with d parameters: ``lambda = d/2``, ``m = 1`` (Watanabe 2009)."""
    if not _is_int(d) or d < 0:
        raise ValueError(f"regular: d must be a non-negative integer, got {d!r}")
    return d / 2


def normal_crossing_lambda(powers: Sequence[int]) -> Tuple[float, int]:
    """Normal-crossing potential ``K(w) = prod_j w_j^{2 k_j}`` with a prior positive at 0
    (Watanabe 2009, ch. 2-3; science.md, exact answers 3 and 7)::

        lambda = min_j 1/(2 k_j),  m = #{j : 1/(2 k_j) = lambda}

    over the positive powers (zero powers are coordinates K does not depend on, ignored).
    Returns ``(lambda, m)``, e.g. ``[1, 1] -> (1/2, 2)``, ``[1, 2] -> (1/4, 1)``.
    Raises ValueError on negative or non-integer powers, or when none is positive.
    """
    if isinstance(powers, (str, bytes)) or not isinstance(powers, Sequence):
        raise ValueError(f"normal_crossing: powers must be a list of non-negative integers, got {powers!r}")
    bad = [k for k in powers if not _is_int(k) or k < 0]
    if bad:
        raise ValueError(f"normal_crossing: powers must be non-negative integers, got {bad[0]!r} in {list(powers)}")
    pos = [int(k) for k in powers if k > 0]
    if not pos:
        raise ValueError(f"normal_crossing: no positive power in {list(powers)} (K is constant)")
    kmax = max(pos)
    return float(Fraction(1, 2 * kmax)), pos.count(kmax)


def tanh_lambda(H: int) -> Tuple[float, int]:
    """One-hidden-layer tanh network ``y = sum_{h=1}^H a_h tanh(b_h x) + N(0, 1)`` with zero
    truth, x ~ U[-1, 1] (Aoyagi & Watanabe, as cited in science.md, exact answer 6)::

        lambda = (H + i^2 + i)/(4i + 2),  i = floor(sqrt(H)),  m = 2 if H = i^2 else 1

    (H = 1..4: 1/2, 2/3, 5/6, 1). Returns ``(lambda, m)``; raises ValueError unless H >= 1.
    """
    if not _is_int(H) or H < 1:
        raise ValueError(f"tanh: H must be a positive integer, got {H!r}")
    i = math.isqrt(H)
    return float(Fraction(H + i * i + i, 4 * i + 2)), 2 if i * i == H else 1


def restricted_llc_gaussian(H, g, u_star, nbeta: float, gamma: float, H_eval=None, g_eval=None) -> float:
    """The weight-restricted LLC of a loss quadratic in the restricted weights u (a
    Gaussian-likelihood model linear in u: any layer of a deep linear network, the last layer
    of any network), exactly, at any point (not only a minimiser)::

        L_n(u, v*) = c - g.u + u^T H u / 2
        P  = nbeta H + gamma I,   mu = P^-1 (nbeta g + gamma u*)       (the Gaussian posterior of u)
        llc_u = nbeta [-g.mu + (mu^T H mu + tr(H P^-1)) / 2 - (-g.u* + u*^T H u*/2)]

    Its limit nbeta -> inf at a minimiser is rank(H)/2. ``H`` (k, k) symmetric PSD, ``g`` and
    ``u_star`` (k,); float64 numpy (notes/restricted_llc.md; :func:`slt.estimators.restricted.linear_terms`
    computes g and H).

    ``H_eval``, ``g_eval``: the data-refined LLC of another quadratic loss
    ``L'(u) = c' - g'.u + u^T H' u / 2`` over the same posterior (``nbeta (E[L'] - L'(u*))``,
    the formula above with g', H' in place of g, H outside P and mu)."""
    import numpy as np

    H = np.asarray(H, np.float64)
    g = np.asarray(g, np.float64)
    u = np.asarray(u_star, np.float64)
    P = nbeta * H + gamma * np.eye(H.shape[0])
    mu = np.linalg.solve(P, nbeta * g + gamma * u)
    He = H if H_eval is None else np.asarray(H_eval, np.float64)
    ge = g if g_eval is None else np.asarray(g_eval, np.float64)
    tr = float(np.trace(np.linalg.solve(P, He)))
    mean_loss = -ge @ mu + 0.5 * (mu @ He @ mu + tr)
    return float(nbeta * (mean_loss - (-ge @ u + 0.5 * u @ He @ u)))
