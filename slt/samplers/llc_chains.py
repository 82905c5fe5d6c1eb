"""Compiled many-chain programs for the localised posterior (used by
:mod:`slt.estimators.learning_coefficient`), one family for every sampler (HMC,
:mod:`slt.kernels.localized_hmc`; MALA and SGLD, :mod:`slt.kernels.langevin`; NUTS, numpyro's
functional ``hmc``): a warmup program (adaptation + burn-in, one ``lax.scan``) returns each chain's
state and tuned parameters, and a draw program of a fixed chunk length continues from them
(``num_draws: auto`` calls it again until the trend test passes: longer runs never recompile).
All chains ``vmap``-ed, the chain axis ``shard_map``-ed over local devices. Also the
curvature-based initial step size ``0.5 / (nbeta lambda_max(Hess L(w*)) + gamma)``.

Static (compile-time): sampler, loss functions, step counts, batch size, device count.
Arguments (never recompile): keys, step sizes, w*, data, nbeta, gamma, n.
"""
from __future__ import annotations

import functools
import math
import os
from typing import Callable

import jax
import jax.numpy as jnp

from slt.kernels import adaptation, devices, langevin
from slt.posterior import localized_target


# ----------------------------------------------------------------------------- curvature
def _top_hessian_eigenvalue(loss_fn: Callable, w, data, key, iters: int = 30):
    """Largest |eigenvalue| of the Hessian of ``loss_fn(., data)`` at ``w`` (power iteration on
    Hessian-vector products)."""
    grad = jax.grad(loss_fn)

    def hvp(v):
        return jax.jvp(lambda u: grad(u, data), (w,), (v,))[1]

    def body(v, _):
        hv = hvp(v)
        return hv / (jnp.linalg.norm(hv) + 1e-30), None

    v0 = jax.random.normal(key, w.shape, w.dtype)
    v, _ = jax.lax.scan(body, v0 / jnp.linalg.norm(v0), None, length=iters)
    return jnp.abs(jnp.vdot(v, hvp(v)))


top_hessian_eigenvalue = jax.jit(_top_hessian_eigenvalue, static_argnames=("loss_fn", "iters"))


def initial_step_size(loss_fn, w_star, data, nbeta, gamma, key) -> float:
    """``0.5 / (nbeta lambda_max(Hess L(w*)) + gamma)``: a stable Langevin step on the stiffest
    direction of the localised posterior at w* (the adaptation then scales it)."""
    lam = float(top_hessian_eigenvalue(loss_fn, w_star, data, key))
    curv = nbeta * lam + gamma
    return 0.5 / curv if curv > 0 and math.isfinite(curv) else 1e-4


# ----------------------------------------------------------------------------- keys
# one compiled program each (eager key ops cost a compilation or a cache look-up per op and run)
@functools.partial(jax.jit, static_argnums=1)
def run_keys(key, num_chains: int):
    """``(curvature key, run key, chain keys (C,))`` from an LLC run's key."""
    k_curv, k_run = jax.random.split(key)
    return k_curv, k_run, jax.random.split(k_run, num_chains)


@functools.partial(jax.jit, static_argnums=2)
def chunk_keys(k_run, i, num_chains: int):
    """The chain keys (C,) of draw chunk ``i``: ``split(fold_in(k_run, 1000 + i), C)``."""
    return jax.random.split(jax.random.fold_in(k_run, 1000 + i), num_chains)


@functools.lru_cache(maxsize=None)
def member_keys(num_members: int, num_chains: int):
    """Jitted ``keys(key) -> (curvature keys (K,), run keys (K,), chain keys (K, C))``: member
    ``j`` of a batch splits ``fold_in(key, j)`` as a single run splits its key."""
    return jax.jit(lambda key: jax.vmap(lambda j: run_keys(jax.random.fold_in(key, j), num_chains))(
        jnp.arange(num_members)))


@functools.lru_cache(maxsize=None)
def member_chunk_keys(num_chains: int):
    """Jitted ``keys(k_run (K,), i) -> (K, C)``: :func:`chunk_keys` of every member."""
    return jax.jit(jax.vmap(lambda k, i: chunk_keys(k, i, num_chains), in_axes=(0, None)))


