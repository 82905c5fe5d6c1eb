"""Typed experiment configs, validated before any work starts.

A config is a YAML mapping; every section is a frozen dataclass below. Validation is
declarative: each field's type annotation (and ``choices``/``check`` metadata) decides what
is accepted; an unknown key suggests the closest valid one. Every problem raises
:class:`ConfigError` whose message is one line naming the key path, e.g.
``sampler.num_chains: must be >= 1, got 0``.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, Optional, Union

import yaml


class ConfigError(ValueError):
    """A config problem, with the dotted key path it concerns."""

    def __init__(self, path: str, message: str):
        self.path, self.message = path, message
        super().__init__(f"{path}: {message}" if path else message)


def _field(default=dataclasses.MISSING, *, choices=None, check=None, doc="", factory=None):
    meta = {"choices": choices, "check": check, "doc": doc}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def positive(v):
    return None if v > 0 else f"must be > 0, got {v}"


def at_least(lo):
    return lambda v: None if v >= lo else f"must be >= {lo}, got {v}"


def non_negative(v):
    return None if v >= 0 else f"must be >= 0, got {v}"


def seed_range(v):
    """Seeds become ``jax.random.key(seed)``, a 64-bit integer."""
    return None if -2**63 <= v < 2**63 else f"must be a 64-bit integer, got {v}"


def _positive_list(v):
    return None if v and all(x >= 1 for x in v) else f"must be a non-empty list of positive integers, got {v}"


# ----------------------------------------------------------------------------- sections
@dataclasses.dataclass(frozen=True)
class ModelConfig:
    widths: Optional[list[int]] = _field(None, check=lambda v: None if len(v) >= 2 and all(x >= 1 for x in v)
                                         else f"must list >= 2 positive layer sizes, got {v}",
                                         doc="[d_in, h_1, ..., d_out] (required; a Python model passed "
                                             "to slt.run replaces it)")
    activation: str = _field("relu", choices=("relu", "tanh", "identity"),
                             doc="hidden-layer activation (none on the output)")
    bias: bool = _field(True, doc="biases on every layer")
    likelihood: str = _field("gaussian", choices=("gaussian", "bernoulli", "categorical"),
                             doc="gaussian: regression (noise_std); bernoulli: 0/1 labels, one output "
                                 "= the logit; categorical: labels 0..d_out-1, softmax over d_out outputs")
    noise_std: float = _field(1.0, check=positive, doc="sigma of the Gaussian likelihood")
    prior_std: float = _field(1.0, check=positive, doc="s of the N(0, s^2) prior on every parameter")


@dataclasses.dataclass(frozen=True)
class RandomTruth:
    seed: int = _field(0, check=seed_range, doc="seed of the truth's parameters")
    std: float = _field(1.0, check=positive, doc="parameters ~ N(0, std^2)")


@dataclasses.dataclass(frozen=True)
class TruthConfig:
    widths: Optional[list[int]] = _field(None, check=lambda v: None if len(v) >= 2 and all(x >= 1 for x in v)
                                         else f"must list >= 2 positive layer sizes, got {v}",
                                         doc="default: the model's widths")
    activation: Optional[str] = _field(None, choices=("relu", "tanh", "identity"),
                                       doc="default: the model's")
    bias: Optional[bool] = _field(None, doc="default: the model's")
    params: Optional[list[dict]] = _field(None, doc="one {W: (out, in), b: (out,)} per layer")
    random: Optional[RandomTruth] = _field(None, doc="draw the truth from a seed instead of params")


@dataclasses.dataclass(frozen=True)
class InputConfig:
    dist: str = _field("uniform", choices=("uniform", "normal"), doc="input distribution")
    low: float = _field(-1.0, doc="uniform lower bound")
    high: float = _field(1.0, doc="uniform upper bound")
    std: float = _field(1.0, check=positive, doc="normal standard deviation")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    n: Optional[int] = _field(None, check=at_least(1), doc="sample size (with file: first n rows)")
    x: InputConfig = _field(factory=InputConfig, doc="input distribution for synthetic data")
    file: Optional[str] = _field(None, doc=".npz (x, y) or .csv; relative to the config file")
    noise_std: Optional[float] = _field(None, check=non_negative,
                                        doc="noise of the synthetic y; default model.noise_std")
    seed: Optional[int] = _field(None, check=seed_range, doc="data seed; default derived from the top-level seed")


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
    method: str = _field("replica", choices=("nuts", "hmc", "replica"),
                         doc="replica exchange (parallel tempering: every chain a ladder of "
                             "num_temperatures betas, fixed-length HMC at each; crosses between "
                             "modes), or numpyro NUTS/HMC (faster where the posterior has one mode)")
    num_chains: int = _field(4, check=at_least(1), doc="chains (vectorised, sharded over devices)")
    num_warmup: int = _field(500, check=non_negative, doc="adaptation iterations (discarded)")
    num_samples: Union[int, str] = _field(1000, check=lambda v: None if v == "auto" or (isinstance(v, int) and v >= 1)
                                          else f"must be a positive integer or 'auto', got {v!r}",
                                          doc="draws kept per chain; auto (method: replica): extend the "
                                              "chains in doubling rounds until R-hat <= 1.01, ESS >= 400 "
                                              "on L_n and the invariants and min_round_trips, or max_samples")
    max_samples: int = _field(16000, check=at_least(1), doc="num_samples: auto: the cap of draws per chain")
    min_round_trips: int = _field(20, check=at_least(1),
                                  doc="num_samples: auto (method: replica): round trips every chain must make")
    beta: Union[float, str] = _field(1.0, doc="inverse temperature: a number > 0 or 'wbic' (1/log n)")
    step_size: Optional[float] = _field(None, check=positive, doc="initial step size (adapted in warmup)")
    num_steps: int = _field(16, check=at_least(1), doc="leapfrog steps per HMC proposal (method: hmc, replica)")
    target_accept: float = _field(0.8, check=lambda v: None if 0 < v < 1 else f"must be in (0, 1), got {v}")
    max_tree_depth: int = _field(8, check=at_least(1), doc="NUTS maximum tree depth")
    dense_mass: bool = _field(False, doc="adapt a dense mass matrix")
    thinning: int = _field(1, check=at_least(1))
    init: str = _field("prior", choices=("screen", "prior", "truth"),
                       doc="chain starts: dispersed prior draws, the best of init_candidates "
                           "optimised prior draws per chain (screen: can hide a mode), or the truth")
    init_candidates: int = _field(16, check=at_least(1),
                                  doc="init: screen: prior draws optimised per chain")
    init_steps: int = _field(500, check=at_least(1), doc="init: screen: Adam steps per candidate")
    num_predict_inputs: int = _field(4, check=at_least(1),
                                     doc="fixed inputs whose network outputs get R-hat/ESS")
    num_temperatures: Union[int, str] = _field(
        "auto", check=lambda v: None if v == "auto" or (isinstance(v, int) and 2 <= v <= 32)
        else f"must be 'auto' or an integer >= 2 and <= 32, got {v!r}",
        doc="method: replica: temperatures per ladder (beta down to beta_min); auto: about "
            "2 Lambda + 1 (in [4, 32]) from the global barrier Lambda measured on a pilot ladder "
            "in the first half of the warmup")
    beta_min: float = _field(1e-3, check=lambda v: None if 0 <= v < 1 else f"must be in [0, 1), got {v}",
                             doc="method: replica: the ladder's lowest beta (0: the prior); "
                                 "the others adapt in warmup to equal swap rates")
    swap_interval: int = _field(1, check=at_least(1),
                                doc="method: replica: HMC transitions between neighbour swaps")


@dataclasses.dataclass(frozen=True)
class FreeEnergyConfig:
    num_betas: int = _field(16, check=at_least(2), doc="temperatures in the TI grid")
    grid_power: float = _field(4.0, check=positive, doc="beta_k = (k/K)^power, dense near 0")
    methods: list[str] = _field(factory=lambda: ["ti", "wbic", "stepping_stone"],
                                choices=("ti", "wbic", "stepping_stone", "smc"),
                                doc="estimators reported; smc: adaptive tempered SMC from the prior "
                                    "(independent of the TI chains, slt.smc)")
    num_chains: int = _field(4, check=at_least(1))
    num_warmup: int = _field(400, check=non_negative)
    num_samples: int = _field(800, check=at_least(2))
    num_steps: int = _field(4, check=at_least(1),
                            doc="leapfrog steps per fixed-length HMC transition (step size adapted per chain)")
    init: str = _field("prior", choices=("screen", "prior", "truth"),
                       doc="chain starts (every level of every ladder, or every beta of the grid): "
                           "prior draws, the sampler section's screened starts (found at beta = 1), "
                           "or the truth (+1e-3 jitter)")
    target_accept: float = _field(0.8, check=lambda v: None if 0 < v < 1 else f"must be in (0, 1), got {v}")
    sampler: str = _field("replica", choices=("replica", "grid"),
                          doc="grid: independent chains at each beta of the fixed TI grid; replica: "
                              "every chain a replica-exchange ladder of num_betas temperatures from "
                              "beta = 1 to 0, adapted to equal swap rates (crosses between modes; TI "
                              "and stepping stone from the ladders, WBIC and the lambda window from "
                              "chains started at the ladders' beta = 1 draws)")
    replica_num_steps: int = _field(8, check=at_least(1),
                                    doc="sampler: replica: leapfrog steps per HMC transition at each level")
    smc_particles: int = _field(512, check=at_least(2), doc="methods: smc: particles per SMC run")
    smc_runs: int = _field(8, check=at_least(2),
                           doc="methods: smc: independent runs (sharded over devices); "
                               "smc_stderr = std over runs / sqrt(runs)")
    smc_mcmc_steps: int = _field(5, check=at_least(1),
                                 doc="methods: smc: HMC transitions per temperature (mutation)")
    smc_num_steps: int = _field(4, check=at_least(1), doc="methods: smc: leapfrog steps per HMC transition")
    smc_target_ess: float = _field(0.5, check=lambda v: None if 0 < v < 1 else f"must be in (0, 1), got {v}",
                                   doc="methods: smc: ESS fraction kept by each temperature increment "
                                       "(the next beta is found by bisection)")


@dataclasses.dataclass(frozen=True)
class LambdaConfig:
    num_betas: int = _field(5, check=at_least(2), doc="temperatures for the beta-slope estimate")
    half_width: Optional[float] = _field(None, check=positive,
                                         doc="relative half-width of the window; default 1/sqrt(2 log n)")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = _field(3000, check=at_least(1))
    learning_rate: float = _field(0.01, check=positive)
    seed: Optional[int] = _field(None, check=seed_range, doc="init seed; default derived from the top-level seed")
    optimizer: str = _field("adam", choices=("adam", "sgd"),
                            doc="first-order optimiser (at: trained then polishes with L-BFGS; "
                                "llc.checkpoints does not)")


def _rows_check(v):
    if isinstance(v, str):
        parts = v.split(":")
        ok = len(parts) == 2 and all(not p.strip() or p.strip().isdigit() for p in parts)
        return None if ok else f"must be a list of row indices or 'start:stop', got {v!r}"
    return None if v and all(i >= 0 for i in v) else f"must be a non-empty list of row indices >= 0, got {v}"


@dataclasses.dataclass(frozen=True)
class SusceptibilityConfig:
    rows: Union[list[int], str] = _field(check=_rows_check,
                                         doc="L' = the loss on these rows (a list or 'start:stop')")
    observable: str = _field("rows", choices=("rows", "loss"),
                             doc="phi: the loss on the same rows, or L_n")


@dataclasses.dataclass(frozen=True)
class RefinedDataConfig:
    """The data of the data-refined LLC (``llc.data``): another data file, or a range of the
    training rows."""

    file: Optional[str] = _field(None, doc="another data set in data.file's format (relative to the "
                                           "config file)")
    rows: Optional[list[int]] = _field(None, check=lambda v: None if len(v) == 2 and 0 <= v[0] < v[1]
                                       else f"must be [start, stop) with 0 <= start < stop, got {v}",
                                       doc="[start, stop): rows of the training data")


@dataclasses.dataclass(frozen=True)
class LLCConfig:
    at: str = _field("truth", choices=("truth", "trained", "params"), doc="the point w*")
    params: Optional[list[dict]] = _field(None, doc="w* in the model's shape (at: params)")
    refine: Optional[bool] = _field(None, doc="minimise L_n from the point first (from a 1e-3 jitter: a "
                                              "truth is often a saddle); default true for at: truth, "
                                              "false otherwise (see notes/llc.md)")
    sampler: str = _field("hmc", choices=("hmc", "mala", "sgld", "nuts"),
                          doc="hmc: exact, trajectories as long as the flat directions; mala: exact "
                              "Langevin; sgld: devinterp's update; nuts: numpyro")
    num_chains: int = _field(8, check=at_least(1))
    num_draws: Union[int, str] = _field("auto", check=lambda v: None if v == "auto" or (isinstance(v, int) and v >= 1)
                                        else f"must be a positive integer or 'auto', got {v!r}",
                                        doc="draws per chain; auto: extend the chains until the trend "
                                            "test passes or max_draws (hmc 500 -> 8000, mala 2000 -> 32000)")
    max_draws: Optional[int] = _field(None, check=at_least(1),
                                      doc="cap of num_draws: auto; default hmc 8000, mala 32000")
    num_burnin: Optional[int] = _field(None, check=non_negative,
                                       doc="steps discarded before averaging; default num_draws // 10 "
                                           "(auto: of the first 500/2000; hmc at least 50)")
    num_adapt: Optional[int] = _field(None, check=non_negative,
                                      doc="step-size adaptation steps; default hmc 200, others 400 "
                                          "when step_size is unset")
    step_size: Optional[float] = _field(None, check=positive,
                                        doc="HMC leapfrog step or Langevin eps (devinterp's lr); default adapted")
    target_accept: Optional[float] = _field(None, check=lambda v: None if 0 < v < 1 else f"must be in (0, 1), got {v}",
                                            doc="adaptation target; default hmc 0.8, mala 0.8, sgld 0.99 "
                                                "(MH estimate), nuts 0.8")
    trajectory_length: Optional[float] = _field(None, check=positive,
                                                doc="hmc: default (pi/2)/sqrt(gamma), a quarter period "
                                                    "of the flat directions")
    max_steps: int = _field(128, check=at_least(1), doc="hmc: leapfrog steps per transition at most")
    gamma: float = _field(1.0, check=non_negative, doc="localisation strength")
    nbeta: Optional[float] = _field(None, check=positive, doc="n * beta; default n / log n")
    batch_size: Optional[int] = _field(None, check=at_least(1), doc="SGLD minibatch; default full batch")
    lambda_hat: bool = _field(True, doc="also estimate lambda with an error bar that includes the "
                                        "data's finite-n fluctuation (num_subsets more LLC runs)")
    num_subsets: int = _field(4, check=at_least(2), doc="lambda_hat: disjoint data subsets")
    train: TrainConfig = _field(factory=TrainConfig, doc="optimiser for at: trained and llc.checkpoints")
    checkpoints: Optional[int] = _field(None, check=at_least(2),
                                        doc="the LLC along training: train with llc.train from a prior "
                                            "draw, estimate the LLC at this many log-spaced steps (needs "
                                            "at: trained); writes llc_trajectory.csv/.png")
    influence: bool = _field(False, doc="Bayesian influence functions BIF(i, j) = -Cov(l_i, l_j) from the "
                                        "LLC's draws (hmc, mala); writes influence.npz/.png, the most "
                                        "influential pairs in the summary (slt.influence)")
    influence_rows: Optional[Union[list[int], str]] = _field(
        None, check=_rows_check, doc="query rows of the BIF: a list or 'start:stop'; default all "
                                     "(n <= 2000; beyond, required)")
    influence_thin: int = _field(1, check=at_least(1), doc="keep every k-th LLC draw for influence and "
                                                           "susceptibility")
    susceptibility: Optional[SusceptibilityConfig] = _field(
        None, doc="linear response chi = -nbeta Cov(phi, L' - L_n) of an observable to reweighting "
                  "the loss towards the rows' loss L' (slt.influence)")
    weights: Optional[list[str]] = _field(None, doc="the weight-restricted LLC: sample only these parameters "
                                                    "(W1, b1, W2, ... numbered from 1; a Python model's "
                                                    "pytree key paths joined by '.'), the rest held at w*; "
                                                    "needs gamma > 0")
    per_layer: bool = _field(False, doc="also every layer's restricted LLC (W_l and b_l; each leaf of a "
                                        "Python model) in one compiled program: llc.per_layer table, "
                                        "llc_per_layer.png")
    data: Optional[RefinedDataConfig] = _field(None, doc="the data-refined LLC (Wang et al. 2024): "
                                                         "the loss of this data averaged over the same "
                                                         "draws (hmc or mala)")


@dataclasses.dataclass(frozen=True)
class FisherConfig:
    at: str = _field("truth", choices=("truth", "trained", "params", "posterior"),
                     doc="where: the embedded truth, a trained minimiser, given params, or averaged "
                         "over posterior draws (sampled with the sampler section)")
    params: Optional[list[dict]] = _field(None, doc="the point (at: params)")
    rtol: float = _field(1e-9, check=positive,
                         doc="rank counts eigenvalues > rtol * largest (float64; see slt.fisher.RTOL)")
    population: bool = _field(False, doc="also the population FIM on fresh inputs")
    population_n: int = _field(100000, check=at_least(1), doc="fresh inputs for the population FIM")
    num_draws: int = _field(200, check=at_least(1),
                            doc="posterior draws (spread over all chains) for at: posterior")
    train: TrainConfig = _field(factory=TrainConfig, doc="optimiser for at: trained")


@dataclasses.dataclass(frozen=True)
class PhaseConfig:
    """The phase-transition experiment (experiments/phase_transition.py): two-node truths
    w1 = (cos t, sin t), w2 = (-cos t, sin t), b = bias, q = q, c = 0 over a grid of t."""

    t: list[float] = _field(factory=lambda: [1.0, 1.1, 1.15, 1.2, 1.25, 1.3, 1.4, 1.5],
                            doc="angles t of the true nodes (radians)")
    n: list[int] = _field(factory=lambda: [1000, 3000, 10000, 20000], check=_positive_list,
                          doc="sample sizes of the n-sweep at t_for_n")
    t_for_n: float = _field(1.15, doc="t of the n-sweep")
    pictures: list[float] = _field(factory=lambda: [1.0, 1.2, 1.3, 1.5],
                                   doc="t values (from the grid) drawn as posterior pictures")
    bias: float = _field(-0.3, doc="b of both true nodes")
    q: float = _field(1.0, doc="output weight of both true nodes")
    rms_tol: float = _field(0.02, check=positive, doc="phase labels: a node counts when the RMS "
                            "of its non-affine part exceeds this (units of y)")


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    n: list[int] = _field(factory=list, check=lambda v: None if all(x >= 1 for x in v)
                          else f"must be positive integers, got {v}", doc="sample sizes")
    seeds: Optional[list[int]] = _field(None, check=lambda v: next(filter(None, map(seed_range, v)), None),
                                        doc="default: [seed]")


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    dir: str = _field("runs", doc="parent of run directories")
    figures: bool = _field(True, doc="write PNG figures")


@dataclasses.dataclass(frozen=True)
class Config:
    model: ModelConfig
    name: str = _field("run", doc="run name (default: the config file's stem)", check=lambda v: None if v and "/" not in v and v not in (".", "..")
                       else f"must be a non-empty name without '/', got {v!r}")
    seed: int = _field(0, check=seed_range, doc="root seed: data, inits and every sampler derive from it")
    precision: str = _field("float32", choices=("float32", "float64"), doc="floating point width")
    truth: Optional[TruthConfig] = _field(None)
    data: DataConfig = _field(factory=DataConfig)
    sampler: SamplerConfig = _field(factory=SamplerConfig)
    free_energy: Optional[FreeEnergyConfig] = _field(None)
    lambda_: Optional[LambdaConfig] = _field(None)
    llc: Optional[LLCConfig] = _field(None)
    fisher: Optional[FisherConfig] = _field(None)
    sweep: Optional[SweepConfig] = _field(None)
    phase: Optional[PhaseConfig] = _field(None)
    output: OutputConfig = _field(factory=OutputConfig)
    base_dir: str = _field(".", doc="(internal) directory of the config file")
    external_model: Optional[str] = _field(None, doc="(internal) the Python model given to slt.run")


_KEY_ALIASES = {"lambda": "lambda_"}
_INTERNAL = {"base_dir", "external_model"}


# ----------------------------------------------------------------------------- building
def _yaml_key(name: str) -> str:
    return "lambda" if name == "lambda_" else name


def _typename(tp) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            dict: "a mapping", list: "a list"}.get(tp, getattr(tp, "__name__", str(tp)))


def _convert(value, tp, path: str, meta: dict):
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg, path, meta)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[-1] if len(errors) == 1 else ConfigError(
            path, f"expected {' or '.join(_typename(a) for a in args if a is not type(None))}, "
                  f"got {value!r}")
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(path, f"expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_convert(v, item, f"{path}[{i}]", {"choices": meta.get("choices")})
                for i, v in enumerate(value)]
    if tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected a mapping, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(path, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, f"expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(path, f"must be finite, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(path, f"expected a string, got {value!r}")
        choices = meta.get("choices")
        if choices and value not in choices:
            hint = difflib.get_close_matches(value, choices, n=1)
            raise ConfigError(path, f"must be one of {list(choices)}, got {value!r}"
                              + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        return value
    raise TypeError(f"unsupported config type {tp!r}")


def build(cls, raw: Any, path: str = ""):
    """Validate a raw mapping into dataclass ``cls`` (recursively)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(path, f"expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    yaml_names = {_yaml_key(name): name for name in fields if name not in _INTERNAL}
    kwargs = {}
    for key, value in raw.items():
        sub = f"{path}.{key}" if path else str(key)
        if key not in yaml_names:
            hint = difflib.get_close_matches(str(key), list(yaml_names), n=1)
            raise ConfigError(sub, "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint
                                                    else f"; valid keys: {sorted(yaml_names)}"))
        name = yaml_names[key]
        f = fields[name]
        val = _convert(value, hints[name], sub, f.metadata)
        check = f.metadata.get("check")
        if val is not None and check is not None:
            msg = check(val)
            if msg:
                raise ConfigError(sub, msg)
        kwargs[name] = val
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{path}.{_yaml_key(name)}" if path else _yaml_key(name), "required key is missing")
    return cls(**kwargs)


