"""Scaling of NUTS cost with the sample size n and the parameter count d.

Time per effective sample = (seconds per leapfrog step) x (leapfrog steps per effective
sample of L_n). The two factors are measured separately because the second needs a NUTS run
long enough for an ESS, which is unaffordable at n = 1e6 on a shared 2-core machine:

- ``t_leapfrog``: seconds per leapfrog step of ``num_chains`` chains, measured at EVERY n and d
  with slt's HMC kernel (fixed ``num_steps`` leapfrog steps; same vmap/shard_map path as NUTS),
  compile excluded (second call);
- ``leapfrog_per_ess``: mean leapfrog steps x draws / ESS_bulk(L_n), from short NUTS runs where
  they fit the time cap (``nuts_cap_s``); elsewhere reported as missing (not extrapolated in
  the CSV; the note states any extrapolation).

Models: the headline ReLU net [2, 2, 1] (peer data: x ~ U[-2,2]^2, one-node truth) for the
n sweep; for the d sweep (n = 1000) ReLU nets [2,h,1], [8,64,1] and a reduced-rank regression
[M, H, M] (identity, no bias; d = 2 M H ~ 1e4) on data from a rank-1 truth.
Exponents: least-squares slopes of log(time) on log(n) / log(d).
"""
from __future__ import annotations

import math
import time

import jax
import numpy as np

from slt import models
from slt.samplers import diagnostics, nuts as samplers
from slt.data import Dataset
from slt.posterior import Problem


def relu_problem(n, widths=(2, 2, 1), seed=0):
    rng = np.random.default_rng(seed)
    d_in = widths[0]
    x = rng.uniform(-2, 2, size=(n, d_in)).astype(np.float32)
    w0 = np.zeros(d_in); w0[:2] = (1.0, 0.5)
    y = (1.2 * np.maximum(x @ w0 - 0.3, 0) + 0.1 + rng.normal(size=n)).astype(np.float32)
    return Problem.make(models.make_mlp(widths, "relu", True), Dataset(x, y[:, None]))


def rrr_problem(n, m, h, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, m)).astype(np.float32)
    a, b = rng.normal(size=(m, 1)), rng.normal(size=(1, m))
    y = (x @ a @ b / math.sqrt(m) + rng.normal(size=(n, m))).astype(np.float32)
    return Problem.make(models.make_mlp([m, h, m], "identity", False), Dataset(x, y))


def _init(problem, num_chains, seed):
    return samplers.prior_draws(jax.random.key(seed + 1000), num_chains, problem.d,
                                0.5 * problem.prior_std)


def leapfrog_time(problem, num_chains=4, num_steps=10, budget_s=1.0, repeats=3):
    """Seconds per leapfrog step (all chains together), compile excluded; the number of
    iterations is chosen from a first timed call so one measurement takes about budget_s."""
    init = _init(problem, num_chains, 0)

    def run(iters, seed):
        kw = dict(method="hmc", num_steps=num_steps, num_warmup=0, num_samples=iters,
                  step_size=1e-3, progress_bar=False, chunk_size=iters)
        t0 = time.perf_counter()
        samplers.sample(jax.random.key(seed), problem, init, **kw)
        return time.perf_counter() - t0

    run(2, 0)                                                  # compile
    per_iter = run(2, 1) / 2
    iters = int(min(200, max(2, budget_s / max(per_iter, 1e-9))))
    if iters > 2:
        run(iters, 0)                                          # compile this chunk length
    best = min(run(iters, 2 + k) for k in range(repeats))     # min: least disturbed by load
    return best / (iters * num_steps)


def nuts_cost(problem, num_chains=4, num_warmup=150, num_samples=150, max_tree_depth=8):
    """(compile_s, sampling_s, mean leapfrog, ESS_bulk(L_n)) from two identical NUTS runs:
    the first includes compilation, the second (another seed) does not; ESS pooled."""
    kw = dict(num_warmup=num_warmup, num_samples=num_samples, max_tree_depth=max_tree_depth,
              progress_bar=False)
    walls, ess, steps = [], [], []
    for seed in (0, 1):
        init = _init(problem, num_chains, seed)
        t0 = time.perf_counter()
        res = samplers.sample(jax.random.key(seed), problem, init, **kw)
        walls.append(time.perf_counter() - t0)
        ess.append(float(diagnostics.ess_bulk(np.asarray(res.loss, float)[..., None])[0]))
        steps.append(float(res.num_steps.mean()))
    return walls[0] - walls[1], walls[1], float(np.mean(steps)), float(np.mean(ess))


N_GRID = (100, 1000, 10_000, 100_000, 1_000_000)
D_GRID = (("[2,2,1]", (2, 2, 1)), ("[2,8,1]", (2, 8, 1)), ("[4,16,1]", (4, 16, 1)),
          ("[8,64,1]", (8, 64, 1)), ("RRR [100,50,100]", (100, 50, 100)))