IN_WARMUP = ("sgld", "nuts")   # samplers whose first chunk of draws the warmup's own loop draws
# (one chunk is their default run: one program to compile; see warmup_program's ``draws``)


# ----------------------------------------------------------------------------- warmup kernels
def _langevin_warmup(sampler, loss_fn, batch_loss_fn, num_adapt, num_burnin, batch_size, target_accept, draws=0):
    """One Langevin chain's warmup as ONE scan over adaptation + burn-in (+ ``draws`` first draws,
    recorded as the draw program records them) -> ``(state, eps, inv_mass[, draw outputs])``.

    Adaptation (``t < num_adapt``): dual averaging of the step size towards ``target_accept``.
    MALA also learns a diagonal preconditioner, Stan-style: the variance of w over the second
    quarter of the adaptation (regularised towards 1e-3) becomes M^-1 at its half-way point,
    where the step size restarts from ``eps / min(M^-1)`` and adapts again. SGLD keeps the
    identity metric (devinterp's update). After adaptation everything is fixed."""
    total = num_adapt + num_burnin + draws
    precondition = sampler == "mala" and num_adapt >= 40
    half, quarter = num_adapt // 2, num_adapt // 4

    def one_chain(key, eps0, w_star, data, nbeta, gamma, n):
        state = (langevin.mala_init(w_star, localized_target(loss_fn, data, w_star, nbeta, gamma))
                 if sampler == "mala" else langevin.sgld_init(w_star))
        d = w_star.shape[0]
        ones = jnp.ones((d,), w_star.dtype)

        def body(carry, xs):
            state, da, inv_mass, welford = carry
            k, t = xs
            adapting = t < num_adapt
            eps = jnp.where(adapting, jnp.exp(da.log_step),
                            jnp.exp(da.log_step_avg) if num_adapt else eps0)
            state, info = _langevin_step(sampler, k, state, eps, inv_mass, loss_fn, batch_loss_fn,
                                         batch_size, w_star, data, nbeta, gamma, n)
            if num_adapt:
                new_da = adaptation.dual_averaging_update(da, info.accept_prob, target_accept)
                da = jax.tree.map(lambda a, b: jnp.where(adapting, a, b), new_da, da)
            if precondition:
                collect = (t >= quarter) & (t < half)
                welford = jax.tree.map(lambda a, b: jnp.where(collect, a, b),
                                       adaptation.welford_update(welford, state.position), welford)
                switch = t == half - 1
                reg = adaptation.regularized_inv_mass(welford)
                reg = jnp.where(jnp.isfinite(reg) & (reg > 0), reg, 1.0)
                # Langevin's eps is a variance: it rescales by the metric's smallest entry
                restart = adaptation.dual_averaging_init(jnp.exp(da.log_step) / jnp.min(reg))
                da = jax.tree.map(lambda a, b: jnp.where(switch, a, b), restart, da)
                inv_mass = jnp.where(switch, reg, inv_mass)
            mala_draws = (info.nonfinite,) if draws and sampler == "mala" else ()
            return (state, da, inv_mass, welford), (info.loss, info.accept_prob, eps) + mala_draws

        xs = (jax.random.split(key, total), jnp.arange(total))
        carry = (state, adaptation.dual_averaging_init(eps0), ones, adaptation.welford_init(w_star))
        (state, da, inv_mass, _), ys = jax.lax.scan(body, carry, xs)
        out = (state, jnp.exp(da.log_step_avg) if num_adapt else eps0, inv_mass)
        return out + (_draw_outputs(*ys[:2], None, ys[3] if len(ys) > 3 else None, draws),) if draws else out

    return one_chain


def _langevin_step(sampler, key, state, eps, inv_mass, loss_fn, batch_loss_fn, batch_size, w_star, data,
                   nbeta, gamma, n):
    """One MALA or SGLD transition on the localised target (SGLD: on a minibatch of ``batch_size``
    rows of ``n`` when ``batch_size`` is given, :func:`slt.kernels.langevin.sgld_step`)."""
    target = localized_target(loss_fn, data, w_star, nbeta, gamma)
    if sampler == "mala":
        return langevin.mala_step(key, state, target, eps, inv_mass)
    return langevin.sgld_step(
        key, state, target, eps, lambda idx: localized_target(lambda w, d: batch_loss_fn(w, d, idx), data,
                                                              w_star, nbeta, gamma), n, batch_size)


