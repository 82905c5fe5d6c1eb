"""The NUTS LLC path before and after sufficient statistics, and slt's default beside it.

Case: deep linear network [5, 4, 3, 4, 5], rank-2 truth, n = 10000 (the issue's 17-minute run:
8 chains x 2000 NUTS draws on full-data L_n). Both NUTS rows run numpyro's NUTS on the same
localised posterior with the same settings (8 chains, 400 adaptation + 200 draws, max tree
depth 8); "full data" evaluates L_n on all n rows per gradient (the previous path), "sufficient
statistics" through ``slt.posterior.linear_stats`` (the path ``llc_for_problem`` takes now for
linear networks). Then slt's default (HMC, num_draws auto). Wall time includes compilation.

Run:  python benchmarks/bench_llc_nuts.py [--draws 200]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=200)
    args = ap.parse_args(argv)
    from slt.cli import configure_jax

    configure_jax(cache=False)
    import jax

    from slt import data, models
    from slt.estimators import learning_coefficient as lc
    from slt.posterior import Problem

    widths, r, n = [5, 4, 3, 4, 5], 2, 10_000
    tspec, tparams, w0 = models.deep_linear_truth(jax.random.key(0), widths, r)
    p = Problem.make(models.make_mlp(widths, "identity", False),
                     data.synthesize(jax.random.key(1), tspec, tparams, n, 1.0, dist="normal"))
    w_hat = lc.refine_point(p, w0)[0]
    rows = {}
    t = time.perf_counter()
    full = lc.estimate_llc(jax.random.key(2), lc.problem_loss, w_hat, data=p, n=n, sampler="nuts",
                           num_draws=args.draws, num_chains=8)
    rows["nuts_full_data"] = {"s": time.perf_counter() - t, "llc": full.mean, "mcse": full.mcse}
    t = time.perf_counter()
    fast = lc.llc_for_problem(jax.random.key(2), p, w_hat, sampler="nuts", num_draws=args.draws, num_chains=8)
    rows["nuts_sufficient_statistics"] = {"s": time.perf_counter() - t, "llc": fast.mean, "mcse": fast.mcse}
    t = time.perf_counter()
    hmc = lc.llc_for_problem(jax.random.key(2), p, w_hat)
    rows["hmc_default_auto"] = {"s": time.perf_counter() - t, "llc": hmc.mean, "mcse": hmc.mcse,
                                "draws": hmc.num_draws, "converged": hmc.converged}
    rows["speedup_nuts"] = rows["nuts_full_data"]["s"] / rows["nuts_sufficient_statistics"]["s"]
    print(json.dumps(rows, indent=1))
    (ROOT / "benchmarks" / "llc_nuts.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
