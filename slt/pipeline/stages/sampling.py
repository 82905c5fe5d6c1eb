"""Stage ``sample``: NUTS/HMC on the tempered posterior, ArviZ diagnostics, figures."""
from __future__ import annotations

import math
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from slt.samplers import diagnostics, nuts as samplers
from slt.samplers.diagnostics import ESS_MIN, RHAT_MAX
from slt.estimators import optimize
from slt.plots import sampling as plots
from slt.posterior import resolve_beta
from slt.pipeline.runs import Context, StageOutput, inference_data_bytes


def initial_positions(ctx: Context, num_chains: int, how: str, name: str = "init",
                      beta: float = 1.0) -> tuple[jax.Array, dict]:
    """Chain starts and a description of them for summary.json.

    ``screen``: per chain the best of ``sampler.init_candidates`` Adam-optimised prior draws
    (:func:`slt.estimators.optimize.screened_starts`, on the tempered potential at ``beta``); ``prior``:
    dispersed prior draws; ``truth``: the embedded truth plus 1e-3 jitter for every chain.
    """
    p = ctx.problem
    if how == "truth":
        if ctx.truth_w is None:
            raise ValueError("sampler.init: truth needs a truth that embeds into the model")
        jitter = 1e-3 * jax.random.normal(ctx.key(name), (num_chains, p.d))
        return ctx.truth_w[None, :] + jitter, {"how": "truth"}
    if how == "screen":
        cfg = ctx.config.sampler
        res = optimize.screened_starts(ctx.key(name), p, num_chains, beta, cfg.init_candidates,
                                       cfg.init_steps)
        cand = np.asarray(res.candidate_loss, np.float64)
        chosen = cand[np.arange(num_chains), np.asarray(res.chosen)]
        spread = p.n * float(np.ptp(chosen)) if np.all(np.isfinite(chosen)) else float("inf")
        if spread > 10.0:
            ctx.warn(f"{name}: screened chain starts lie in basins whose n L_n differ by {spread:.1f} "
                     "nats; the posterior may have several modes (more init_candidates or "
                     "init_steps?)")
        finite = cand[np.isfinite(cand)]
        info = {"how": "screen", "candidates": cfg.init_candidates, "steps": cfg.init_steps,
                "chosen_L_n": [float(v) for v in chosen],
                "candidate_L_n_quantiles": (None if finite.size == 0 else
                                            [float(q) for q in np.quantile(finite, [0, .25, .5, .75, 1])]),
                "chosen_n_L_n_spread": spread}
        return res.starts, info
    return samplers.prior_draws(ctx.key(name), num_chains, p.d, p.prior_std), {"how": "prior"}


def fixed_inputs(ctx: Context, k: int) -> jax.Array:
    """The first k data inputs: where the network's output is tracked as an invariant."""
    return ctx.problem.x[: min(k, ctx.problem.n)]


def sample_posterior(ctx: Context) -> tuple[samplers.SampleResult, float, dict]:
    """Sample the tempered posterior with the config's ``sampler`` section; returns
    (draws, beta, description of the chain starts). Sampled once per run: the ``sample`` and
    ``fisher`` (at: posterior) stages share the draws."""
    if ctx.posterior is not None:
        return ctx.posterior
    cfg, p = ctx.config.sampler, ctx.problem
    beta = resolve_beta(cfg.beta, p.n)
    init, init_info = initial_positions(ctx, cfg.num_chains, cfg.init, beta=beta)
    if cfg.method == "replica":
        ctx.posterior = (_sample_replica(ctx, init, beta), beta, init_info)
        return ctx.posterior
    res = samplers.sample(ctx.key("sample"), p, init, beta, method=cfg.method,
                          num_warmup=cfg.num_warmup, num_samples=cfg.num_samples,
                          step_size=cfg.step_size, num_steps=cfg.num_steps,
                          max_tree_depth=cfg.max_tree_depth, dense_mass=cfg.dense_mass,
                          target_accept=cfg.target_accept, thinning=cfg.thinning,
                          desc=f"{ctx.config.name}: {cfg.method}", max_samples=cfg.max_samples,
                          converged_fn=_invariants_mixed(ctx, lambda r: np.arange(r.loss.shape[0])))
    if res.converged is False:
        last = res.sampling_rounds[-1]
        ctx.warn(f"sample: {cfg.method} reached sampler.max_samples = {cfg.max_samples} draws per chain "
                 f"without mixing (max R-hat of L_n and the invariants {_fmt(last.get('rhat_max_invariant'), '.3f')}, "
                 f"min ESS {_fmt(last.get('ess_bulk_min_invariant'), '.0f')}); raise max_samples, or use "
                 "method: replica if the chains sit in different modes")
    ctx.posterior = (res, beta, init_info)
    return ctx.posterior