def _draw_outputs(loss, accept, steps, nonfinite, draws):
    """The last ``draws`` entries of a warmup scan's records as the draw program returns them,
    ``(loss, accept, steps, nonfinite)``; steps None: 1 each, nonfinite None: False."""
    loss, accept = loss[-draws:], accept[-draws:]
    return (loss, accept, jnp.ones(loss.shape, jnp.int32) if steps is None else steps[-draws:],
            jnp.zeros(loss.shape, bool) if nonfinite is None else nonfinite[-draws:])


@functools.lru_cache(maxsize=None)
def _nuts_kernel(loss_fn, num_warmup, target_accept, max_tree_depth, adapt):
    """numpyro's functional NUTS ``(init_kernel, sample_kernel)`` on the localised potential, one
    pair per configuration: ``sample_kernel`` reads the settings (warmup length, tree depth,
    adaptation) that ``init_kernel`` stores in their shared closure, so the draw program must use
    the pair whose ``init_kernel`` the warmup program ran (:mod:`slt.samplers.nuts` likewise)."""
    from numpyro.infer.hmc import hmc

    def potential_fn_gen(data, w_star, nbeta, gamma):
        target = localized_target(loss_fn, data, w_star, nbeta, gamma)
        return lambda w: -target(w).logdensity

    return hmc(potential_fn_gen=potential_fn_gen, algo="NUTS")


# ----------------------------------------------------------------------------- programs
def _bottom_hessian_eigenvalue(loss_fn: Callable, w, data, key, lam_max, iters: int = 60):
    """Smallest eigenvalue of the Hessian at ``w`` (power iteration on ``lam_max I - H``); a
    scale for the softest direction, not a precise value."""
    grad = jax.grad(loss_fn)

    def shifted(v):
        return lam_max * v - jax.jvp(lambda u: grad(u, data), (w,), (v,))[1]

    def body(v, _):
        hv = shifted(v)
        return hv / (jnp.linalg.norm(hv) + 1e-30), None

    v0 = jax.random.normal(key, w.shape, w.dtype)
    v, _ = jax.lax.scan(body, v0 / jnp.linalg.norm(v0), None, length=iters)
    return lam_max - jnp.vdot(v, shifted(v))


def _curvatures(loss_fn, w_star, data, nbeta, gamma, key):
    """(stiffest, softest) curvature of the localised potential's quadratic part at w*."""
    k1, k2 = jax.random.split(key)
    lam_max = _top_hessian_eigenvalue(loss_fn, w_star, data, k1)
    # softest curvature: exactly gamma along any flat direction of L (a minimum's Hessian is
    # PSD); only gamma = 0 (the regular check) needs the Hessian's smallest eigenvalue
    lam_min = jax.lax.cond(gamma > 0, lambda: jnp.zeros((), w_star.dtype),
                           lambda: _bottom_hessian_eigenvalue(loss_fn, w_star, data, k2, lam_max))
    return nbeta * lam_max + gamma, gamma + nbeta * jnp.maximum(lam_min, 0.0)


def sequential_batches() -> bool:
    """Whether an outer batch axis (LLC checkpoints, lambda_hat's data subsets) runs as a
    sequential ``lax.map`` instead of ``vmap``: on CPU by default (``SLT_BATCHING=vmap|map``
    overrides). On a CPU a vmapped batch of chain programs gains no parallelism (the chain
    mesh's devices already use the cores) but pays for batching: every HMC chain of the batch
    waits for the longest trajectory of the batch (its leapfrog loop becomes a masked while
    loop), measured 0.5-1.7x the speed of a loop (benchmarks/llc_trajectory.md). On
    accelerators vmap is the point."""
    mode = os.environ.get("SLT_BATCHING")
    if mode in ("vmap", "map"):
        return mode == "map"
    return jax.default_backend() == "cpu"


