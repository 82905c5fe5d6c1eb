"""Feed-forward networks as pure functions over parameter pytrees.

A network is described by a hashable :class:`MLP` spec (``widths``, ``activation``,
``bias``) and its parameters are a list of layers ``[{"W": (out, in), "b": (out,)}, ...]``
(``b`` absent when ``bias`` is false). No activation is applied on the output layer.

Samplers and estimators work on the *flat* parameter vector ``w`` of length ``d``
(:func:`flatten` / :func:`unflatten`); the order is layer by layer, ``W`` row-major then
``b``. For the headline network ``[2, 2, 1]`` this is ``(w1, w2, b1, b2, q1, q2, c)``::

    f(x, w) = q1 ReLU(<w1, x> + b1) + q2 ReLU(<w2, x> + b2) + c
"""
from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

ACTIVATIONS = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "identity": lambda z: z,
}

Params = list  # list[dict[str, Array]]


class MLP(NamedTuple):
    """Static description of a feed-forward network (hashable: usable as a jit static arg)."""

    widths: tuple[int, ...]
    activation: str = "relu"
    bias: bool = True

    @property
    def d_in(self) -> int:
        return self.widths[0]

    @property
    def d_out(self) -> int:
        return self.widths[-1]

    @property
    def num_layers(self) -> int:
        return len(self.widths) - 1

    @property
    def d(self) -> int:
        return num_params(self)

    def apply_flat(self, w: jax.Array, x: jax.Array) -> jax.Array:
        """``f(x, w)`` with ``w`` the flat parameter vector (the interface every model shares)."""
        return apply(self, unflatten(self, w), x)

    def ravel(self, params) -> jax.Array:
        return flatten(params)

    def unravel(self, w: jax.Array):
        return unflatten(self, w)

    @property
    def shapes(self) -> list[dict[str, tuple[int, ...]]]:
        out = []
        for fan_in, fan_out in zip(self.widths[:-1], self.widths[1:]):
            layer = {"W": (fan_out, fan_in)}
            if self.bias:
                layer["b"] = (fan_out,)
            out.append(layer)
        return out