def _invariants_mixed(ctx: Context, chains_of):
    """``num_samples: auto``'s check: R-hat <= 1.01 and bulk ESS >= 400 on L_n and the outputs at
    fixed inputs (the invariants the stage summarises), over the chains ``chains_of(result)``."""
    cfg, p = ctx.config.sampler, ctx.problem
    xf = fixed_inputs(ctx, cfg.num_predict_inputs)

    def mixed(res):
        good = chains_of(res)
        if not len(good):
            return False, {}
        outputs = np.asarray(jax.vmap(jax.vmap(lambda w: p.predict(w, xf)))(jnp.asarray(res.positions[good])))
        diag = diagnostics.summarize(res.loss[good], outputs, res.positions[good], res.diverging[good])
        ok = diag.rhat_max_invariant <= RHAT_MAX and diag.ess_bulk_min_invariant >= ESS_MIN
        return bool(ok), {"rhat_max_invariant": diag.rhat_max_invariant,
                          "ess_bulk_min_invariant": diag.ess_bulk_min_invariant}

    return mixed


def _sample_replica(ctx: Context, init, beta: float) -> samplers.SampleResult:
    """``sampler.method: replica``: :func:`slt.samplers.replica.sample_problem` with the ladder from
    ``beta`` down to ``sampler.beta_min``; the target level's draws as a SampleResult. Chains
    that produced a non-finite L_n at any level are dropped (with a warning) when others remain.
    ``num_samples: auto`` extends the chains until L_n and the invariants (outputs at fixed
    inputs) have R-hat <= 1.01 and ESS >= 400 and every chain made ``min_round_trips``."""
    from slt.samplers import replica

    cfg, p = ctx.config.sampler, ctx.problem
    res = replica.sample_problem(ctx.key("sample"), p, init, num_temperatures=cfg.num_temperatures,
                                 beta_min=cfg.beta_min, beta_max=beta, num_warmup=cfg.num_warmup,
                                 num_samples=cfg.num_samples, num_steps=cfg.num_steps,
                                 swap_interval=cfg.swap_interval, target_accept=cfg.target_accept,
                                 step_size=cfg.step_size, max_samples=cfg.max_samples,
                                 min_round_trips=cfg.min_round_trips,
                                 converged_fn=_invariants_mixed(ctx, replica.valid_chains))
    if cfg.num_temperatures == "auto" and res.pilot_barrier is None:
        ctx.warn(f"sample: num_temperatures: auto needs num_warmup >= {replica.MIN_AUTO_WARMUP} to measure the "
                 f"barrier; kept the pilot ladder of {res.betas.shape[1]} temperatures")
    good = replica.valid_chains(res)
    if len(good) < len(res.valid):
        bad = [int(c) for c in np.flatnonzero(~res.valid)]
        ctx.warn(f"sample: replica chain(s) {bad} produced a non-finite L_n "
                 f"({int(res.nan_count.sum())} values over all temperatures); "
                 + ("their draws are withheld" if len(good) else "posterior estimates withheld"))
    never = [int(c) for c in np.flatnonzero(res.round_trips == 0)]
    if never:
        ctx.warn(f"sample: replica chain(s) {never} never made a round trip between beta = {beta:.4g} and "
                 f"beta_min = {cfg.beta_min:g}: modes may not mix (more temperatures, a smaller beta_min "
                 "or more samples?)")
    if res.converged is False:
        last = res.sampling_rounds[-1]
        ctx.warn(f"sample: replica reached sampler.max_samples = {cfg.max_samples} draws per chain without "
                 f"mixing (R-hat(L_n) {_fmt(last.get('rhat_loss'), '.3f')}, ESS(L_n) "
                 f"{_fmt(last.get('ess_bulk_loss'), '.0f')}, fewest round trips {last.get('min_round_trips')} "
                 f"(target {cfg.min_round_trips})); raise max_samples or num_temperatures")
    lam = float(np.mean(replica.barriers(res.betas, res.swap_accept)[0]))
    if res.betas.shape[1] < replica.temperatures_for_barrier(lam) - 2:
        ctx.warn(f"sample: the replica ladder has {res.betas.shape[1]} temperatures but its global barrier "
                 f"Lambda = {lam:.2f} asks for about 2 Lambda + 1 = {math.ceil(2 * lam) + 1}: swaps are "
                 "rare and round trips slow (num_temperatures: auto sizes it)")
    if not len(good):   # the stage's non-finite check then withholds every estimate
        return replica.to_sample_result(res)._replace(loss=np.full(res.loss.shape, np.nan))
    return replica.to_sample_result(res, good)