def _rebuild(like, parts):
    return type(like)(*parts) if hasattr(like, "_fields") else type(like)(parts)


def _take(arg, ax):
    """The batched part of ``arg`` under the axis spec ``ax`` (0, None, or a tuple prefix)."""
    if ax is None or ax == 0:
        return arg if ax == 0 else None
    return _rebuild(arg, [_take(a, x) for a, x in zip(arg, ax)])


def _put(arg, ax, member):
    """``arg`` with its batched part replaced by one ``member`` of it."""
    if ax is None or ax == 0:
        return member if ax == 0 else arg
    return _rebuild(arg, [_put(a, x, m) for a, x, m in zip(arg, ax, member)])


def batch_map(fn, in_axes):
    """``jax.vmap(fn, in_axes)`` (axes 0, None, or a tuple prefix of an argument, e.g.
    ``(None, 0, None)``), or on CPU (:func:`sequential_batches`) the same function as a
    ``lax.map`` over the batched parts: the same per-member computation, one member after the
    other inside one compiled program."""
    if not sequential_batches():
        return jax.vmap(fn, in_axes=in_axes)
    in_axes = tuple(in_axes)

    def mapped(*args):
        batched = [_take(a, ax) for a, ax in zip(args, in_axes)]

        def one(members):
            return fn(*[_put(a, ax, m) for a, ax, m in zip(args, in_axes, members)])

        return jax.lax.map(one, batched)

    return mapped


def programs(sampler, loss_fn, num_adapt, num_burnin, target_accept, chunk, max_steps, ndev, *,
             batch_loss_fn=None, batch_size=None, max_tree_depth=8, keep_positions=False, observable_fn=None,
             first_draws=0):
    """The ``(warmup, draw)`` programs of one sampler configuration (:func:`warmup_program`,
    :func:`draw_program`; the minibatch settings are SGLD's, the tree depth NUTS')."""
    batch = dict(batch_loss_fn=batch_loss_fn, batch_size=batch_size) if sampler == "sgld" else {}
    nuts = (num_adapt + num_burnin, target_accept, max_tree_depth, num_adapt > 0) if sampler == "nuts" else None
    return (warmup_program(sampler, loss_fn, num_adapt, num_burnin, target_accept, max_steps, ndev,
                           max_tree_depth=max_tree_depth, draws=first_draws, **batch),
            draw_program(sampler, loss_fn, chunk, max_steps, ndev, keep_positions, observable_fn, nuts=nuts, **batch))


