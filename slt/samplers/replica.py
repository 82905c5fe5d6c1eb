"""Replica exchange (parallel tempering) with the non-reversible even/odd swap scheme.

Target at every level ``k`` of a ladder ``beta_0 > beta_1 > ... > beta_{K-1} >= 0``::

    log pi_k(w) = log phi(w) - n beta_k L_n(w)          (+ const)

``beta_0`` (default 1) is the distribution sampled; ``beta_{K-1}`` near or at 0 is (close to)
the prior, where modes are easy to cross. Every chain is a whole ladder: each transition moves
every level with fixed-length HMC (:func:`slt.kernels.hmc.step`: jittered step, per-level
dual-averaged step size, diagonal mass), and every ``swap_interval`` transitions neighbouring
levels propose to exchange their states. Exchanging ``w_i`` (at ``beta_i``) and ``w_j`` is
accepted with probability (the prior cancels)::

    alpha_ij = min(1, exp(n (beta_i - beta_j) (L_n(w_i) - L_n(w_j))))

Swaps are deterministic even/odd (DEO): swap event ``t`` proposes the pairs ``(k, k+1)`` with
``k = t mod 2, t mod 2 + 2, ...`` (Syed, Bouchard-Cote, Deligiannidis & Doucet, "Non-reversible
parallel tempering: a scalable highly parallel MCMC scheme", JRSS B 84 (2022), arXiv:1905.02939).
Unlike random pair choice this makes the replicas' index process travel ballistically, so a
round trip (a replica going from ``beta_0`` to ``beta_{K-1}`` and back) costs O(K) swaps, not
O(K^2).

Ladder adaptation (Syed et al., Algorithm 4): warmup runs rounds of doubling length; each
round estimates every neighbouring pair's rejection rate ``r_k = 1 - E[alpha_{k,k+1}]``
(Rao-Blackwellised: ``alpha`` of every pair at every swap event, proposed or not), builds the
cumulative communication barrier ``Lambda(beta_k) = sum_{j<k} r_j`` (piecewise linear in log beta)
and re-places the betas at equal ``Lambda`` spacing, so every pair ends with about the same
rejection rate ``Lambda / (K - 1)``. Each round end also sets each level's diagonal mass from
its round's positions (Stan's regularised variance) and restarts its dual averaging; a final
phase of a quarter of the warmup tunes the step sizes on the final ladder.

The density is generic: ``log_prior_fn(w, data)`` and ``loss_fn(w, data)`` (``L_n``, per
sample) of a flat parameter vector and any data pytree; ``data``, ``n``, the ladder and the
seeds are arguments of one compiled program (vmapped over chains, sharded over the local
devices), so new data, n or betas of the same shapes never recompile. :func:`sample_problem`
is the adaptor for :class:`slt.posterior.Problem`.
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from slt.samplers import tempered
from slt.samplers.diagnostics import AUTO_FIRST
from slt.kernels import adaptation, devices, hmc as kernel
from slt.kernels.integrators import State as HMCState
from slt.posterior import problem_log_prior as _problem_log_prior, problem_loss as _problem_loss, tempered_target
from slt.samplers.ladder import (ESS_MIN, MAX_TEMPERATURES, MIN_TEMPERATURES, RHAT_MAX,  # noqa: F401 (re-exported)
                                 ReplicaResult, _check_ladder, barriers, equal_barrier_ladder, initial_ladder,
                                 mixing_check, resize_ladder, summary, swap_log_ratio, temperatures_for_barrier,
                                 to_sample_result, valid_chains, warmup_rounds)


class _Ladder(NamedTuple):
    """One chain's whole ladder between transitions."""

    hmc: HMCState              # leaves (K, ...)
    betas: jax.Array           # (K,)
    adapt: adaptation.WindowAdaptState  # leaves (K, ...)
    alpha_sum: jax.Array       # (K-1,) sum of swap acceptance probabilities this round
    swaps: jax.Array           # swap events so far (its parity picks even/odd pairs)
    swaps_round: jax.Array     # swap events this round
    replica: jax.Array         # (K,) replica id at each level
    phase: jax.Array           # (K,) per replica: 0 none, 1 last end was top, 2 then reached bottom
    round_trips: jax.Array
    hot: jax.Array             # (K,) per replica: its last end was the bottom (beta_{K-1})
    restarts: jax.Array        # tempered restarts (replicas arriving at beta_0 from beta_{K-1})




