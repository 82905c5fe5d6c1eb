"""Bayesian influence functions and susceptibilities from the LLC's own draws.

Both are covariances over the localised posterior at w* (Lau et al. 2023)::

    p(w | w*) ∝ exp(-nbeta L_n(w) - (gamma/2) ||w - w*||^2)

whose draws :func:`slt.estimators.learning_coefficient.estimate_llc` keeps with ``keep_positions``: no
extra sampling, only forward passes over the kept draws.

* **Bayesian influence function** (Kreer et al. 2025)::

      BIF(i, j) = -Cov_w(l_i(w), l_j(w))

  ``l_i`` the per-sample negative log likelihood, constant included (:mod:`slt.likelihoods`).
  Linear regression at its minimiser: ``BIF(i, j) = -(r_i r_j s_ij + s_ij^2 / 2) / sigma^4``,
  ``s_ij = x_i^T Sigma x_j``, ``Sigma = (beta X^T X / sigma^2 + gamma I)^{-1}``
  (derivation in notes/influence.md; :func:`linear_bif`).

* **Susceptibility** (linear response; Baker et al. 2025): reweight the loss towards another
  data set, ``L_h = (1 - h) L_n + h L'``; for any observable ``phi(w)``::

      chi = d/dh E_h[phi] |_{h=0} = -nbeta Cov_w(phi(w), L'(w) - L_n(w))

  (differentiate ``E_h[phi] = ∫ phi e^{-nbeta L_h - ...} / Z_h``; the fluctuation-dissipation
  identity).

Standard errors: batch means. Every chain is cut into ``m >= 2`` contiguous segments
(``m = ceil(64 / C)``, rounded up to even: at least 64 batches); each segment gives its own
covariance, and ``se = sd(batch covariances) / sqrt(B)``. Chains are independent and a
segment is many autocorrelation times long (HMC draws are nearly independent), so the batch
covariances are nearly independent estimates. Why 64 and not the 4-8 per-chain estimates: the
errors of all ``n^2`` entries are driven by a few sample moments of the draws (in d = 2, about
14 of them), so an se from few batches is too small for the entries that line up with the
batches' chance directions (Hotelling's T^2); with 16 batches, 8% of the entries of a d = 2,
n = 80 regression came out beyond 4 se, with 64 none (notes/influence.md). The point estimate
is the pooled covariance over all draws (the mean of the batch covariances plus the
covariance of the batch means). Everything runs in
chunks of draws and accumulates in float64, so memory is ``O(q n)`` for ``q`` query rows and
``n`` training rows, estimated before anything is allocated (:func:`bif_memory`).
"""
from __future__ import annotations

import functools
import math
import time
from typing import TYPE_CHECKING, Callable, NamedTuple

import numpy as np

if TYPE_CHECKING:   # jax is imported lazily: the config checks use the row and memory rules
    import jax

    from slt.posterior import Problem

MAX_FULL_ROWS = 2000    # the full (n, n) BIF up to this n; beyond, choose the query rows
MIN_BATCHES = 64        # batch means: at least this many batches (module doc)
REL_SE_TOL = 0.1        # BIF converged: ||se||_F <= 10% of ||BIF||_F (and the LLC converged)


# ----------------------------------------------------------------------------- per-sample losses
def per_sample_nll(problem: Problem, w: jax.Array, x: jax.Array | None = None,
                   y: jax.Array | None = None) -> jax.Array:
    """``l_i(w)`` (m,): the negative log likelihood of each row, constant included (its mean
    is ``L_n``). Default rows: the problem's data."""
    import jax

    from slt import likelihoods

    x = problem.x if x is None else x
    y = problem.y if y is None else y
    z = problem.model.apply_flat(w, x)
    one = lambda zi, yi: likelihoods.mean_nll(problem.likelihood, zi[None], yi[None], problem.noise_std)
    return jax.vmap(one)(z, y)


@functools.lru_cache(maxsize=None)
def _losses_program():
    import jax

    return jax.jit(lambda problem, ws: jax.vmap(lambda w: per_sample_nll(problem, w))(ws))


