"""Symmetries of two-layer networks: scaling normalisation, permutation canonicalisation,
and phase labels of posterior draws.

A two-layer network ``f(x) = sum_i q_i act(<w_i, x> + b_i) + c`` (any hidden width h, any
d_in, d_out) with a positively homogeneous activation (relu, identity) is unchanged by

* scaling each node: ``(w_i, b_i, q_i) -> (a w_i, a b_i, q_i / a)``, ``a > 0``;
* permuting the nodes.

:func:`normalise` picks ``a = |q_i|`` (the seed's ``w_hat_i = |q_i| w_i``; with several
outputs ``|q_i| = ||q_i||_2``) so ``q_i -> q_i / |q_i|``: every node becomes a point
``(w_hat_i, b_hat_i)`` in input space carrying its output sign. A node with ``q_i = 0``
becomes the zero node (it computes nothing either way). :func:`canonicalise` sorts the nodes
by the angle of ``w_hat_i`` in the first two input coordinates, or matches them to a
reference (the truth) by minimising the squared distance over all permutations (brute force
in JAX for h <= 7, so it is vmapped over draws; Hungarian algorithm beyond). Both functions
are pure ``jnp`` and accept flat parameters with any leading batch axes.

Phases (Carroll 2021; science.md): :func:`classify_phases` labels each draw of a relu
network against a truth by the *function* it computes: affine plus one kink per effective
node (a node whose contribution is not affine on the input sample), kinks on the same
hyperplane merged, the rest matched to the truth's kinks by direction. Labels:
``true`` (as many distinct effective nodes as the truth, each aligned with its own true
node), ``degenerate`` (fewer distinct effective nodes than the truth, at least one: e.g. the
seed's "one node near (0, 2), the other near 0"), ``constant`` (none), ``other``.
:func:`phase_occupancy` turns labels of ``(chains, draws)`` into occupancies with Monte Carlo
errors that account for autocorrelation and for chains stuck in one phase.
"""
from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from slt import models

PHASES = ("true", "degenerate", "constant", "other")
MAX_BRUTE_FORCE = 7


# ----------------------------------------------------------------------------- node views
class Nodes(NamedTuple):
    """A two-layer network split by hidden node; leading batch axes ``...``."""

    W: jax.Array      # (..., h, d_in)  input weights w_i
    b: jax.Array      # (..., h)        biases b_i (zeros without bias)
    Q: jax.Array      # (..., h, d_out) output weights q_i (columns of the output layer)
    c: jax.Array      # (..., d_out)    output bias (zeros without bias)


def _check(spec: models.MLP) -> None:
    if spec.num_layers != 2:
        raise ValueError(f"symmetry: two-layer networks only, got widths {list(spec.widths)}")


def split(spec: models.MLP, w: jax.Array) -> Nodes:
    """Flat parameters (..., d) -> :class:`Nodes`."""
    _check(spec)
    w = jnp.asarray(w)
    l1, l2 = models.unflatten(spec, w)
    h = spec.widths[1]
    b = l1["b"] if spec.bias else jnp.zeros(w.shape[:-1] + (h,), w.dtype)
    c = l2["b"] if spec.bias else jnp.zeros(w.shape[:-1] + (spec.d_out,), w.dtype)
    return Nodes(l1["W"], b, jnp.swapaxes(l2["W"], -1, -2), c)


def join(spec: models.MLP, nodes: Nodes) -> jax.Array:
    """Inverse of :func:`split` (biases dropped when the spec has none)."""
    _check(spec)
    parts = [nodes.W.reshape(nodes.W.shape[:-2] + (-1,))]
    if spec.bias:
        parts.append(nodes.b)
    parts.append(jnp.swapaxes(nodes.Q, -1, -2).reshape(nodes.Q.shape[:-2] + (-1,)))
    if spec.bias:
        parts.append(nodes.c)
    return jnp.concatenate(parts, axis=-1)


