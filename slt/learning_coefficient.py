"""The local learning coefficient (LLC) at a point w* (Lau, Furman, Wang, Murfet, Wei,
arXiv:2308.12108, AISTATS 2025)::

    llc(w*) = nbeta (E_{w | w*, nbeta, gamma}[L(w)] - L(w*))
    p(w | w*) ∝ exp(-nbeta L(w) - (gamma/2) ||w - w*||^2)

``nbeta = n beta``; the default is ``n / log n`` (beta* = 1/log n, WBIC's temperature).
devinterp instead defaults to ``B / log B`` for the batch size B: pass ``nbeta`` to match it.

Samplers (all chains vmapped in ONE compiled program, draws by ``lax.scan``, chains sharded
over local devices; the programs live in :mod:`slt.llc_chains`): ``"mala"`` (default; exact, self-tuning), ``"sgld"`` (devinterp's update,
full batch or minibatch) and ``"nuts"`` (numpyro's functional ``hmc``), see
:mod:`slt.langevin`. Global-lambda estimators (beta slope, log n regression) live in
:mod:`slt.free_energy`.

The loss is any ``loss_fn(w)`` (toy potentials: ``K = w1^2 w2^4``) or ``loss_fn(w, data)``
with ``data`` a pytree argument; :func:`llc_for_problem` wires in a :class:`Problem`.

Float32 suffices: the estimate averages ``L - L(w*)`` over many draws (rounding noise of
``L`` is ~1e-7 relative, far below the posterior spread ``lambda / nbeta``).
"""
from __future__ import annotations

import functools
import math
import time
import warnings
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from slt.llc_chains import (_num_devices_for, _program, initial_step_size,  # noqa: F401 (re-exported)
                            top_hessian_eigenvalue)
from slt.posterior import Problem, empirical_loss

SAMPLERS = ("mala", "sgld", "nuts")
MALA_TARGET_ACCEPT = 0.8   # not the Gaussian-optimal 0.574: quartic directions get sticky tails there (notes/llc.md)
SGLD_TARGET_ACCEPT = 0.99  # its MH acceptance estimate; rare rejections mean a small step-size bias (measured, notes/llc.md)


class LLCResult(NamedTuple):
    """An LLC estimate with its traces and settings. Shapes: C = num_chains, T = num_draws.

    ``mean``/``std``/``mcse`` are None when the estimate is withheld (a chain diverged).
    """

    mean: Optional[float]        # nbeta (mean loss over all draws - L(w*))
    std: Optional[float]         # standard deviation of the per-chain estimates (as devinterp)
    mcse: Optional[float]        # Monte Carlo standard error of ``mean`` (bulk ESS of the loss)
    per_chain: np.ndarray        # (C,)   per-chain estimates
    loss_trace: np.ndarray       # (C, T) L at every draw (minibatch SGLD: the batch loss)
    running_mean: np.ndarray     # (C, T) per-chain running LLC estimate
    acceptance: np.ndarray       # (C,)   mean MH acceptance (MALA/NUTS) or its estimate (SGLD)
    step_size: np.ndarray        # (C,)   step size used for the draws (adapted or given)
    rhat: float                  # split R-hat of the loss across chains
    ess: float                   # bulk ESS of the loss
    loss_at_w_star: float        # L(w*)
    nbeta: float
    gamma: float
    sampler: str
    num_chains: int
    num_draws: int
    num_burnin: int
    num_adapt: int
    batch_size: Optional[int]
    diverged: bool
    warnings: tuple
    sampling_s: float            # wall time of the compiled run (includes compilation)


def default_nbeta(n: int) -> float:
    """``n / log n`` (beta* = 1/log n; WBIC's temperature)."""
    if n < 2:
        raise ValueError("nbeta: the default n / log n needs n >= 2")
    return n / math.log(n)


# ----------------------------------------------------------------------------- problems
def problem_loss(w, problem: Problem):
    """``L_n(w)`` of a :class:`Problem` (module-level: compiled programs are shared)."""
    return problem.loss(w)


def problem_batch_loss(w, problem: Problem, idx):
    """``L_n`` on the rows ``idx`` (an unbiased estimate of L_n(w))."""
    return empirical_loss(problem.spec, w, problem.x[idx], problem.y[idx], problem.noise_std)


@functools.lru_cache(maxsize=None)
def _without_data(loss_fn: Callable) -> Callable:
    return lambda w, data: loss_fn(w)