def _losses(ws: jax.Array, problem: Problem) -> jax.Array:
    """``l_i(w)`` for a batch of draws ``ws`` (t, d) -> (t, n); the problem is an argument (no
    recompilation for new data of the same shape)."""
    return _losses_program()(problem, ws)


def parse_rows(rows, n: int) -> np.ndarray:
    """Row indices from a list of ints, a ``"start:stop"`` string, or None (all ``n`` rows).
    Raises ``ValueError`` (one line) for an index outside ``0..n-1`` or an empty selection."""
    if rows is None:
        return np.arange(n)
    if isinstance(rows, str):
        parts = rows.split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            start, stop = (int(p) if p.strip() else d for p, d in zip(parts, (0, n)))
        except ValueError:
            raise ValueError(f"expected 'start:stop' or a list of row indices, got {rows!r}") from None
        if not 0 <= start < stop <= n:
            raise ValueError(f"range {rows!r} must lie within 0:{n} (n = {n}) and be non-empty")
        return np.arange(start, stop)
    idx = np.asarray(rows)
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"expected a non-empty list of row indices, got {rows!r}")
    bad = idx[(idx < 0) | (idx >= n)]
    if bad.size:
        raise ValueError(f"row {int(bad[0])} does not exist (n = {n}: rows 0..{n - 1})")
    return idx.astype(np.int64)


def bif_memory(q: int, n: int, d: int = 0, num_positions: int = 0) -> int:
    """Bytes :func:`bif` needs for ``q`` query rows against ``n`` rows, at its peak: the device's
    four float32 (q, n) sums and the host's float64 results and temporaries (ten (q, n) float64
    arrays in all), two chunks of per-sample losses, and the kept draws (float32)."""
    return 8 * (10 * q * n + 2 * _chunk_size(n) * n) + 4 * num_positions * d