# ----------------------------------------------------------------------------- one chain
def _kernel(log_prior_fn, loss_fn, num_steps, swap_interval, adapt_ladder, n, data, k, d, dtype):
    """The pieces of one ladder's transition at ``n``, ``data``: ``temper``, ``transition``,
    ``maybe_swap`` and ``end_round`` (shared by the warmup and the draw programs)."""

    def density(beta):
        return tempered_target(log_prior_fn, loss_fn, data, n, beta)

    def temper(pos, betas):     # states at these positions for these betas
        return jax.vmap(lambda w, b: density(b)(w))(pos, betas)

    def transition(key, s: _Ladder, adapting):
        keys = jax.random.split(key, k + 1)
        eps = jnp.exp(jnp.where(adapting, s.adapt.log_step, s.adapt.log_step_avg))
        hmc, info = jax.vmap(lambda kk, st, b, e, im: kernel.step(kk, st, density(b), e, num_steps, im))(
            keys[:k], s.hmc, s.betas, eps, s.adapt.inv_mass)
        return s._replace(hmc=hmc), info, keys[k]

    def swap(key, s: _Ladder, count_trips):
        log_ratio = swap_log_ratio(s.betas, s.hmc.loss, n)
        alpha = jnp.exp(jnp.minimum(log_ratio, 0.0))
        parity = s.swaps % 2
        accept = ((jnp.arange(k - 1) % 2) == parity) & (jax.random.uniform(key, (k - 1,), dtype) < alpha)
        no = jnp.zeros((1,), bool)
        perm = (jnp.arange(k) + jnp.concatenate([accept, no]).astype(jnp.int32)
                - jnp.concatenate([no, accept]).astype(jnp.int32))
        hmc = temper(s.hmc.position[perm], s.betas)
        replica = s.replica[perm]
        top, bottom = replica[0], replica[-1]
        phase = s.phase.at[bottom].set(jnp.where(s.phase[bottom] >= 1, 2, s.phase[bottom]))
        trip = (phase[top] == 2) & count_trips
        phase = phase.at[top].set(1)
        # tempered restart: a replica whose last end was beta_{K-1} arrives at beta_0 (Pigeons)
        hot = s.hot.at[bottom].set(True)
        restart = hot[top] & count_trips
        hot = hot.at[top].set(False)
        return s._replace(hmc=hmc, alpha_sum=s.alpha_sum + alpha, swaps=s.swaps + 1,
                          swaps_round=s.swaps_round + 1, replica=replica, phase=phase, hot=hot,
                          round_trips=s.round_trips + trip.astype(jnp.int32),
                          restarts=s.restarts + restart.astype(jnp.int32))

    def maybe_swap(key, s, i, count_trips):
        due = (i + 1) % swap_interval == 0
        swapped = swap(key, s, count_trips)
        return jax.tree.map(lambda a, b: jnp.where(due, a, b), swapped, s)

    def end_round(s: _Ladder):
        rejection = 1.0 - s.alpha_sum / jnp.maximum(s.swaps_round, 1)
        betas = equal_barrier_ladder(s.betas, rejection) if adapt_ladder else s.betas
        adapt = jax.vmap(adaptation.mass_switch)(s.adapt)
        return s._replace(hmc=temper(s.hmc.position, betas), betas=betas, adapt=adapt,
                          alpha_sum=jnp.zeros_like(s.alpha_sum), swaps_round=jnp.zeros_like(s.swaps_round))

    return temper, transition, maybe_swap, end_round


