"""The empirical loss, the prior, and the tempered and localised log densities.

Conventions (science.md)::

    L_n(w)   = (d_out/2) log(2 pi sigma^2) + 1/(2 n sigma^2) sum_i ||y_i - f(x_i, w)||^2
    log phi  = -(d/2) log(2 pi s^2) - ||w||^2 / (2 s^2)
    tempered:  log p_beta(w)  = log phi(w) - n beta L_n(w)                       (+ const)
    localised: log p(w | w*)  = -nbeta L_n(w) - (gamma/2) ||w - w*||^2            (+ const)

``L_n`` for the classification likelihoods is in :mod:`slt.likelihoods`.

A :class:`Problem` is a pytree: its arrays (``x``, ``y``, ``noise_std``, ``prior_std``) are
traced, its model and likelihood are static, so one compiled program serves every data set of the
same shape, every ``beta`` and every ``n``-dependent scalar passed as an argument.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from slt import likelihoods, models
from slt.data import Dataset
from slt.kernels.integrators import State


@dataclasses.dataclass(frozen=True)
class Problem:
    """A model (any network over a flat parameter vector), a likelihood, a Gaussian prior, and
    the data.

    ``model`` is an :class:`slt.models.MLP` (the config's ``widths`` family) or an
    :class:`slt.models.FunctionModel` (any ``apply_fn(params, x)``); both expose
    ``apply_flat(w, x)``, ``d``, ``d_in``, ``d_out``, ``ravel``/``unravel``. ``likelihood`` is
    one of :data:`slt.likelihoods.LIKELIHOODS`.
    """

    model: object
    x: jax.Array
    y: jax.Array
    noise_std: jax.Array
    prior_std: jax.Array
    likelihood: str = "gaussian"

    @classmethod
    def make(cls, model, data: Dataset, noise_std: float = 1.0, prior_std: float = 1.0,
             likelihood: str = "gaussian") -> "Problem":
        """Validate and build: raises ``ValueError`` naming the problem when the likelihood does
        not exist, the targets do not fit it, or the model's output does not match ``y``."""
        import numpy as np

        likelihoods.check_name(likelihood)
        dtype = jnp.result_type(float)
        x = jnp.asarray(data.x, dtype)
        y = np.asarray(data.y, dtype=np.float64)
        if y.ndim == 1:
            y = y[:, None]
        if x.ndim != 2 or x.shape[0] != y.shape[0]:
            raise ValueError(f"x must be (n, d_in) with as many rows as y; got x {list(x.shape)}, "
                             f"y {list(y.shape)}")
        if x.shape[1] != model.d_in:
            raise ValueError(f"x has {x.shape[1]} columns but the model takes d_in = {model.d_in} inputs")
        why = likelihoods.label_problem(likelihood, y, model.d_out)
        if why:
            raise ValueError(why)
        width = likelihoods.target_width(likelihood, model.d_out)
        if y.shape[1] != width:
            raise ValueError(f"the model has d_out = {model.d_out} outputs; a {likelihood} likelihood "
                             f"needs y of shape (n, {width}), got {list(y.shape)}")
        return cls(model, x, jnp.asarray(y, dtype), jnp.asarray(noise_std, dtype),
                   jnp.asarray(prior_std, dtype), likelihood)

    @classmethod
    def from_function(cls, apply_fn, params, x, y, *, likelihood: str = "gaussian",
                      noise_std: float = 1.0, prior_std: float = 1.0) -> "Problem":
        """Any JAX network ``apply_fn(params, x) -> (n, d_out)`` (a plain function, a Flax
        module's ``apply``, an Equinox module's partition) with its data. ``params`` fixes the
        parameter pytree's structure (its values are only an example)."""
        model, _ = models.function_model(apply_fn, params, x)
        return cls.make(model, Dataset(x, y), noise_std, prior_std, likelihood)

    @property
    def spec(self):
        """The :class:`slt.models.MLP` spec, or None for any other model."""
        return self.model if isinstance(self.model, models.MLP) else None

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    @property
    def d(self) -> int:
        return int(self.model.d)

    def ravel(self, params) -> jax.Array:
        """The flat parameter vector of a parameter pytree (the samplers' ``w``)."""
        return jnp.asarray(self.model.ravel(params), self.x.dtype)

    def unravel(self, w: jax.Array):
        return self.model.unravel(w)

    # -- densities on the flat parameter vector ---------------------------------------
    def predict(self, w: jax.Array, x: jax.Array | None = None) -> jax.Array:
        return self.model.apply_flat(w, self.x if x is None else x)

    def loss(self, w: jax.Array) -> jax.Array:
        """L_n(w), the per-sample negative log likelihood, constant included."""
        return self.loss_on(w, self.x, self.y)

    def loss_on(self, w: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
        """L_n(w) on other data of the same kind (a minibatch, a subset)."""
        return likelihoods.mean_nll(self.likelihood, self.model.apply_flat(w, x), y, self.noise_std)

    def with_data(self, x: jax.Array, y: jax.Array) -> "Problem":
        return dataclasses.replace(self, x=x, y=y)

    def log_prior(self, w: jax.Array) -> jax.Array:
        s2 = self.prior_std ** 2
        return -0.5 * jnp.sum(w ** 2) / s2 - 0.5 * w.shape[-1] * jnp.log(2 * jnp.pi * s2)

    def logdensity(self, w: jax.Array, beta: jax.Array | float = 1.0) -> jax.Array:
        """Unnormalised tempered log posterior ``log phi(w) - n beta L_n(w)``."""
        return tempered_logdensity(problem_log_prior, problem_loss, w, self, self.n, beta)[0]

    def localized_logdensity(self, w: jax.Array, w_star: jax.Array, nbeta: jax.Array | float,
                             gamma: jax.Array | float) -> jax.Array:
        """``-nbeta L_n(w) - (gamma/2) ||w - w*||^2`` (Lau et al. 2023, the LLC's posterior)."""
        return localized_target(problem_loss, self, w_star, nbeta, gamma)(w).logdensity


jax.tree_util.register_dataclass(Problem, data_fields=["x", "y", "noise_std", "prior_std"],
                                 meta_fields=["model", "likelihood"])


# ----------------------------------------------------------------------------- the two targets (every sampler's)
def problem_loss(w: jax.Array, problem: Problem) -> jax.Array:
    """``L_n`` of a :class:`Problem` as a generic ``loss_fn(w, data)`` (module-level: a cache key)."""
    return problem.loss(w)


def problem_log_prior(w: jax.Array, problem: Problem) -> jax.Array:
    return problem.log_prior(w)


def tempered_logdensity(log_prior_fn, loss_fn, w, data, n, beta):
    """``(log phi(w) - n beta L_n(w), L_n(w))``: the tempered posterior, unnormalised."""
    loss = loss_fn(w, data)
    return log_prior_fn(w, data) - n * beta * loss, loss


def tempered_target(log_prior_fn, loss_fn, data, n, beta):
    """The tempered posterior as a kernel target ``position -> State`` (one value-and-grad pass)."""
    def target(w):
        (logdensity, loss), grad = jax.value_and_grad(
            lambda v: tempered_logdensity(log_prior_fn, loss_fn, v, data, n, beta), has_aux=True)(w)
        return State(w, logdensity, grad, loss)

    return target


def localized_target(loss_fn, data, w_star, nbeta, gamma):
    """The localised posterior (Lau et al. 2023, arXiv:2308.12108) as a kernel target::

        log pi(w) = -nbeta L(w) - (gamma/2) ||w - w*||^2

    ``position -> State``, the Gaussian part's gradient written out (one value-and-grad of L)."""
    def target(w):
        loss, grad_loss = jax.value_and_grad(loss_fn)(w, data)
        diff = w - w_star
        return State(w, -nbeta * loss - 0.5 * gamma * jnp.vdot(diff, diff), -nbeta * grad_loss - gamma * diff,
                     loss)

    return target


def resolve_beta(beta: float | str, n: int) -> float:
    """A number, or ``"wbic"`` meaning ``1 / log n`` (Watanabe 2013)."""
    if isinstance(beta, str):
        if beta != "wbic":
            raise ValueError(f"beta must be a positive number or 'wbic', got {beta!r}")
        if n < 2:
            raise ValueError("beta: wbic needs n >= 2 (1/log n)")
        return 1.0 / math.log(n)
    return float(beta)


# ----------------------------------------------------------------------------- linear models
@dataclasses.dataclass(frozen=True)
class LinearStats:
    """Sufficient statistics of a linear-Gaussian model's ``L_n`` (any depth, identity activation).

    A network with identity activations is affine in x: ``f(x, w) = B(w) x~``, ``x~ = (x, 1)``
    (the 1 only with biases). Then, exactly,

        L_n(w) = L_n(w_ls) + (1/(2 sigma^2)) tr[(B(w) - B_ls) S (B(w) - B_ls)^T],

    ``S = X~^T X~ / n`` and ``B_ls`` the least-squares matrix: ``L_n`` costs O(d) instead of
    O(n d), the same for n = 1e4 or 1e6. Written around ``B_ls`` (not as ``Syy - 2 tr(B Sxy) +
    ...``) so that float32 keeps the small differences ``L_n(w) - L_n(w*)`` the LLC averages.
    """

    spec: models.MLP
    basis: jax.Array       # (d_in + 1, d_in): rows 0 and e_1..e_d_in, to read B(w) off the network
    b_ls: jax.Array        # (d_out, d_in [+1])
    s_half: jax.Array      # (d_in [+1], d_in [+1]) Cholesky-type factor: S = s_half s_half^T
    loss_ls: jax.Array     # L_n(B_ls)
    noise_std: jax.Array


jax.tree_util.register_dataclass(LinearStats, data_fields=["basis", "b_ls", "s_half", "loss_ls", "noise_std"],
                                 meta_fields=["spec"])


def is_linear(spec) -> bool:
    """An :class:`MLP` that is affine in x (identity activations, or no hidden layer)."""
    return isinstance(spec, models.MLP) and (spec.activation == "identity" or spec.num_layers == 1)


def has_linear_stats(problem: "Problem") -> bool:
    """Whether :func:`linear_stats` applies: a Gaussian likelihood on an affine network."""
    return problem.likelihood == "gaussian" and is_linear(problem.model)


def linear_stats(problem: Problem) -> LinearStats:
    """:class:`LinearStats` of a problem whose network is linear (float64 on the host)."""
    import numpy as np

    if not has_linear_stats(problem):
        raise ValueError("linear_stats: needs a Gaussian likelihood and identity activations")
    x = np.asarray(problem.x, np.float64)
    y = np.asarray(problem.y, np.float64)
    n, d_in = x.shape
    xt = np.concatenate([x, np.ones((n, 1))], axis=1) if problem.spec.bias else x
    s = xt.T @ xt / n
    b_ls = np.linalg.lstsq(xt, y, rcond=None)[0].T
    resid = y - xt @ b_ls.T
    s2 = float(problem.noise_std) ** 2
    loss_ls = 0.5 * y.shape[1] * math.log(2 * math.pi * s2) + 0.5 * np.mean(np.sum(resid ** 2, 1)) / s2
    evals, evecs = np.linalg.eigh(s)
    s_half = evecs * np.sqrt(np.clip(evals, 0, None))
    dtype = problem.x.dtype
    basis = np.concatenate([np.zeros((1, d_in)), np.eye(d_in)], axis=0)
    return LinearStats(problem.spec, jnp.asarray(basis, dtype), jnp.asarray(b_ls, dtype),
                       jnp.asarray(s_half, dtype), jnp.asarray(loss_ls, dtype), problem.noise_std)


def linear_loss(w: jax.Array, stats: LinearStats) -> jax.Array:
    """``L_n(w)`` from :class:`LinearStats` (exactly :meth:`Problem.loss` for a linear network)."""
    out = models.apply_flat(stats.spec, w, stats.basis)          # (d_in + 1, d_out)
    c = out[0]
    b = (out[1:] - c).T                                           # (d_out, d_in)
    if stats.spec.bias:
        b = jnp.concatenate([b, c[:, None]], axis=1)
    r = (b - stats.b_ls) @ stats.s_half
    return stats.loss_ls + 0.5 * jnp.sum(r * r) / stats.noise_std ** 2
