"""Benchmark: slt's all-betas free-energy path against the obvious numpyro loop.

Problem: Bayesian linear regression, d = 5, n = 1000 (configs/linreg_free_energy.yaml's data),
exact F_n from the closed form (science.md). Both sides are timed cold (compilation
included, no persistent cache) in one invocation:

* peer: one ``numpyro.infer.MCMC(NUTS)`` per beta, sequentially, 32 betas ``(k/31)^4`` x 800
  draws (1 chain, 400 warmup); its draws go through the same TI / stepping-stone code.
* slt: ``slt.samplers.tempered.sample_tempered`` — every (beta, chain) in one compiled program
  (fixed-length HMC, per-chain adapted step size and diagonal mass), 24 betas x 8 chains x
  600 draws (300 warmup), 2 leapfrog steps per transition.

Usage::

    python benchmarks/bench_free_energy.py            # peer vs slt (writes nothing)
    python benchmarks/bench_free_energy.py --sweep    # also time the headline ReLU 5-point sweep
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={os.cpu_count() or 1}")

import jax
import jax.numpy as jnp
import numpy as np


def make_problem(n=1000):
    from slt import data, models
    from slt.posterior import Problem

    spec = models.make_mlp([5, 1], "identity", False)
    truth = models.init(jax.random.key(1), spec)
    ds = data.synthesize(jax.random.key(0), spec, truth, n, 1.0, dist="normal")
    return Problem.make(spec, ds)


def peer(problem, betas, num_warmup=400, num_samples=800, seed=0):
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    x, y = problem.x, problem.y[:, 0]
    n = x.shape[0]

    def nL(w):
        return 0.5 * n * jnp.log(2 * jnp.pi) + 0.5 * jnp.sum((y - x @ w) ** 2)

    def model(beta):
        w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([5]).to_event(1))
        numpyro.factor("tempered_likelihood", -beta * nL(w))

    draws = []
    for k, beta in enumerate(betas):
        mcmc = MCMC(NUTS(model), num_warmup=num_warmup, num_samples=num_samples, num_chains=1,
                    progress_bar=False)
        mcmc.run(jax.random.fold_in(jax.random.key(seed), k), float(beta))
        draws.append(np.asarray(jax.vmap(nL)(mcmc.get_samples()["w"]))[None])
    return np.stack(draws)                       # (betas, 1, draws)


def slt_path(problem, betas, num_chains=8, num_warmup=300, num_samples=600, num_steps=2, seed=0):
    from slt.samplers import nuts as samplers, tempered

    init = samplers.prior_draws(jax.random.key(seed + 100), len(betas) * num_chains, problem.d,
                                problem.prior_std).reshape(len(betas), num_chains, problem.d)
    res = tempered.sample_tempered(jax.random.key(seed), problem, init, betas, num_warmup=num_warmup,
                                   num_samples=num_samples, num_steps=num_steps)
    return problem.n * np.asarray(res.loss, np.float64)


def estimates(betas, nL, power, exact):
    from slt.estimators import free_energy as fe

    m = fe.beta_means(betas, nL)
    ti = fe.thermodynamic_integration(betas, m.mean, m.mcse, power)
    ss = fe.stepping_stone(betas, nL)
    return {"ti_err": ti.free_energy - exact, "ti_se": ti.stderr, "ss_err": ss.free_energy - exact,
            "ss_se": ss.stderr}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--sweep", action="store_true", help="also time the headline ReLU 5-point sweep")
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--repeats", type=int, default=3, help="slt repeats (seeds) after the cold run")
    args = ap.parse_args(argv)
    from slt.estimators import free_energy as fe

    problem = make_problem()
    x, y = np.asarray(problem.x, float), np.asarray(problem.y, float)
    exact = fe.linear_gaussian_free_energy(x, y)
    print(f"linear regression d=5 n=1000: exact F_n = {exact:.4f}  (x64={jax.config.jax_enable_x64}, "
          f"devices={jax.local_device_count()}, cpus={os.cpu_count()})")

    betas_slt = fe.ti_grid(24, 4.0)
    t = time.perf_counter()
    nL = slt_path(problem, betas_slt, seed=0)
    t_slt = time.perf_counter() - t
    e = estimates(betas_slt, nL, 4.0, exact)
    print(f"slt  cold (compile + run): {t_slt:7.2f} s  TI err {e['ti_err']:+.3f} (se {e['ti_se']:.3f})  "
          f"SS err {e['ss_err']:+.3f} (se {e['ss_se']:.3f})")
    warm, errs = [], [e["ti_err"]]
    for s in range(1, args.repeats + 1):
        t = time.perf_counter()
        nL = slt_path(problem, betas_slt, seed=s)
        warm.append(time.perf_counter() - t)
        e = estimates(betas_slt, nL, 4.0, exact)
        errs.append(e["ti_err"])
        print(f"slt  warm seed {s}:         {warm[-1]:7.2f} s  TI err {e['ti_err']:+.3f} (se {e['ti_se']:.3f})  "
              f"SS err {e['ss_err']:+.3f} (se {e['ss_se']:.3f})")
    print(f"slt  TI rms error over {len(errs)} seeds: {np.sqrt(np.mean(np.square(errs))):.3f}")

    if not args.skip_peer:
        betas_peer = fe.ti_grid(32, 4.0)
        t = time.perf_counter()
        nLp = peer(problem, betas_peer)
        t_peer = time.perf_counter() - t
        ep = estimates(betas_peer, nLp, 4.0, exact)
        print(f"peer numpyro loop (32 MCMC): {t_peer:7.2f} s  TI err {ep['ti_err']:+.3f} (se {ep['ti_se']:.3f})  "
              f"SS err {ep['ss_err']:+.3f} (se {ep['ss_se']:.3f})")
        print(f"speed ratio peer / slt: cold {t_peer / t_slt:.1f}x, warm {t_peer / np.mean(warm):.1f}x")

    if args.sweep:
        from slt.pipeline import config as config_mod
        from slt.cli import sweep as sweep_mod

        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        cfg = config_mod.load(os.path.join(root, "configs", "relu2_truth1_free_energy.yaml"),
                              ["output.figures=false"])
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            out = sweep_mod.run_sweep(cfg, out_dir=tmp, backend="local", address=None, num_cpus=None)
            t_sweep = time.perf_counter() - t
            import json

            doc = json.loads((out / "sweep.json").read_text())
        lam = doc["lambda"]["log_n_slope"]["ti"]
        print(f"headline ReLU sweep n={cfg.sweep.n} (16 betas x 4 chains x 800 draws per n): {t_sweep:.1f} s; "
              f"lambda (TI log n slope) = {lam['slope']:.2f} ± {lam['stderr']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