def _make_warmup(log_prior_fn, loss_fn, num_warmup, num_steps, swap_interval, rounds, target, adapt_ladder):
    """``warm(key, positions (K, d), betas (K,), step_size (K,), n, data) -> (state, warmup L_n at
    beta_0 (num_warmup,), rejection (num_warmup, K-1): each round's rejection rates at its last
    transition, NaN elsewhere)`` for one ladder."""

    def warm(key, positions, betas, eps0, n, data):
        k, d = positions.shape
        dtype = positions.dtype
        temper, transition, maybe_swap, end_round = _kernel(log_prior_fn, loss_fn, num_steps, swap_interval,
                                                            adapt_ladder, n, data, k, d, dtype)
        key_w, _ = jax.random.split(key)
        adapt0 = jax.vmap(lambda e: adaptation.window_init(e, d, dtype))(eps0)
        zero = jnp.zeros((), jnp.int32)
        s = _Ladder(temper(positions, betas), betas, adapt0, jnp.zeros((k - 1,), dtype), zero, zero,
                    jnp.arange(k), jnp.zeros((k,), jnp.int32), zero, jnp.zeros((k,), bool), zero)
        ends = np.zeros(max(num_warmup, 1), bool)
        for e in rounds:
            ends[e - 1] = True
        in_round = np.arange(max(num_warmup, 1)) < (rounds[-1] if rounds else 0)

        def warm_body(s, xs):
            i, is_end, welford = xs
            s, info, kswap = transition(jax.random.fold_in(key_w, i), s, True)
            adapt = jax.vmap(lambda a, p: adaptation.dual_averaging_update(a, p, target))(s.adapt, info.accept_prob)
            adapt = jax.tree.map(lambda a, b: jnp.where(welford, a, b),
                                 jax.vmap(adaptation.welford_update)(adapt, s.hmc.position), adapt)
            s = maybe_swap(kswap, s._replace(adapt=adapt), i, False)
            rejection = jnp.where(is_end, 1.0 - s.alpha_sum / jnp.maximum(s.swaps_round, 1), jnp.nan)
            s = jax.tree.map(lambda a, b: jnp.where(is_end, a, b), end_round(s), s)
            return s, (s.hmc.loss[0], rejection)

        if num_warmup:
            s, (warm_loss, rejection) = jax.lax.scan(
                warm_body, s, (jnp.arange(num_warmup), jnp.asarray(ends[:num_warmup]),
                               jnp.asarray(in_round[:num_warmup])))
        else:
            warm_loss, rejection = jnp.zeros((0,), dtype), jnp.zeros((0, k - 1), dtype)
        s = s._replace(alpha_sum=jnp.zeros_like(s.alpha_sum), swaps_round=zero,
                       phase=jnp.zeros((k,), jnp.int32), round_trips=zero,
                       hot=jnp.zeros((k,), bool), restarts=zero)
        if not num_warmup:   # no adaptation: the average equals the initial step
            s = s._replace(adapt=s.adapt._replace(log_step_avg=s.adapt.log_step))
        return s, warm_loss, rejection

    return warm


def _make_draws(log_prior_fn, loss_fn, num_samples, num_steps, swap_interval, keep_ladder=False):
    """``draw(key, state, offset, n, data) -> (state, draws)``: ``num_samples`` transitions after
    transition ``offset`` (an argument: the same program extends a run chunk after chunk, with
    draw ``i`` keyed by ``fold_in(key, offset + i)``, so chunking never changes the numbers)."""

    def draw(key, s: _Ladder, offset, n, data):
        k, d = s.hmc.position.shape
        _, transition, maybe_swap, _ = _kernel(log_prior_fn, loss_fn, num_steps, swap_interval, False,
                                               n, data, k, d, s.hmc.position.dtype)
        _, key_s = jax.random.split(key)

        def sample_body(s, i):
            s, info, kswap = transition(jax.random.fold_in(key_s, i), s, False)
            s = maybe_swap(kswap, s, i, True)
            out = (s.hmc.position if keep_ladder else s.hmc.position[0], s.hmc.loss,
                   info.accept_prob[0], info.diverging[0], s.replica.astype(jnp.int16))
            return s, out

        return jax.lax.scan(sample_body, s, offset + jnp.arange(num_samples))

    return draw


def _shard(fn, num_devices, num_args):
    return jax.jit(devices.shard_chains(fn, num_devices, (0,) * (num_args - 2) + (None, None)))


@functools.lru_cache(maxsize=None)
def _compiled_warmup(log_prior_fn, loss_fn, num_warmup, num_steps, swap_interval, rounds, target,
                     adapt_ladder, num_devices):
    return _shard(_make_warmup(log_prior_fn, loss_fn, num_warmup, num_steps, swap_interval, rounds, target,
                               adapt_ladder), num_devices, 6)