def to_dict(obj) -> Any:
    """A config (or section) back to plain YAML-able data, with YAML key names."""
    if dataclasses.is_dataclass(obj):
        return {_yaml_key(f.name): to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if f.name not in _INTERNAL}
    if isinstance(obj, list):
        return [to_dict(v) for v in obj]
    return obj


# ----------------------------------------------------------------------------- cross-checks
def _check(cfg: Config) -> Config:
    from slt import models  # local: models imports jax

    m = cfg.model
    if cfg.external_model is not None:
        return _check_external(cfg)
    if m.widths is None:
        raise ConfigError("model.widths", "required key is missing")
    if m.likelihood == "bernoulli" and m.widths[-1] != 1:
        raise ConfigError("model.likelihood", f"bernoulli needs one output (the logit): model.widths must "
                                              f"end in 1, got {m.widths}")
    if m.likelihood == "categorical" and m.widths[-1] < 2:
        raise ConfigError("model.likelihood", f"categorical needs d_out >= 2 classes: model.widths must end "
                                              f"in the class count, got {m.widths}")
    if cfg.data.file is None:
        if cfg.truth is None:
            raise ConfigError("truth", "required key is missing (give truth + data.n, or data.file)")
        if cfg.data.n is None:
            raise ConfigError("data.n", "required key is missing (or give data.file)")
    else:
        path = Path(cfg.base_dir) / cfg.data.file
        if not path.is_file():
            raise ConfigError("data.file", f"file {cfg.data.file!r} does not exist")
    if cfg.data.x.dist == "uniform" and not cfg.data.x.low < cfg.data.x.high:
        raise ConfigError("data.x.high", f"must exceed data.x.low ({cfg.data.x.low}), got {cfg.data.x.high}")
    if cfg.truth is not None:
        t = cfg.truth
        widths = t.widths or m.widths
        if widths[0] != m.widths[0] or widths[-1] != m.widths[-1]:
            raise ConfigError("truth.widths", f"{widths} must share d_in and d_out with model.widths {m.widths}")
        if (t.params is None) == (t.random is None):
            raise ConfigError("truth", "give exactly one of 'params' or 'random'")
        spec = models.make_mlp(widths, t.activation or m.activation, m.bias if t.bias is None else t.bias)
        if t.params is not None:
            try:
                models.params_from_lists(spec, t.params)
            except (ValueError, TypeError) as exc:
                raise ConfigError("truth.params", str(exc)) from None
        # the truth need not embed into the model, but whatever starts at or measures at the
        # embedded truth needs it: refuse those here, before any sampling
        why = _embed_problem(models, cfg, spec)
        if why is not None:
            for key, wants in (("sampler.init", cfg.sampler.init == "truth"),
                               ("llc.at", cfg.llc is not None and cfg.llc.at == "truth"),
                               ("fisher.at", cfg.fisher is not None and cfg.fisher.at == "truth")):
                if wants:
                    raise ConfigError(key, f"'truth' needs a truth that embeds into the model: {why}")
    if isinstance(cfg.sampler.beta, str) and cfg.sampler.beta != "wbic":
        raise ConfigError("sampler.beta", f"must be a positive number or 'wbic', got {cfg.sampler.beta!r}")
    if isinstance(cfg.sampler.beta, float) and cfg.sampler.beta <= 0:
        raise ConfigError("sampler.beta", f"must be > 0, got {cfg.sampler.beta}")
    if cfg.sampler.method == "replica":
        top = cfg.sampler.beta
        if top == "wbic" and cfg.data.n is not None and cfg.data.n >= 2:
            top = 1.0 / math.log(cfg.data.n)
        if isinstance(top, float) and not cfg.sampler.beta_min < top:
            raise ConfigError("sampler.beta_min", f"must be below sampler.beta ({top:.4g}), "
                                                  f"got {cfg.sampler.beta_min}")
        if cfg.sampler.thinning != 1:
            raise ConfigError("sampler.thinning", f"method: replica keeps every draw; must be 1, "
                                                  f"got {cfg.sampler.thinning}")
    _check_auto_samples(cfg)
    spec = models.make_mlp(m.widths, m.activation, m.bias)
    if cfg.free_energy is not None and cfg.free_energy.init == "truth" and cfg.truth is None:
        raise ConfigError("free_energy.init", "'truth' needs a truth section")
    for section in ("llc", "fisher"):
        sec = getattr(cfg, section)
        if sec is None:
            continue
        if sec.at == "params":
            if sec.params is None:
                raise ConfigError(f"{section}.params", "required when at: params")
            try:
                models.params_from_lists(spec, sec.params)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"{section}.params", str(exc)) from None
        if sec.at == "truth" and cfg.truth is None:
            raise ConfigError(f"{section}.at", "'truth' needs a truth section")
    if cfg.llc is not None and cfg.llc.num_draws == "auto" and cfg.llc.max_draws is not None:
        first = {"hmc": 500, "mala": 2000}.get(cfg.llc.sampler, 2000)
        burn = cfg.llc.num_burnin
        if burn is None:   # the estimator's default (slt.learning_coefficient.estimate_llc)
            burn = max(min(first, cfg.llc.max_draws) // 10, 50 if cfg.llc.sampler == "hmc" else 0)
        if cfg.llc.max_draws < burn:
            raise ConfigError("llc.max_draws", f"must be >= the burn-in ({burn} steps) with num_draws: "
                                               f"auto, got {cfg.llc.max_draws}")
    if cfg.llc is not None and cfg.llc.checkpoints is not None:
        k, llc = cfg.llc.checkpoints, cfg.llc
        if llc.at != "trained":
            raise ConfigError("llc.checkpoints", f"the LLC along training trains the model (llc.train) from a "
                                                 f"prior draw: set llc.at: trained (got at: {llc.at})")
        if k > llc.train.steps:
            raise ConfigError("llc.checkpoints", f"must be <= llc.train.steps ({llc.train.steps}), got {k}")
        if llc.refine:
            raise ConfigError("llc.refine", "must be false with llc.checkpoints (the LLC is taken at each "
                                            "checkpoint as it is)")
    if cfg.llc is not None and (cfg.llc.influence or cfg.llc.susceptibility is not None):
        key = "llc.influence" if cfg.llc.influence else "llc.susceptibility"
        if cfg.llc.sampler not in ("hmc", "mala"):
            raise ConfigError(key, f"needs the LLC's draws: sampler hmc or mala (got {cfg.llc.sampler})")
        if cfg.llc.checkpoints is not None:
            raise ConfigError(key, "not with llc.checkpoints (the LLC along training keeps no draws)")
        if cfg.data.n and cfg.data.file is None and cfg.model.widths:
            w = cfg.model.widths
            d = sum(a * b + (b if cfg.model.bias else 0) for a, b in zip(w[:-1], w[1:]))
            influence_check(cfg.llc, cfg.data.n, d)
    if cfg.llc is not None:
        _check_restricted(cfg, spec)
    if cfg.llc is not None and (cfg.llc.influence or cfg.llc.susceptibility is not None) \
            and (cfg.llc.weights is not None or cfg.llc.data is not None):
        key = "llc.influence" if cfg.llc.influence else "llc.susceptibility"
        raise ConfigError(key, "not with llc.weights or llc.data (influence uses the unrestricted posterior's draws)")
    if cfg.llc is not None and cfg.llc.batch_size and cfg.llc.sampler != "sgld":
        raise ConfigError("llc.batch_size", f"minibatches need sampler: sgld ({cfg.llc.sampler} uses exact gradients)")
    if cfg.llc is not None and cfg.llc.batch_size and cfg.data.n and cfg.llc.batch_size > cfg.data.n:
        raise ConfigError("llc.batch_size", f"must be <= data.n ({cfg.data.n}), got {cfg.llc.batch_size}")
    _check_memory(cfg)
    return cfg


def influence_check(llc: LLCConfig, n: int, d: int) -> None:
    """``llc.influence`` / ``llc.susceptibility`` rows against ``n`` rows of data, the kept
    draws' memory (d parameters) and the BIF's, before any sampling (the stage calls it again
    once n is known from a data file)."""
    from slt import influence

    total = _physical_memory()
    cap = llc.num_draws if llc.num_draws != "auto" else (
        llc.max_draws or {"hmc": 8000, "mala": 32000}.get(llc.sampler, 8000))
    first = llc.num_draws if llc.num_draws != "auto" else min(cap, {"mala": 2000}.get(llc.sampler, 500))
    least = 4 * influence.segments_per_chain(llc.num_chains)
    if first // llc.influence_thin < least:
        raise ConfigError("llc.influence_thin", f"keeps {first // llc.influence_thin} of {first} draws per "
                                                f"chain, fewer than the {least} the batch-means standard "
                                                "errors need; thin less or draw more")
    kept = 4 * llc.num_chains * (cap // llc.influence_thin) * d
    if total and kept > total // 4:
        raise ConfigError("llc.influence_thin", f"keeping up to {llc.num_chains} x {cap // llc.influence_thin} "
                                                f"draws of d = {d} parameters needs {kept / 2**30:.1f} GiB, more "
                                                f"than a quarter of this machine's {total / 2**30:.0f} GiB; "
                                                "thin more (or lower llc.max_draws)")

    if llc.influence:
        if llc.influence_rows is None and n > influence.MAX_FULL_ROWS:
            raise ConfigError("llc.influence_rows", f"n = {n} > {influence.MAX_FULL_ROWS}: the full n x n "
                                                    "influence matrix is not computed; choose the query "
                                                    "rows (e.g. '0:500')")
        try:
            q = len(influence.parse_rows(llc.influence_rows, n))
        except ValueError as exc:
            raise ConfigError("llc.influence_rows", str(exc)) from None
        need = influence.bif_memory(q, n)
        if total and need > total // 2:
            raise ConfigError("llc.influence_rows", f"{q} query rows x n = {n} need about "
                                                    f"{need / 2**30:.1f} GiB, more than half this machine's "
                                                    f"{total / 2**30:.0f} GiB; choose fewer rows")
    if llc.susceptibility is not None:
        try:
            influence.parse_rows(llc.susceptibility.rows, n)
        except ValueError as exc:
            raise ConfigError("llc.susceptibility.rows", str(exc)) from None
def _check_restricted(cfg: Config, spec=None) -> None:
    """``llc.weights``, ``llc.per_layer``, ``llc.data``: names (known from the widths; a Python
    model's are checked when the run starts), gamma, sampler, rows and the data file's shape."""
    llc = cfg.llc
    if llc.weights is not None:
        if not llc.weights:
            raise ConfigError("llc.weights", "empty selection: name at least one parameter block")
        if spec is not None:
            from slt.models import weight_slices

            names = list(weight_slices(spec))
            unknown = [w for w in llc.weights if w not in names]
            if unknown:
                raise ConfigError("llc.weights", f"unknown weight name(s) {unknown}; the model has {names}")
    if (llc.weights is not None or llc.per_layer) and not llc.gamma > 0:
        raise ConfigError("llc.gamma", "the restricted LLC (llc.weights, llc.per_layer) needs gamma > 0")
    wants = [k for k, v in (("weights", llc.weights is not None), ("per_layer", llc.per_layer),
                            ("data", llc.data is not None)) if v]
    if wants and llc.checkpoints is not None:
        raise ConfigError(f"llc.{wants[0]}", "not available with llc.checkpoints")
    if llc.data is None:
        return
    if (llc.data.file is None) == (llc.data.rows is None):
        raise ConfigError("llc.data", "give exactly one of 'file' or 'rows'")
    if llc.sampler not in ("hmc", "mala"):
        raise ConfigError("llc.sampler", f"the data-refined LLC (llc.data) needs hmc or mala, got {llc.sampler}")
    if llc.data.rows is not None and cfg.data.n is not None and llc.data.rows[1] > cfg.data.n:
        raise ConfigError("llc.data.rows", f"stop {llc.data.rows[1]} exceeds data.n = {cfg.data.n}")
    if llc.data.file is not None:
        path = Path(cfg.base_dir) / llc.data.file
        if not path.is_file():
            raise ConfigError("llc.data.file", f"file {llc.data.file!r} does not exist")
        if spec is not None:
            from slt import data as data_mod

            try:
                data_mod.load(path, spec.d_in, spec.d_out, likelihood=cfg.model.likelihood)
            except data_mod.DataFileError as exc:
                raise ConfigError("llc.data.file", str(exc)) from None


def _check_auto_samples(cfg: Config) -> None:
    """``sampler.num_samples: auto`` is replica exchange's, and its cap must hold its first round."""
    if cfg.sampler.num_samples != "auto":
        return
    if cfg.sampler.method != "replica":
        raise ConfigError("sampler.num_samples", f"auto needs method: replica (got {cfg.sampler.method}); "
                                                 "give a number of draws")
    from slt.replica import SAMPLE_CHUNK

    if cfg.sampler.max_samples < SAMPLE_CHUNK:
        raise ConfigError("sampler.max_samples", f"num_samples: auto draws {SAMPLE_CHUNK} per chain in its "
                                                 f"first round; must be >= {SAMPLE_CHUNK}, got {cfg.sampler.max_samples}")


def _check_external(cfg: Config) -> Config:
    """Checks for a config run on a Python model (``slt.run``): the model and the data come
    from the problem, so every key that needs a truth or a network spec is refused."""
    for key, bad in (("truth", cfg.truth is not None), ("data.file", cfg.data.file is not None),
                     ("data.n", cfg.data.n is not None), ("model.widths", cfg.model.widths is not None),
                     ("sweep", cfg.sweep is not None), ("phase", cfg.phase is not None)):
        if bad:
            raise ConfigError(key, "not used with a Python model: the problem holds the model and its data")
    for key, wants in (("sampler.init", cfg.sampler.init == "truth"),
                       ("free_energy.init", cfg.free_energy is not None and cfg.free_energy.init == "truth"),
                       ("llc.at", cfg.llc is not None and cfg.llc.at == "truth"),
                       ("fisher.at", cfg.fisher is not None and cfg.fisher.at == "truth")):
        if wants:
            raise ConfigError(key, "a Python model has no truth: use trained, or params with "
                                   "w_star= in slt.run")
    for section in ("llc", "fisher"):
        sec = getattr(cfg, section)
        if sec is not None and sec.params is not None:
            raise ConfigError(f"{section}.params", "not used with a Python model: pass w_star= to slt.run")
    if isinstance(cfg.sampler.beta, float) and cfg.sampler.beta <= 0:
        raise ConfigError("sampler.beta", f"must be > 0, got {cfg.sampler.beta}")
    if isinstance(cfg.sampler.beta, str) and cfg.sampler.beta != "wbic":
        raise ConfigError("sampler.beta", f"must be a positive number or 'wbic', got {cfg.sampler.beta!r}")
    _check_auto_samples(cfg)
    if cfg.llc is not None:
        _check_restricted(cfg)
    return cfg


def memory_estimate(cfg: Config, n: int) -> int:
    """Rough bytes a run with ``n`` data points needs: the data (twice: numpy and device copies)
    plus every chain's forward and backward activations (about 3 floats per unit per point)
    for the largest batch of chains run at once (the sampler's, all free-energy temperatures x
    chains, or the LLC's). Headline model, n = 1e6: predicts 0.26 GB; measured peak RSS
    0.59 GB, of which 0.19 GB are the imports. Used only to refuse impossible sizes."""
    m = cfg.model
    size = 8 if cfg.precision == "float64" else 4
    temps = 32 if cfg.sampler.num_temperatures == "auto" else cfg.sampler.num_temperatures   # auto: its cap
    chains = cfg.sampler.num_chains * (temps if cfg.sampler.method == "replica" else 1)
    if cfg.free_energy is not None:
        chains = max(chains, cfg.free_energy.num_betas * cfg.free_energy.num_chains)
        if "smc" in cfg.free_energy.methods:
            chains = max(chains, cfg.free_energy.smc_particles * cfg.free_energy.smc_runs)
    if cfg.llc is not None:
        chains = max(chains, cfg.llc.num_chains * (cfg.llc.checkpoints or 1))
    return n * (m.widths[0] + m.widths[-1]) * size * 2 + chains * n * sum(m.widths) * size * 3


def _physical_memory() -> int | None:
    from slt.setup_jax import physical_memory

    return physical_memory()


def _check_memory(cfg: Config) -> None:
    """Refuse, before any work, a sample size this machine's memory cannot possibly hold."""
    total = _physical_memory()
    if not total:
        return
    sizes = [("data.n", cfg.data.n)] if cfg.data.file is None and cfg.data.n else []
    if cfg.sweep is not None and cfg.sweep.n:
        sizes.append(("sweep.n", max(cfg.sweep.n)))
    for key, n in sizes:
        need = memory_estimate(cfg, n)
        if need > total:
            raise ConfigError(key, f"n = {n} needs about {need / 2**30:.0f} GiB (data and the "
                                   f"chains' activations), more than this machine's "
                                   f"{total / 2**30:.0f} GiB of memory")


def _embed_problem(models, cfg: Config, truth_spec) -> str | None:
    """Why the truth cannot be embedded into the model (``models.embed``), or None."""
    m, t = cfg.model, cfg.truth
    spec = models.make_mlp(m.widths, m.activation, m.bias)
    if t.params is not None:
        params = models.params_from_lists(truth_spec, t.params)
    else:
        if truth_spec.bias and not spec.bias:
            return "a random truth has non-zero biases but the model has bias: false"
        import jax.numpy as jnp

        params = [{k: jnp.zeros(shape) for k, shape in shapes.items()} for shapes in truth_spec.shapes]
    try:
        models.embed(truth_spec, params, spec)
    except ValueError as exc:
        return str(exc)
    return None


def from_dict(raw: Any, base_dir: str | Path = ".", name: str | None = None,
              external_model: str | None = None) -> Config:
    """Validate a raw mapping (e.g. parsed YAML) into a :class:`Config`. ``external_model``
    (a description) marks a config whose model and data come from Python (``slt.run``)."""
    if not isinstance(raw, dict):
        raise ConfigError("", f"a config must be a YAML mapping, got {type(raw).__name__}")
    raw = dict(raw)
    for key in _INTERNAL:
        if key in raw:
            raise ConfigError(key, "unknown key")
    if name is not None and "name" not in raw:
        raw["name"] = name
    cfg = build(Config, raw)
    cfg = dataclasses.replace(cfg, base_dir=str(base_dir), external_model=external_model)
    return _check(cfg)


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a raw config mapping."""
    raw = _deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError("--set", f"expected key.path=value, got {item!r}")
        key, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        node = raw
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError("--set", f"bad key path {key!r}")
        for p in parts[:-1]:
            if node.get(p) is None:
                node[p] = {}
            if not isinstance(node[p], dict):
                raise ConfigError(key, f"cannot set inside {p!r}, which is not a mapping")
            node = node[p]
        node[parts[-1]] = value
    return raw


def _deepcopy(obj):
    if isinstance(obj, dict):
        return {k: _deepcopy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_deepcopy(v) for v in obj]
    return obj


def read_yaml(path: str | Path) -> dict:
    """Parse a YAML config file into a raw mapping (one-line errors)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("", f"config file {str(path)!r} does not exist")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("", f"config file {str(path)!r} cannot be read: {exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError("", f"config file {str(path)!r} is not valid YAML{where}") from None
    if raw is None:
        raise ConfigError("", f"config file {str(path)!r} is empty")
    if not isinstance(raw, dict):
        raise ConfigError("", f"config file {str(path)!r} must hold a YAML mapping, got {type(raw).__name__}")
    return raw


def load(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read, override and validate a config file."""
    path = Path(path)
    raw = apply_overrides(read_yaml(path), list(overrides))
    return from_dict(raw, base_dir=path.parent, name=path.stem)


def default_config_path() -> Path:
    """The headline experiment shipped inside the package (``slt run`` with no config)."""
    return Path(__file__).parent / "defaults" / "relu2_truth1.yaml"


def describe(cls=Config, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, doc) rows for the README's config reference."""
    rows = []
    for f in dataclasses.fields(cls):
        if f.name in _INTERNAL:
            continue
        key = f"{prefix}{_yaml_key(f.name)}"
        tp = typing.get_type_hints(cls)[f.name]
        inner = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)]
        sub = tp if dataclasses.is_dataclass(tp) else (inner[0] if inner else None)
        if sub is not None:
            rows += describe(sub, key + ".")
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "required")
        doc = f.metadata.get("doc", "")
        if f.metadata.get("choices"):
            doc = (doc + "; " if doc else "") + "one of " + ", ".join(f.metadata["choices"])
        rows.append((key, repr(default) if default != "required" else "required", doc))
    return rows


def reference_markdown() -> str:
    """The README's config reference table (``python -m slt.config``)."""
    lines = ["| key | default | meaning |", "| --- | --- | --- |"]
    for key, default, doc in describe():
        lines.append(f"| `{key}` | `{default}` | {doc} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference_markdown())
