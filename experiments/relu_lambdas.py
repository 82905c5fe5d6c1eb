"""The two-node ReLU network's learning coefficients, re-measured with slt's default LLC
(HMC, num_draws auto, at: truth refined, lambda_hat with its data-fluctuation error bar) at the
four truths of science.md: dead second node (derived 2), q2 = 0 with node 2 active (5/2), a
generic two-node truth (7/2) and the constant truth (1/2 globally; the local value at the
zero point of the two-node net is what the LLC measures there).

Run:  python experiments/relu_lambdas.py [--n 10000] [--seeds 0 1]
Writes benchmarks/relu_lambdas.json and prints a table.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRUTHS = {
    "dead node (2)": ([[0.6, 0.8], [0.5, -0.5]], [-0.3, -2.0], [1.0, 0.7], 2.0),
    "q2 = 0, active (5/2)": ([[0.6, 0.8], [0.5, -0.5]], [-0.3, 0.1], [1.0, 0.0], 2.5),
    "generic two-node (7/2)": ([[0.6, 0.8], [-0.7, 0.5]], [-0.3, 0.2], [1.0, -0.8], 3.5),
    "constant (1/2 global)": ([[0.0, 0.0], [0.0, 0.0]], [0.0, 0.0], [0.0, 0.0], 0.5),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--max-steps", type=int, default=None, help="llc.max_steps (default: the config's)")
    args = ap.parse_args(argv)
    from slt.cli import configure_jax

    configure_jax()
    from slt.pipeline import config, runs

    rows = []
    for seed in args.seeds:
        for name, (W, b, q, derived) in TRUTHS.items():
            cfg = config.load(ROOT / "configs" / "relu2_llc_strata.yaml", overrides=[
                f"truth.params=[{{W: {W}, b: {b}}}, {{W: [{q}], b: [0.0]}}]", f"data.n={args.n}",
                f"seed={seed}", "output.figures=false"]
                + ([f"llc.max_steps={args.max_steps}"] if args.max_steps else []))
            t0 = time.perf_counter()
            ctx = runs.build_context(cfg)
            from slt.pipeline.stages import llc as stage

            out = stage.run(ctx).summary["llc"]
            rows.append({"truth": name, "derived": derived, "seed": seed, "n": args.n,
                         "llc": out["mean"], "llc_se": out["stderr"], "converged": out["converged"],
                         "lambda_hat": out["lambda_hat"], "lambda_hat_se": out["lambda_hat_stderr"],
                         "L_n_start": out.get("L_n_start"), "L_n_w_star": out["L_n_w_star"],
                         "refine_moved": out.get("refine_moved"), "num_draws": out["num_draws"],
                         "max_steps": cfg.llc.max_steps, "steps_per_draw": out["steps_per_draw"],
                         "warnings": ctx.warnings, "seconds": time.perf_counter() - t0})
            r = rows[-1]
            print(f"{name:24s} seed {seed}: LLC {r['llc']:.3f} ± {r['llc_se']:.3f}  lambda_hat "
                  f"{r['lambda_hat']:.3f} ± {r['lambda_hat_se']:.3f}  converged {r['converged']}  "
                  f"draws {r['num_draws']}  {r['seconds']:.0f} s", flush=True)
    (ROOT / "benchmarks" / "relu_lambdas.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
