"""Cross-checks between sections (and against the data and the machine) after the type checker:
what one field's declaration cannot say. Every problem is a one-line :class:`ConfigError`
naming the key; the numbers a check needs (the LLC's draw defaults, the influence estimator's
limits) are read from the module that owns them."""
from __future__ import annotations

import math
from pathlib import Path

from slt.pipeline.config._schema import Config, ConfigError, LLCConfig


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
        _check_llc_draws(cfg.llc)
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


def _check_llc_draws(llc: LLCConfig) -> None:
    """``llc.max_draws`` with ``num_draws: auto`` against the burn-in, through the estimator's own
    defaults (:func:`slt.estimators.learning_coefficient.resolve_settings`, which raises the same problem as a
    ``ValueError`` when called): one definition of the first chunk, the cap and the burn-in."""
    from slt.estimators import learning_coefficient as lc

    try:
        lc.resolve_settings(sampler=llc.sampler, loss_fn=None, data=(), batch_loss_fn=None, batch_size=None,
                            nbeta=1.0, n=None, gamma=llc.gamma, num_draws="auto", max_draws=llc.max_draws,
                            num_burnin=llc.num_burnin, num_adapt=llc.num_adapt, step_size=llc.step_size,
                            target_accept=llc.target_accept)
    except ValueError as exc:
        raise ConfigError("llc.max_draws", f"with num_draws: auto, {exc}") from None


def influence_check(llc: LLCConfig, n: int, d: int) -> None:
    """``llc.influence`` / ``llc.susceptibility`` rows against ``n`` rows of data, the kept
    draws' memory (d parameters) and the BIF's, before any sampling (the stage calls it again
    once n is known from a data file)."""
    from slt.estimators import influence

    from slt.estimators.learning_coefficient import AUTO_DRAWS  # the estimator owns its draw defaults

    total = _physical_memory()
    first_chunk, default_cap = AUTO_DRAWS[llc.sampler]
    cap = llc.num_draws if llc.num_draws != "auto" else (llc.max_draws or default_cap)
    first = llc.num_draws if llc.num_draws != "auto" else min(cap, first_chunk)
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
    """``sampler.num_samples: auto``: its cap must hold the first round."""
    if cfg.sampler.num_samples != "auto":
        return
    from slt.samplers.diagnostics import AUTO_FIRST

    if cfg.sampler.max_samples < AUTO_FIRST:
        raise ConfigError("sampler.max_samples", f"num_samples: auto draws {AUTO_FIRST} per chain in its "
                                                 f"first round; must be >= {AUTO_FIRST}, got {cfg.sampler.max_samples}")


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