def make_mlp(widths: Sequence[int], activation: str = "relu", bias: bool = True) -> MLP:
    """Build a validated :class:`MLP` spec."""
    widths = tuple(int(w) for w in widths)
    if len(widths) < 2 or any(w < 1 for w in widths):
        raise ValueError(f"widths must list at least 2 positive sizes, got {list(widths)}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    return MLP(widths, activation, bool(bias))


def num_params(spec: MLP) -> int:
    """Parameter count d = sum over layers of out*in (+ out with biases)."""
    return sum(int(np.prod(s)) for layer in spec.shapes for s in layer.values())


def init(key: jax.Array, spec: MLP, std: float = 1.0) -> Params:
    """Draw every parameter i.i.d. N(0, std^2) (the prior's draw when std = prior_std)."""
    w = std * jax.random.normal(key, (num_params(spec),))
    return unflatten(spec, w)


def apply(spec: MLP, params: Params, x: jax.Array) -> jax.Array:
    """Network output ``f(x, w)`` for inputs ``x`` of shape (..., d_in) -> (..., d_out)."""
    act = ACTIVATIONS[spec.activation]
    h = x
    last = len(params) - 1
    for i, layer in enumerate(params):
        h = h @ layer["W"].T
        if "b" in layer:
            h = h + layer["b"]
        if i < last:
            h = act(h)
    return h


def flatten(params: Params) -> jax.Array:
    """Concatenate the layers' ``W`` (row-major) and ``b`` into one vector of length d."""
    parts = []
    for layer in params:
        parts.append(jnp.ravel(layer["W"]))
        if "b" in layer:
            parts.append(jnp.ravel(layer["b"]))
    return jnp.concatenate(parts)


def unflatten(spec: MLP, w: jax.Array) -> Params:
    """Inverse of :func:`flatten`; ``w`` may carry leading batch axes (..., d)."""
    batch = w.shape[:-1]
    out, i = [], 0
    for shapes in spec.shapes:
        layer = {}
        for name, shape in shapes.items():
            size = int(np.prod(shape))
            layer[name] = w[..., i:i + size].reshape(batch + shape)
            i += size
        out.append(layer)
    return out


def apply_flat(spec: MLP, w: jax.Array, x: jax.Array) -> jax.Array:
    """``f(x, w)`` with ``w`` the flat parameter vector."""
    return apply(spec, unflatten(spec, w), x)


def params_from_lists(spec: MLP, layers: Sequence[dict]) -> Params:
    """Parameters from nested lists (YAML ``params``), checking every shape against ``spec``."""
    if len(layers) != spec.num_layers:
        raise ValueError(f"expected {spec.num_layers} layers for widths {list(spec.widths)}, "
                         f"got {len(layers)}")
    out = []
    for i, (layer, shapes) in enumerate(zip(layers, spec.shapes)):
        extra = set(layer) - set(shapes)
        if extra:
            raise ValueError(f"layer {i}: unexpected keys {sorted(extra)} (bias={spec.bias})")
        arrays = {}
        for name, shape in shapes.items():
            if name not in layer:
                raise ValueError(f"layer {i}: missing {name!r}")
            a = np.asarray(layer[name], dtype=float)
            if a.shape != shape:
                raise ValueError(f"layer {i}: {name} has shape {list(a.shape)}, expected {list(shape)}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"layer {i}: {name} has non-finite entries")
            arrays[name] = jnp.asarray(a)
        out.append(arrays)
    return out


def params_to_lists(params: Params) -> list[dict]:
    """Plain nested lists (for YAML/JSON)."""
    return [{k: np.asarray(v).tolist() for k, v in layer.items()} for layer in params]


def embed(truth_spec: MLP, truth_params: Params, spec: MLP) -> Params:
    """Embed a truth network into a (wider) model: extra hidden units get zero weights.

    Requires the same depth, activation, ``d_in`` and ``d_out``, and hidden widths of the
    truth no larger than the model's. A truth without biases embeds with zero biases; a truth
    with biases into a model without them is only possible when they are zero.
    The embedded point computes exactly the truth's function, so it lies in the true set.
    """
    if truth_spec.num_layers != spec.num_layers:
        raise ValueError(f"truth depth {truth_spec.num_layers} != model depth {spec.num_layers}")
    if truth_spec.d_in != spec.d_in or truth_spec.d_out != spec.d_out:
        raise ValueError(f"truth widths {list(truth_spec.widths)} must share d_in and d_out with "
                         f"model widths {list(spec.widths)}")
    if any(t > m for t, m in zip(truth_spec.widths, spec.widths)):
        raise ValueError(f"truth widths {list(truth_spec.widths)} exceed model widths "
                         f"{list(spec.widths)}")
    if truth_spec.num_layers > 1 and truth_spec.activation != spec.activation:
        raise ValueError(f"truth activation {truth_spec.activation!r} differs from the model's "
                         f"{spec.activation!r}: the truth cannot be embedded")
    out = []
    for layer, shapes in zip(truth_params, spec.shapes):
        W = jnp.zeros(shapes["W"]).at[: layer["W"].shape[0], : layer["W"].shape[1]].set(layer["W"])
        new = {"W": W}
        if spec.bias:
            b = jnp.zeros(shapes["b"])
            if "b" in layer:
                b = b.at[: layer["b"].shape[0]].set(layer["b"])
            new["b"] = b
        elif "b" in layer and bool(jnp.any(layer["b"] != 0)):
            raise ValueError("truth has non-zero biases but the model has bias: false")
        out.append(new)
    return out


def deep_linear_truth(key: jax.Array, widths: Sequence[int], rank: int, std: float = 1.0):
    """A deep linear network truth whose product matrix has rank ``rank`` (Aoyagi 2024's
    setting; Lau et al. 2023, Furman & Lau 2024 benchmark the LLC on it).

    Returns ``(truth_spec, truth_params, w0)``: the truth as a narrow network
    ``[H_1, r, ..., r, H_{L+1}]`` with N(0, std^2) weights (rank 0: the zero function, the
    model itself with zero weights), and ``w0`` its embedding in the model ``widths`` (identity
    activations, no biases; extra hidden units zero)."""
    spec = make_mlp(widths, "identity", False)
    if not 0 <= rank <= min(widths):
        raise ValueError(f"rank must be in [0, {min(widths)}], got {rank}")
    if rank == 0:
        params = unflatten(spec, jnp.zeros(num_params(spec)))
        return spec, params, flatten(params)
    tspec = make_mlp([widths[0]] + [rank] * (len(widths) - 2) + [widths[-1]], "identity", False)
    tparams = init(key, tspec, std)
    return tspec, tparams, flatten(embed(tspec, tparams, spec))


# ----------------------------------------------------------------------------- any model
@dataclasses.dataclass(frozen=True, eq=False)
class FunctionModel:
    """Any network ``apply_fn(params, x) -> (n, d_out)`` over a parameter pytree.

    The pytree is flattened once (leaves in pytree order, each raveled row-major, as
    ``jax.flatten_util.ravel_pytree`` does, but keeping ``w``'s dtype: float64 Fisher
    matrices of a float32 model stay float64) so every sampler and estimator sees the same flat ``w`` of length ``d`` as for an
    :class:`MLP`. Hashable by identity: one compiled program serves every data set, beta and
    n for the same model object. ``apply_fn`` may return (n,) for one output.
    """

    apply_fn: Callable
    unravel_fn: Callable
    d: int
    d_in: int
    d_out: int
    name: str = "function"

    def apply_flat(self, w: jax.Array, x: jax.Array) -> jax.Array:
        z = self.apply_fn(self.unravel_fn(w), x)
        return z[..., None] if z.ndim == x.ndim - 1 else z

    def ravel(self, params) -> jax.Array:
        return jnp.concatenate([jnp.ravel(a) for a in jax.tree_util.tree_leaves(params)])

    def unravel(self, w: jax.Array):
        return self.unravel_fn(w)


def function_model(apply_fn: Callable, params, x, dtype=None) -> tuple[FunctionModel, jax.Array]:
    """Wrap ``apply_fn(params, x)`` as a :class:`FunctionModel`; returns it and the flat ``params``.

    Raises ``ValueError`` when a leaf of ``params`` is not a floating-point array or the output
    is not (n,) or (n, d_out) for inputs ``x`` of shape (n, d_in)."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    if not leaves:
        raise ValueError("params holds no arrays")
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        if not jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.floating):
            raise ValueError(f"params{jax.tree_util.keystr(path)} has dtype {jnp.asarray(leaf).dtype}; "
                             "every parameter must be a floating-point array")
    dtype = dtype or jnp.result_type(float)
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), params)
    shapes = [jnp.shape(a) for a in jax.tree_util.tree_leaves(params)]
    sizes = [int(np.prod(sh)) for sh in shapes]
    flat = jnp.concatenate([jnp.ravel(a) for a in jax.tree_util.tree_leaves(params)])

    offsets = np.concatenate([[0], np.cumsum(sizes)]).tolist()

    def unravel_fn(w):   # slices, as unflatten does: the same XLA program as an MLP's
        return jax.tree_util.tree_unflatten(
            treedef, [w[offsets[i]:offsets[i + 1]].reshape(sh) for i, sh in enumerate(shapes)])

    x = jnp.asarray(x, dtype)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, d_in), got {list(x.shape)}")
    try:
        out = jax.eval_shape(apply_fn, params, x)
        jax.jit(apply_fn)(params, x[:2])   # a leaked tracer passes eval_shape, not a real call
    except jax.errors.UnexpectedTracerError:
        raise ValueError("apply_fn uses a JAX value traced outside it (it closes over an array of a jit or "
                         "grad that has finished): pass that array as a parameter or a constant") from None
    except Exception as exc:  # the user's function failed on its own parameters
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"apply_fn(params, x) failed: {type(exc).__name__}: {first}") from None
    shape = getattr(out, "shape", None)
    if shape is None or len(shape) not in (1, 2) or shape[0] != x.shape[0]:
        raise ValueError(f"apply_fn(params, x) must return (n,) or (n, d_out) for x of shape "
                         f"{list(x.shape)}, got {getattr(out, 'shape', type(out).__name__)}")
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(f"apply_fn(params, x) must return a real floating-point array, got dtype {out.dtype} "
                         "(an integer or complex output has no useful gradient)")
    d_out = 1 if len(shape) == 1 else int(shape[1])
    name = getattr(apply_fn, "__name__", "function")
    return FunctionModel(apply_fn, unravel_fn, int(flat.shape[0]), int(x.shape[1]), d_out, name), flat


def weight_slices(model) -> dict:
    """``{name: (start, stop)}`` of every named parameter block in the flat vector, in order:
    ``W1, b1, W2, ...`` for an :class:`MLP`; pytree key paths joined by ``.`` for a
    :class:`FunctionModel`."""
    out, start = {}, 0
    if isinstance(model, MLP):
        for l, layer in enumerate(model.shapes, start=1):
            for kind in ("W", "b"):
                if kind in layer:
                    size = int(np.prod(layer[kind]))
                    out[f"{kind}{l}"] = (start, start + size)
                    start += size
        return out
    params = model.unravel(jnp.zeros((model.d,), jnp.float32))
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        name = ".".join(_key_name(k) for k in path)
        size = int(np.prod(jnp.shape(leaf)))
        out[name] = (start, start + size)
        start += size
    return out


def _key_name(k) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)