def main(n_grid=N_GRID, d_grid=D_GRID, d_n=1000, num_chains=4, nuts_cap_s=60.0,
         nuts_draws=150, log=print):
    """Return rows: sweep, label, n, d, t_leapfrog_s, mean_leapfrog, ess, leapfrog_per_ess,
    time_per_ess_s, compile_s."""
    rows = []

    def one(sweep, label, problem):
        t_lf = leapfrog_time(problem, num_chains)
        row = dict(sweep=sweep, label=label, n=problem.n, d=problem.d, chains=num_chains,
                   t_leapfrog_s=t_lf, mean_leapfrog=None, ess=None, leapfrog_per_ess=None,
                   time_per_ess_s=None, compile_s=None)
        # predicted NUTS cost: 2 runs x 2 * draws iterations x ~100 leapfrog steps
        predicted = 2 * 2 * nuts_draws * 100 * t_lf
        if predicted <= nuts_cap_s:
            comp, wall, steps, ess = nuts_cost(problem, num_chains, nuts_draws, nuts_draws)
            total_draws = num_chains * nuts_draws
            row.update(mean_leapfrog=steps, ess=ess, compile_s=comp,
                       leapfrog_per_ess=steps * total_draws / max(ess, 1e-9),
                       time_per_ess_s=wall / max(ess, 1e-9))
        rows.append(row)
        log(f"{sweep} {label:<18s} n={problem.n:<8d} d={problem.d:<6d} "
            f"t_leapfrog={1e6 * t_lf:9.1f}us "
            + ("" if row["ess"] is None else
               f"leapfrog/iter={row['mean_leapfrog']:.0f} ESS={row['ess']:.0f} "
               f"leapfrog/ESS={row['leapfrog_per_ess']:.0f} s/ESS={row['time_per_ess_s']:.4f} "
               f"compile={row['compile_s']:.1f}s"))

    for n in n_grid:
        one("n", "[2,2,1]", relu_problem(n))
    for label, widths in d_grid:
        if label.startswith("RRR"):
            one("d", label, rrr_problem(d_n, widths[0], widths[1]))
        else:
            one("d", label, relu_problem(d_n, widths))
    return rows


def exponents(rows):
    """Log-log slopes of t_leapfrog and time_per_ess against n and d (where measured)."""
    out = {}
    for sweep, xkey in (("n", "n"), ("d", "d")):
        for ykey in ("t_leapfrog_s", "time_per_ess_s", "leapfrog_per_ess"):
            pts = [(r[xkey], r[ykey]) for r in rows if r["sweep"] == sweep and r[ykey]]
            if len(pts) >= 2:
                x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
                out[f"{ykey}~{xkey}"] = float(np.polyfit(x, y, 1)[0])
            # large-n tail only (where the data term dominates the fixed overhead)
            tail = [(a, b) for a, b in pts if sweep == "n" and a >= 10_000]
            if len(tail) >= 2:
                x, y = np.log([p[0] for p in tail]), np.log([p[1] for p in tail])
                out[f"{ykey}~{xkey} (n>=1e4)"] = float(np.polyfit(x, y, 1)[0])
    return out


def figure(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, sweep, xkey in ((axes[0], "n", "n"), (axes[1], "d", "d")):
        rs = [r for r in rows if r["sweep"] == sweep]
        x = [r[xkey] for r in rs]
        ax.loglog(x, [r["t_leapfrog_s"] for r in rs], "o-", label="s per leapfrog step (4 chains)")
        m = [(r[xkey], r["time_per_ess_s"]) for r in rs if r["time_per_ess_s"]]
        if m:
            ax.loglog(*zip(*m), "s-", label="s per effective sample of L_n (NUTS)")
        for r in rs:
            if sweep == "d":
                ax.annotate(r["label"], (r[xkey], r["t_leapfrog_s"]), fontsize=7)
        ax.set_xlabel(xkey + (" (headline [2,2,1])" if sweep == "n" else " (n = 1000)"))
        ax.set_ylabel("seconds")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("slt NUTS cost scaling (CPU)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def peak_rss_subprocess(n=1_000_000, num_chains=4, num_samples=10):
    """Peak RSS (MiB) of a fresh process sampling the headline model at n points (HMC, short),
    storing num_samples draws: memory is the data + the vmapped gradient's intermediates;
    stored draws are O(chains x draws x d), independent of n."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {repr(__file__.rsplit('/', 1)[0])})
        def hwm():  # this process's own peak RSS (ru_maxrss would carry the parent's over exec)
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        from bench_scaling import relu_problem, _init
        import jax
        from slt.samplers import nuts as samplers
        base = hwm()
        p = relu_problem({n})
        res = samplers.sample(jax.random.key(0), p, _init(p, {num_chains}, 0), method="hmc",
                              num_steps=3, num_warmup=0, num_samples={num_samples},
                              step_size=1e-3, progress_bar=False)
        print(base / 1024, hwm() / 1024,
              res.positions.nbytes / 2**20)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={**__import__("os").environ, "SLT_NO_COMPILATION_CACHE": "1"})
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    base, peak, stored = (float(v) for v in out.stdout.split())
    return dict(n=n, chains=num_chains, draws=num_samples, baseline_rss_mib=base,
                peak_rss_mib=peak, stored_draws_mib=stored)


if __name__ == "__main__":
    import csv
    import json
    import sys

    from slt.cli import configure_jax

    configure_jax(cache=False)
    rows = main()
    print(json.dumps(exponents(rows), indent=1))
    with open("benchmarks/scaling.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    figure(rows, "figures/scaling.png")
    if "--memory" in sys.argv:
        print(peak_rss_subprocess())
