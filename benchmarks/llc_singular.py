"""The finite-nbeta LLC of slt's default sampler against an exact quadrature, on 2-parameter
singular models (issue 18, item 3: "error bars that hold on higher-order singularities").

Models: ``f(x, w) = x u(w)`` with ``u`` a product of powers ``w1^a w2^b`` (a + b = 2..6) or a
sum of powers, Gaussian likelihood (sigma = 1), data ``y = x u0 + noise_std N(0, 1)``
(``u0 = 0``: pure noise), x ~ N(0, 2^2) (science.md item 7) or U[-1, 1], n = 1e2..1e4.
The LLC at w* = 0 (nbeta = n / log n, gamma = 1) from
:func:`slt.estimators.learning_coefficient.llc_for_problem` (default HMC, num_draws auto) is compared with
:func:`slt.estimators.quadrature.llc_quadrature` of the same L_n (its sufficient statistics in float64):
``z = (estimate - quadrature) / stderr`` with the stage's ``stderr`` (:func:`slt.estimators.llc_summary.stderr`: ``max(mcse, t_{C-1}/z x std / sqrt(C))``; the saved studies before it used ``max(mcse, std / sqrt(C))``).

Run:   python benchmarks/llc_singular.py --out before.json            (all cases, seeds 0-2)
       python benchmarks/llc_singular.py --cases 2 --seeds 1 --out smoke.json   (smoke)
Table: python benchmarks/llc_singular.py --table before.json after.json > benchmarks/llc_singular.md
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

if __name__ == "__main__":
    from slt.cli import configure_jax

    configure_jax(cache=False)

import jax
import jax.numpy as jnp
import numpy as np

# name, u(w) as (numpy, jax) pair via a power spec, x law, noise_std, n, u0
# spec: ("prod", a, b) -> w1^a w2^b ; ("sum", a, b) -> w1^a + w2^b
CASES = [
    ("prod", 1, 1, "normal2", 0.25, 1000, 0.0),
    ("prod", 1, 2, "normal2", 0.25, 1000, 0.0),
    ("prod", 2, 2, "normal2", 0.25, 1000, 0.0),
    ("prod", 1, 3, "normal2", 0.25, 1000, 0.0),
    ("prod", 2, 3, "normal2", 0.25, 1000, 0.0),
    ("prod", 3, 3, "normal2", 0.25, 1000, 0.0),
    ("prod", 1, 5, "normal2", 0.25, 1000, 0.0),
    ("sum", 2, 4, "normal2", 0.25, 1000, 0.0),
    ("sum", 2, 2, "normal2", 0.25, 1000, 0.0),
    ("prod", 2, 3, "uniform", 1.0, 100, 0.0),
    ("prod", 1, 2, "uniform", 1.0, 10000, 0.0),
    ("prod", 2, 2, "normal2", 1.0, 10000, 0.1),
]


def case_name(c) -> str:
    kind, a, b, law, noise, n, u0 = c
    u = f"w1^{a} w2^{b}" if kind == "prod" else f"w1^{a}+w2^{b}"
    return f"{u} x~{law} s={noise} n={n}" + (f" u0={u0}" if u0 else "")


def u_of(kind, a, b, xp):
    if kind == "prod":
        return lambda w: w[..., 0] ** a * w[..., 1] ** b
    return lambda w: w[..., 0] ** a + w[..., 1] ** b


def make_case(c, seed):
    """(Problem, numpy loss (m, 2) -> (m,), n) for case ``c`` and data seed."""
    from slt.posterior import Problem

    kind, a, b, law, noise, n, u0 = c
    rng = np.random.default_rng(1000 * seed + 17)
    x = rng.normal(0.0, 2.0, n) if law == "normal2" else rng.uniform(-1.0, 1.0, n)
    y = x * u0 + noise * rng.normal(size=n)
    x32, y32 = x.astype(np.float32)[:, None], y.astype(np.float32)[:, None]
    u_jax = u_of(kind, a, b, jnp)

    def apply_fn(params, xs):
        return xs[:, 0] * u_jax(params)

    problem = Problem.from_function(apply_fn, jnp.zeros(2), x32, y32)
    # the same L_n in float64 from its sufficient statistics (the float32 data, exactly)
    xd, yd = x32[:, 0].astype(np.float64), y32[:, 0].astype(np.float64)
    sxx, sxy, syy = xd @ xd / n, xd @ yd / n, yd @ yd / n
    const = 0.5 * math.log(2 * math.pi)
    u_np = u_of(kind, a, b, np)

    def loss_np(W):
        u = u_np(np.asarray(W, np.float64))
        return const + 0.5 * (syy - 2 * sxy * u + sxx * u * u)

    return problem, loss_np, n


def run_one(c, seed, sampler="hmc", **kw):
    from slt.estimators import learning_coefficient as lc
    from slt.estimators.quadrature import llc_quadrature

    problem, loss_np, n = make_case(c, seed)
    nbeta = lc.default_nbeta(n)
    w_star = np.zeros(2)
    t = time.perf_counter()
    q = llc_quadrature(loss_np, w_star, nbeta, 1.0)
    tq = time.perf_counter() - t
    # the chains' key differs per (case, seed): one key for all cases would give every case
    # the same random stream, and their errors one sign
    key = jax.random.fold_in(jax.random.key(seed), CASES.index(c))
    res = lc.llc_for_problem(key, problem, jnp.zeros(2, jnp.float32),
                             sampler=sampler, **kw)
    se = lc.stderr(res) or 0.0   # what the llc stage reports
    return {"case": case_name(c), "seed": seed, "quadrature": q.llc, "quadrature_error": q.error,
            "quadrature_s": tq, "estimate": res.mean, "stderr": se, "mcse": res.mcse,
            "std": res.std, "z": (res.mean - q.llc) / se if res.mean is not None and se > 0 else None,
            "converged": res.converged, "num_draws": res.num_draws, "ess": res.ess,
            "acceptance": float(np.nanmean(res.acceptance)),
            "step_size": float(np.mean(res.step_size)), "steps_per_draw": res.steps_per_draw,
            "sampling_s": res.sampling_s, "plain_mean": res.raw_mean, "plain_mcse": res.raw_mcse,
            "control_variates_used": res.raw_mean is not None}


def stats(rows):
    z = np.array([r["z"] for r in rows if r["z"] is not None])
    return {"count": len(z), "mean": float(z.mean()), "sd": float(z.std(ddof=1)) if len(z) > 1 else 0.0,
            "max_abs": float(np.abs(z).max()), "negative": int((z < 0).sum())}


def table(paths):
    runs = [json.load(open(p)) for p in paths]
    labels = [r.get("label", p) for r, p in zip(runs, paths)]
    out = ["| case | seed | quadrature (err) | " +
           " | ".join(f"{lab}: estimate ± se, z, conv, draws, s" for lab in labels) + " |",
           "|---|---|---|" + "---|" * len(runs)]
    keyed = [{(r["case"], r["seed"]): r for r in run["rows"]} for run in runs]
    for row in runs[0]["rows"]:
        k = (row["case"], row["seed"])
        cells = []
        for kd in keyed:
            r = kd.get(k)
            cells.append("–" if r is None else
                         f"{r['estimate']:.4f} ± {r['stderr']:.4f}, z {r['z']:+.2f}, "
                         f"{'yes' if r['converged'] else 'NO'}, {r['num_draws']}, {r['sampling_s']:.0f}")
        out.append(f"| {row['case']} | {row['seed']} | {row['quadrature']:.5f} ({row['quadrature_error']:.0e}) | "
                   + " | ".join(cells) + " |")
    out.append("")
    for lab, run in zip(labels, runs):
        s = stats(run["rows"])
        conv = sum(bool(r["converged"]) for r in run["rows"])
        wall = sum(r["sampling_s"] for r in run["rows"])
        out.append(f"- {lab}: {s['count']} pairs, mean z {s['mean']:+.2f}, sd z {s['sd']:.2f}, "
                   f"max |z| {s['max_abs']:.2f}, {s['negative']} negative, converged {conv}/{len(run['rows'])}, "
                   f"sampling {wall:.0f} s in all")
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=len(CASES), help="first K cases")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--sampler", default="hmc")
    ap.add_argument("--label", default="slt")
    ap.add_argument("--out")
    ap.add_argument("--table", nargs="+")
    ap.add_argument("--only", type=int, nargs="+", help="case indices to run (default: the first --cases)")
    args = ap.parse_args(argv)
    if args.table:
        print(table(args.table))
        return
    rows = []
    chosen = [CASES[i] for i in args.only] if args.only else CASES[:args.cases]
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for c in chosen:
            r = run_one(c, seed, sampler=args.sampler)
            rows.append(r)
            if args.out:   # after every row: a partial study is still a table
                with open(args.out, "w") as fh:
                    json.dump({"label": args.label, "rows": rows, "stats": stats(rows)}, fh, indent=1)
            print(f"{r['case']:42s} s{seed} quad {r['quadrature']:.4f} est {r['estimate']:.4f} "
                  f"± {r['stderr']:.4f} z {r['z']:+.2f} conv {r['converged']} draws {r['num_draws']} "
                  f"acc {r['acceptance']:.2f} eps {r['step_size']:.3g} steps {r['steps_per_draw']:.0f} "
                  f"{r['sampling_s']:.1f}s", flush=True)
    print(json.dumps(stats(rows)))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"label": args.label, "rows": rows, "stats": stats(rows)}, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