def _fmt(v, spec):
    return "?" if v is None else format(v, spec)


def run(ctx: Context) -> StageOutput:
    cfg, p = ctx.config.sampler, ctx.problem
    t0 = time.perf_counter()
    res, beta, init_info = sample_posterior(ctx)
    sampling_s = time.perf_counter() - t0
    xf = fixed_inputs(ctx, cfg.num_predict_inputs)
    outputs = np.asarray(jax.vmap(jax.vmap(lambda w: p.predict(w, xf)))(jnp.asarray(res.positions)))
    # health checks shared by every sampler (slt.samplers.health): a non-finite draw, a step size too small
    # to move w, collapsed acceptance or a chain that never moved withhold every posterior estimate
    from slt.samplers import health

    pos = np.asarray(res.positions)
    scale = max(float(p.prior_std), float(np.nanmax(np.abs(pos))) if np.isfinite(pos).any() else 0.0)
    loss_and_pos = np.concatenate([np.asarray(res.loss, np.float64)[..., None],
                                   pos.reshape(pos.shape[:2] + (-1,))], axis=-1)
    sick, sick_msgs = health.chain_problems("sample", loss_and_pos, step_size=res.step_size,
                                            accept=res.accept_prob,
                                            min_step=health.step_floor(pos.dtype, scale))
    for m in sick_msgs:
        ctx.warn(m + "; posterior estimates withheld")
    finite = not sick.any()
    diag = diagnostics.summarize(res.loss, outputs, res.positions, res.diverging) if finite else None
    num_div = int(res.diverging.sum())
    if num_div:
        ctx.warn(f"sample: {num_div} divergent transitions "
                 f"({100 * num_div / res.diverging.size:.1f}% of draws); estimates may be biased")
    converged = finite and diag is not None and _converged(ctx, diag)
    E_L = float(res.loss.mean()) if finite else None
    summary = {
        "beta": beta,
        "loss": {"E_L_n": E_L, "E_nL_n": None if E_L is None else p.n * E_L,
                 "E_L_n_mcse": diagnostics.mcse_mean(res.loss) if finite else None},
        "diagnostics": {
            "sampler": cfg.method, "num_chains": cfg.num_chains, "num_samples": int(res.loss.shape[1]),
            "num_warmup": cfg.num_warmup, "divergences": num_div, "init": init_info,
            "rhat_max_invariant": None if diag is None else diag.rhat_max_invariant,
            "ess_bulk_min_invariant": None if diag is None else diag.ess_bulk_min_invariant,
            "rhat_loss": None if diag is None else diag.rhat_loss,
            "ess_bulk_loss": None if diag is None else diag.ess_bulk_loss,
            "rhat_max_raw": None if diag is None else diag.rhat_max_raw,
            "ess_bulk_min_raw": None if diag is None else diag.ess_bulk_min_raw,
            "converged": bool(converged),
            "sampling_rounds": res.sampling_rounds,   # num_samples auto (nuts/hmc; replica's are in replica)
            "mean_accept_prob": float(np.mean(res.accept_prob)),
            "mean_num_steps": float(np.mean(res.num_steps)),
            "step_size": [float(s) for s in res.step_size],
        },
    }
    if res.replica is not None:
        from slt.samplers import replica

        summary["diagnostics"]["replica"] = replica.summary(res.replica, cfg.swap_interval)
    figures = {}
    if ctx.config.output.figures and finite:
        title = f"{ctx.config.name}: n={p.n}, beta={beta:.4g}"
        figures["trace_loss"] = plots.loss_trace(res.loss, res.warmup_loss, title=title,
                                                 truth_loss=ctx.truth_loss)
        draws = res.positions.reshape(-1, p.d)
        idx = np.linspace(0, len(draws) - 1, min(200, len(draws))).astype(int)
        preds = np.asarray(jax.vmap(lambda w: p.predict(w))(jnp.asarray(draws[idx])))
        truth_pred = None
        if ctx.truth_spec is not None:
            from slt import models
            truth_pred = np.asarray(models.apply(ctx.truth_spec, ctx.truth_params, p.x))
        if p.likelihood == "gaussian":   # data against f(x, w); for labels: the surface below
            figures["posterior_predictive"] = plots.posterior_predictive(
                np.asarray(p.x), np.asarray(p.y), preds, truth=truth_pred, title=title)
        if p.model.d_in == 2:
            figures["predictive_surface"] = _surface(ctx, draws[idx], title)
        if res.replica is not None and res.replica.index_process is not None:
            rr = res.replica
            figures["replica"] = plots.replica_diagnostics(rr.betas, rr.swap_accept, rr.index_process,
                                                           round_trips=rr.round_trips, restarts=rr.restarts,
                                                           title=title)
        nodes = posterior_nodes_figure(ctx, res.positions, beta)
        if nodes is not None:
            figures["posterior_nodes"] = nodes
    idata = to_inference_data(res, outputs, np.asarray(xf), p, beta)
    return StageOutput(summary=summary, figures=figures,
                       files={"posterior.nc": inference_data_bytes(idata)},
                       timing={"sampling_s": sampling_s})


