"""Finding a point w*: minimise L_n with optax (Adam, then L-BFGS), and screened chain starts.

Which point a config section names (``at: truth | trained | params``) is stage code:
:func:`slt.pipeline.stages.point.resolve_point`."""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from slt.posterior import Problem, problem_loss


class TrainResult(NamedTuple):
    w: jax.Array            # (d,) final flat parameters
    loss: float             # L_n(w)
    grad_norm: float        # ||grad L_n(w)||
    loss_trace: jax.Array   # (steps,) L_n along the optimisation


OPTIMIZERS = {"adam": optax.adam, "sgd": optax.sgd}


def train(key: jax.Array, problem: Problem, steps: int = 3000, learning_rate: float = 0.01,
          init: jax.Array | None = None, optimizer: str = "adam") -> TrainResult:
    """Minimise ``L_n`` with Adam (or plain gradient descent, ``optimizer="sgd"``: full-batch)
    from ``init`` (default a N(0, prior_std^2) draw), then polish with L-BFGS so the gradient
    norm is small enough for the LLC's ``L_n(w*)`` baseline."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
    w0 = (problem.prior_std * jax.random.normal(key, (problem.d,), problem.x.dtype)
          if init is None else jnp.asarray(init, problem.x.dtype))
    return minimise(problem_loss, problem, w0, steps, learning_rate, optimizer)


def _adam(objective, w0: jax.Array, steps: int, learning_rate,
          optimizer: str = "adam") -> tuple[jax.Array, jax.Array]:
    """``steps`` Adam (or ``optimizer``) steps on ``objective`` from ``w0`` in one ``lax.scan``;
    returns the final point and the objective along the way (traceable: call it inside jit/vmap)."""
    opt = OPTIMIZERS[optimizer](learning_rate)

    def step(carry, _):
        w, state = carry
        value, g = jax.value_and_grad(objective)(w)
        updates, state = opt.update(g, state, w)
        return (optax.apply_updates(w, updates), state), value

    (w, _), trace = jax.lax.scan(step, (w0, opt.init(w0)), None, length=steps)
    return w, trace


def train_batch(problems: Problem, init: jax.Array, steps: int = 3000, learning_rate: float = 0.01,
                optimizer: str = "adam") -> TrainResult:
    """:func:`train` for K problems of the same shapes at once (their data stacked on a leading
    axis, e.g. equal-size data subsets: ``slt.estimators.llc_batch.stack``), from ``init`` (K, d):
    :func:`minimise_batch` of ``L_n``. Member k equals ``train(..., problems[k], init=init[k])`` up
    to float rounding."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
    return minimise_batch(problem_loss, problems, jnp.asarray(init, problems.x.dtype), steps, learning_rate,
                          optimizer)


def _fit(objective, w0: jax.Array, steps: int, learning_rate, optimizer: str = "adam") -> TrainResult:
    w, trace = _adam(objective, w0, steps, learning_rate, optimizer)
    lbfgs = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)

    def lbfgs_step(carry, _):
        w, state = carry
        value, g = value_and_grad(w, state=state)
        updates, state = lbfgs.update(g, state, w, value=value, grad=g, value_fn=objective)
        return (optax.apply_updates(w, updates), state), None

    (w, _), _ = jax.lax.scan(lbfgs_step, (w, lbfgs.init(w)), None, length=200)
    loss, g = jax.value_and_grad(objective)(w)
    return TrainResult(w, loss, jnp.linalg.norm(g), trace)


@jax.jit(static_argnames=("loss_fn", "steps", "optimizer"))
def minimise(loss_fn, data, w0: jax.Array, steps: int, learning_rate, optimizer: str = "adam") -> TrainResult:
    """:func:`train`'s optimiser (``steps`` Adam steps, then 200 L-BFGS steps) on any
    ``loss_fn(w, data)`` from ``w0``: one compiled program per loss function, the data an
    argument (e.g. a linear network's sufficient statistics, whose cost does not grow with n)."""
    return _fit(lambda w: loss_fn(w, data), w0, steps, learning_rate, optimizer)


