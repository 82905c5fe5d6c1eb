"""The local learning coefficient (LLC) at a point w* (Lau, Furman, Wang, Murfet, Wei,
arXiv:2308.12108, AISTATS 2025)::

    llc(w*) = nbeta (E_{w | w*, nbeta, gamma}[L(w)] - L(w*))
    p(w | w*) ∝ exp(-nbeta L(w) - (gamma/2) ||w - w*||^2)

``nbeta = n beta``; the default is ``n / log n`` (beta* = 1/log n, WBIC's temperature).
devinterp instead defaults to ``B / log B`` for the batch size B: pass ``nbeta`` to match it.

Samplers (all chains vmapped in one compiled warmup program and one draw program, steps by
``lax.scan``, chains sharded over local devices; the programs live in
:mod:`slt.samplers.llc_chains`): ``"hmc"`` (default; exact,
trajectories as long as the flat directions, :mod:`slt.kernels.localized_hmc`), ``"mala"`` (exact,
self-tuning, but a random walk along flat directions), ``"sgld"`` (devinterp's update, full
batch or minibatch) and ``"nuts"`` (numpyro's functional ``hmc``), see :mod:`slt.langevin`.

Convergence: every estimate carries a trend test (:func:`trend_test`): the per-chain means of
the first and second half of the draws must agree to within ``TREND_RTOL`` of the estimate,
including twice the standard error of their difference. ``num_draws="auto"`` continues the
same chains, without recompiling, until the test passes or ``max_draws`` is reached (SGLD and
NUTS by default stop at their first 2000 draws); a failed test sets ``converged = False`` and a
warning.

Control variates (HMC default, d <= ``CV_MAX_D``): the estimate averages ``nbeta (L - L(w*))
- Z . b`` with Stein functions Z of mean exactly 0 under the localised posterior (built from the
draw and its gradient) and b fitted on the other chains (:func:`stein_adjust`): the same
expectation, a fraction of the variance on near-regular directions.

Linear networks (identity activations) with the Gaussian likelihood are evaluated through
their sufficient statistics (:class:`slt.posterior.LinearStats`): exactly the same ``L_n``,
at a cost independent of n. Global-lambda estimators (beta slope, log n regression) live in
:mod:`slt.estimators.free_energy`.

The loss is any ``loss_fn(w)`` (toy potentials: ``K = w1^2 w2^4``) or ``loss_fn(w, data)``
with ``data`` a pytree argument; :func:`llc_for_problem` wires in a :class:`Problem`.

Float32 suffices: the estimate averages ``L - L(w*)`` over many draws (rounding noise of
``L`` is ~1e-7 relative, far below the posterior spread ``lambda / nbeta``).
"""
from __future__ import annotations

import functools
import math
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from slt.kernels.devices import num_devices_for
from slt.samplers import llc_chains
from slt.samplers.llc_chains import initial_step_size, top_hessian_eigenvalue  # noqa: F401 (re-exported)
from slt.posterior import Problem, problem_loss
from slt.estimators.llc_summary import (CV_CHECK_Z, CV_FLOAT_FLOOR, TREND_ATOL, TREND_RTOL, LLCResult,  # noqa: F401 (re-exported)
                                        CVCheck, TrendTest, cv_check, score_observable, stein_adjust, stderr,
                                        summarize, t_ratio, trend_consistent, trend_test)

SAMPLERS = ("hmc", "mala", "sgld", "nuts")
POSITION_HOOKS = ("hmc", "mala")  # samplers whose draws feed keep_positions, observable_fn, control variates
AUTO_DRAWS = {"hmc": (500, 8000), "mala": (2000, 32000), "sgld": (2000, 2000), "nuts": (2000, 2000)}
HMC_TARGET_ACCEPT = 0.8
HMC_MAX_STEPS = 128  # leapfrog steps per HMC transition at most (caps the trajectory at 128 eps)
CV_MAX_D = 32       # Stein control variates (HMC default) up to this many parameters: d + d^2 of them
MALA_TARGET_ACCEPT = 0.8   # not the Gaussian-optimal 0.574: quartic directions get sticky tails there (notes/llc.md)
SGLD_TARGET_ACCEPT = 0.99  # its MH acceptance estimate; rare rejections mean a small step-size bias (measured, notes/llc.md)


