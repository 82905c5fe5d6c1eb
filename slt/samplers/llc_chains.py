"""Compiled many-chain programs for the localised posterior (used by
:mod:`slt.estimators.learning_coefficient`): all chains ``vmap``-ed, one ``lax.scan`` over adaptation +
burn-in + draws, the chain axis ``shard_map``-ed over local devices; Langevin (MALA/SGLD,
:mod:`slt.kernels.langevin`) or NUTS (numpyro's functional ``hmc``). Also the curvature-based initial
step size ``0.5 / (nbeta lambda_max(Hess L(w*)) + gamma)``.

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


# ----------------------------------------------------------------------------- programs
@functools.lru_cache(maxsize=None)
def program(sampler, loss_fn, batch_loss_fn, num_adapt, num_burnin, num_draws, batch_size,
             target_accept, max_tree_depth, ndev):
    """A jitted ``run(keys (C,), eps0 (C,), w_star, data, nbeta, gamma, n, curv_key)`` ->
    ``(loss (C, T), accept (C, T), eps (C,), L(w*))`` for one static configuration.

    ``eps0`` entries that are NaN are replaced by :func:`initial_step_size`'s rule, computed
    inside the same program (one compilation per configuration)."""
    if sampler == "nuts":
        one_chain = _nuts_chain(loss_fn, num_adapt, num_burnin, num_draws, target_accept,
                                max_tree_depth)
    else:
        one_chain = _langevin_chain(sampler, loss_fn, batch_loss_fn, num_adapt, num_burnin,
                                    num_draws, batch_size, target_accept)
    chains = devices.shard_chains(one_chain, ndev, (0, 0, None, None, None, None, None))

    def run(keys, eps0, w_star, data, nbeta, gamma, n, curv_key):
        lam = _top_hessian_eigenvalue(loss_fn, w_star, data, curv_key)
        curv = nbeta * lam + gamma
        auto = jnp.where((curv > 0) & jnp.isfinite(curv), 0.5 / curv, 1e-4).astype(eps0.dtype)
        eps0 = jnp.where(jnp.isnan(eps0), auto, eps0)
        loss, accept, eps = chains(keys, eps0, w_star, data, nbeta, gamma, n)
        return loss, accept, eps, loss_fn(w_star, data)

    return jax.jit(run)


def _langevin_chain(sampler, loss_fn, batch_loss_fn, num_adapt, num_burnin, num_draws,
                    batch_size, target_accept, with_state=False):
    """One chain as ONE scan over adaptation + burn-in + draws (a single loop body to compile).

    Adaptation (``t < num_adapt``): dual averaging of the step size towards ``target_accept``.
    MALA also learns a diagonal preconditioner, Stan-style: the variance of w over the second
    quarter of the adaptation (regularised towards 1e-3) becomes M^-1 at its half-way point,
    where the step size restarts from ``eps / min(M^-1)`` and adapts again. SGLD keeps the
    identity metric (devinterp's update). After adaptation everything is fixed."""
    total = num_adapt + num_burnin + num_draws
    precondition = sampler == "mala" and num_adapt >= 40
    half, quarter = num_adapt // 2, num_adapt // 4

    def step(key, state, eps, inv_mass, w_star, data, nbeta, gamma, n):
        target = localized_target(loss_fn, data, w_star, nbeta, gamma)
        if sampler == "mala":
            return langevin.mala_step(key, state, target, eps, inv_mass)
        return langevin.sgld_step(
            key, state, target, eps, lambda idx: localized_target(lambda w, d: batch_loss_fn(w, d, idx), data,
                                                                  w_star, nbeta, gamma), n, batch_size)

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
            state, info = step(k, state, eps, inv_mass, w_star, data, nbeta, gamma, n)
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
            return (state, da, inv_mass, welford), (info.loss, info.accept_prob, eps)

        xs = (jax.random.split(key, total), jnp.arange(total))
        carry = (state, adaptation.dual_averaging_init(eps0), ones, adaptation.welford_init(w_star))
        (state, da, inv_mass, _), (loss, accept, eps) = jax.lax.scan(body, carry, xs)
        keep = num_adapt + num_burnin
        if with_state:
            final_eps = jnp.exp(da.log_step_avg) if num_adapt else eps0
            return state, final_eps, inv_mass
        return loss[keep:], accept[keep:], eps[-1]

    return one_chain


def _nuts_chain(loss_fn, num_adapt, num_burnin, num_draws, target_accept, max_tree_depth):
    from numpyro.infer.hmc import hmc

    def potential_fn_gen(data, w_star, nbeta, gamma):
        target = localized_target(loss_fn, data, w_star, nbeta, gamma)
        return lambda w: -target(w).logdensity

    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_fn_gen, algo="NUTS")
    num_warmup = num_adapt + num_burnin

    def one_chain(key, eps0, w_star, data, nbeta, gamma, n):
        args = (data, w_star, nbeta, gamma)
        state = init_kernel(w_star, num_warmup, step_size=eps0, adapt_step_size=num_adapt > 0,
                            target_accept_prob=target_accept, max_tree_depth=max_tree_depth,
                            model_args=args, rng_key=key)
        if num_warmup:
            state, _ = jax.lax.scan(lambda s, _: (sample_kernel(s, model_args=args), None), state,
                                    None, length=num_warmup)

        def draw(s, _):
            s = sample_kernel(s, model_args=args)
            return s, (loss_fn(s.z, data), s.accept_prob)

        _, (loss, accept) = jax.lax.scan(draw, state, None, length=num_draws)
        return loss, accept, state.adapt_state.step_size

    return one_chain