@functools.lru_cache(maxsize=None)
def warmup_program(sampler, loss_fn, num_adapt, num_burnin, target_accept, max_steps, ndev, *,
                   batch_loss_fn=None, batch_size=None, max_tree_depth=8, draws=0):
    """Jitted ``run(keys (C,), eps0 (C,), w_star, data, nbeta, gamma, curv_key, trajectory_length, n)``
    -> ``(states, eps (C,), inv_mass (C, d), trajectory_length, L(w*))``. NaN entries of eps0 take
    the curvature rule ``0.5 / kappa_max`` (Langevin, NUTS) or ``1 / sqrt(kappa_max)`` (HMC).
    NUTS: numpyro's ``init_kernel`` and its warmup (step size and diagonal mass adaptation over
    adaptation + burn-in), the state an ``HMCState``, ``eps`` the adapted step size.
    ``trajectory_length`` is HMC's (also computed for MALA; NaN for SGLD and NUTS).

    ``draws`` (MALA, SGLD, NUTS): the scan goes on for the first ``draws`` draws, appended as
    ``(loss, accept, steps, nonfinite)`` (C, draws) as :func:`draw_program` returns them, the
    states then those after them. A one-chunk run (SGLD's and NUTS' default) is then one program
    with one loop body: XLA compiles each module and loop body anew (~0.5-1 s each on CPU for a
    small model), and a fixed run compiled as fast as one scan did before."""
    from slt.kernels import localized_hmc as hmc

    if sampler in ("mala", "sgld"):
        chain = _langevin_warmup(sampler, loss_fn, batch_loss_fn, num_adapt, num_burnin, batch_size,
                                 target_accept, draws)

        def one_chain(key, eps0, w_star, data, nbeta, gamma, trajectory_length, n):
            return chain(key, eps0, w_star, data, nbeta, gamma, n)
    elif sampler == "nuts":
        num_warmup = num_adapt + num_burnin
        init_kernel, sample_kernel = _nuts_kernel(loss_fn, num_warmup, target_accept, max_tree_depth,
                                                  num_adapt > 0)

        def one_chain(key, eps0, w_star, data, nbeta, gamma, trajectory_length, n):
            args = (data, w_star, nbeta, gamma)
            state = init_kernel(w_star, num_warmup, step_size=eps0, adapt_step_size=num_adapt > 0,
                                target_accept_prob=target_accept, max_tree_depth=max_tree_depth,
                                model_args=args, rng_key=key)

            def step(s, _):
                s = sample_kernel(s, model_args=args)
                return s, (loss_fn(s.z, data), s.accept_prob, s.num_steps) if draws else None

            if num_warmup or draws:
                state, ys = jax.lax.scan(step, state, None, length=num_warmup + draws)
            # the adapted step size: the adaptation state is fixed after the warmup
            out = (state, state.adapt_state.step_size, jnp.ones_like(w_star))
            return out + (_draw_outputs(*ys, None, draws),) if draws else out
    elif sampler == "hmc" and not draws:
        def one_chain(key, eps0, w_star, data, nbeta, gamma, trajectory_length, n):
            state = hmc.init(loss_fn, w_star, data, w_star, nbeta, gamma)

            def body(carry, xs):
                state, da = carry
                k, t = xs
                adapting = t < num_adapt
                eps = jnp.where(adapting, jnp.exp(da.log_step),
                                jnp.exp(da.log_step_avg) if num_adapt else eps0)
                steps = hmc.num_steps_for(eps, trajectory_length, max_steps)
                state, info = hmc.step(k, state, eps, steps, loss_fn, data, w_star, nbeta, gamma, max_steps)
                if num_adapt:   # the adapted step is the large one: small-step transitions do not count
                    new_da = adaptation.dual_averaging_update(da, info.accept_prob, target_accept)
                    use = adapting & ~info.small_step
                    da = jax.tree.map(lambda a, b: jnp.where(use, a, b), new_da, da)
                return (state, da), None

            total = num_adapt + num_burnin
            xs = (jax.random.split(key, total), jnp.arange(total))
            (state, da), _ = jax.lax.scan(body, (state, adaptation.dual_averaging_init(eps0)), xs)
            eps = jnp.exp(da.log_step_avg) if num_adapt else eps0
            return state, eps, jnp.ones_like(w_star)
    else:
        raise ValueError(f"no LLC chain program for sampler {sampler!r}")
    chains = devices.shard_chains(one_chain, ndev, (0, 0) + (None,) * 6)

    def run(keys, eps0, w_star, data, nbeta, gamma, curv_key, trajectory_length_given, n):
        if sampler in ("sgld", "nuts"):   # the stiffest curvature only: no trajectory to size
            kappa_max = nbeta * _top_hessian_eigenvalue(loss_fn, w_star, data, curv_key) + gamma
            trajectory_length = jnp.full((), jnp.nan, eps0.dtype)
        else:
            kappa_max, kappa_min = _curvatures(loss_fn, w_star, data, nbeta, gamma, curv_key)
            trajectory_length = jnp.where(kappa_min > 0, hmc.HALF_PI / jnp.sqrt(kappa_min), jnp.inf)
            trajectory_length = jnp.where(jnp.isnan(trajectory_length_given), trajectory_length,
                                          trajectory_length_given)
        ok = (kappa_max > 0) & jnp.isfinite(kappa_max)
        rule = 1.0 / jnp.sqrt(kappa_max) if sampler == "hmc" else 0.5 / kappa_max
        auto = jnp.where(ok, rule, 1e-4).astype(eps0.dtype)
        eps0 = jnp.where(jnp.isnan(eps0), auto, eps0)
        states, eps, inv_mass, *first = chains(keys, eps0, w_star, data, nbeta, gamma,
                                               trajectory_length.astype(eps0.dtype), n)
        return (states, eps, inv_mass, trajectory_length, loss_fn(w_star, data)) + tuple(first)

    return jax.jit(run)


