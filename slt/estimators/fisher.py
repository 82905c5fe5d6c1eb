"""Fisher information of the Gaussian regression model: spectrum, numerical rank, nullity,
and (for two-layer networks) the null directions explained by their source.

For ``p(y|x,w) = N(y; f(x,w), sigma^2 I)`` the Fisher information is (science.md)::

    I(w) = E_x[ J(x,w)^T J(x,w) ] / sigma^2,      J(x,w) = d f(x,w) / d w   (d_out x d)

the *empirical* version averages over the data inputs, ``(1/n) sum_i J_i^T J_i / sigma^2``,
the *population* version over fresh inputs from the input distribution. The model is
singular at ``w`` when ``I(w)`` is degenerate; ``rank/2 <= lambda(w0) <= d/2`` but the rank
is not lambda (Watanabe 2009, ch. 7).

Precision. The Jacobian is computed and ``I(w)`` formed and eigen-decomposed in float64
whatever the run precision (``jax.enable_x64`` locally). A null direction ``v`` (``J v = 0``
exactly) then gives an eigenvalue at the rounding level of the eigen-solver, ``~ eps64 *
lambda_max`` (measured 1e-18 .. 1e-15 relative), while the non-zero eigenvalues of the small
networks the toolkit studies sit above ``1e-5 * lambda_max``.

Rank rule (one documented default, never tuned per case): an eigenvalue counts towards the
rank iff ``lambda_k > RTOL * lambda_max`` with ``RTOL = 1e-9``: six decades above the float64 rounding level
(and above the ``~ d * eps32^2 ~ 1e-13`` a float32 Jacobian would leave), and four decades
below the smallest eigenvalues of true directions measured in the tests. Every
result also carries the *spectral gap at the tolerance* (smallest kept over largest dropped
eigenvalue) and the *largest log-gap* of the spectrum: the rank is well defined when the
largest gap is the one at the tolerance and it spans many decades.
"""
from __future__ import annotations

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from slt import likelihoods, models

RTOL = 1e-9
"""Default relative tolerance: eigenvalues above ``RTOL * lambda_max`` count as rank."""

MIN_TRUSTED_GAP = 1e3
"""A rank whose gap at the tolerance is below this ratio is flagged as ambiguous."""


class Spectrum(NamedTuple):
    """Eigen-analysis of a symmetric positive semi-definite matrix (float64)."""

    eigenvalues: np.ndarray     # (d,) descending
    rank: int                   # #{k : lambda_k > tolerance}
    nullity: int                # d - rank
    tolerance: float            # absolute threshold = rtol * lambda_max
    rtol: float
    gap_at_tolerance: float     # lambda_rank / lambda_{rank+1} (inf if nothing was dropped)
    largest_gap: float          # max_k lambda_k / lambda_{k+1}; eigenvalues floored at eps64 * lambda_max
    largest_gap_index: int      # rank implied by the largest gap (k + 1)


class NullExplanation(NamedTuple):
    """Null directions of ``I(w)`` of a two-layer network, by source. ``total == nullity``.

    ``dead``, ``switched_off`` and ``scaling`` are exact symmetries (zero Jacobian columns and
    the positive rescaling ``(w_i, b_i, q_i) -> (a w_i, a b_i, q_i / a)`` of a homogeneous
    activation); ``duplicated`` is the extra nullity of groups of nodes with the same
    activation pattern and proportional input weights; ``other`` the remaining dependence
    between nodes (e.g. nodes that are linear on the whole domain together with the output
    bias) and ``within_other`` unexplained nullity inside single nodes. Counts per node are
    in ``per_node``.
    """

    dead: int
    switched_off: int
    scaling: int
    duplicated: int
    within_other: int
    other: int
    total: int
    per_node: list              # [{node, status, null}] per hidden node
    dead_nodes: list
    switched_off_nodes: list
    duplicate_groups: list      # lists of node indices


class FisherResult(NamedTuple):
    """The Fisher information at one point and its analysis."""

    matrix: np.ndarray          # (d, d) float64
    spectrum: Spectrum
    explained: NullExplanation | None   # two-layer networks only
    num_inputs: int             # inputs averaged over


