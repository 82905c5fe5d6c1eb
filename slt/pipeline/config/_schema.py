"""The config's schema: every section a frozen dataclass whose fields carry their type, default,
choices, single-field check and documentation (``_field``); :class:`ConfigError`.

Validation reads these declarations (:mod:`slt.pipeline.config._typecheck`); the cross-checks between
sections are in :mod:`slt.pipeline.config._validate`, the README's reference in :mod:`slt.pipeline.config._docs`.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Union

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


def _beta_check(v):
    """``sampler.beta``: a positive number or ``'wbic'`` (checked here once, for every config)."""
    if isinstance(v, str):
        return None if v == "wbic" else f"must be a positive number or 'wbic', got {v!r}"
    return None if v > 0 else f"must be > 0, got {v}"


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
    num_samples: Union[int, str] = _field("auto", check=lambda v: None if v == "auto" or (isinstance(v, int) and v >= 1)
                                          else f"must be a positive integer or 'auto', got {v!r}",
                                          doc="draws kept per chain, or auto: 500, then the same chains "
                                              "continue in doubling rounds until R-hat <= 1.01 and ESS >= 400 "
                                              "on L_n and the invariants (replica: and min_round_trips), or "
                                              "max_samples (then converged: false and a warning)")
    max_samples: int = _field(16000, check=at_least(1), doc="num_samples: auto: the cap of draws per chain")
    min_round_trips: int = _field(20, check=at_least(1),
                                  doc="num_samples: auto (method: replica): round trips every chain must make")
    beta: Union[float, str] = _field(1.0, check=_beta_check,
                                     doc="inverse temperature: a number > 0 or 'wbic' (1/log n)")
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
                                    "(independent of the TI chains, slt.samplers.smc)")
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
                                            "test passes or max_draws (hmc 500 -> 8000, mala 2000 -> 32000, "
                                            "sgld and nuts 2000 -> 2000)")
    max_draws: Optional[int] = _field(None, check=at_least(1),
                                      doc="cap of num_draws: auto; default hmc 8000, mala 32000, sgld and nuts 2000")
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
                                        "influential pairs in the summary (slt.estimators.influence)")
    influence_rows: Optional[Union[list[int], str]] = _field(
        None, check=_rows_check, doc="query rows of the BIF: a list or 'start:stop'; default all "
                                     "(n <= 2000; beyond, required)")
    influence_thin: int = _field(1, check=at_least(1), doc="keep every k-th LLC draw for influence and "
                                                           "susceptibility")
    susceptibility: Optional[SusceptibilityConfig] = _field(
        None, doc="linear response chi = -nbeta Cov(phi, L' - L_n) of an observable to reweighting "
                  "the loss towards the rows' loss L' (slt.estimators.influence)")
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
                         doc="rank counts eigenvalues > rtol * largest (float64; see slt.estimators.fisher.RTOL)")
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


_INTERNAL = {"base_dir", "external_model"}   # set by the loader, never by a YAML key


def _yaml_key(name: str) -> str:
    return "lambda" if name == "lambda_" else name