def normalise(spec: models.MLP, w: jax.Array) -> jax.Array:
    """Scaling normalisation: ``w_i, b_i <- |q_i| w_i, |q_i| b_i``; ``q_i <- q_i / |q_i|``.

    Leaves ``f`` unchanged for relu/identity (positive homogeneity) and is idempotent.
    """
    if spec.activation not in ("relu", "identity"):
        raise ValueError("normalise: needs a positively homogeneous activation (relu, identity), "
                         f"got {spec.activation!r}")
    return _normalise(spec, jnp.asarray(w))


@jax.jit(static_argnums=0)
def _normalise(spec: models.MLP, w: jax.Array) -> jax.Array:
    n = split(spec, w)
    scale = jnp.linalg.norm(n.Q, axis=-1)                         # (..., h)
    safe = jnp.where(scale > 0, scale, 1.0)
    Q = jnp.where(scale[..., None] > 0, n.Q / safe[..., None], 0.0)
    return join(spec, Nodes(n.W * scale[..., None], n.b * scale, Q, n.c))


def picture_nodes(spec: models.MLP, w) -> tuple[np.ndarray, np.ndarray]:
    """Each hidden node as a point for the seed's picture: ``(w_hat (..., h, d_in), b_hat (..., h))``.

    relu/identity: the scaling normalisation, ``w_hat_i = |q_i| w_i``, ``b_hat_i = |q_i| b_i``
    (:func:`normalise`). tanh (one output): ``w_hat_i = q_i w_i``, ``b_hat_i = q_i b_i``. tanh
    has no scaling symmetry, but it is odd, so ``(w_i, b_i, q_i) -> (-w_i, -b_i, -q_i)`` leaves
    ``f`` unchanged; ``q_i w_i`` is invariant under that sign flip where ``|q_i| w_i`` would
    draw every node twice, mirrored through the origin. Since both are taken node by node,
    permuting the nodes only relabels the points: all nodes of all draws share one picture.
    """
    if spec.activation == "tanh":
        if spec.d_out != 1:
            raise ValueError("picture_nodes: tanh networks with one output only")
        n = split(spec, jnp.asarray(w))
        q = n.Q[..., 0]
        return np.asarray(n.W * q[..., None]), np.asarray(n.b * q)
    n = split(spec, normalise(spec, w))
    return np.asarray(n.W), np.asarray(n.b)


def permute(spec: models.MLP, w: jax.Array, perm: jax.Array) -> jax.Array:
    """Reorder the hidden nodes: node k of the result is node ``perm[k]`` of ``w``.
    ``perm`` has shape (..., h) matching the batch axes of ``w``."""
    n = split(spec, jnp.asarray(w))
    perm = jnp.asarray(perm)
    take = lambda a: jnp.take_along_axis(a, perm.reshape(perm.shape + (1,) * (a.ndim - perm.ndim)), axis=perm.ndim - 1)
    return join(spec, Nodes(take(n.W), take(n.b), take(n.Q), n.c))


def node_angle(spec: models.MLP, w: jax.Array) -> jax.Array:
    """Angle of ``w_hat_i`` in the plane of the first two inputs (..., h); ``w_hat_i`` itself
    for d_in = 1."""
    n = split(spec, normalise(spec, w))
    if spec.d_in == 1:
        return n.W[..., 0]
    return jnp.arctan2(n.W[..., 1], n.W[..., 0])


def _node_vectors(spec: models.MLP, w: jax.Array) -> jax.Array:
    """(..., h, d_in + 1 + d_out): each normalised node as one vector (w_hat, b_hat, sign q)."""
    n = split(spec, normalise(spec, w))
    return jnp.concatenate([n.W, n.b[..., None], n.Q], axis=-1)


def canonicalise(spec: models.MLP, w: jax.Array, reference: jax.Array | None = None) -> jax.Array:
    """Permutation canonicalisation (the function is unchanged; idempotent).

    Without ``reference``: nodes sorted by :func:`node_angle` (stable sort). With
    ``reference`` (flat parameters (d,) of the same spec, e.g. the embedded truth): the
    permutation minimising ``sum_k ||v_k(w) - v_k(reference)||^2`` over normalised node vectors
    ``v = (w_hat, b_hat, q / |q|)`` — all h! permutations for h <= 7 (the identity wins ties),
    ``scipy.optimize.linear_sum_assignment`` per draw beyond.
    """
    w = jnp.asarray(w)
    if reference is None:
        return _sort_by_angle(spec, w)
    return permute(spec, w, match_permutation(spec, w, reference))