def _converged(ctx: Context, diag) -> bool:
    """R-hat <= 1.01 and bulk ESS >= 400 on the symmetry-invariant quantities (L_n and the
    outputs at fixed inputs); a warning names whichever fails."""
    ok = True
    if not diag.rhat_max_invariant <= RHAT_MAX:
        ctx.warn(f"sample: R-hat of invariant quantities is {diag.rhat_max_invariant:.3f} > {RHAT_MAX}: chains "
                 "disagree (stuck in different phases?); run longer or check the trace plot")
        ok = False
    if not diag.ess_bulk_min_invariant >= ESS_MIN:
        ctx.warn(f"sample: bulk ESS of invariant quantities is {diag.ess_bulk_min_invariant:.0f} < {ESS_MIN}: "
                 "too few effective draws for reliable estimates; run more samples")
        ok = False
    return ok


PICTURE_DRAWS = 2000   # draws shown in posterior_nodes.png (evenly spaced over chains and draws)
PHASE_INPUTS = 2000    # data inputs the phase labels are computed on (a per-input RMS: a prefix will do)


def posterior_nodes_figure(ctx: Context, positions, beta: float):
    """The seed's picture of a posterior: every hidden node of every draw, normalised by
    :func:`slt.estimators.symmetry.picture_nodes` (``w_hat_i = |q_i| w_i`` for relu) so that the scaling
    symmetry is removed and the permutation symmetry only relabels points: all nodes of all
    draws on one picture, the truth's nodes as stars. Coloured by phase
    (:func:`slt.estimators.symmetry.classify_phases`) for a relu model with an embedded truth, else by
    node (relu nodes matched to the truth's or sorted by angle).

    d_in = 2: the input plane; d_in = 1: the plane (w_hat_i, b_hat_i); d_in > 2: the
    normalised input weights projected onto their first two principal directions (uncentred
    SVD of all nodes of all shown draws, so the zero node stays at the origin). Returns None
    (no figure) unless the model has one hidden layer, a relu or tanh activation and one output.
    """
    from slt import models
    from slt.estimators import symmetry
    from slt.plots import geometry

    p = ctx.problem
    spec = p.spec
    if spec is None or spec.num_layers != 2 or spec.activation not in ("relu", "tanh") or spec.d_out != 1:
        return None
    flat = np.asarray(positions).reshape(-1, p.d)
    idx = np.linspace(0, len(flat) - 1, min(PICTURE_DRAWS, len(flat))).astype(int)
    draws = jnp.asarray(flat[idx])
    labels = names = None
    if spec.activation == "relu":
        draws = symmetry.canonicalise(spec, draws, reference=ctx.truth_w)
        if ctx.truth_w is not None and spec.widths[1] <= symmetry.MAX_BRUTE_FORCE:
            phases = symmetry.classify_phases(spec, draws, ctx.truth_w, p.x[:PHASE_INPUTS])
            labels, names = phases.labels, phases.names
    w_hat, b_hat = symmetry.picture_nodes(spec, draws)
    if spec.activation == "tanh":   # no library canonicalisation for tanh: sort nodes by angle
        key = np.arctan2(w_hat[..., 1], w_hat[..., 0]) if spec.d_in >= 2 else w_hat[..., 0]
        order = np.argsort(key, axis=-1, kind="stable")
        w_hat = np.take_along_axis(w_hat, order[..., None], axis=-2)
        b_hat = np.take_along_axis(b_hat, order, axis=-1)
    t_w = t_b = None
    ts = ctx.truth_spec
    if (ts is not None and ts.num_layers == 2 and ts.activation == spec.activation
            and ts.d_in == spec.d_in and ts.d_out == 1):
        t_w, t_b = symmetry.picture_nodes(ts, models.flatten(ctx.truth_params))
        keep = (np.abs(t_w).sum(-1) + np.abs(t_b)) > 0          # switched-off nodes compute nothing
        t_w, t_b = t_w[keep], t_b[keep]
    q = "|q_i|" if spec.activation == "relu" else "q_i"
    how = (r"$\hat w_i = |q_i|\,w_i$" if spec.activation == "relu" else
           r"$\hat w_i = q_i\,w_i$ (tanh: sign symmetry)")
    if spec.d_in == 2:
        pts, t_pts = w_hat, t_w
        xlabel, ylabel = (rf"$\hat w_{{i,1}} = {q} w_{{i,1}}$", rf"$\hat w_{{i,2}} = {q} w_{{i,2}}$")
        where = "in the input plane"
    elif spec.d_in == 1:
        pts = np.stack([w_hat[..., 0], b_hat], axis=-1)
        t_pts = None if t_w is None else np.stack([t_w[:, 0], t_b], axis=-1)
        xlabel, ylabel = rf"$\hat w_i = {q} w_i$", rf"$\hat b_i = {q} b_i$"
        where = "in the (weight, bias) plane: one input"
    else:
        _, sv, vt = np.linalg.svd(w_hat.reshape(-1, spec.d_in).astype(np.float64), full_matrices=False)
        basis = vt[:2].T                                         # (d_in, 2)
        share = float((sv[:2] ** 2).sum() / max((sv ** 2).sum(), 1e-300))
        pts = w_hat @ basis
        t_pts = None if t_w is None else t_w @ basis
        xlabel, ylabel = (rf"principal direction 1 of $\hat w_i$ ($d_{{in}}$ = {spec.d_in})",
                          rf"principal direction 2 of $\hat w_i$ ($d_{{in}}$ = {spec.d_in})")
        where = f"projected on their first two principal directions ({share:.0%} of sum $|\\hat w_i|^2$)"
    panel_label = f"n={p.n}, beta={beta:.3g}, {len(idx)} draws x {spec.widths[1]} nodes"
    panel = (panel_label, pts, None) if labels is None else (panel_label, pts, None, labels)
    truth = "; stars: truth" if t_pts is not None and len(t_pts) else ""
    return geometry.node_scatter(
        [panel], truth_nodes=t_pts, names=names, xlabel=xlabel, ylabel=ylabel,
        title=f"{ctx.config.name}: all nodes of all draws, {how},\n{where}{truth}")


