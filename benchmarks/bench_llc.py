"""LLC speed and accuracy: slt against devinterp 1.3.2 on reduced-rank regression at the truth.

Problem (``../shared/bench/devinterp_llc_baseline.py``): (M, H, N, r) = (5, 3, 5, 1),
n = 10000, x ~ N(0, I_5), y = B0 A0 x + N(0, I_5), w* = the truth, nbeta = n / log n,
gamma = 1, SGLD lr 1e-4, full batch, no burn-in; exact lambda = 8 (Aoyagi & Watanabe 2005).

One invocation runs, side by side on the SAME data (the baseline's torch-seeded data are
dumped from the devinterp venv and loaded by slt):

1. devinterp's baseline script in its own venv (a subprocess), with fewer draws than the
   4 x 2000 of its docstring (default 4 x 200: the full run took ~812 s on this 2-core
   machine), to measure its full-batch throughput. Its accuracy is taken from the docstring's
   full run: llc 7.34 +- 0.30 against 8 (-8%).
2. slt SGLD with devinterp's exact settings (lr 1e-4, nbeta n/log n, gamma 1, no burn-in),
   4 chains x 2000 draws: same algorithm, same data -> throughput at equal error.
3. slt MALA with its defaults (adapted step, burn-in num_draws/10): the exact sampler, at the
   truth and at the minimiser reached from the truth (``refine``; the truth is not a minimiser
   of L_n, which biases any exact sampler's estimate low by ~nbeta (L_n(w0) - L_n(w_hat))).

Throughput = chains x (all steps) / wall seconds of the compiled run; slt is timed on a
second call (compiled program reused) and its first call (with compilation) is reported too.

Set-up of the peer (once; torch 2.13.0 CPU installs from the local wheel):
    python -m venv benchmarks/.venv-devinterp
    benchmarks/.venv-devinterp/bin/pip install torch==2.13.0 devinterp==1.3.2
Run:  python benchmarks/bench_llc.py [--devinterp-draws 200] [--chains 4] [--draws 2000]
                                      [--skip-devinterp]
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__":  # before jax is imported: one XLA CPU device per core
    from slt.cli import configure_jax

    configure_jax(cache=False)

import jax
import jax.numpy as jnp
import numpy as np

from slt.estimators import learning_coefficient as lc
from slt import models
from slt.data import Dataset
from slt.posterior import Problem

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT.parent / "shared" / "bench" / "devinterp_llc_baseline.py"
VENV_PY = ROOT / "benchmarks" / ".venv-devinterp" / "bin" / "python"
DEVINTERP_FULL = {"chains": 4, "draws": 2000, "llc": 7.34, "std": 0.30, "wall_s": 812.0}

# the baseline's data generation, verbatim, dumped to .npz (run inside the devinterp venv)
DUMP = """
import sys, numpy as np, torch
M, H, N, r = (int(a) for a in sys.argv[1:5])
torch.manual_seed(0)
n = 10000
A0, B0 = torch.zeros(H, M), torch.zeros(N, H)
A0[:r], B0[:, :r] = torch.randn(r, M), torch.randn(N, r)
x = torch.randn(n, M)
y = x @ (B0 @ A0).T + torch.randn(n, N)
np.savez(sys.argv[5], x=x.numpy(), y=y.numpy(), A0=A0.numpy(), B0=B0.numpy())
"""


def setup_venv() -> None:
    if VENV_PY.exists():
        return
    print("creating benchmarks/.venv-devinterp (torch 2.13.0 CPU, devinterp 1.3.2) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV_PY.parent.parent)], check=True)
    subprocess.run([str(VENV_PY), "-m", "pip", "install", "-q", "torch==2.13.0", "devinterp==1.3.2"],
                   check=True)


def run_devinterp(case, chains, draws, lr) -> dict:
    cmd = [str(VENV_PY), str(BASELINE), *map(str, case), str(chains), str(draws), "10000", str(lr)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = re.search(r"llc=([-\d.]+)\+-([\d.]+).*wall=([\d.]+)s draws_per_s=(\d+)", out)
    return {"llc": float(m[1]), "std": float(m[2]), "wall_s": float(m[3]),
            "draws_per_s": chains * draws / float(m[3]), "line": out.strip()}


def load_problem(case) -> tuple[Problem, jax.Array]:
    M, H, N, r = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        subprocess.run([str(VENV_PY), "-c", DUMP, *map(str, case), str(path)], check=True)
        f = np.load(path)
        x, y, A0, B0 = f["x"], f["y"], f["A0"], f["B0"]
    spec = models.make_mlp([M, H, N], "identity", False)
    p = Problem.make(spec, Dataset(jnp.asarray(x), jnp.asarray(y)))
    w0 = models.flatten([{"W": jnp.asarray(A0)}, {"W": jnp.asarray(B0)}])
    return p, w0


def run_slt(p, w0, chains, draws, **kw) -> dict:
    first = lc.llc_for_problem(jax.random.key(0), p, w0, num_chains=chains, num_draws=draws, **kw)
    res = lc.llc_for_problem(jax.random.key(1), p, w0, num_chains=chains, num_draws=draws, **kw)
    steps = chains * (res.num_adapt + res.num_burnin + res.num_draws)
    return {"llc": res.mean, "std": res.std, "mcse": res.mcse, "wall_s": res.sampling_s,
            "first_call_s": first.sampling_s, "draws_per_s": steps / res.sampling_s,
            "acceptance": float(np.nanmean(res.acceptance)), "llc_first": first.mean,
            "step_size": float(np.mean(res.step_size))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--devinterp-draws", type=int, default=200)
    ap.add_argument("--skip-devinterp", action="store_true")
    args = ap.parse_args(argv)
    case, lr = (5, 3, 5, 1), 1e-4
    lam = lc.rrr_lambda(*case)
    setup_venv()
    p, w0 = load_problem(case)
    print(f"RRR {case}, n = {p.n}, exact lambda = {lam}, nbeta = n/log n = {lc.default_nbeta(p.n):.1f}, "
          f"jax devices: {jax.local_device_count()}", flush=True)
    rows = []
    if not args.skip_devinterp:
        t = time.perf_counter()
        dv = run_devinterp(case, args.chains, args.devinterp_draws, lr)
        print(f"devinterp ({args.chains} x {args.devinterp_draws}): {dv['line']}  [{time.perf_counter() - t:.0f} s]",
              flush=True)
        rows.append(("devinterp 1.3.2 SGLD lr 1e-4 (throughput run)", args.chains, args.devinterp_draws,
                     dv["llc"], None, dv["draws_per_s"], dv["wall_s"]))
    full = DEVINTERP_FULL
    rows.append(("devinterp 1.3.2 SGLD lr 1e-4 (docstring full run)", full["chains"], full["draws"],
                 full["llc"], full["std"], full["chains"] * full["draws"] / full["wall_s"], full["wall_s"]))
    sg = run_slt(p, w0, args.chains, args.draws, sampler="sgld", step_size=lr, num_burnin=0,
                 num_adapt=0)
    rows.append(("slt SGLD lr 1e-4 (devinterp's settings)", args.chains, args.draws, sg["llc"], sg["std"],
                 sg["draws_per_s"], sg["wall_s"]))
    ma = run_slt(p, w0, args.chains, args.draws, sampler="mala")
    rows.append(("slt MALA at the truth (defaults: adapted step, burn-in 10%)", args.chains, args.draws,
                 ma["llc"], ma["std"], ma["draws_per_s"], ma["wall_s"]))
    w_hat, _, _ = lc.refine_point(p, w0)
    mr = run_slt(p, w_hat, args.chains, args.draws, sampler="mala")
    rows.append(("slt MALA at w_hat (refine: minimiser reached from the truth)", args.chains, args.draws,
                 mr["llc"], mr["std"], mr["draws_per_s"], mr["wall_s"]))
    print()
    print("| run | chains x draws | LLC | std (chains) | error vs 8 | draws/s | wall s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, c, d, v, s, dps, wall in rows:
        std = "" if s is None else f"{s:.2f}"
        print(f"| {name} | {c} x {d} | {v:.2f} | {std} | {(v - lam) / lam:+.1%} | {dps:,.0f} | {wall:.1f} |")
    base = rows[0][5]
    print()
    print(f"slt first calls (with compilation): SGLD {sg['first_call_s']:.1f} s, MALA {ma['first_call_s']:.1f} s; "
          f"MALA step {ma['step_size']:.2e}, acceptance {ma['acceptance']:.2f}; SGLD MH-acceptance estimate "
          f"{sg['acceptance']:.2f}")
    print(f"speed ratio vs devinterp full-batch throughput ({base:.1f} draws/s): SGLD {sg['draws_per_s'] / base:.0f}x, "
          f"MALA {ma['draws_per_s'] / base:.0f}x; including slt's compilation: SGLD "
          f"{args.chains * args.draws / sg['first_call_s'] / base:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
