"""Synthetic data from a truth network, and user data from ``.npz``/``.csv`` files.

``x ~ uniform(low, high)^d_in`` or ``normal(0, std^2)``; ``y = f(x, w0) + noise_std * eps``.
All randomness comes from an explicit key; the same key gives the same data.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from slt import models


class Dataset(NamedTuple):
    """Inputs ``x`` (n, d_in) and targets ``y`` (n, d_out)."""

    x: jax.Array
    y: jax.Array

    @property
    def n(self) -> int:
        return int(self.x.shape[0])


def sample_inputs(key: jax.Array, n: int, d_in: int, dist: str = "uniform", low: float = -1.0,
                  high: float = 1.0, std: float = 1.0) -> jax.Array:
    """Draw ``n`` inputs of dimension ``d_in``."""
    if dist == "uniform":
        return jax.random.uniform(key, (n, d_in), minval=low, maxval=high)
    if dist == "normal":
        return std * jax.random.normal(key, (n, d_in))
    raise ValueError(f"unknown input distribution {dist!r}")


def synthesize(key: jax.Array, truth_spec: models.MLP, truth_params, n: int, noise_std: float,
               likelihood: str = "gaussian", **x_kwargs) -> Dataset:
    """``n`` pairs from the truth: ``y = f(x, w0) + noise_std * N(0, 1)`` (gaussian), or labels
    drawn from the truth's probabilities ``sigmoid(f)`` (bernoulli) / ``softmax(f)`` (categorical)."""
    from slt import likelihoods

    key_x, key_eps = jax.random.split(key)
    x = sample_inputs(key_x, n, truth_spec.d_in, **x_kwargs)
    out = models.apply(truth_spec, truth_params, x)
    if likelihood == "gaussian":   # the draw every earlier run made: keep it bit-identical
        return Dataset(x, out + noise_std * jax.random.normal(key_eps, out.shape))
    return Dataset(x, likelihoods.sample_targets(key_eps, likelihood, out, noise_std))


class DataFileError(ValueError):
    """A data file that cannot be used (missing, wrong shape, non-finite)."""


def load(path: str | Path, d_in: int, d_out: int, n: int | None = None,
         likelihood: str = "gaussian") -> Dataset:
    """Load ``x, y`` from ``.npz`` (arrays ``x`` (n, d_in), ``y`` (n, d_out)) or ``.csv``
    (first ``d_in`` columns are x, the rest y; a non-numeric first row is a header).
    Classification (``likelihood`` bernoulli/categorical): ``y`` is one column of integer labels
    (0/1, or 0..d_out-1). With ``n`` given, keep the first ``n`` rows."""
    from slt import likelihoods

    d_model_out, d_out = d_out, likelihoods.target_width(likelihood, d_out)
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"data file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path) as f:
                if "x" not in f or "y" not in f:
                    raise DataFileError(f"data file {str(path)!r} must hold arrays 'x' and 'y', "
                                        f"found {sorted(f.files)}")
                x, y = np.asarray(f["x"], float), np.asarray(f["y"], float)
            if x.ndim == 1:
                x = x[:, None]
            if y.ndim == 1:
                y = y[:, None]
        elif suffix == ".csv":
            table = _read_csv(path)
            if table.shape[1] != d_in + d_out:
                raise DataFileError(f"data file {str(path)!r} has {table.shape[1]} columns, expected "
                                    f"d_in + d_out = {d_in} + {d_out} = {d_in + d_out}")
            x, y = table[:, :d_in], table[:, d_in:]
        else:
            raise DataFileError(f"data file {str(path)!r}: unsupported suffix {suffix!r} "
                                "(use .npz or .csv)")
    except DataFileError:
        raise
    except Exception as exc:  # corrupt archive, unreadable text...
        raise DataFileError(f"data file {str(path)!r} could not be read: {exc}") from None
    if x.ndim != 2 or x.shape[1] != d_in:
        raise DataFileError(f"data file {str(path)!r}: x has shape {list(x.shape)}, expected (n, {d_in})")
    if y.ndim != 2 or y.shape[1] != d_out:
        what = "" if likelihood == "gaussian" else f" (one column of {likelihood} labels)"
        raise DataFileError(f"data file {str(path)!r}: y has shape {list(y.shape)}, expected (n, {d_out}){what}")
    if x.shape[0] != y.shape[0]:
        raise DataFileError(f"data file {str(path)!r}: x has {x.shape[0]} rows but y has {y.shape[0]}")
    if x.shape[0] == 0:
        raise DataFileError(f"data file {str(path)!r} holds no rows")
    if n is not None:
        if n > x.shape[0]:
            raise DataFileError(f"data.n = {n} but data file {str(path)!r} has only {x.shape[0]} rows")
        x, y = x[:n], y[:n]
    bad = ~(np.all(np.isfinite(x), axis=1) & np.all(np.isfinite(y), axis=1))
    if bad.any():
        raise DataFileError(f"data file {str(path)!r}: {int(bad.sum())} rows contain NaN or inf "
                            f"(first at row {int(np.argmax(bad))})")
    why = likelihoods.label_problem(likelihood, y, d_model_out)
    if why:
        raise DataFileError(f"data file {str(path)!r}: {why}")
    return Dataset(jnp.asarray(x), jnp.asarray(y))


def _read_csv(path: Path) -> np.ndarray:
    text = path.read_text()
    if not text.strip():
        raise DataFileError(f"data file {str(path)!r} is empty")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    try:
        [float(v) for v in lines[0].split(",")]
    except ValueError:
        lines = lines[1:]  # header row
    try:
        rows = [[float(v) for v in ln.split(",")] for ln in lines]
    except ValueError as exc:
        raise DataFileError(f"data file {str(path)!r}: non-numeric entry ({exc})") from None
    if not rows:
        raise DataFileError(f"data file {str(path)!r} holds no rows")
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise DataFileError(f"data file {str(path)!r}: rows have differing column counts {sorted(widths)}")
    return np.asarray(rows, dtype=float)
