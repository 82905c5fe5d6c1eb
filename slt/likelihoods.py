"""Likelihoods: the exact per-sample negative log likelihood ``L_n``, label checks and draws,
and the output-space Hessian the Fisher information needs.

Conventions (science.md), with ``z = f(x, w)`` the network's output:

    gaussian     L_n = (d_out/2) log(2 pi sigma^2) + (1/(2 n sigma^2)) sum_i ||y_i - z_i||^2
                 H   = I / sigma^2
    bernoulli    L_n = (1/n) sum_i [log(1 + e^{z_i}) - y_i z_i]            (d_out = 1, y in {0, 1})
                 H   = p (1 - p),   p = sigmoid(z)
    categorical  L_n = (1/n) sum_i [logsumexp(z_i) - z_{i, y_i}]         (y in {0..d_out-1})
                 H   = diag(p) - p p^T,   p = softmax(z)

No constant is dropped: free energies stay comparable with closed forms and references.
``I(w) = E_x[J^T H J]`` with ``J = d z / d w`` (:mod:`slt.estimators.fisher`).

Targets are stored as float arrays ``y`` of shape (n, d_out) (gaussian) or (n, 1) (labels, as
exact small integers in floating point), so every problem slices, shards and pads alike.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

LIKELIHOODS = ("gaussian", "bernoulli", "categorical")


def check_name(likelihood: str) -> None:
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {likelihood!r}")


def target_width(likelihood: str, d_out: int) -> int:
    """Columns of ``y``: ``d_out`` for regression, one label column for classification."""
    return d_out if likelihood == "gaussian" else 1


def label_problem(likelihood: str, y: np.ndarray, d_out: int) -> str | None:
    """Why ``y`` does not fit the likelihood (one line), or None.

    ``y`` must already be 2-D (n, target_width)."""
    check_name(likelihood)
    y = np.asarray(y)
    if likelihood == "gaussian":
        return None
    if likelihood == "bernoulli" and d_out != 1:
        return f"bernoulli needs a network with one output (the logit), got d_out = {d_out}"
    if likelihood == "categorical" and d_out < 2:
        return f"categorical needs d_out >= 2 classes, got d_out = {d_out}"
    if y.ndim != 2 or y.shape[1] != 1:
        return f"{likelihood} labels must be one column (n,) or (n, 1), got shape {list(y.shape)}"
    if not np.all(np.isfinite(y)):
        return "labels contain NaN or inf"
    if np.any(y != np.round(y)):
        i = int(np.argmax((y != np.round(y)).ravel()))
        return f"labels must be integers, found {y.ravel()[i]!r} (row {i})"
    top = 1 if likelihood == "bernoulli" else d_out - 1
    bad = (y < 0) | (y > top)
    if np.any(bad):
        i = int(np.argmax(bad.ravel()))
        return (f"{likelihood} labels must lie in 0..{top}" + (f" (d_out = {d_out} classes)" if likelihood
                == "categorical" else "") + f", found {y.ravel()[i]:g} (row {i})")
    return None


def mean_nll(likelihood: str, z: jax.Array, y: jax.Array, noise_std) -> jax.Array:
    """``L_n``: the mean over the leading axis of the exact negative log likelihood.

    ``z`` (n, d_out) network outputs, ``y`` (n, d_out) or (n, 1) targets (see module doc)."""
    if likelihood == "gaussian":
        s2 = noise_std ** 2
        resid = y - z
        return 0.5 * y.shape[-1] * jnp.log(2 * jnp.pi * s2) + 0.5 * jnp.mean(jnp.sum(resid ** 2, axis=-1)) / s2
    if likelihood == "bernoulli":
        z = z[..., 0]
        return jnp.mean(jax.nn.softplus(z) - y[..., 0] * z)
    if likelihood == "categorical":
        idx = y[..., 0].astype(jnp.int32)
        picked = jnp.take_along_axis(z, idx[..., None], axis=-1)[..., 0]
        return jnp.mean(jax.nn.logsumexp(z, axis=-1) - picked)
    raise ValueError(f"unknown likelihood {likelihood!r}")


def output_hessian(likelihood: str, z: jax.Array, noise_std) -> jax.Array:
    """``H`` (n, d_out, d_out): Hessian of the per-sample negative log likelihood in ``z``
    (the same for every label, so it is the Fisher information of the output)."""
    k = z.shape[-1]
    if likelihood == "gaussian":
        return jnp.broadcast_to(jnp.eye(k, dtype=z.dtype) / noise_std ** 2, z.shape[:-1] + (k, k))
    if likelihood == "bernoulli":
        p = jax.nn.sigmoid(z)
        return (p * (1 - p))[..., None]
    if likelihood == "categorical":
        p = jax.nn.softmax(z, axis=-1)
        return jnp.einsum("...i,ij->...ij", p, jnp.eye(k, dtype=z.dtype)) - p[..., :, None] * p[..., None, :]
    raise ValueError(f"unknown likelihood {likelihood!r}")


def sample_targets(key: jax.Array, likelihood: str, z: jax.Array, noise_std) -> jax.Array:
    """Targets drawn from the model at outputs ``z``: ``z + sigma eps``, Bernoulli(sigmoid z)
    or Categorical(softmax z); labels as floats of shape (n, 1)."""
    if likelihood == "gaussian":
        return z + noise_std * jax.random.normal(key, z.shape, z.dtype)
    if likelihood == "bernoulli":
        return jax.random.bernoulli(key, jax.nn.sigmoid(z[..., 0]))[..., None].astype(z.dtype)
    if likelihood == "categorical":
        return jax.random.categorical(key, z, axis=-1)[..., None].astype(z.dtype)
    raise ValueError(f"unknown likelihood {likelihood!r}")
