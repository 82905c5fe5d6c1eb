"""The peer for LLC estimation on deep linear networks: devinterp 1.3.2 (PyTorch, CPU).

Runs INSIDE its own venv (never a dependency of slt; imports only torch, numpy, devinterp):

    python3 -m venv benchmarks/.venv-devinterp
    benchmarks/.venv-devinterp/bin/pip install torch==2.13.0 devinterp==1.3.2

Run:

    benchmarks/.venv-devinterp/bin/python benchmarks/devinterp_dln.py CASE.npz OUT.json \\
        [--chains C] [--draws T] [--budget-s S] [--lr LR] [--batch-size B] [--burnin K] \\
        [--seed SEED] [--threads N]

CASE.npz (written by the slt side, so both tools see the same data, point, nbeta, gamma):
    x (n, d_in), y (n, d_out)   the data (cast to float32, torch's default, as the RRR baseline)
    widths                      [H_1, ..., H_{L+1}], H_1 = d_in, H_{L+1} = d_out
    w_star                      flat vector, slt's layout: layer by layer, each W_l of shape
                                (H_{l+1}, H_l) row-major, no biases; the point of estimation
    nbeta                       n * beta (slt uses n / log n); passed explicitly to SGLD and to the
                                LLC estimator, so both tools estimate the same finite-nbeta quantity
    gamma                       localisation (slt uses 1.0), SGLD's ``localization``

Model: f(x) = W_L ... W_1 x, torch.nn.Linear layers without bias, weights set from w_star.
Loss for devinterp's ``evaluate``: the unit-noise Gaussian negative log likelihood per sample,
0.5 * ||y - f(x)||^2 averaged over the batch (the additive constant cancels: devinterp subtracts
the loss at w_star), exactly as ../shared/bench/devinterp_llc_baseline.py (the RRR peer) does.
Estimator: ``devinterp.slt.sampler.estimate_learning_coeff_with_summary`` with
``devinterp.optim.sgld.SGLD`` (as the baseline), optimizer_kwargs lr, localization=gamma,
nbeta=nbeta; init_loss left to devinterp (its default: the mean loss over min(chains, batches)
batches at w_star; with full batch that is exactly L_n(w_star)); cores=1, device cpu.

Settings taken from devinterp 1.3.2's own documentation (git tag v1.3.2 of
github.com/timaeus-research/devinterp, and the installed package's docstrings):
  * lr = 1e-4 (default of --lr): examples/dlns.ipynb, the DLN example, estimates the LLC with
    ``optimizer_kwargs = dict(lr=1e-4, localization=1.0, nbeta=default_nbeta(len(trainset)))``;
    the same value as the RRR baseline and bench_llc.py ("devinterp's settings"). The SGLD class
    default (docstring "Default is 0.01") is not used: examples/sgld_calibration.ipynb (MNIST)
    finds 1e-2 diverges and 1e-3 spikes; the calibrated linear-network test
    tests/slt/rrr_test.py uses 6e-4 (pass --lr 6e-4 to try it).
  * batch size = n, full batch (default of --batch-size): the DLN notebook uses 128 but opens
    with a warning that it does not reproduce the results it attempts, pointing to
    tests/slt/rrr_test.py "for more well-calibrated LLC estimates of a simple linear network";
    that test (and diagnostics.ipynb) use
    the full batch (DataLoader(batch_size=num_samples, shuffle=True)). The RRR baseline also saw
    minibatch noise at batch 1000 inflate the estimate 2x.
  * burn-in = 0 (default of --burnin): the default of estimate_learning_coeff_with_summary
    (num_burnin_steps=0), used by the DLN notebook, rrr_test.py and introduction.ipynb.
  * num_steps_bw_draws = 1 (function default; every step is a draw).
  * chains = 4, draws = 2000 (defaults of --chains/--draws): rrr_test.py runs 2000 draws
    (3 chains); 4 chains as the RRR baseline, so the spread across chains is comparable.
  * localization = gamma and nbeta from CASE.npz, NOT devinterp's default_nbeta (which would be
    batch/log(batch)); with full batch and nbeta = n/log n the two coincide.
The DataLoader is devinterp's documented one (TensorDataset, shuffle=True): per-sample indexing and
collation of the whole batch each step, about 3/4 of the per-draw cost at full batch on the
test case below (measured under load; the forward/backward pass is the rest); that is the cost
a devinterp user pays, so it is kept.

Equal-wall-time mode (--budget-s S, chains default 4): first a throw-away SGLD constructor (the
first torch optimizer of a process imports torch._dynamo, ~2 s once, which would otherwise land
in the probe's overhead), then one timing probe, 1 chain x 12 draws (no burn-in) with a callback
that stamps the clock at every draw: seconds per draw = the mean step time over draws 3..12 (the
first steps warm torch up), overhead = the rest of the probe call's wall time (set-up, init loss,
first steps' excess, finalisation; per call: no per-chain cost was seen). The real run gets
    draws = max(10, floor((S - overhead) / (chains * seconds_per_draw) - burnin))
``wall_s`` is the real run only; ``probe_s`` is the warm-up plus the probe. Step times follow the
machine's load, so on a shared machine the real run can miss S either way. Without --budget-s,
--draws is used as is.

Seen on the shared 2-core machine (load average ~6, run under nice 19, torch 2 threads):
widths [3, 4, 2, 5], rank-1 truth (extra units zero), n = 10000, x ~ N(0, I), unit noise,
w_star = the truth, nbeta = n / log n, gamma = 1 (exact lambda 4.5), --budget-s 20: probe 4.3 s
(0.26 s per draw), real run 4 chains x 18 draws in 18.0 s (4.0 draws/s), llc 1.48 +- 0.43;
25 s in all with the imports. (4 x 12 draws gave 1.28; 2 x 20 draws at rrr_test's lr 6e-4 gave
7.06: at this budget devinterp gets far too few draws to settle.) Nothing was tuned toward 4.5.

OUT.json: llc_mean, llc_std (devinterp's llc/std: sample std across chains; null for 1 chain),
llc_per_chain, wall_s, probe_s, chains, draws, lr, batch_size, nbeta, gamma, burnin, devinterp_version,
torch_version, plus n, widths, seed, torch_threads, seconds_per_draw, overhead_s, budget_s.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from importlib.metadata import version

import numpy as np
import torch
from devinterp.optim.sgld import SGLD
from devinterp.slt.callback import SamplerCallback
from devinterp.slt.sampler import estimate_learning_coeff_with_summary
from torch.utils.data import DataLoader, TensorDataset

# devinterp warns on every call (SGLD deprecated, "using passed in nbeta", seeded runs): noise here
warnings.filterwarnings("ignore", module=r"devinterp")


class DLN(torch.nn.Module):
    def __init__(self, widths, w_star):
        super().__init__()
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(a, b, bias=False) for a, b in zip(widths[:-1], widths[1:]))
        off = 0
        with torch.no_grad():
            for layer, a, b in zip(self.layers, widths[:-1], widths[1:]):
                layer.weight.copy_(torch.as_tensor(w_star[off:off + a * b].reshape(b, a)))
                off += a * b

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class DrawClock(SamplerCallback):
    """Stamps time.perf_counter() at every draw (the timing probe)."""

    def __init__(self):
        super().__init__()
        self.stamps = []

    def __call__(self, **kwargs):
        self.stamps.append(time.perf_counter())

    def get_results(self):
        return {}


def evaluate(model, data):
    xb, yb = data
    return 0.5 * ((model(xb) - yb) ** 2).sum(dim=1).mean(), {}


def load_case(path):
    z = np.load(path)
    x = np.asarray(z["x"], dtype=np.float32)
    y = np.asarray(z["y"], dtype=np.float32)
    widths = [int(w) for w in np.asarray(z["widths"]).ravel()]
    w_star = np.asarray(z["w_star"], dtype=np.float32).ravel()
    nbeta, gamma = float(np.asarray(z["nbeta"])), float(np.asarray(z["gamma"]))
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        sys.exit(f"x {x.shape} and y {y.shape} must be (n, d_in) and (n, d_out)")
    if len(widths) < 2 or widths[0] != x.shape[1] or widths[-1] != y.shape[1]:
        sys.exit(f"widths {widths} do not match x {x.shape} / y {y.shape}")
    size = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    if w_star.size != size:
        sys.exit(f"w_star has {w_star.size} entries, widths {widths} need {size}")
    return x, y, widths, w_star, nbeta, gamma


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case")
    ap.add_argument("out")
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--budget-s", type=float, default=None,
                    help="equal-wall-time mode: choose draws so the run takes about this long")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=None, help="default: n (full batch)")
    ap.add_argument("--burnin", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    x, y, widths, w_star, nbeta, gamma = load_case(args.case)
    n = x.shape[0]
    batch = args.batch_size or n
    data = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))

    def run(chains, draws, seed, burnin, callbacks=()):
        loader = DataLoader(data, batch_size=batch, shuffle=True)
        t0 = time.perf_counter()
        res = estimate_learning_coeff_with_summary(
            DLN(widths, w_star), loader, callbacks=list(callbacks), evaluate=evaluate,
            sampling_method=SGLD, optimizer_kwargs=dict(lr=args.lr, localization=gamma, nbeta=nbeta),
            num_chains=chains, num_draws=draws, num_burnin_steps=burnin,
            num_steps_bw_draws=1, cores=1, device="cpu", verbose=False, seed=seed)
        return res, time.perf_counter() - t0

    chains, draws = args.chains, args.draws
    spd = overhead = None
    probe_s = 0.0
    if args.budget_s is not None:
        t0 = time.perf_counter()
        SGLD([torch.nn.Parameter(torch.zeros(1))], lr=args.lr, localization=gamma, nbeta=nbeta)
        clock, k = DrawClock(), 12
        _, t_probe = run(1, k, args.seed + 1000, 0, [clock])
        probe_s = time.perf_counter() - t0
        spd = (clock.stamps[-1] - clock.stamps[2]) / (k - 3)
        overhead = max(t_probe - k * spd, 0.0)
        draws = max(10, math.floor((args.budget_s - overhead) / (chains * spd) - args.burnin))

    res, wall = run(chains, draws, args.seed, args.burnin)
    std = float(res["llc/std"]) if chains > 1 else None  # null, not NaN, for one chain
    per_chain = [float(res[f"llc-chain/{i}"]) for i in range(chains)]
    out = {
        "llc_mean": float(res["llc/mean"]),
        "llc_std": std,
        "llc_per_chain": per_chain, "wall_s": wall, "probe_s": probe_s,
        "chains": chains, "draws": draws, "lr": args.lr, "batch_size": batch,
        "nbeta": nbeta, "gamma": gamma, "burnin": args.burnin,
        "devinterp_version": version("devinterp"), "torch_version": torch.__version__,
        "n": n, "widths": widths, "seed": args.seed, "torch_threads": torch.get_num_threads(),
        "seconds_per_draw": spd, "overhead_s": overhead, "budget_s": args.budget_s,
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    finite = all(map(math.isfinite, [out["llc_mean"], *per_chain]))
    print(f"devinterp {out['devinterp_version']} DLN {widths} n={n} llc={out['llc_mean']:.3f}"
          f"+-{float('nan') if std is None else std:.3f} chains={chains} draws={draws} lr={args.lr:g} batch={batch} "
          f"nbeta={nbeta:.1f} gamma={gamma:g} wall={wall:.1f}s probe={probe_s:.1f}s "
          f"draws_per_s={chains * (draws + args.burnin) / wall:.1f}" + ("" if finite else " NON-FINITE"))
    return 0 if finite else 1


if __name__ == "__main__":
    sys.exit(main())
