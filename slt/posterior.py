"""The empirical loss, the prior, and the tempered and localised log densities.

Conventions (science.md)::

    L_n(w)   = (d_out/2) log(2 pi sigma^2) + 1/(2 n sigma^2) sum_i ||y_i - f(x_i, w)||^2
    log phi  = -(d/2) log(2 pi s^2) - ||w||^2 / (2 s^2)
    tempered:  log p_beta(w)  = log phi(w) - n beta L_n(w)                       (+ const)
    localised: log p(w | w*)  = -nbeta L_n(w) - (gamma/2) ||w - w*||^2            (+ const)

A :class:`Problem` is a pytree: its arrays (``x``, ``y``, ``noise_std``, ``prior_std``) are
traced, its network spec is static, so one compiled program serves every data set of the
same shape, every ``beta`` and every ``n``-dependent scalar passed as an argument.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from slt import models
from slt.data import Dataset


@dataclasses.dataclass(frozen=True)
class Problem:
    """A model (network spec, Gaussian noise, Gaussian prior) together with its data."""

    spec: models.MLP
    x: jax.Array
    y: jax.Array
    noise_std: jax.Array
    prior_std: jax.Array

    @classmethod
    def make(cls, spec: models.MLP, data: Dataset, noise_std: float = 1.0,
             prior_std: float = 1.0) -> "Problem":
        dtype = jnp.result_type(float)
        return cls(spec, jnp.asarray(data.x, dtype), jnp.asarray(data.y, dtype),
                   jnp.asarray(noise_std, dtype), jnp.asarray(prior_std, dtype))

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    @property
    def d(self) -> int:
        return models.num_params(self.spec)

    # -- densities on the flat parameter vector ---------------------------------------
    def predict(self, w: jax.Array, x: jax.Array | None = None) -> jax.Array:
        return models.apply_flat(self.spec, w, self.x if x is None else x)

    def loss(self, w: jax.Array) -> jax.Array:
        """L_n(w), the per-sample negative log likelihood, constant included."""
        return empirical_loss(self.spec, w, self.x, self.y, self.noise_std)

    def log_prior(self, w: jax.Array) -> jax.Array:
        s2 = self.prior_std ** 2
        return -0.5 * jnp.sum(w ** 2) / s2 - 0.5 * w.shape[-1] * jnp.log(2 * jnp.pi * s2)

    def logdensity(self, w: jax.Array, beta: jax.Array | float = 1.0) -> jax.Array:
        """Unnormalised tempered log posterior ``log phi(w) - n beta L_n(w)``."""
        return self.log_prior(w) - self.n * beta * self.loss(w)

    def localized_logdensity(self, w: jax.Array, w_star: jax.Array, nbeta: jax.Array | float,
                             gamma: jax.Array | float) -> jax.Array:
        """``-nbeta L_n(w) - (gamma/2) ||w - w*||^2`` (Lau et al. 2023, the LLC's posterior)."""
        return -nbeta * self.loss(w) - 0.5 * gamma * jnp.sum((w - w_star) ** 2)


jax.tree_util.register_dataclass(Problem, data_fields=["x", "y", "noise_std", "prior_std"],
                                 meta_fields=["spec"])


def empirical_loss(spec: models.MLP, w: jax.Array, x: jax.Array, y: jax.Array,
                   noise_std: jax.Array | float = 1.0) -> jax.Array:
    """``L_n(w)`` for flat parameters ``w`` (science.md; the Gaussian constant included)."""
    resid = y - models.apply_flat(spec, w, x)
    s2 = noise_std ** 2
    return (0.5 * y.shape[-1] * jnp.log(2 * jnp.pi * s2)
            + 0.5 * jnp.mean(jnp.sum(resid ** 2, axis=-1)) / s2)


def resolve_beta(beta: float | str, n: int) -> float:
    """A number, or ``"wbic"`` meaning ``1 / log n`` (Watanabe 2013)."""
    if isinstance(beta, str):
        if beta != "wbic":
            raise ValueError(f"beta must be a positive number or 'wbic', got {beta!r}")
        if n < 2:
            raise ValueError("beta: wbic needs n >= 2 (1/log n)")
        return 1.0 / math.log(n)
    return float(beta)