class PosteriorFisher(NamedTuple):
    """Fisher information over posterior draws."""

    mean_matrix: np.ndarray     # (d, d) the posterior-averaged I(w)
    mean_spectrum: Spectrum     # of the averaged matrix (generically full rank: it mixes points)
    ranks: np.ndarray           # (draws,) rank of I(w) at each draw, same rtol
    rank_counts: dict           # rank -> number of draws
    mean_eigenvalues: np.ndarray  # (d,) per-draw descending eigenvalues, averaged
    explained_mean: dict        # mean count of each source over draws (two-layer nets)


# ----------------------------------------------------------------------------- matrices
def jacobian(spec, w, x) -> np.ndarray:
    """``J(x_i, w) = d f / d w`` for every input, float64, shape (n, d_out, d)."""
    with jax.enable_x64(True):
        w64 = jnp.asarray(np.asarray(w, np.float64))
        x64 = jnp.asarray(np.asarray(x, np.float64))
        return np.asarray(_jacobian(spec, w64, x64))


@jax.jit(static_argnums=0)
def _jacobian(spec, w, x):
    return jax.vmap(lambda xi: jax.jacfwd(lambda v: spec.apply_flat(v, xi[None])[0])(w))(x)


def fisher_matrix(spec, w, x, noise_std: float = 1.0, likelihood: str = "gaussian") -> np.ndarray:
    """``I(w) = (1/n) sum_i J_i^T H_i J_i`` over the inputs ``x`` (n, d_in); float64 (d, d).

    ``H_i`` is the Hessian of the negative log likelihood in the output
    (:func:`slt.likelihoods.output_hessian`): ``I/sigma^2`` (Gaussian), ``p(1-p)`` (Bernoulli),
    ``diag(p) - p p^T`` (categorical). ``spec`` is any model with ``apply_flat(w, x)``."""
    J = jacobian(spec, w, x)
    n, d_out, d = J.shape
    if likelihood == "gaussian":
        J2 = J.reshape(n * d_out, d)
        return (J2.T @ J2) / (n * float(noise_std) ** 2)
    with jax.enable_x64(True):
        z = np.asarray(spec.apply_flat(jnp.asarray(np.asarray(w, np.float64)),
                                       jnp.asarray(np.asarray(x, np.float64))))
        H = np.asarray(likelihoods.output_hessian(likelihood, jnp.asarray(z), noise_std), np.float64)
    # H = L L^T per input (positive semi-definite): I = (1/n) sum_i (L_i^T J_i)^T (L_i^T J_i)
    evals, evecs = np.linalg.eigh(H)
    root = evecs * np.sqrt(np.clip(evals, 0, None))[:, None, :]          # (n, k, k)
    A = np.einsum("nkj,nkd->njd", root, J).reshape(n * d_out, d)
    return (A.T @ A) / n


def spectrum(matrix: np.ndarray, rtol: float = RTOL) -> Spectrum:
    """Eigenvalues (float64, descending), rank ``#{lambda_k > rtol * lambda_max}``, and gaps."""
    m = np.asarray(matrix, np.float64)
    m = 0.5 * (m + m.T)
    ev = np.linalg.eigvalsh(m)[::-1]
    d = ev.size
    top = max(float(ev[0]), 0.0) if d else 0.0
    tol = rtol * top
    rank = int(np.sum(ev > tol)) if top > 0 else 0
    # eigenvalues below the float64 rounding level of the solver are indistinguishable from 0
    floor = np.maximum(ev, max(np.finfo(np.float64).eps * top, 1e-300))
    ratios = floor[:-1] / floor[1:] if d > 1 else np.array([])
    if 0 < rank < d:
        gap = float(floor[rank - 1] / floor[rank])
    else:
        gap = float("inf")
    k = int(np.argmax(ratios)) if ratios.size else 0
    largest = float(ratios[k]) if ratios.size else float("inf")
    return Spectrum(ev, rank, d - rank, float(tol), float(rtol), gap, largest, k + 1)


def _sub_rank(matrix: np.ndarray, idx, tol: float) -> int:
    """Rank of the principal sub-matrix (= rank of the Jacobian columns ``idx``)."""
    idx = list(idx)
    if not idx:
        return 0
    sub = matrix[np.ix_(idx, idx)]
    return int(np.sum(np.linalg.eigvalsh(0.5 * (sub + sub.T)) > tol))