def _chunk_size(n: int) -> int:
    return int(min(1024, max(16, 2 ** 23 // max(n, 1))))   # ~64 MB of losses per chunk


def segments_per_chain(num_chains: int) -> int:
    """Batches per chain: ``ceil(MIN_BATCHES / C)``, at least 2, even (two halves)."""
    m = max(2, math.ceil(MIN_BATCHES / num_chains))
    return m + m % 2


def _segments(num_chains: int, num_draws: int) -> int:
    m = segments_per_chain(num_chains)
    if num_draws < 4 * m:
        raise ValueError(f"{num_draws} kept draws per chain are too few for {m} batches per chain "
                         f"(need >= {4 * m}); run more draws or thin less")
    return m


def _positions(result) -> np.ndarray:
    pos = getattr(result, "positions", None)
    if pos is None:
        raise ValueError("the LLC result has no draws: run estimate_llc / llc_for_problem with "
                         "keep_positions=True")
    return np.asarray(pos)


class _Cov(NamedTuple):
    cov: np.ndarray      # (p, q) pooled covariance over all draws
    se: np.ndarray       # (p, q) batch-means standard error
    first: np.ndarray    # (p, q) mean batch covariance over the first half of every chain
    second: np.ndarray   # (p, q) ... over the second half
    num_batches: int
    num_draws: int


def batched_covariance(features: Callable, positions: np.ndarray, a_idx, b_idx,
                       chunk: int | None = None, args=None) -> _Cov:
    """``Cov(F_a, F_b)`` over draws ``positions`` (C, T, d) of the features
    ``features(ws (t, d), args) -> (t, k)`` (``args`` a pytree argument, e.g. the Problem: new
    data never recompiles; columns ``a_idx`` against ``b_idx``), with batch-means
    standard errors (module doc). Draws go ``chunk`` at a time (padded to one compiled shape,
    the padding masked out); everything stays on the device in two compiled programs (a
    chunk's sums; a batch's covariance folded into the running sums, one fused pass over the
    (p, q) arrays), the features centred on the first draw's so float32 sums keep the
    covariance."""
    import jax
    import jax.numpy as jnp

    C, T, d = positions.shape
    m = _segments(C, T)
    tb = T // m
    chunk = int(min(chunk or tb, tb))

    @jax.jit
    def chunk_sums(ws, shift, mask, args):
        f = (features(ws, args) - shift) * mask[:, None]
        fa, fb = f[:, a_idx], f[:, b_idx]
        return fa.sum(0), fb.sum(0), fa.T @ fb

    @functools.partial(jax.jit, donate_argnums=(0,))
    def fold(acc, sa, sb, sab, first):
        ma, mb = sa / tb, sb / tb
        cov = sab / tb - ma[:, None] * mb[None, :]
        total, sq, half_first = acc
        return (total + cov, sq + cov * cov, half_first + jnp.where(first, cov, 0.0)), ma, mb

    first_ws = jnp.asarray(positions[0, :1])
    shift = jax.jit(features)(first_ws, args)[0]
    acc, means_a, means_b = None, [], []
    for c in range(C):
        for s in range(m):
            seg = positions[c, s * tb:(s + 1) * tb]
            sums = None
            for t0 in range(0, tb, chunk):
                ws = seg[t0:t0 + chunk]
                k = ws.shape[0]
                mask = np.arange(chunk) < k
                if k < chunk:
                    ws = np.concatenate([ws, np.repeat(ws[-1:], chunk - k, axis=0)])
                part = chunk_sums(jnp.asarray(ws), shift, jnp.asarray(mask, shift.dtype), args)
                sums = part if sums is None else tuple(x + y for x, y in zip(sums, part))
            if acc is None:
                acc = tuple(jnp.zeros_like(sums[2]) for _ in range(3))
            acc, ma, mb = fold(acc, *sums, s < m // 2)
            means_a.append(ma)
            means_b.append(mb)
    B = C * m
    total, sq, first = (np.asarray(x, np.float64) for x in acc)
    ma, mb = np.asarray(jnp.stack(means_a), np.float64), np.asarray(jnp.stack(means_b), np.float64)
    between = (ma - ma.mean(0)).T @ (mb - mb.mean(0)) / B
    mean_cov = total / B
    var = np.maximum(sq / B - mean_cov ** 2, 0.0) * B / (B - 1)
    second = (total - first) / (B / 2)
    return _Cov(mean_cov + between, np.sqrt(var / B), first / (B / 2), second, B, C * T)


# ----------------------------------------------------------------------------- influence
class BIFResult(NamedTuple):
    """Bayesian influence function ``BIF(i, j) = -Cov(l_i, l_j)`` (Kreer et al. 2025).

    Shapes: q query rows, n training rows."""

    bif: np.ndarray          # (q, n) -Cov(l_rows[a], l_j)
    se: np.ndarray           # (q, n) batch-means standard error
    rows: np.ndarray         # (q,) query row indices
    rel_se: float            # ||se||_F / ||bif||_F
    converged: bool          # the LLC converged and rel_se <= REL_SE_TOL
    num_draws: int           # draws used (all chains)
    num_batches: int
    seconds: float           # wall time of the estimate (the sampling not included)


def bif(problem: Problem, result, rows=None, *, max_bytes: int | None = None) -> BIFResult:
    """The Bayesian influence function from the LLC's draws (``result.positions``).

    ``rows``: query rows (a list or ``"start:stop"``); default all rows, allowed up to
    ``MAX_FULL_ROWS`` = 2000. Raises ``ValueError`` (one line) for unknown rows, too many rows,
    or when :func:`bif_memory` exceeds ``max_bytes`` (default half the machine's memory), all
    before allocating. Linear models sampled through sufficient statistics are fine: the
    per-sample losses come from ``problem``'s data."""
    n = problem.n
    if rows is None and n > MAX_FULL_ROWS:
        raise ValueError(f"n = {n} > {MAX_FULL_ROWS}: the full n x n influence matrix is not "
                         "computed; choose the query rows (e.g. '0:500')")
    idx = parse_rows(rows, n)
    pos = _positions(result)
    need = bif_memory(len(idx), n, pos.shape[-1], 0)
    limit = max_bytes if max_bytes is not None else _memory_limit()
    if limit and need > limit:
        raise ValueError(f"{len(idx)} query rows x {n} rows need about {need / 2**30:.1f} GiB, more "
                         f"than the {limit / 2**30:.1f} GiB allowed; choose fewer query rows")
    t0 = time.perf_counter()
    out = batched_covariance(_losses, pos, idx, slice(None), _chunk_size(n), args=problem)
    b, se = -out.cov, out.se
    if len(idx) == n and np.array_equal(idx, np.arange(n)):   # exactly symmetric (float32 products)
        b, se = 0.5 * (b + b.T), 0.5 * (se + se.T)
    rel = float(np.linalg.norm(se) / max(np.linalg.norm(b), 1e-300))
    ok = bool(getattr(result, "converged", True)) and rel <= REL_SE_TOL
    return BIFResult(b, se, idx, rel, ok, out.num_draws, out.num_batches, time.perf_counter() - t0)


def top_pairs(res: BIFResult, k: int = 10) -> list[dict]:
    """The ``k`` most influential pairs: largest ``|BIF(i, j)|`` with ``i != j`` (each unordered
    pair once), as ``{"i", "j", "bif", "se"}``."""
    b = np.abs(res.bif)
    mask = res.rows[:, None] == np.arange(b.shape[1])[None, :]
    order = np.argsort(-np.where(mask, -np.inf, b), axis=None, kind="stable")
    seen, pairs = set(), []
    for flat in order:
        a, j = divmod(int(flat), b.shape[1])
        i = int(res.rows[a])
        if i == j or (min(i, j), max(i, j)) in seen:
            continue
        seen.add((min(i, j), max(i, j)))
        pairs.append({"i": i, "j": j, "bif": float(res.bif[a, j]), "se": float(res.se[a, j])})
        if len(pairs) == k:
            break
    return pairs


def linear_bif(x: np.ndarray, y: np.ndarray, w_star: np.ndarray, noise_std: float, nbeta: float,
               gamma: float) -> np.ndarray:
    """Exact BIF (n, n) of linear regression ``y = x w + noise`` (one output, no bias; append a
    column of ones for a bias) at its least-squares minimiser ``w_star``:
    ``-(r_i r_j s_ij + s_ij^2 / 2) / sigma^4``, ``Sigma = (nbeta X^T X / (n sigma^2) +
    gamma I)^{-1}``, ``s_ij = x_i^T Sigma x_j``, ``r = y - x w*`` (notes/influence.md)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64).reshape(-1)
    n, s2 = x.shape[0], noise_std ** 2
    sigma = np.linalg.inv(nbeta * x.T @ x / (n * s2) + gamma * np.eye(x.shape[1]))
    s = x @ sigma @ x.T
    r = y - x @ np.asarray(w_star, np.float64)
    return -(np.outer(r, r) * s + 0.5 * s * s) / s2 ** 2


# ----------------------------------------------------------------------------- susceptibility
class Susceptibility(NamedTuple):
    """``chi = d/dh E_h[phi] = -nbeta Cov(phi, L' - L_n)`` (Baker et al. 2025); shapes: scalar,
    or (k,) for a vector observable."""

    value: np.ndarray | float
    se: np.ndarray | float       # batch-means standard error
    first: np.ndarray | float    # estimate from the first half of every chain
    second: np.ndarray | float   # ... from the second half
    converged: bool              # the LLC converged and the halves agree within 3 combined se
    nbeta: float
    num_draws: int
    num_batches: int
    seconds: float


def loss_observable(problem: Problem, rows=None, data=None) -> Callable:
    """``phi(w)``: the loss (mean per-sample NLL) on ``rows`` of the problem's data, on other
    data ``(x, y)``, or ``L_n`` (both None)."""
    import jax
    import jax.numpy as jnp

    if data is not None:
        x, y = (jnp.asarray(a, problem.x.dtype) for a in data)
        y = y[:, None] if y.ndim == 1 else y
        return lambda w: problem.loss_on(w, x, y)
    if rows is None:
        return problem.loss
    idx = jnp.asarray(parse_rows(rows, problem.n))
    return lambda w: problem.loss_on(w, problem.x[idx], problem.y[idx])


def susceptibility(problem: Problem, result, phi: Callable | None, other=None, *,
                   rows=None) -> Susceptibility:
    """Linear response of ``E[phi]`` to reweighting the loss towards ``L'``, from the LLC's
    draws (``result.positions``, ``result.nbeta``)::

        chi = -nbeta Cov_w(phi(w), L'(w) - L_n(w))

    ``phi(w) -> scalar or (k,)`` (None: ``L_n``); ``L'`` the loss on ``other`` = ``(x, y)``
    arrays (a tuple or a :class:`slt.data.Dataset`) or on rows of the problem's data (``other``
    or ``rows`` a list, an integer array or ``"start:stop"``). The
    fluctuation-dissipation identity: equal to ``(E_{+eps}[phi] - E_{-eps}[phi]) / (2 eps)``
    under ``L_{±eps}`` (tests/test_influence.py checks both ways)."""
    import jax
    import jax.numpy as jnp

    if other is not None and not isinstance(other, tuple) and not hasattr(other, "x"):
        other, rows = None, other if rows is None else _both()
    if other is not None and hasattr(other, "x"):
        other = (other.x, other.y)
    if (other is None) == (rows is None):
        _both()
    pos = _positions(result)
    phi = problem.loss if phi is None else phi
    l_other = loss_observable(problem, rows=rows, data=other)

    def features(ws, args):
        def one(w):
            return jnp.concatenate([jnp.atleast_1d(phi(w)), (l_other(w) - problem.loss(w))[None]])
        return jax.vmap(one)(ws)

    t0 = time.perf_counter()
    k = int(np.asarray(jax.jit(features)(jnp.asarray(pos[0, :1]), None)).shape[1]) - 1
    out = batched_covariance(features, pos, np.arange(k), np.array([k]), 512)
    nb = float(result.nbeta)
    val, a, b = (-nb * v[:, 0] for v in (out.cov, out.first, out.second))
    se = nb * out.se[:, 0]
    se_half = se * math.sqrt(2.0)   # each half has B/2 batches
    ok = bool(getattr(result, "converged", True)) and bool(np.all(np.abs(a - b) <= 3 * np.hypot(se_half, se_half)))
    scal = (lambda v: float(v[0])) if k == 1 and np.ndim(phi(jnp.asarray(pos[0, 0]))) == 0 else (lambda v: v)
    return Susceptibility(scal(val), scal(se), scal(a), scal(b), ok, nb, out.num_draws, out.num_batches,
                          time.perf_counter() - t0)


def _both():
    raise ValueError("give exactly one of other=(x, y) and rows=")


def reweighted_loss(w: jax.Array, data) -> jax.Array:
    """``L_h(w) = (1 - h) L_n(w) + h L'(w)`` with ``data = (problem, x', y', h)`` (a pytree: one
    compiled sampler serves every h), for sampling the perturbed posterior directly, e.g.
    ``estimate_llc(key, reweighted_loss, w_star, data=(p, x2, y2, jnp.asarray(h)), nbeta=...)``."""
    problem, x_other, y_other, h = data
    return (1 - h) * problem.loss(w) + h * problem.loss_on(w, x_other, y_other)


def expectation(result, phi: Callable) -> tuple[float, float]:
    """``(E[phi], se)`` over the kept draws of ``result``; batch-means se as in the module doc."""
    import jax
    import jax.numpy as jnp

    pos = _positions(result)
    C, T, _ = pos.shape
    m = _segments(C, T)
    vals = np.asarray(jax.jit(jax.vmap(jax.vmap(phi)))(jnp.asarray(pos)), np.float64)
    tb = T // m
    means = vals[:, :m * tb].reshape(C * m, tb).mean(1)
    return float(vals.mean()), float(means.std(ddof=1) / math.sqrt(C * m))


def _memory_limit() -> int | None:
    from slt.setup_jax import physical_memory

    total = physical_memory()
    return total // 2 if total else None