def default_nbeta(n: int) -> float:
    """``n / log n`` (beta* = 1/log n; WBIC's temperature)."""
    if n < 2:
        raise ValueError("nbeta: the default n / log n needs n >= 2")
    return n / math.log(n)


# ----------------------------------------------------------------------------- problems
# problem_loss (L_n of a Problem) is slt.posterior's, imported above: the same function object as
# the run's preflight check uses, so one compiled L_n-and-gradient program serves both checks


def problem_batch_loss(w, problem: Problem, idx):
    """``L_n`` on the rows ``idx`` (an unbiased estimate of L_n(w))."""
    return problem.loss_on(w, problem.x[idx], problem.y[idx])


@functools.lru_cache(maxsize=None)
def _without_data(loss_fn: Callable) -> Callable:
    return lambda w, data: loss_fn(w)


# ----------------------------------------------------------------------------- estimator
class _Settings(NamedTuple):
    loss_fn: Callable
    nbeta: float
    auto: bool
    chunk: int
    cap: int
    num_burnin: int
    num_adapt: int
    target_accept: float


def resolve_settings(sampler, loss_fn, data, batch_loss_fn, batch_size, nbeta, n, gamma, num_draws,
                     max_draws, num_burnin, num_adapt, step_size, target_accept) -> _Settings:
    """Check :func:`estimate_llc`'s arguments and fill its defaults (shared with the batched
    estimator of :mod:`slt.estimators.llc_trajectory`): the loss in ``loss_fn(w, data)`` form, ``nbeta``,
    whether draws are ``auto``, the first chunk and the cap, burn-in, adaptation, target."""
    if data is None:
        loss_fn = _without_data(loss_fn)
        if batch_loss_fn is not None:
            raise ValueError("batch_loss_fn needs data (loss_fn(w, data) form)")
    if nbeta is None:
        if n is None:
            raise ValueError("give nbeta, or n for the default n / log n")
        nbeta = default_nbeta(n)
    if not nbeta > 0:
        raise ValueError(f"nbeta must be > 0, got {nbeta}")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    if batch_size is not None:
        if sampler != "sgld":
            raise ValueError("minibatches are for SGLD only (MALA, HMC and NUTS need exact gradients)")
        if batch_loss_fn is None or n is None:
            raise ValueError("minibatch SGLD needs batch_loss_fn and n")
    auto = num_draws == "auto"
    first_chunk, cap = AUTO_DRAWS[sampler]
    chunk = first_chunk if auto else int(num_draws)
    cap = chunk if not auto else int(max_draws or cap)
    chunk = min(chunk, cap)
    if num_burnin is None:
        num_burnin = max(chunk // 10, 50 if sampler == "hmc" else 0)
    if auto and cap < num_burnin:
        raise ValueError(f"max_draws ({cap}) must be >= num_burnin ({num_burnin})")
    if num_adapt is None:   # minibatch SGLD: its MH estimate compares different batches' losses, is
        # ~0 whatever the step, and dual averaging drove the step to 0 (caught by slt.samplers.health): keep
        # the curvature step 0.5 / (nbeta lambda_max + gamma) instead
        num_adapt = ((200 if sampler == "hmc" else 400) if (step_size is None or sampler == "nuts")
                     and batch_size is None else 0)
    if target_accept is None:
        target_accept = {"hmc": HMC_TARGET_ACCEPT, "mala": MALA_TARGET_ACCEPT,
                         "sgld": SGLD_TARGET_ACCEPT, "nuts": 0.8}[sampler]
    return _Settings(loss_fn, nbeta, auto, chunk, cap, num_burnin, num_adapt, target_accept)


def draw_until_converged(draw_chunk: Callable, chunk: int, cap: int, auto: bool,
                         converged: Callable, progress: Callable | None = None):
    """``num_draws: auto``: run ``draw_chunk(i) -> (loss, accept, steps)`` (one compiled chunk
    program, ``chunk`` draws per chain) with the draws doubling each round (1, 1, 2, 4, ...
    chunks) until ``converged(losses)`` or ``cap`` draws; without ``auto`` one chunk. Returns
    the lists (losses, accepts, steps) of the chunks' float64 arrays (draws on the last axis)."""
    losses, accepts, steps = [], [], []
    done = i = 0
    while True:
        for _ in range(1 if done == 0 else max(1, done // chunk)):
            if done + chunk > cap:
                break
            loss, acc, st = draw_chunk(i)
            losses.append(np.asarray(loss, np.float64))
            accepts.append(np.asarray(acc, np.float64))
            steps.append(np.asarray(st, np.float64))
            done += chunk
            i += 1
        if progress is not None:
            progress(done, cap)
        if not auto or done + chunk > cap or converged(losses):
            return losses, accepts, steps


def estimate_llc(key: jax.Array, loss_fn: Callable, w_star, *, nbeta: float | None = None,
                 n: int | None = None, data=None, gamma: float = 1.0, sampler: str = "hmc",
                 num_chains: int = 8, num_draws: int | str = "auto", max_draws: int | None = None,
                 num_burnin: int | None = None, num_adapt: int | None = None,
                 step_size: float | None = None, target_accept: float | None = None,
                 batch_loss_fn: Callable | None = None, batch_size: int | None = None,
                 max_tree_depth: int = 8, trajectory_length: float | None = None,
                 max_steps: int = HMC_MAX_STEPS, progress: Callable | None = None,
                 keep_positions: bool | int = False, model=None,
                 observable_fn: Callable | None = None, control_variates: bool | None = None,
                 trend_atol: float | Callable[[float], float] | None = None) -> LLCResult:
    """Estimate ``llc(w*) = nbeta (E[L(w)] - L(w*))`` over ``p(w|w*) ∝ exp(-nbeta L - gamma/2 ||w-w*||^2)``.

    Args:
      key: PRNG key; chain ``c`` runs on ``split(key, num_chains)[c]``.
      loss_fn: ``loss_fn(w)`` (``data`` None) or ``loss_fn(w, data)``; w a flat (d,) vector.
        Pass the same function object again to reuse the compiled program.
      w_star: (d,) the point; every chain starts there.
      nbeta: ``n * beta``; default ``n / log n`` (needs ``n``).
      n: number of data rows (default nbeta; minibatch index range).
      gamma: localisation strength (0: no localisation, e.g. a regular model at its minimiser).
      sampler: ``"hmc"`` | ``"mala"`` | ``"sgld"`` | ``"nuts"``.
      num_draws: recorded draws per chain, after ``num_adapt`` adaptation and ``num_burnin``
        discarded transitions (both start from w*); ``"auto"``: start with
        ``AUTO_DRAWS[sampler][0]`` and double the draws by continuing the same chains until
        the trend test passes or ``max_draws`` (default ``AUTO_DRAWS[sampler][1]``) is reached
        (SGLD and NUTS: 2000, their first chunk, unless ``max_draws`` is raised).
      num_burnin: default ``num_draws // 10`` (auto: of the first chunk; HMC at least 50).
      num_adapt: step-size adaptation steps; default HMC 200, others 400 when ``step_size`` is
        None (NUTS: always 400; minibatch SGLD: 0, the curvature step), else 0. Dual averaging towards
        ``target_accept``; MALA also a diagonal preconditioner.
      step_size: HMC leapfrog step, Langevin ``eps`` (devinterp's ``lr``); None adapts it
        from the curvature at w*.
      target_accept: HMC 0.8, MALA 0.8 (0.574 is optimal for Gaussian targets, Roberts &
        Rosenthal 1998, but under-samples the tails of quartic singular directions: K = w^4
        came out 11% low there and exact at 0.8); SGLD 0.99 (its MH acceptance estimate: rare
        rejections mean a small step-size bias); NUTS 0.8.
      trajectory_length: HMC; default ``(pi/2) / sqrt(gamma + nbeta h_min)`` (a quarter period
        of the softest direction, :mod:`slt.kernels.localized_hmc`), at most ``max_steps`` leapfrog steps.
      batch_loss_fn, batch_size: minibatch SGLD, ``batch_loss_fn(w, data, idx)`` with ``idx``
        (batch_size,) row indices drawn uniformly with replacement per step.
      progress: optional ``progress(draws_done, draws_cap)`` callback (auto mode).
      keep_positions: keep the draws in ``result.positions`` (C, T', d) for estimators on the
        same posterior (:mod:`slt.estimators.influence`); an integer k > 1 keeps every k-th draw
        (``T' = T // k``). HMC and MALA only. Off (default): the same program and numbers.
      model: only names parameters in error messages (:func:`slt.samplers.health.param_name`).
      observable_fn: optional ``observable_fn(w, data) -> (k,)`` evaluated at every recorded
        draw inside the compiled draw program (HMC and MALA); its values are
        ``result.observables`` (C, T, k), and its value at w* ``observables_at_w_star``.
        Pass the same function object again to reuse the compiled program.
      control_variates: Stein (zero-variance) control variates, :func:`stein_adjust`: the
        estimate, MCSE, per-chain values and trend test use ``nbeta (L - L(w*)) - Z . b`` (same
        expectation, lower variance), cross-fitted between chains; costs one gradient per draw.
        Default (None): on for HMC with >= 2 chains and d <= ``CV_MAX_D`` and no
        ``observable_fn`` (MALA: off, a gradient per draw would double its cost; with an
        observable the caller averages plain draws, e.g. the refined LLC, and the LLC beside it
        stays the same plain average). ``raw_mean``/``raw_mcse`` keep the plain
        average. Convergence then also needs the plain trace's drift not significantly beyond
        the tolerance (:func:`trend_consistent`).
      trend_atol: a floor on the trend test's absolute tolerance above ``TREND_ATOL``, or a
        function of the current estimate giving it (lambda_hat: half the non-Monte-Carlo part
        of its error bar, :func:`slt.estimators.lambda_hat.trend_floor`): the draws need not resolve the
        LLC finer than the answer's error bar.

    Raises ``ValueError`` before sampling when ``L`` or its gradient is not finite at w*
    (:func:`slt.samplers.health.check_point`): a chain started there cannot sample.

    Returns: :class:`LLCResult`. Warnings (in ``result.warnings``): divergence (estimate
    withheld), not converged (trend test), negative LLC (w* not a local minimum), poor mixing
    (R-hat > 1.1), low acceptance.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    thin = int(keep_positions)
    if thin and sampler not in POSITION_HOOKS:
        raise ValueError(f"keep_positions needs sampler hmc or mala, got {sampler!r}")
    if observable_fn is not None and sampler not in POSITION_HOOKS:
        raise ValueError(f"observable_fn needs sampler hmc or mala, got {sampler!r}")
    w_star = jnp.asarray(w_star, jnp.result_type(float))
    if w_star.ndim != 1:
        raise ValueError(f"w_star must be a flat (d,) vector, got shape {w_star.shape}")
    loss_fn, nbeta, auto, chunk, cap, num_burnin, num_adapt, target_accept = resolve_settings(
        sampler, loss_fn, data, batch_loss_fn, batch_size, nbeta, n, gamma, num_draws, max_draws,
        num_burnin, num_adapt, step_size, target_accept)
    from slt.samplers import health

    health.check_point("llc", loss_fn, w_star, data, model=model, with_data=True)
    dtype = w_star.dtype
    # a step too small to move the chain across the localisation width in this precision; for
    # Langevin samplers eps is a variance (the move is sqrt(eps)): compare eps with floor^2
    floor = health.step_floor(dtype, 1.0 / math.sqrt(gamma) if gamma > 0 else 1.0)
    min_step = floor if sampler in ("hmc", "nuts") else floor ** 2
    ndev = num_devices_for(num_chains)
    k_curv, k_run, keys = llc_chains.run_keys(key, num_chains)
    eps0 = jnp.asarray(np.full((num_chains,), np.nan if step_size is None else step_size), dtype)
    d = int(w_star.shape[0])
    use_cv = ((sampler == "hmc" and observable_fn is None) if control_variates is None
              else bool(control_variates)) and sampler in POSITION_HOOKS and num_chains >= 2 and d <= CV_MAX_D
    w_star_np = np.asarray(w_star, np.float64)

    def atol_at(mean):
        extra = trend_atol(mean) if callable(trend_atol) else trend_atol
        extra = float(extra) if extra is not None and math.isfinite(float(extra)) else 0.0
        return max(TREND_ATOL, extra)

    fitted = {}   # draws per chain -> control-variate series: the last check's fit serves the summary

    def adjusted(excess):   # the control-variate series (None: off or not applicable)
        if not use_cv:
            return None
        if excess.shape[1] not in fitted:
            feats = np.concatenate(observables, axis=1)
            fitted.clear()
            fitted[excess.shape[1]] = stein_adjust(excess, feats[..., -2 * d:-d], feats[..., -d:], w_star_np,
                                                   float(nbeta), float(gamma))
        return fitted[excess.shape[1]]
    nbeta_a, gamma_a = jnp.asarray(nbeta, dtype), jnp.asarray(gamma, dtype)
    t0 = time.perf_counter()
    kept = []   # keep_positions: the thinned draws of every chunk
    nonfinite = []   # per chunk, (C,) transitions that met a NaN of the model
    observables = []
    obs_fn = score_observable(loss_fn, observable_fn) if use_cv else observable_fn
    first = int(chunk) if sampler in llc_chains.IN_WARMUP else 0
    warm, draw = llc_chains.programs(sampler, loss_fn, int(num_adapt), int(num_burnin), float(target_accept),
                                     int(chunk), int(max_steps), ndev, batch_loss_fn=batch_loss_fn,
                                     batch_size=batch_size, max_tree_depth=int(max_tree_depth),
                                     keep_positions=bool(thin), observable_fn=obs_fn, first_draws=first)
    given_t = jnp.asarray(math.nan if trajectory_length is None else trajectory_length, dtype)
    n_a = jnp.asarray(n or 1, jnp.int32)
    states, eps, inv_mass, traj, loss_star, *first_out = warm(keys, eps0, w_star, data, nbeta_a, gamma_a,
                                                              k_curv, given_t, n_a)

    def draw_chunk(i):
        nonlocal states
        if i == 0 and first:
            loss, acc, st, nf = first_out[0]
        else:
            states, loss, acc, st, nf, *extra = draw(llc_chains.chunk_keys(k_run, i, num_chains), states, eps,
                                                     inv_mass, w_star, data, nbeta_a, gamma_a, traj, n_a)
        nonfinite.append(np.asarray(nf).sum(axis=1))
        if obs_fn is not None:
            observables.append(np.asarray(extra[0], np.float64))
        if thin:   # every thin-th draw, counted over the whole run
            kept.append(np.asarray(extra[-1])[:, (thin - 1 - i * chunk) % thin::thin])
        return loss, acc, st

    def converged(losses):
        excess = float(nbeta) * (np.concatenate(losses, axis=1) - float(loss_star))
        if not np.isfinite(excess).all():
            return True
        atol = atol_at(float(excess.mean()))
        adj = adjusted(excess)
        if adj is None:
            return trend_test(excess, atol=atol).converged
        return (trend_test(adj, atol=atol).converged and trend_consistent(trend_test(excess, atol=atol))
                and cv_check(excess, adj).ok)

    losses, accepts, steps = draw_until_converged(draw_chunk, chunk, cap, auto, converged, progress)
    loss, accept = np.concatenate(losses, axis=1), np.concatenate(accepts, axis=1)
    steps_per_draw = float(np.concatenate(steps, axis=1).mean())
    traj = float(traj) if sampler in ("hmc", "mala") else None
    eps = np.asarray(eps, np.float64)
    sampling_s = time.perf_counter() - t0
    excess_all = float(nbeta) * (np.asarray(loss, np.float64) - float(loss_star))
    adj = adjusted(excess_all) if np.isfinite(excess_all).all() else None
    res = summarize(loss, accept, eps, float(loss_star), nbeta=float(nbeta), gamma=float(gamma),
                    adjusted=adj, trend_atol=atol_at(float(np.mean(excess_all))),
                    float_eps=float(jnp.finfo(dtype).eps),
                    sampler=sampler, num_burnin=int(num_burnin), num_adapt=int(num_adapt),
                    batch_size=batch_size, d=int(w_star.shape[0]), sampling_s=sampling_s,
                    draws_cap=cap if auto else None, min_step=min_step,
                    nonfinite=np.sum(nonfinite, axis=0) if nonfinite else None)
    res = res._replace(trajectory_length=traj, steps_per_draw=steps_per_draw)
    if observable_fn is not None:
        at_star = np.asarray(jax.jit(observable_fn)(w_star, data), np.float64)
        obs = np.concatenate(observables, axis=1)
        res = res._replace(observables=obs[..., :-2 * d] if use_cv else obs, observables_at_w_star=at_star)
    return res._replace(positions=np.concatenate(kept, axis=1)) if thin else res


def llc_for_problem(key: jax.Array, problem: Problem, w_star, *, nbeta: float | None = None,
                    batch_size: int | None = None, **kwargs) -> LLCResult:
    """:func:`estimate_llc` for a :class:`Problem` (``L_n`` of its data; nbeta default n/log n).

    A linear network (identity activations, Gaussian likelihood) is evaluated through its
    sufficient statistics (:func:`slt.posterior.linear_stats`): the same ``L_n`` exactly, at a
    cost independent of n (full-batch samplers only)."""
    kwargs.setdefault("model", problem.model)
    return estimate_llc(key, w_star=w_star, **problem_arguments(problem, nbeta, batch_size), **kwargs)


def problem_arguments(problem: Problem, nbeta: float | None, batch_size: int | None) -> dict:
    """The loss, data and minibatch arguments of :func:`estimate_llc` for a :class:`Problem`:
    linear-Gaussian networks through their sufficient statistics, minibatch SGLD when
    ``batch_size < n``, else the problem's full-data ``L_n``; nbeta default n / log n."""
    from slt.posterior import has_linear_stats, linear_loss, linear_stats

    if batch_size is not None and batch_size >= problem.n:
        batch_size = None
    nbeta = default_nbeta(problem.n) if nbeta is None else nbeta
    if batch_size is None and has_linear_stats(problem):
        return dict(loss_fn=linear_loss, data=linear_stats(problem), n=problem.n, nbeta=nbeta)
    return dict(loss_fn=problem_loss, data=problem, n=problem.n, nbeta=nbeta,
                batch_loss_fn=problem_batch_loss if batch_size else None, batch_size=batch_size)


def refine_point(problem: Problem, w, steps: int = 2000, learning_rate: float = 1e-3,
                 jitter: float = 1e-3, key: jax.Array | None = None):
    """A local minimiser of ``L_n`` reached from ``w`` (Adam + L-BFGS, :func:`slt.estimators.optimize.train`).

    The start is ``w`` plus ``jitter * prior_std`` Gaussian noise: an embedded truth is often a
    saddle of L_n with exactly zero gradient (a zero hidden unit of a linear or ReLU network),
    where an optimiser would stay; the jitter lets it reach the minimiser next to the truth,
    which fits the data's noise (notes/llc.md: the LLC there is the finite-n quantity closest
    to lambda). ``jitter = 0`` keeps the old behaviour (stay on the truth's stratum).
    Linear networks are optimised through their sufficient statistics (the same L_n, at a cost
    independent of n, as their LLC samples it); ``L_n(w_hat)`` and the gradient norm returned
    are then evaluated on the data themselves. Returns ``(w_hat, L_n(w_hat), |grad|)``."""
    from slt.estimators.optimize import loss_and_grad_norm, minimise

    w = jnp.asarray(w, problem.x.dtype)
    if jitter:
        key = jax.random.key(0) if key is None else key
        w = w + jitter * problem.prior_std * jax.random.normal(key, w.shape, w.dtype)
    args = problem_arguments(problem, None, None)
    res = minimise(args["loss_fn"], args["data"], w, steps, learning_rate)
    loss, grad_norm = (res.loss, res.grad_norm) if args["data"] is problem else loss_and_grad_norm(
        problem_loss, problem, res.w)
    return res.w, float(loss), float(grad_norm)


from slt.estimators.exact import rrr_lambda  # noqa: E402,F401  (moved to slt.estimators.exact; re-exported here)