# ----------------------------------------------------------------------------- two-layer nets
def node_indices(spec: models.MLP) -> tuple[list[list[int]], list[int]]:
    """Flat indices of each hidden node's parameters (w_i, b_i, q_i) and of the output bias."""
    if spec.num_layers != 2:
        raise ValueError("node_indices: two-layer networks only")
    d_in, h, d_out = spec.widths
    off_W1 = 0
    off_b1 = h * d_in
    off_W2 = off_b1 + (h if spec.bias else 0)
    off_b2 = off_W2 + d_out * h
    nodes = []
    for i in range(h):
        idx = list(range(off_W1 + i * d_in, off_W1 + (i + 1) * d_in))
        if spec.bias:
            idx.append(off_b1 + i)
        idx += [off_W2 + o * h + i for o in range(d_out)]
        nodes.append(idx)
    out_bias = list(range(off_b2, off_b2 + d_out)) if spec.bias else []
    return nodes, out_bias


def explain_nullity(spec: models.MLP, w, x, matrix: np.ndarray, spec_result: Spectrum,
                    dup_cos: float = 1 - 1e-9) -> NullExplanation:
    """Attribute the nullity of ``I(w)`` of a two-layer network to its sources.

    The decomposition is exact bookkeeping with the same absolute tolerance as the rank::

        nullity = sum_nodes (size_i - rank_i) + size_c - rank_c      (within blocks)
                + sum_i rank_i + rank_c - sum_groups rank_G          (duplicated nodes)
                + sum_groups rank_G - rank(I)                        (other, between groups)

    where ``rank_i`` is the rank of node i's Jacobian columns (w_i, b_i, q_i) and the groups
    ``G`` merge active nodes with identical activation patterns on ``x`` and positively
    proportional ``(w_i, b_i)`` (cosine > ``dup_cos``). Within a node: a *dead* node (never
    active on ``x``: relu pre-activation <= 0 everywhere) has all d_in + 1 + d_out columns
    zero; a *switched-off* node (q_i = 0, active somewhere) has its d_in + 1 input columns
    zero; every other node of a homogeneous activation (relu, identity) has one *scaling*
    direction.
    """
    nodes, out_bias = node_indices(spec)
    params = models.unflatten(spec, jnp.asarray(np.asarray(w, np.float64)))
    W1 = np.asarray(params[0]["W"], np.float64)
    b1 = np.asarray(params[0]["b"], np.float64) if spec.bias else np.zeros(W1.shape[0])
    W2 = np.asarray(params[1]["W"], np.float64)
    pre = np.asarray(x, np.float64) @ W1.T + b1            # (n, h)
    tol = spec_result.tolerance
    homogeneous = spec.activation in ("relu", "identity")
    if spec.activation == "relu":
        active = pre > 0
    else:
        active = np.ones_like(pre, dtype=bool)
    d_in, h, d_out = spec.widths
    dead, off, scaling, within_other = 0, 0, 0, 0
    per_node, dead_nodes, off_nodes, ranks = [], [], [], []
    for i, idx in enumerate(nodes):
        r = _sub_rank(matrix, idx, tol)
        ranks.append(r)
        null_i = len(idx) - r
        q_zero = bool(np.all(W2[:, i] == 0))
        if not active[:, i].any():
            status, expected = "dead", len(idx)
            dead += len(idx)
            dead_nodes.append(i)
        elif q_zero:
            status, expected = "switched_off", d_in + (1 if spec.bias else 0)
            off += expected
            off_nodes.append(i)
        elif homogeneous:
            status, expected = "active", 1
            scaling += 1
        else:
            status, expected = "active", 0
        extra = null_i - expected
        within_other += extra
        per_node.append({"node": i, "status": status, "null": null_i,
                         "active_fraction": float(active[:, i].mean())})
    # output bias block
    r_c = _sub_rank(matrix, out_bias, tol) if out_bias else 0
    within_other += len(out_bias) - r_c
    # duplicate groups among nodes that are neither dead nor switched off
    live = [i for i in range(h) if i not in dead_nodes and i not in off_nodes]
    vecs = {i: np.append(W1[i], b1[i]) for i in live}
    groups, seen = [], set()
    for i in live:
        if i in seen:
            continue
        g = [i]
        for j in live:
            if j <= i or j in seen:
                continue
            a, b = vecs[i], vecs[j]
            cos = a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-300)
            if cos > dup_cos and np.array_equal(active[:, i], active[:, j]):
                g.append(j)
        seen.update(g)
        groups.append(g)
    group_ranks = [_sub_rank(matrix, sorted(itertools.chain.from_iterable(nodes[k] for k in g)), tol)
                   for g in groups]
    dup = sum(ranks[k] for k in live) - sum(group_ranks)
    # the rest: dependence between groups, the output bias, dead/off nodes (rank 0 blocks)
    rank_blocks = sum(group_ranks) + sum(ranks[k] for k in range(h) if k not in live) + r_c
    other = rank_blocks - spec_result.rank
    total = dead + off + scaling + dup + within_other + other
    return NullExplanation(dead, off, scaling, dup, within_other, other, total, per_node,
                           dead_nodes, off_nodes, [g for g in groups if len(g) > 1])