def _surface(ctx: Context, draws: np.ndarray, title: str):
    """Truth / posterior mean / posterior sd of the first output on a grid over the data's range."""
    from slt import models

    p = ctx.problem
    x = np.asarray(p.x)
    g = 60
    axes = [np.linspace(x[:, i].min(), x[:, i].max(), g) for i in range(2)]
    grid = np.stack(np.meshgrid(*axes), axis=-1)
    flat = jnp.asarray(grid.reshape(-1, 2), p.x.dtype)
    link, quantity = _link(p)
    preds = np.asarray(jax.vmap(lambda w: link(p.predict(w, flat)))(jnp.asarray(draws))).reshape(-1, g, g)
    truth = None
    if ctx.truth_spec is not None:
        truth = np.asarray(link(models.apply(ctx.truth_spec, ctx.truth_params, flat))).reshape(g, g)
    return plots.predictive_surface(grid, preds, truth, x, title=title, quantity=quantity,
                                    labels=None if p.likelihood == "gaussian" else np.asarray(p.y)[:, 0])


def _link(p):
    """What the surface shows: f itself (gaussian), P(y = 1 | x) (bernoulli), or the
    probability of class 1 (categorical)."""
    if p.likelihood == "bernoulli":
        return (lambda z: jax.nn.sigmoid(z[:, 0])), "P(y=1 | x, w)"
    if p.likelihood == "categorical":
        return (lambda z: jax.nn.softmax(z, axis=-1)[:, 1]), "P(y=1 | x, w)"
    return (lambda z: z[:, 0]), "f(x, w)"


def to_inference_data(res: samplers.SampleResult, outputs: np.ndarray, x_fixed: np.ndarray,
                      problem, beta: float):
    """ArviZ InferenceData: posterior (w, L_n, f at fixed inputs), sample_stats, observed data."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az
    d_out = outputs.shape[-1]
    return az.from_dict(
        posterior={"w": res.positions, "L_n": res.loss, "f_fixed": outputs},
        sample_stats={"diverging": res.diverging, "acceptance_rate": res.accept_prob,
                      "n_steps": res.num_steps,
                      "lp": -problem.n * beta * res.loss},
        observed_data={"x": np.asarray(problem.x), "y": np.asarray(problem.y)},
        constant_data={"x_fixed": x_fixed, "beta": np.asarray(beta)},
        coords={"param": np.arange(res.positions.shape[-1]), "fixed_input": np.arange(len(x_fixed)),
                "output": np.arange(d_out)},
        dims={"w": ["param"], "f_fixed": ["fixed_input", "output"]},
    )
