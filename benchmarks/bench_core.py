"""Warm time of each sampler of the one core, for a before/after comparison across a refactor
(issue 19: "none slower by more than 5%"). Runs from either layout (flat modules before the
relayout, layer folders after): pass the checkout on PYTHONPATH.

    PYTHONPATH=<checkout> python benchmarks/bench_core.py LABEL >> benchmarks/core_speed.jsonl

Each case is compiled once (untimed), then timed ``REPEATS`` times with ``block_until_ready``;
the line holds the best and the median. Interleave processes of the two checkouts: on a shared
machine only same-round ratios mean anything.
"""
import importlib
import json
import os
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
import jax  # noqa: E402

REPEATS = 5


def _mod(*names):   # the flat (before the relayout) names first: an editable install may also expose the new ones
    for n in names:
        try:
            return importlib.import_module(n)
        except ImportError:
            pass
    raise ImportError(names)


def main(label):
    config = _mod("slt.config", "slt.pipeline.config")
    runs = _mod("slt.runs", "slt.pipeline.runs")
    replica = _mod("slt.replica", "slt.samplers.replica")
    tempered = _mod("slt.tempered", "slt.samplers.tempered")
    smc = _mod("slt.smc", "slt.samplers.smc")
    nuts = _mod("slt.samplers.nuts", "slt.samplers")
    fe = _mod("slt.free_energy", "slt.estimators.free_energy")
    lc = _mod("slt.learning_coefficient", "slt.estimators.learning_coefficient")
    import inspect

    import tempfile
    text = open("configs/relu2_truth1.yaml").read().replace("num_samples: auto", "num_samples: 1000")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:   # the before code has no auto
        fh.write(text)
    ctx = runs.build_context(config.load(fh.name))
    p = ctx.problem
    init4 = nuts.prior_draws(jax.random.key(3), 4, p.d, p.prior_std)
    betas = fe.ti_grid(6)
    init_t = ctx.truth_w[None, None, :] + 1e-3 * jax.random.normal(jax.random.key(1), (6, 2, p.d))
    dln = runs.build_context(config.load("configs/dln_llc.yaml"))
    cv = {"control_variates": False} if "control_variates" in inspect.signature(lc.estimate_llc).parameters else {}
    cases = {
        "replica": lambda: replica.sample_problem(jax.random.key(4), p, init4, num_temperatures=8, beta_min=1e-3,
                                                  num_warmup=300, num_samples=500, num_steps=8).positions,
        "tempered": lambda: tempered.sample_tempered(jax.random.key(2), p, init_t, betas, num_warmup=200,
                                                     num_samples=400, num_steps=4).loss,
        "smc": lambda: smc.free_energy_problem(jax.random.key(6), p, num_particles=256, num_runs=2,
                                               max_steps=200).per_run,
        "nuts": lambda: nuts.sample(jax.random.key(7), p, init4[:2], method="nuts", num_warmup=200,
                                    num_samples=300).positions,
        "llc_hmc": lambda: lc.llc_for_problem(jax.random.key(8), dln.problem, dln.truth_w, sampler="hmc",
                                              num_chains=4, num_draws=1000, num_adapt=200, num_burnin=100,
                                              **cv).loss_trace,
        "llc_mala": lambda: lc.llc_for_problem(jax.random.key(8), dln.problem, dln.truth_w, sampler="mala",
                                               num_chains=4, num_draws=2000, num_adapt=200,
                                               num_burnin=100).loss_trace,
    }
    only = sys.argv[2:] or list(cases)
    for name in only:
        f = cases[name]
        jax.block_until_ready(f())
        ts = []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            jax.block_until_ready(f())
            ts.append(time.perf_counter() - t0)
        ts.sort()
        print(json.dumps({"label": label, "case": name, "best_s": round(ts[0], 4),
                          "median_s": round(ts[len(ts) // 2], 4), "load": round(os.getloadavg()[0], 2)}),
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