@functools.lru_cache(maxsize=None)
def draw_program(sampler, loss_fn, chunk, max_steps, ndev, keep_positions=False, observable_fn=None, *,
                 batch_loss_fn=None, batch_size=None, nuts=None):
    """Jitted ``run(keys (C,), states, eps (C,), inv_mass (C, d), w_star, data, nbeta, gamma,
    trajectory_length, n)`` -> ``(states, loss (C, chunk), accept (C, chunk), steps (C, chunk),
    nonfinite (C, chunk))``: ``chunk`` more draws per chain with the tuned parameters, continuing
    from ``states``; ``accept`` is NaN for HMC's multi-scale small-step transitions (the reported
    acceptance is the adapted step's), ``nonfinite`` marks transitions whose trajectory met a NaN
    of the model (:mod:`slt.samplers.health`; HMC and MALA, else False).

    SGLD (minibatches: ``batch_loss_fn``, ``batch_size``, indices in ``[0, n)``) records the loss
    at each position before its move and the MH acceptance estimate of the previous move, as
    devinterp does. NUTS (``nuts = (num_warmup, target_accept, max_tree_depth, adapt)``, the
    warmup program's kernel settings) continues numpyro's ``HMCState`` with its own key (``keys``
    unused: its draws do not depend on the chunking) and records the number of leapfrog steps.

    Optional outputs, in this order, both static (off: the program is the same as without them):
    ``observable_fn(w, data) -> (k,)`` evaluated at every draw inside the same scan, ``(C, chunk,
    k)`` (e.g. the loss on another data set for the data-refined LLC, :mod:`slt.estimators.restricted`), so
    nothing per draw but k numbers leaves the program; ``keep_positions``: the draws themselves,
    ``positions (C, chunk, d)`` (Bayesian influence functions and susceptibilities,
    :mod:`slt.estimators.influence`). Both: HMC and MALA."""
    from slt.kernels import localized_hmc as hmc

    sample_kernel = _nuts_kernel(loss_fn, *nuts)[1] if sampler == "nuts" else None

    def one_chain(key, state, eps, inv_mass, w_star, data, nbeta, gamma, trajectory_length, n):
        def body(state, k):
            if sampler in ("mala", "sgld"):
                state, info = _langevin_step(sampler, k, state, eps, inv_mass, loss_fn, batch_loss_fn,
                                             batch_size, w_star, data, nbeta, gamma, n)
                # MALA: the loss where it now stands; SGLD: before its move (devinterp's record)
                out = ((state.loss, info.accept_prob, jnp.ones((), jnp.int32), info.nonfinite) if sampler == "mala"
                       else (info.loss, info.accept_prob, jnp.ones((), jnp.int32), jnp.zeros((), bool)))
            elif sampler == "nuts":
                state = sample_kernel(state, model_args=(data, w_star, nbeta, gamma))
                out = (loss_fn(state.z, data), state.accept_prob, state.num_steps, jnp.zeros((), bool))
            else:
                steps = hmc.num_steps_for(eps, trajectory_length, max_steps)
                state, info = hmc.step(k, state, eps, steps, loss_fn, data, w_star, nbeta, gamma, max_steps)
                # acceptance of the adapted-step transitions only (NaN for the multi-scale small
                # steps, which accept more by construction; summarize takes the nanmean)
                out = (state.loss, jnp.where(info.small_step, jnp.nan, info.accept_prob), info.num_steps,
                       info.nonfinite)
            if observable_fn is not None:
                out = out + (observable_fn(state.position, data),)
            return state, out + ((state.position,) if keep_positions else ())

        state, outs = jax.lax.scan(body, state, jax.random.split(key, chunk))
        return (state,) + tuple(outs)

    return jax.jit(devices.shard_chains(one_chain, ndev, (0,) * 4 + (None,) * 6))
