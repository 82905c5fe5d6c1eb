"""The LLC's HMC with the step-size jitter of the tempered samplers (issue 19: one jitter
constant, ``slt.kernels.hmc.JITTER``; the LLC used 0.2 until this comparison): efficiency of the plain LLC average (control variates off, so the sampler's own
mixing is what is measured) at jitter 0.2 (the LLC's value until now) and 0.5 (the tempered
grid's, replica's and SMC's), same cases, same seeds, one process per value.

    python benchmarks/bench_llc_jitter.py >> benchmarks/llc_jitter.jsonl   # both values
    python benchmarks/bench_llc_jitter.py --table benchmarks/llc_jitter.jsonl

Efficiency = 1 / (MCSE^2 x gradients per chain): the inverse variance per gradient.
"""
import json
import os
import subprocess
import sys
import time

CASES = ("x w1 w2^2 n=1e3", "x w1^2 w2^3 n=1e3", "deep linear [dln_llc.yaml]", "relu [2,2,1] truth [relu2_truth1.yaml]")
SEEDS = (0, 1, 2)


def problem(case):
    import jax.numpy as jnp
    import numpy as np
    from slt.pipeline import config, runs
    from slt.posterior import Problem
    if case.startswith("x w1"):
        a, b = (1, 2) if "w2^2" in case else (2, 3)
        rng = np.random.default_rng(0)
        x, y = rng.normal(0.0, 2.0, (1000, 1)), 0.25 * rng.normal(size=(1000, 1))
        w = {"w1": jnp.zeros(()), "w2": jnp.zeros(())}
        p = Problem.from_function(lambda q, x: x * q["w1"] ** a * q["w2"] ** b, w, x, y, noise_std=0.25)
        return p, jnp.zeros(2)
    ctx = runs.build_context(config.load("configs/" + case.rsplit("[", 1)[1].rstrip("]")))
    return ctx.problem, ctx.truth_w


def child(jitter):
    os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    import jax
    from slt.kernels import hmc, localized_hmc
    from slt.estimators import learning_coefficient as lc
    hmc.JITTER = localized_hmc.JITTER = jitter   # both read when the kernel is traced (once per process)
    for case in CASES:
        p, w = problem(case)
        for seed in SEEDS:
            t0 = time.perf_counter()
            r = lc.llc_for_problem(jax.random.key(seed), p, w, num_chains=8, num_draws=2000, control_variates=False)
            grads = r.steps_per_draw * r.num_draws
            print(json.dumps({"case": case, "jitter": jitter, "seed": seed, "mean": r.mean, "mcse": r.mcse,
                              "ess": r.ess, "steps_per_draw": r.steps_per_draw,
                              "efficiency": 1.0 / (r.mcse ** 2 * grads), "converged": r.converged,
                              "wall_s": round(time.perf_counter() - t0, 2)}), flush=True)


def table(path):
    import collections
    import numpy as np
    rows = collections.defaultdict(list)
    for line in open(path):
        r = json.loads(line)
        rows[(r["case"], r["jitter"])].append(r)
    print("| case | jitter | LLC (mean of seeds) | MCSE | grads/draw | efficiency (1/(MCSE^2 grads)) | ratio 0.5/0.2 |")
    print("|---|---|---|---|---|---|---|")
    for case in CASES:
        eff = {}
        for j in (0.2, 0.5):
            rs = rows.get((case, j), [])
            if not rs:
                continue
            eff[j] = np.mean([r["efficiency"] for r in rs])
            m = np.mean([r["mean"] for r in rs]); se = np.sqrt(np.mean([r["mcse"] ** 2 for r in rs]) / len(rs))
            ratio = f"{eff[0.5] / eff[0.2]:.2f}" if j == 0.5 and 0.2 in eff else ""
            print(f"| {case} | {j} | {m:.4f} ± {se:.4f} | {np.mean([r['mcse'] for r in rs]):.4f} | "
                  f"{np.mean([r['steps_per_draw'] for r in rs]):.1f} | {eff[j]:.3g} | {ratio} |")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--table":
        table(sys.argv[2])
    elif len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(float(sys.argv[2]))
    else:
        for j in ("0.2", "0.5"):
            subprocess.run([sys.executable, __file__, "--child", j], check=True)