@jax.jit(static_argnames=("loss_fn", "steps", "optimizer"))
def minimise_batch(loss_fn, data, w0: jax.Array, steps: int, learning_rate, optimizer: str = "adam") -> TrainResult:
    """:func:`minimise` for K members at once (``data``'s leaves and ``w0`` (K, d) stacked on a
    leading axis): one compiled program, ``vmap``-ed (on CPU a sequential ``lax.map``,
    :func:`slt.samplers.llc_chains.batch_map`: its vmapped L-BFGS line searches took 1.5x as long
    to compile); the fields of the result carry the leading K axis."""
    from slt.samplers.llc_chains import batch_map  # vmap, or on CPU a sequential lax.map (cheaper to compile)

    def one(d, w):
        return _fit(lambda v: loss_fn(v, d), w, steps, learning_rate, optimizer)

    return batch_map(one, (0, 0))(data, w0)


@jax.jit(static_argnames=("loss_fn",))
def loss_and_grad_norm(loss_fn, data, w: jax.Array):
    """``(loss_fn(w, data), ||grad||)`` in one compiled program per loss function."""
    loss, g = jax.value_and_grad(loss_fn)(w, data)
    return loss, jnp.linalg.norm(g)


class ScreenResult(NamedTuple):
    starts: jax.Array        # (num_chains, d) the chosen start of every chain
    candidate_loss: jax.Array  # (num_chains, num_candidates) L_n of every optimised candidate
    chosen: jax.Array        # (num_chains,) index of the chosen candidate


def screened_starts(key: jax.Array, problem: Problem, num_chains: int, beta=1.0,
                    num_candidates: int = 16, steps: int = 500,
                    learning_rate: float = 0.05) -> ScreenResult:
    """Chain starts in the posterior's main basin: for each chain, draw ``num_candidates``
    points from the prior, run ``steps`` Adam steps on the tempered potential
    ``U(w) / (n beta) = L_n(w) - log phi(w) / (n beta)`` from each, and keep the lowest.

    Why: from a single dispersed start NUTS gets trapped in a local mode of a neural-network
    posterior for the whole run (~1 chain in 6 on the headline ReLU posterior), and one trapped
    chain collapses ESS and R-hat. Local modes whose potential is many nats above the best
    one carry negligible posterior mass, so starting every chain at its own best-of-K point
    removes the trap without biasing the draws (warmup still moves every chain off its
    optimum; the starts differ between chains because every chain has its own candidates).
    Cost: ``num_chains * num_candidates * steps`` gradients, a few percent of a NUTS run.
    """
    dtype = problem.x.dtype
    w0 = problem.prior_std * jax.random.normal(key, (num_chains, num_candidates, problem.d), dtype)
    w, loss, potential = _screen(problem, w0, jnp.asarray(beta, dtype), steps,
                                 jnp.asarray(learning_rate, dtype))
    chosen = jnp.argmin(jnp.where(jnp.isfinite(potential), potential, jnp.inf), axis=1)
    starts = jnp.take_along_axis(w, chosen[:, None, None], axis=1)[:, 0]
    return ScreenResult(starts, loss, chosen)


@jax.jit(static_argnames=("steps",))
def _screen(problem: Problem, w0: jax.Array, beta, steps: int, learning_rate):
    """Optimise every candidate of ``w0`` (chains, candidates, d); returns the optimised points,
    their L_n and their scaled potential."""
    scale = 1.0 / (problem.n * beta)

    def potential(w):
        return problem.loss(w) - scale * problem.log_prior(w)

    def run_one(w):
        w, _ = _adam(potential, w, steps, learning_rate)
        return w, problem.loss(w), potential(w)

    return jax.vmap(jax.vmap(run_one))(w0)