# ----------------------------------------------------------------------------- front door
def fisher(spec, w, x, noise_std: float = 1.0, rtol: float = RTOL,
           explain: bool = True, likelihood: str = "gaussian") -> FisherResult:
    """Fisher information of the model at ``w`` averaged over inputs ``x``.

    Args:
      spec: the network; w: flat parameters (d,); x: inputs (n, d_in) — the data for the
        empirical FIM, fresh draws from the input distribution for the population FIM.
      noise_std: sigma of the Gaussian likelihood. rtol: relative rank tolerance (default
      :data:`RTOL`). explain: attribute the nullity to sources (two-layer MLPs, Gaussian
      likelihood). likelihood: see :func:`fisher_matrix`.
    Returns: :class:`FisherResult`.
    """
    m = fisher_matrix(spec, w, x, noise_std, likelihood)
    s = spectrum(m, rtol)
    ex = (explain_nullity(spec, w, x, m, s)
          if (explain and isinstance(spec, models.MLP) and spec.num_layers == 2 and likelihood == "gaussian")
          else None)
    return FisherResult(m, s, ex, int(np.asarray(x).shape[0]))


def posterior_fisher(spec, draws, x, noise_std: float = 1.0, rtol: float = RTOL,
                     explain: bool = True, likelihood: str = "gaussian") -> PosteriorFisher:
    """``I(w)`` at each posterior draw (draws: (num, d)): per-draw ranks with the same rule,
    the averaged matrix ``E_w[I(w)]`` and its spectrum, and mean null-direction counts."""
    draws = np.asarray(draws, np.float64).reshape(-1, np.asarray(draws).shape[-1])
    mats, ranks, evs, ex_list = [], [], [], []
    for w in draws:
        r = fisher(spec, w, x, noise_std, rtol, explain, likelihood)
        mats.append(r.matrix)
        ranks.append(r.spectrum.rank)
        evs.append(r.spectrum.eigenvalues)
        if r.explained is not None:
            ex_list.append(r.explained)
    mean = np.mean(mats, axis=0)
    ranks = np.asarray(ranks)
    counts = {int(k): int(v) for k, v in zip(*np.unique(ranks, return_counts=True))}
    keys = ("dead", "switched_off", "scaling", "duplicated", "within_other", "other", "total")
    ex_mean = {k: float(np.mean([getattr(e, k) for e in ex_list])) for k in keys} if ex_list else {}
    return PosteriorFisher(mean, spectrum(mean, rtol), ranks, counts, np.mean(evs, axis=0), ex_mean)


def summary_dict(res: FisherResult) -> dict:
    """The ``fisher`` section of summary.json."""
    s = res.spectrum
    out = {"rank": s.rank, "nullity": s.nullity, "d": int(s.eigenvalues.size),
           "eigenvalues": s.eigenvalues.tolist(), "rtol": s.rtol, "tolerance": s.tolerance,
           "spectral_gap": s.gap_at_tolerance, "largest_gap": s.largest_gap,
           "largest_gap_rank": s.largest_gap_index, "num_inputs": res.num_inputs}
    if res.explained is not None:
        e = res.explained
        out["explained"] = {"dead": e.dead, "switched_off": e.switched_off, "scaling": e.scaling,
                            "duplicated": e.duplicated, "within_other": e.within_other,
                            "other": e.other, "total": e.total, "per_node": e.per_node,
                            "duplicate_groups": e.duplicate_groups}
    return out