@jax.jit(static_argnums=0)
def _sort_by_angle(spec: models.MLP, w: jax.Array) -> jax.Array:
    return permute(spec, w, jnp.argsort(node_angle(spec, w), axis=-1, stable=True))


def match_permutation(spec: models.MLP, w: jax.Array, reference: jax.Array) -> jax.Array:
    """The permutation (..., h) matching the nodes of ``w`` to those of ``reference``."""
    h = spec.widths[1]
    w = jnp.asarray(w)
    reference = jnp.asarray(reference, w.dtype)
    if h <= MAX_BRUTE_FORCE:
        return _brute_force_match(spec, w, reference)
    cost = _match_cost(spec, w, reference)
    from scipy.optimize import linear_sum_assignment

    c = np.asarray(cost)
    flat = c.reshape(-1, h, h)
    out = np.empty((flat.shape[0], h), dtype=np.int32)
    for i, m in enumerate(flat):
        rows, cols = linear_sum_assignment(m)
        out[i, cols] = rows
    return jnp.asarray(out.reshape(c.shape[:-2] + (h,)))


@jax.jit(static_argnums=0)
def _match_cost(spec: models.MLP, w: jax.Array, reference: jax.Array) -> jax.Array:
    v = _node_vectors(spec, w)                                   # (..., h, k)
    r = _node_vectors(spec, reference)                           # (h, k)
    return jnp.sum((v[..., :, None, :] - r[None, :, :]) ** 2, axis=-1)  # (..., h_w, h_ref)


@jax.jit(static_argnums=0)
def _brute_force_match(spec: models.MLP, w: jax.Array, reference: jax.Array) -> jax.Array:
    h = spec.widths[1]
    cost = _match_cost(spec, w, reference)
    perms = jnp.asarray(list(itertools.permutations(range(h))))  # (P, h), identity first
    # total cost of assigning draw node perms[p, k] to reference node k
    total = jnp.sum(cost[..., perms, jnp.arange(h)], axis=-1)    # (..., P)
    return perms[jnp.argmin(total, axis=-1)]


# ----------------------------------------------------------------------------- phases
class PhaseLabels(NamedTuple):
    """Per-draw phase labels (indices into ``names``) and the features behind them."""

    labels: np.ndarray        # (...,) int
    names: tuple
    node_rms: np.ndarray      # (..., h) RMS over the inputs of the non-affine part of q_i act(.)
    num_effective: np.ndarray  # (...,) nodes with node_rms > rms_tol (kinks inside the domain)
    num_distinct: np.ndarray  # (...,) distinct kink hyperplanes among them
    rms_tol: float
    align_tol: float          # radians


def _unit_dirs(nodes: Nodes) -> np.ndarray:
    v = np.concatenate([np.asarray(nodes.W, np.float64), np.asarray(nodes.b, np.float64)[..., None]], axis=-1)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-300)


def node_rms(spec: models.MLP, w, x, affine: bool = False) -> np.ndarray:
    """RMS over inputs x (m, d_in) of each node's contribution ``q_i act(<w_i, x> + b_i)``
    (..., h); with ``affine=True`` of its *non-affine part* — the residual after the
    least-squares fit by ``a + <v, x>`` over the inputs — which is what no other node or the
    output bias can absorb: zero for a dead node and for a node active on every input."""
    act = models.ACTIVATIONS[spec.activation]
    w = jnp.asarray(w)
    x = jnp.asarray(x, w.dtype)
    X1 = jnp.concatenate([jnp.ones((x.shape[0], 1), x.dtype), x], axis=1)
    proj = jnp.asarray(np.linalg.pinv(np.asarray(X1, np.float64)), w.dtype)   # (1 + d_in, m)

    @jax.jit
    def chunk(ws, x, X1, proj):
        def one(wi):
            n = split(spec, wi)
            g = act(x @ n.W.T + n.b)                               # (m, h)
            if affine:
                g = g - X1 @ (proj @ g)
            return jnp.sqrt(jnp.mean(g ** 2, axis=0)) * jnp.linalg.norm(n.Q, axis=-1)
        return jax.vmap(one)(ws)

    flat = w.reshape(-1, w.shape[-1])
    out = [np.asarray(chunk(flat[i:i + 4096], x, X1, proj)) for i in range(0, flat.shape[0], 4096)]
    return np.concatenate(out).reshape(w.shape[:-1] + (spec.widths[1],))