# ----------------------------------------------------------------------------- resumable programs
# HMC and MALA run in two compiled programs: a warmup (adaptation + burn-in) that returns each
# chain's state and tuned parameters, and a draw program of a fixed chunk length that continues
# from them. ``num_draws: auto`` calls the same draw program again until the trend test passes:
# longer runs never recompile.

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


@functools.lru_cache(maxsize=None)
def warmup_program(sampler, loss_fn, num_adapt, num_burnin, target_accept, max_steps, ndev):
    """Jitted ``run(keys (C,), eps0 (C,), w_star, data, nbeta, gamma, curv_key)`` ->
    ``(states, eps (C,), inv_mass (C, d), trajectory_length, L(w*))``. NaN entries of eps0 take
    the curvature rule ``0.5 / kappa_max`` (MALA) or ``1 / sqrt(kappa_max)`` (HMC)."""
    from slt.kernels import localized_hmc as hmc

    if sampler == "mala":
        chain = _langevin_chain("mala", loss_fn, None, num_adapt, num_burnin, 0, None, target_accept,
                                with_state=True)

        def one_chain(key, eps0, w_star, data, nbeta, gamma, trajectory_length):
            return chain(key, eps0, w_star, data, nbeta, gamma, 1)
    elif sampler == "hmc":
        def one_chain(key, eps0, w_star, data, nbeta, gamma, trajectory_length):
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
        raise ValueError(f"no resumable program for sampler {sampler!r}")
    chains = devices.shard_chains(one_chain, ndev, (0, 0) + (None,) * 5)

    def run(keys, eps0, w_star, data, nbeta, gamma, curv_key, trajectory_length_given):
        kappa_max, kappa_min = _curvatures(loss_fn, w_star, data, nbeta, gamma, curv_key)
        ok = (kappa_max > 0) & jnp.isfinite(kappa_max)
        rule = 0.5 / kappa_max if sampler == "mala" else 1.0 / jnp.sqrt(kappa_max)
        auto = jnp.where(ok, rule, 1e-4).astype(eps0.dtype)
        eps0 = jnp.where(jnp.isnan(eps0), auto, eps0)
        trajectory_length = jnp.where(kappa_min > 0, hmc.HALF_PI / jnp.sqrt(kappa_min), jnp.inf)
        trajectory_length = jnp.where(jnp.isnan(trajectory_length_given), trajectory_length,
                                      trajectory_length_given)
        states, eps, inv_mass = chains(keys, eps0, w_star, data, nbeta, gamma,
                                       trajectory_length.astype(eps0.dtype))
        return states, eps, inv_mass, trajectory_length, loss_fn(w_star, data)

    return jax.jit(run)


@functools.lru_cache(maxsize=None)
def draw_program(sampler, loss_fn, chunk, max_steps, ndev, keep_positions=False, observable_fn=None):
    """Jitted ``run(keys (C,), states, eps (C,), inv_mass (C, d), w_star, data, nbeta, gamma,
    trajectory_length)`` -> ``(states, loss (C, chunk), accept (C, chunk), steps (C, chunk),
    nonfinite (C, chunk))``: ``chunk`` more draws per chain with the tuned parameters, continuing
    from ``states``; ``accept`` is NaN for HMC's multi-scale small-step transitions (the reported
    acceptance is the adapted step's), ``nonfinite`` marks transitions whose trajectory met a NaN
    of the model (:mod:`slt.samplers.health`).

    Optional outputs, in this order, both static (off: the program is the same as without them):
    ``observable_fn(w, data) -> (k,)`` evaluated at every draw inside the same scan, ``(C, chunk,
    k)`` (e.g. the loss on another data set for the data-refined LLC, :mod:`slt.estimators.restricted`), so
    nothing per draw but k numbers leaves the program; ``keep_positions``: the draws themselves,
    ``positions (C, chunk, d)`` (Bayesian influence functions and susceptibilities,
    :mod:`slt.estimators.influence`)."""
    from slt.kernels import localized_hmc as hmc

    def one_chain(key, state, eps, inv_mass, w_star, data, nbeta, gamma, trajectory_length):
        def body(state, k):
            if sampler == "mala":
                state, info = langevin.mala_step(k, state, localized_target(loss_fn, data, w_star, nbeta, gamma),
                                                 eps, inv_mass)
                steps = jnp.ones((), jnp.int32)
                accept = info.accept_prob
            else:
                steps = hmc.num_steps_for(eps, trajectory_length, max_steps)
                state, info = hmc.step(k, state, eps, steps, loss_fn, data, w_star, nbeta, gamma, max_steps)
                steps = info.num_steps
                # acceptance of the adapted-step transitions only (NaN for the multi-scale small
                # steps, which accept more by construction; summarize takes the nanmean)
                accept = jnp.where(info.small_step, jnp.nan, info.accept_prob)
            out = (state.loss, accept, steps, info.nonfinite)
            if observable_fn is not None:
                out = out + (observable_fn(state.position, data),)
            return state, out + ((state.position,) if keep_positions else ())

        state, outs = jax.lax.scan(body, state, jax.random.split(key, chunk))
        return (state,) + tuple(outs)

    return jax.jit(devices.shard_chains(one_chain, ndev, (0,) * 4 + (None,) * 5))