# ----------------------------------------------------------------------------- estimator
def estimate_llc(key: jax.Array, loss_fn: Callable, w_star, *, nbeta: float | None = None,
                 n: int | None = None, data=None, gamma: float = 1.0, sampler: str = "mala",
                 num_chains: int = 4, num_draws: int = 1000, num_burnin: int | None = None,
                 num_adapt: int | None = None, step_size: float | None = None,
                 target_accept: float | None = None, batch_loss_fn: Callable | None = None,
                 batch_size: int | None = None, max_tree_depth: int = 8) -> LLCResult:
    """Estimate ``llc(w*) = nbeta (E[L(w)] - L(w*))`` over ``p(w|w*) ∝ exp(-nbeta L - gamma/2 ||w-w*||^2)``.

    Args:
      key: PRNG key; chain ``c`` runs on ``split(key, num_chains)[c]``.
      loss_fn: ``loss_fn(w)`` (``data`` None) or ``loss_fn(w, data)``; w a flat (d,) vector.
        Pass the same function object again to reuse the compiled program.
      w_star: (d,) the point; every chain starts there.
      nbeta: ``n * beta``; default ``n / log n`` (needs ``n``).
      n: number of data rows (default nbeta; minibatch index range).
      gamma: localisation strength (0: no localisation, e.g. a regular model at its minimiser).
      sampler: ``"mala"`` | ``"sgld"`` | ``"nuts"``.
      num_draws: recorded draws per chain, after ``num_adapt`` adaptation and ``num_burnin``
        discarded steps (both start from w*).
      num_burnin: default ``num_draws // 10`` (the climb from L(w*) to the typical set).
      num_adapt: step-size adaptation steps (dual averaging of the acceptance towards
        ``target_accept``; MALA also a diagonal preconditioner); default 400 when ``step_size``
        is None (NUTS: always 400), else 0.
      step_size: Langevin ``eps`` (devinterp's ``lr``); None adapts it from
        ``0.5 / (nbeta lambda_max(Hess L(w*)) + gamma)``.
      target_accept: MALA 0.8 (0.574 is optimal for Gaussian targets, Roberts & Rosenthal 1998,
        but under-samples the tails of quartic singular directions: K = w^4 came out 11% low
        there and exact at 0.8); SGLD 0.99 (its MH
        acceptance estimate: rare rejections mean a small step-size bias); NUTS 0.8.
      batch_loss_fn, batch_size: minibatch SGLD, ``batch_loss_fn(w, data, idx)`` with ``idx``
        (batch_size,) row indices drawn uniformly with replacement per step.

    Returns: :class:`LLCResult`. Warnings (in ``result.warnings``): divergence (estimate
    withheld), negative LLC (w* not a local minimum), poor mixing (R-hat > 1.1), low acceptance.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    w_star = jnp.asarray(w_star, jnp.result_type(float))
    if w_star.ndim != 1:
        raise ValueError(f"w_star must be a flat (d,) vector, got shape {w_star.shape}")
    if data is None:
        loss_fn = _without_data(loss_fn)
        if batch_loss_fn is not None:
            raise ValueError("batch_loss_fn needs data (loss_fn(w, data) form)")
    if nbeta is None:
        if n is None:
            raise ValueError("give nbeta, or n for the default n / log n")
        nbeta = default_nbeta(n)
    if batch_size is not None:
        if sampler != "sgld":
            raise ValueError("minibatches are for SGLD only (MALA and NUTS need exact gradients)")
        if batch_loss_fn is None or n is None:
            raise ValueError("minibatch SGLD needs batch_loss_fn and n")
    num_burnin = num_draws // 10 if num_burnin is None else num_burnin
    if num_adapt is None:
        num_adapt = 400 if (step_size is None or sampler == "nuts") else 0
    if target_accept is None:
        target_accept = {"mala": MALA_TARGET_ACCEPT, "sgld": SGLD_TARGET_ACCEPT,
                         "nuts": 0.8}[sampler]
    k_curv, k_run = jax.random.split(key)
    dtype = w_star.dtype
    ndev = _num_devices_for(num_chains)
    program = _program(sampler, loss_fn, batch_loss_fn, int(num_adapt), int(num_burnin),
                       int(num_draws), batch_size, float(target_accept), int(max_tree_depth), ndev)
    keys = jax.random.split(k_run, num_chains)
    eps0 = jnp.full((num_chains,), jnp.nan if step_size is None else step_size, dtype)
    t0 = time.perf_counter()
    loss, accept, eps, loss_star = program(keys, eps0, w_star, data, jnp.asarray(nbeta, dtype),
                                           jnp.asarray(gamma, dtype), jnp.asarray(n or 1, jnp.int32),
                                           k_curv)
    loss = jax.block_until_ready(loss)
    sampling_s = time.perf_counter() - t0
    loss_star = float(loss_star)
    return summarize(np.asarray(loss, np.float64), np.asarray(accept, np.float64),
                     np.asarray(eps, np.float64), loss_star, nbeta=float(nbeta), gamma=float(gamma),
                     sampler=sampler, num_burnin=int(num_burnin), num_adapt=int(num_adapt),
                     batch_size=batch_size, d=int(w_star.shape[0]), sampling_s=sampling_s)


def llc_for_problem(key: jax.Array, problem: Problem, w_star, *, nbeta: float | None = None,
                    batch_size: int | None = None, **kwargs) -> LLCResult:
    """:func:`estimate_llc` for a :class:`Problem` (``L_n`` of its data; nbeta default n/log n)."""
    if batch_size is not None and batch_size >= problem.n:
        batch_size = None
    return estimate_llc(key, problem_loss, w_star, data=problem, n=problem.n,
                        nbeta=default_nbeta(problem.n) if nbeta is None else nbeta,
                        batch_loss_fn=problem_batch_loss if batch_size else None,
                        batch_size=batch_size, **kwargs)


def refine_point(problem: Problem, w, steps: int = 2000, learning_rate: float = 1e-3):
    """A local minimiser of ``L_n`` reached from ``w`` (Adam + L-BFGS, :func:`slt.optimize.train`).

    From an embedded truth the zero (or dead) extra units have zero gradient and stay put, so
    this is the minimiser on the truth's stratum. Returns ``(w_hat, L_n(w_hat), |grad|)``.
    """
    from slt.optimize import train

    res = train(jax.random.key(0), problem, steps, learning_rate, init=w)
    return res.w, float(res.loss), float(res.grad_norm)


def summarize(loss: np.ndarray, accept: np.ndarray, eps: np.ndarray, loss_star: float, *,
              nbeta: float, gamma: float, sampler: str, num_burnin: int = 0, num_adapt: int = 0,
              batch_size: int | None = None, d: int = 1, sampling_s: float = float("nan"),
              divergence_factor: float = 100.0) -> LLCResult:
    """Turn loss traces (C, T) into an :class:`LLCResult` with diagnostics and warnings.

    A chain diverged if its loss is non-finite or ``nbeta (L - L(w*))`` exceeds
    ``divergence_factor * (d + 10)`` (an LLC is at most d/2: that is an explosion, not a
    posterior); the estimate is then withheld (``mean = None``).
    """
    from slt import diagnostics

    num_chains, num_draws = loss.shape
    excess = nbeta * (loss - loss_star)
    warns = []
    finite = np.isfinite(excess)
    exploded = ~finite | (np.where(finite, excess, 0.0) > divergence_factor * (d + 10))
    bad_chains = np.flatnonzero(exploded.any(axis=1))
    diverged = bool(len(bad_chains)) or not math.isfinite(loss_star)
    steps = np.arange(1, num_draws + 1)
    with np.errstate(invalid="ignore", over="ignore"):
        per_chain = excess.mean(axis=1)
        running = np.cumsum(excess, axis=1) / steps
    acc = np.nanmean(accept, axis=1) if np.isfinite(accept).any() else np.full(num_chains, np.nan)
    mean = std = mcse = None
    rhat = ess = float("nan")
    if diverged:
        warns.append(f"llc: {len(bad_chains)} of {num_chains} chains diverged (non-finite or exploding "
                     f"loss); estimate withheld. Lower the step size"
                     + (" or the batch noise" if batch_size else ""))
    else:
        mean = float(excess.mean())
        std = float(per_chain.std(ddof=1)) if num_chains > 1 else float("nan")
        if num_draws >= 4:
            with warnings.catch_warnings():  # constant traces (tiny steps): R-hat is 0/0
                warnings.simplefilter("ignore", RuntimeWarning)
                rhat = float(diagnostics.rhat(loss[..., None])[0])
                ess = float(diagnostics.ess_bulk(loss[..., None])[0])
            mcse = float(np.std(excess) / math.sqrt(max(ess, 1.0)))
        if mean < 0:
            warns.append(f"llc: negative estimate {mean:.3g}: the mean loss fell below L(w*), so w* "
                         "is not a local minimum (train it further, or use at: trained)")
        if math.isfinite(rhat) and rhat > 1.1:
            warns.append(f"llc: R-hat of the loss across chains is {rhat:.2f} > 1.1: chains disagree "
                         "(not mixed); run more draws or check the loss traces")
        if sampler in ("mala", "nuts") and np.nanmean(acc) < 0.2:
            warns.append(f"llc: mean acceptance {np.nanmean(acc):.2f} is low: the chains barely move")
        if sampler == "sgld" and batch_size is None and np.nanmean(acc) < 0.5:
            warns.append(f"llc: SGLD's MH acceptance estimate is {np.nanmean(acc):.2f} < 0.5: the step "
                         "size is large and biases the estimate upwards; lower it or use sampler: mala")
    return LLCResult(mean=mean, std=std, mcse=mcse, per_chain=per_chain, loss_trace=loss,
                     running_mean=running, acceptance=acc, step_size=eps, rhat=rhat, ess=ess,
                     loss_at_w_star=loss_star, nbeta=nbeta, gamma=gamma, sampler=sampler,
                     num_chains=num_chains, num_draws=num_draws, num_burnin=num_burnin,
                     num_adapt=num_adapt, batch_size=batch_size, diverged=diverged,
                     warnings=tuple(warns), sampling_s=sampling_s)


from slt.exact import rrr_lambda  # noqa: E402,F401  (moved to slt.exact; re-exported here)