def default_align_tol(spec: models.MLP, truth_w) -> float:
    """Half the smallest angle between the truth's kink hyperplanes (directions of (w_i, b_i)
    up to sign), at most 30 degrees."""
    n = split(spec, normalise(spec, jnp.asarray(truth_w)))
    keep = np.linalg.norm(np.asarray(n.Q), axis=-1) > 0
    u = _unit_dirs(n)[keep]
    best = math.radians(60.0)
    for i, j in itertools.combinations(range(len(u)), 2):
        best = min(best, float(np.arccos(np.clip(abs(u[i] @ u[j]), -1, 1))))
    return 0.5 * best


def classify_phases(spec: models.MLP, draws, truth_w, x, rms_tol: float = 0.02,
                    align_tol: float | None = None) -> PhaseLabels:
    """Label draws (..., d) by phase relative to the truth (flat, same spec), by *function*.

    A relu network is affine plus one kink per node whose hyperplane ``<w_i, x> + b_i = 0``
    crosses the input domain; a phase is the set of kinks. A node is *effective* when the RMS
    over the inputs ``x`` of the non-affine part of its contribution (:func:`node_rms` with
    ``affine=True``) exceeds ``rms_tol`` (units of y; default 0.02 — a node that small changes
    ``n L_n`` by about ``n rms_tol^2 / 2 sigma^2`` = 2 nats at n = 10^4). Effective nodes whose
    hyperplanes agree within ``align_tol`` (directions of ``(w_i, b_i)`` up to sign: relu(z) and
    -relu(-z) differ by an affine function) count as one *distinct* kink. Labels: ``true``
    when the distinct kinks match the truth's one-to-one within ``align_tol``;
    ``degenerate`` when 1 <= distinct < the truth's count (the seed's "one node near (0, 2),
    the other near 0", or the same function realised by two parallel or opposite nodes);
    ``constant`` when none (an affine function); ``other`` otherwise. ``align_tol`` defaults
    to :func:`default_align_tol`.
    """
    _check(spec)
    draws = np.asarray(draws)
    batch = draws.shape[:-1]
    flat = draws.reshape(-1, draws.shape[-1])
    truth_w = np.asarray(truth_w, flat.dtype)
    align = default_align_tol(spec, truth_w) if align_tol is None else float(align_tol)
    cos_align = math.cos(align)
    rms = node_rms(spec, flat, x, affine=True)                      # (N, h)
    t_rms = node_rms(spec, truth_w[None], x, affine=True)[0]
    t_dir = _unit_dirs(split(spec, jnp.asarray(truth_w)))[t_rms > rms_tol]   # (k, d_in+1)
    k_true = t_dir.shape[0]
    u = _unit_dirs(split(spec, jnp.asarray(flat)))                  # (N, h, d_in+1)
    eff = rms > rms_tol
    h = spec.widths[1]
    distinct = eff.copy()
    for i, j in itertools.combinations(range(h), 2):
        same = np.abs(np.sum(u[:, i] * u[:, j], -1)) > cos_align
        distinct[:, j] &= ~(same & eff[:, i] & distinct[:, i])
    num_eff, num_dist = eff.sum(-1), distinct.sum(-1)
    labels = np.full(flat.shape[0], PHASES.index("other"), dtype=np.int32)
    labels[num_dist == 0] = PHASES.index("constant")
    labels[(num_dist >= 1) & (num_dist < k_true)] = PHASES.index("degenerate")
    if k_true > 0:
        # cosine (up to sign) of every draw node with every true kink: (N, h, k)
        cos = np.abs(np.einsum("nhk,jk->nhj", u, t_dir))
        ok = np.zeros(flat.shape[0], bool)
        cand = num_dist == k_true
        for perm in itertools.permutations(range(h), k_true):
            # draw nodes perm[a] (distinct, effective) matched to true kink a
            good = cand.copy()
            for a, i in enumerate(perm):
                good &= distinct[:, i] & (cos[:, i, a] > cos_align)
            ok |= good
        labels[ok] = PHASES.index("true")
    return PhaseLabels(labels.reshape(batch), PHASES, rms.reshape(batch + (h,)),
                       num_eff.reshape(batch), num_dist.reshape(batch), float(rms_tol), align)


