"""Time to a converged LLC + lambda_hat on small models (issue 18, items 4-5): before (another
checkout, e.g. main) against after (this one), side by side.

    python benchmarks/bench_llc_small.py --before /path/to/main --after . --out benchmarks/llc_small.jsonl

Every (case, version) runs in a fresh process, as ``slt llc`` would: ``slt.cli.configure_jax``
(each version its own: the device count, the persistent compilation cache and, after, the
XLA CPU flags), then ``slt.run(problem, {"llc": {...}}, stages=["llc"])`` at the llc defaults
(HMC, num_draws auto, lambda_hat on). The timed span is slt.run (problem built; python and jax
imports excluded). "cold": a fresh, empty compilation cache directory; "warm": the same
directory again. Versions alternate case by case (before cold, after cold, before warm, after
warm) so that the shared machine's load hits both alike; the load average is recorded.

One case in a child process: ``python bench_llc_small.py --one CASE --cache DIR``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CASES = {
    # f(x, w) = x w1^a w2^b, x ~ N(0, 2^2), y = 0.25 N(0, 1), n = 1000, at w* = 0 (devinterp's test models)
    "xw1w2": dict(kind="powers", powers=(1, 1), n=1000),
    "xw1w2^2": dict(kind="powers", powers=(1, 2), n=1000),
    "xw1^2w2^3": dict(kind="powers", powers=(2, 3), n=1000),
    # the same at n = 1e4 with a fixed 500 draws per chain (main's time to convergence there is
    # longer than this benchmark's budget: the per-draw cost is what is compared)
    "xw1w2^2 n=1e4 (500 draws)": dict(kind="powers", powers=(1, 2), n=10000, llc={"num_draws": 500}),
    # the same at n = 1e4 to convergence (num_draws auto), the case
    "xw1w2^2 n=1e4": dict(kind="powers", powers=(1, 2), n=10000),
    # two-node ReLU network [2, 2, 1] (d = 9) at the minimiser next to a random truth (refine)
    "relu[2,2,1] n=1e3": dict(kind="mlp", widths=(2, 2, 1), activation="relu", n=1000),
    "relu[2,2,1] n=1e4": dict(kind="mlp", widths=(2, 2, 1), activation="relu", n=10000),
    # deep linear [2, 2, 2] (d = 8), rank-0 truth, at the minimiser next to it (lambda = 3/2)
    "dln[2,2,2] n=1e4": dict(kind="dln", widths=(2, 2, 2), n=10000),
}


def one(case: str) -> dict:
    from slt.cli import configure_jax

    configure_jax()
    import jax
    import jax.numpy as jnp
    import numpy as np

    import slt
    from slt import data, models
    from slt.posterior import Problem

    c = CASES[case]
    if c["kind"] == "powers":
        a, b = c["powers"]

        def f(params, x):
            return x * params["w1"] ** a * params["w2"] ** b

        rng = np.random.default_rng(0)
        x = rng.normal(0.0, 2.0, (c["n"], 1))
        y = 0.25 * rng.normal(size=(c["n"], 1))
        w_star = {"w1": jnp.zeros(()), "w2": jnp.zeros(())}
        problem = Problem.from_function(f, w_star, x, y, noise_std=0.25)
        llc = {"at": "params"}
    elif c["kind"] == "mlp":
        spec = models.make_mlp(list(c["widths"]), c["activation"], True)
        truth = models.init(jax.random.key(0), spec)
        problem = Problem.make(spec, data.synthesize(jax.random.key(1), spec, truth, c["n"], 1.0))
        w_star = models.flatten(truth)
        llc = {"at": "params", "refine": True}
    else:
        spec = models.make_mlp(list(c["widths"]), "identity", False)
        tspec, tparams, w0 = models.deep_linear_truth(jax.random.key(0), list(c["widths"]), 0)
        problem = Problem.make(spec, data.synthesize(jax.random.key(1), tspec, tparams, c["n"], 1.0,
                                                     dist="normal"))
        w_star = jnp.asarray(w0)
        llc = {"at": "params", "refine": True}
    llc = {**llc, **c.get("llc", {})}
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        run = slt.run(problem, {"llc": llc, "output": {"figures": True}}, w_star=w_star, out=out,
                      seed=0, stages=["llc"])
        wall = time.perf_counter() - t0
        s = json.loads((run.path / "summary.json").read_text())
    lc = s["llc"]
    keys = ("mean", "stderr", "converged", "num_draws", "steps_per_draw", "lambda_hat",
            "lambda_hat_stderr", "lambda_hat_per_subset", "lambda_hat_identifiable", "raw_mean",
            "raw_mcse", "trend_test", "mcse", "std")
    return {"case": case, "wall_s": wall, **{k: lc.get(k) for k in keys},
            "timing": s.get("timing"), "warnings": (s.get("diagnostics") or {}).get("warnings")}


def table(paths: list[str]) -> str:
    """The markdown table of one or more result files (later rows replace earlier ones)."""
    rows = {}
    for path in paths:
        for line in open(path):
            r = json.loads(line)
            rows[(r["case"], r["version"], r["cache"])] = r

    def cell(r):
        if r is None:
            return "-", "-", "-"
        if "error" in r:
            return (">" + r["error"].split()[1] + " (timeout)" if r["error"].startswith("timeout") else "error"), "-", "-"
        est = f"{r['mean']:.4f} ± {r['stderr']:.4f}" if r.get("mean") is not None else "withheld"
        lam = (f"{r['lambda_hat']:.3f} ± {r['lambda_hat_stderr']:.3f}" if r.get("lambda_hat") is not None else "-")
        return f"{r['wall_s']:.1f}", est, lam

    out = ["| case | cache | before s | after s | speed-up | LLC before | LLC after | lambda_hat before | "
           "lambda_hat after | draws before/after | load (1 min) |", "|" + " --- |" * 11]
    for case in dict.fromkeys(k[0] for k in rows):
        for cache in ("cold", "warm"):
            b, a = rows.get((case, "before", cache)), rows.get((case, "after", cache))
            (tb, eb, lb), (ta, ea, la) = cell(b), cell(a)
            try:
                speed = f"{float(tb.lstrip('>').split()[0]) / float(ta):.1f}x" + ("+" if tb.startswith(">") else "")
            except ValueError:
                speed = "-"
            draws = f"{(b or {}).get('num_draws', '-')}/{(a or {}).get('num_draws', '-')}"
            load = "/".join(f"{r['load_before']:.1f}" for r in (b, a) if r)
            out.append(f"| {case} | {cache} | {tb} | {ta} | {speed} | {eb} | {ea} | {lb} | {la} | {draws} | {load} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--table", nargs="*", help="print the markdown table of these result files")
    ap.add_argument("--one")
    ap.add_argument("--cache")
    ap.add_argument("--before", default=None)
    ap.add_argument("--after", default=".")
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    ap.add_argument("--out", default="benchmarks/llc_small.jsonl")
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    if args.table:
        print(table(args.table))
        return
    if args.one:
        os.environ["XDG_CACHE_HOME"] = args.cache
        print("RESULT " + json.dumps(one(args.one)), flush=True)
        return
    versions = {"after": os.path.abspath(args.after)}
    if args.before:
        versions = {"before": os.path.abspath(args.before), **versions}
    me = os.path.abspath(__file__)
    with open(args.out, "a") as fh:
        for case in args.cases:
            caches = {v: tempfile.mkdtemp(prefix=f"slt-bench-{v}-") for v in versions}
            for cache in ("cold", "warm"):
                for v, root in versions.items():
                    env = {**os.environ, "PYTHONPATH": root}
                    load = os.getloadavg()[0]
                    try:
                        p = subprocess.run([sys.executable, me, "--one", case, "--cache", caches[v]],
                                           env=env, capture_output=True, text=True, timeout=args.timeout,
                                           cwd=root)
                        line = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
                        rec = json.loads(line[0][7:]) if line else {"case": case, "error": p.stderr[-2000:]}
                    except subprocess.TimeoutExpired:
                        rec = {"case": case, "error": f"timeout {args.timeout} s"}
                    rec.update(version=v, cache=cache, load_before=load, load_after=os.getloadavg()[0])
                    fh.write(json.dumps(rec) + "\n")
                    fh.flush()
                    print(case, v, cache, rec.get("wall_s"), rec.get("mean"), rec.get("lambda_hat"),
                          rec.get("error", "")[:300], flush=True)


if __name__ == "__main__":
    main()