@functools.lru_cache(maxsize=None)
def _compiled_draws(log_prior_fn, loss_fn, num_samples, num_steps, swap_interval, num_devices,
                    keep_ladder=False):
    draw = _make_draws(log_prior_fn, loss_fn, num_samples, num_steps, swap_interval, keep_ladder)
    # the offset is the same for every chain: broadcast it to the chain axis outside
    return _shard(draw, num_devices, 5)


# ----------------------------------------------------------------------------- drivers
PILOT_TEMPERATURES = 8                        # the pilot ladder of num_temperatures: auto


def sample(key: jax.Array, log_prior_fn: Callable, loss_fn: Callable, init_positions, n, data=None, *,
           num_temperatures: int | str = 8, beta_min: float = 1e-3, beta_max: float = 1.0, betas=None,
           num_warmup: int = 1000, num_samples: int | str = 1000, num_steps: int = 16,
           swap_interval: int = 1, num_rounds: int = 5, adapt_ladder: bool = True,
           target_accept: float = 0.8, step_size=None, keep_ladder: bool = False,
           max_samples: int = 16000, min_round_trips: int = 20, converged_fn: Callable | None = None,
           step_size_fn: Callable | None = None) -> ReplicaResult:
    """Non-reversible parallel tempering on ``log phi(w) - n beta L_n(w)``, one ladder per chain.

    Args:
      key: PRNG key; chain ``c`` uses ``fold_in(key, c)``.
      log_prior_fn, loss_fn: ``f(w, data) -> scalar`` for a flat ``w`` (d,): ``log phi`` and
        ``L_n`` (per sample). Module-level functions: they key the compilation cache.
      init_positions: (num_chains, d) starts, copied to every level, or (num_chains, K, d).
      n: the sample size multiplying ``beta L_n`` (an argument: no recompilation).
      data: pytree passed to both functions (an argument: same shapes never recompile).
      num_temperatures, beta_min, beta_max: the initial ladder (:func:`initial_ladder`), unless
        ``betas`` (K,) descending gives it; ``betas[0]`` is the sampled target.
        ``num_temperatures="auto"``: the first half of the warmup runs a pilot ladder of
        ``PILOT_TEMPERATURES`` levels (adapted to equal swap rates), measures the global barrier
        ``Lambda`` (mean over chains of its last round) and the second half runs
        :func:`temperatures_for_barrier` levels (``~ 2 Lambda + 1``), re-placed at equal barrier
        spacing, started from the pilot's nearest levels and adapted again. A warmup shorter than
        ``MIN_AUTO_WARMUP`` (no adaptation round in its first half) keeps the pilot ladder.
      num_samples: draws per chain, or ``"auto"``: draw in chunks of ``AUTO_FIRST`` (one
        compiled program, the chains' state carried), doubling the total (500, 1000, 2000, ...)
        until R-hat(L_n) <= 1.01, bulk ESS(L_n) >= 400, every valid chain has made
        ``min_round_trips`` round trips and ``converged_fn(result)`` (if given; e.g. the same
        checks on other invariants) holds, or ``max_samples`` is reached (``converged`` False).
      swap_interval: HMC transitions between swap events.
      num_rounds: ladder-adaptation rounds of doubling length (fewer if the warmup is short).
      step_size: initial step size per level (K,) or scalar; default ``0.5 / sqrt(1 + n beta)``,
        or ``step_size_fn(betas)`` when given (e.g. the problem's scale-aware default).
      keep_ladder: also return every level's draws (``positions_ladder``), e.g. to label them by
        phase for per-phase thermodynamic integration (:mod:`slt.estimators.phases`).

    Returns: :class:`ReplicaResult`.
    """
    auto_k = num_temperatures == "auto"
    if auto_k and num_warmup < MIN_AUTO_WARMUP:   # too short to measure a barrier: the pilot ladder as it is
        auto_k, num_temperatures = False, PILOT_TEMPERATURES
    auto_n = num_samples == "auto"
    if betas is None:
        betas = initial_ladder(PILOT_TEMPERATURES if auto_k else num_temperatures, beta_min, beta_max)
    elif auto_k:
        raise ValueError("num_temperatures='auto' sizes the ladder itself: give beta_min/beta_max, not betas")
    betas = np.asarray(betas, float)
    if betas.ndim != 1 or betas.size < 2:
        raise ValueError(f"betas must be a 1-D ladder of >= 2 temperatures, got shape {betas.shape}")
    if not (np.all(np.diff(betas) < 0) and betas[-1] >= 0 and np.all(np.isfinite(betas))):
        raise ValueError(f"betas must be finite, >= 0 and strictly decreasing, got {betas}")
    if int(swap_interval) != swap_interval or swap_interval < 1:
        raise ValueError(f"swap_interval must be an integer >= 1, got {swap_interval}")
    if (not auto_n and num_samples < 1) or num_warmup < 0 or num_steps < 1:
        raise ValueError("num_samples and num_steps must be >= 1 and num_warmup >= 0")
    if auto_n and (max_samples < AUTO_FIRST or min_round_trips < 1):
        raise ValueError(f"num_samples='auto' needs max_samples >= {AUTO_FIRST} and min_round_trips >= 1, "
                         f"got {max_samples} and {min_round_trips}")
    init_positions = jnp.asarray(init_positions)
    dtype = init_positions.dtype if jnp.issubdtype(init_positions.dtype, jnp.floating) else jnp.result_type(float)
    k = betas.size
    if init_positions.ndim == 2:
        init_positions = jnp.broadcast_to(init_positions[:, None, :], (init_positions.shape[0], k,
                                                                        init_positions.shape[1]))
    if init_positions.ndim != 3 or init_positions.shape[1] != k:
        raise ValueError(f"init_positions must be (num_chains, d) or (num_chains, {k}, d), "
                         f"got {init_positions.shape}")
    nc, _, d = init_positions.shape

    def first_step(b):
        if step_size is not None:
            return np.broadcast_to(step_size, b.shape[-1:])
        if step_size_fn is not None:
            return np.asarray(step_size_fn(b))
        return 0.5 / np.sqrt(1.0 + float(n) * b)

    keys = jax.vmap(lambda c: jax.random.fold_in(key, c))(jnp.arange(nc))
    ndev = devices.num_devices_for(nc)
    n_arr = jnp.asarray(n, dtype)

    def warm(keys, pos, b, eps, length):
        rounds = warmup_rounds(int(length), int(num_rounds))
        fn = _compiled_warmup(log_prior_fn, loss_fn, int(length), int(num_steps), int(swap_interval), rounds,
                              float(target_accept), bool(adapt_ladder), ndev)
        s, wl, rej = fn(keys, pos.astype(dtype), jnp.asarray(b, dtype), jnp.asarray(eps, dtype), n_arr, data)
        rej = np.asarray(rej, np.float64)                         # (C, W, K-1), NaN off round ends
        ends = np.flatnonzero(np.isfinite(rej[0, :, 0])) if rej.shape[1] else np.zeros(0, int)
        return s, np.asarray(wl), rej[:, ends]                    # (C, rounds, K-1)

    b0 = np.broadcast_to(betas, (nc, k))
    barrier_rounds = []
    if auto_k:
        pilot = num_warmup // 2
        s, warm_a, rej = warm(keys, init_positions, b0, np.broadcast_to(first_step(betas), (nc, k)), pilot)
        barrier_rounds += [(k, r.sum(-1)) for r in rej.transpose(1, 0, 2)]
        pilot_lambda = float(np.mean(rej[:, -1].sum(-1)))
        k_new = temperatures_for_barrier(pilot_lambda)
        pilot_betas = np.asarray(s.betas, np.float64)
        pilot_pos = np.asarray(s.hmc.position)
        new_b, new_pos = np.zeros((nc, k_new)), np.zeros((nc, k_new, d), pilot_pos.dtype)
        eps = np.zeros((nc, k_new))
        pilot_eps = np.exp(np.asarray(s.adapt.log_step_avg, np.float64))
        for c in range(nc):
            new_b[c], near = resize_ladder(pilot_betas[c], rej[c, -1], k_new)
            new_pos[c] = pilot_pos[c, near]
            eps[c] = pilot_eps[c, near]
        keys_b = jax.vmap(lambda kk: jax.random.fold_in(kk, 1))(keys)
        s, warm_b, rej = warm(keys_b, jnp.asarray(new_pos), new_b, eps, num_warmup - pilot)
        barrier_rounds += [(k_new, r.sum(-1)) for r in rej.transpose(1, 0, 2)]
        warm_loss = np.concatenate([warm_a, warm_b], axis=1)
        k = k_new
    else:
        pilot_lambda = None
        s, warm_loss, rej = warm(keys, init_positions, b0, np.broadcast_to(first_step(betas), (nc, k)), num_warmup)
        barrier_rounds += [(k, r.sum(-1)) for r in rej.transpose(1, 0, 2)]

    chunk = min(AUTO_FIRST, int(max_samples)) if auto_n else int(num_samples)
    cap = max(int(max_samples) // chunk, 1) if auto_n else 1
    draw = _compiled_draws(log_prior_fn, loss_fn, chunk, int(num_steps), int(swap_interval), ndev,
                           bool(keep_ladder))
    parts, checks, want, converged = [], [], 1, None
    while True:
        while len(parts) < want:
            offset = jnp.full((nc,), len(parts) * chunk, jnp.int32)
            s, out = draw(keys, s, offset, n_arr, data)
            parts.append(tuple(np.asarray(o) for o in out))
        res = _assemble(parts, s, warm_loss, keep_ladder, num_steps, barrier_rounds, pilot_lambda)
        if not auto_n:
            break
        ok, info = mixing_check(res, min_round_trips)
        if ok and converged_fn is not None:
            more_ok, more = converged_fn(res)
            ok, info = ok and more_ok, {**info, **more}
        checks.append({"num_samples": len(parts) * chunk, **info, "converged": bool(ok)})
        if ok or len(parts) >= cap:
            converged = bool(ok)
            break
        want = min(2 * want, cap)
    return res._replace(sampling_rounds=checks or None, converged=converged)


MIN_AUTO_WARMUP = 28   # num_temperatures: auto: the pilot (half the warmup) needs one adaptation round


def _assemble(parts, s, warm_loss, keep_ladder, num_steps, barrier_rounds, pilot_lambda) -> "ReplicaResult":
    pos, loss_ladder, acc, div, index = (np.concatenate(p, axis=1) for p in zip(*parts))
    loss_ladder = loss_ladder.transpose(0, 2, 1)                 # (C, K, draws)
    ladder = None
    if keep_ladder:   # (chains, draws, K, d) -> the target level and (chains, K, draws, d)
        ladder, pos = pos.transpose(0, 2, 1, 3), pos[:, :, 0]
    nans = (~np.isfinite(loss_ladder)).sum(axis=(1, 2)).astype(int)
    swaps = np.maximum(np.asarray(s.swaps_round), 1)
    return ReplicaResult(
        positions=pos, loss=loss_ladder[:, 0], loss_ladder=loss_ladder, betas=np.asarray(s.betas),
        swap_accept=np.asarray(s.alpha_sum) / swaps[:, None], round_trips=np.asarray(s.round_trips).astype(int),
        accept_prob=acc, diverging=div.astype(bool), step_size=np.exp(np.asarray(s.adapt.log_step_avg)),
        warmup_loss=warm_loss, nan_count=nans, valid=nans == 0, num_steps=int(num_steps),
        positions_ladder=ladder, restarts=np.asarray(s.restarts).astype(int), index_process=index,
        barrier_rounds=[{"num_temperatures": int(kk), "global_barrier": float(np.mean(lam)),
                         "global_barrier_per_chain": [float(v) for v in lam]} for kk, lam in barrier_rounds],
        pilot_barrier=pilot_lambda)


def _problem_step_size(problem, betas):
    return np.asarray(tempered.initial_step_size(problem, np.asarray(betas, float)))


def sample_problem(key: jax.Array, problem, init_positions, **kwargs) -> ReplicaResult:
    """:func:`sample` on a :class:`slt.posterior.Problem` (its ``log_prior``, ``loss`` and ``n``);
    ``beta_max`` is the target beta (default 1); the default initial step per level is
    ``0.5 s / sqrt(1 + n beta s^2)`` (:func:`slt.samplers.tempered.initial_step_size`)."""
    if kwargs.get("step_size") is None and kwargs.get("step_size_fn") is None:
        kwargs["step_size_fn"] = functools.partial(_problem_step_size, problem)
    return sample(key, _problem_log_prior, _problem_loss, jnp.asarray(init_positions, problem.x.dtype),
                  problem.n, problem, **kwargs)