class PhaseOccupancy(NamedTuple):
    """Posterior phase occupancies from labels of shape (chains, draws); arrays over phases."""

    names: tuple
    occupancy: np.ndarray     # (K,) fraction of all draws
    se: np.ndarray            # (K,) max(se_ess, se_chain): the reported Monte Carlo error
    se_ess: np.ndarray        # (K,) sd(indicator) / sqrt(ESS(indicator))  (ArviZ multi-chain ESS)
    se_chain: np.ndarray      # (K,) sd(chain means) / sqrt(chains)  (chains as batches)
    ess: np.ndarray           # (K,) ESS of each indicator
    mean_loss: np.ndarray     # (K,) mean L_n over the phase's draws (nan when empty)
    count: np.ndarray         # (K,) draws per phase
    per_chain: np.ndarray     # (chains, K) occupancy within each chain
    switches: np.ndarray      # (chains,) label changes along each chain


def phase_occupancy(labels, loss=None, names: tuple = PHASES) -> PhaseOccupancy:
    """Occupancy of each phase with Monte Carlo errors.

    Two errors are computed and the larger reported: the ESS-based one (the indicator's
    autocorrelation and between-chain variance, ArviZ's multi-chain ESS) and the chain-level
    one (each chain one batch; honest when chains rarely switch phase, because then each
    chain is one draw of its starting basin). With chains that never switch, the occupancy
    measures the starting-basin probabilities unless the starts are themselves posterior
    draws: check ``switches`` and compare independent chain groups.
    """
    labels = np.asarray(labels)
    C, S = labels.shape
    K = len(names)
    ind = np.stack([(labels == k).astype(float) for k in range(K)], axis=-1)   # (C, S, K)
    occ = ind.mean(axis=(0, 1))
    per_chain = ind.mean(axis=1)
    se_chain = per_chain.std(axis=0, ddof=1) / math.sqrt(C) if C > 1 else np.full(K, np.nan)
    ess = np.full(K, np.nan)
    se_ess = np.zeros(K)
    for k in range(K):
        if 0 < occ[k] < 1:
            e = _ess_mean(ind[..., k])
            ess[k] = e
            se_ess[k] = ind[..., k].std() / math.sqrt(max(e, 1.0))
    se = np.fmax(se_ess, np.nan_to_num(se_chain))
    if loss is not None:
        loss = np.asarray(loss)
        mean_loss = np.array([loss[labels == k].mean() if (labels == k).any() else np.nan
                              for k in range(K)])
    else:
        mean_loss = np.full(K, np.nan)
    switches = np.sum(labels[:, 1:] != labels[:, :-1], axis=1)
    return PhaseOccupancy(tuple(names), occ, se, se_ess, se_chain, ess, mean_loss,
                          ind.sum(axis=(0, 1)).astype(int), per_chain, switches)


def _ess_mean(draws: np.ndarray) -> float:
    """ArviZ multi-chain ESS for the mean (not rank-normalised: the indicator is binary)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import arviz as az

        if draws.shape[1] < 4:
            return float(draws.size)
        val = float(az.ess(az.convert_to_dataset({"x": draws}), method="mean")["x"].values)
    return val if math.isfinite(val) else 1.0
