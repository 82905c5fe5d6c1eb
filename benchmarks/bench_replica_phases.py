"""Two-node ReLU truths near the phase transition, from prior draws, at slt's sampler defaults
(replica exchange, num_temperatures auto) with num_samples: auto: does every run mix, and do two
runs with different sampler seeds on the same data agree on the phase share?

Truth at angle t: w1 = (cos t, sin t), w2 = (-cos t, sin t), b = -0.3, q = 1, c = 0, x ~ U[-1, 1]^2
(configs/phase_transition.yaml). For each (t, n) the data seed is fixed and the run is repeated with
two top-level (sampler) seeds. Per run: R-hat / ESS of L_n and the invariants (the stage's
diagnostics), the phase labels of every draw (slt.estimators.symmetry.classify_phases), per-chain shares of
the true phase, the share's standard error (sd / sqrt(ESS of the indicator)), R-hat of the
indicator (per-chain shares consistent), the ladder size and round trips. Then the two seeds'
shares are compared: |z| = |p1 - p2| / sqrt(se1^2 + se2^2) <= 3 is agreement.

Run:  nice python benchmarks/bench_replica_phases.py --cases 1.3:1000 1.15:3000 --out benchmarks/replica_phases.jsonl
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time

import numpy as np
import yaml

sys.path.insert(0, os.path.dirname(__file__))
from bench_replica import emit, stage_run  # noqa: E402

from slt.pipeline import config, runs
from slt.samplers import diagnostics
from slt.estimators import symmetry
from slt.pipeline.stages import sampling

ROOT = os.path.join(os.path.dirname(__file__), "..")


def config_for(t: float, n: int, seed: int, extra: dict):
    raw = yaml.safe_load(open(os.path.join(ROOT, "configs", "phase_transition.yaml")))
    raw.pop("phase", None)
    c, s = math.cos(t), math.sin(t)
    raw["truth"]["params"][0]["W"] = [[c, s], [-c, s]]
    raw["data"]["n"] = n
    raw["data"]["seed"] = 1000 + n              # the same data for both sampler seeds
    raw["seed"] = seed
    raw["sampler"] = {"method": "replica", "init": "prior", "num_samples": "auto", **extra}  # defaults otherwise
    raw["name"] = f"phase-t{t}-n{n}-s{seed}"
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(raw, f)
    return config.load(f.name)


def one_run(t, n, seed, extra):
    cfg = config_for(t, n, seed, extra)
    ctx, res, beta, wall, diag = stage_run(cfg)
    p = ctx.problem
    labels = symmetry.classify_phases(p.spec, res.positions, ctx.truth_w, p.x[:2000])
    true = (np.asarray(labels.labels) == list(labels.names).index("true")).astype(float)   # (chains, draws)
    ess = float(diagnostics.ess_bulk(true[..., None])[0]) if true.std() > 0 else float("nan")
    share = float(true.mean())
    se = float(true.std() / math.sqrt(ess)) if np.isfinite(ess) else 0.0
    rhat_ind = float(diagnostics.rhat(true[..., None])[0]) if true.std() > 0 else float("nan")
    rep = res.replica
    return {"t": t, "n": n, "seed": seed, "wall_s": wall, "num_temperatures": int(rep.betas.shape[1]),
            "num_samples": int(res.loss.shape[1]), "converged_auto": rep.converged,
            "global_barrier": float((1 - rep.swap_accept).sum(1).mean()), "pilot_barrier": rep.pilot_barrier,
            "round_trips": rep.round_trips.tolist(), "restarts": rep.restarts.tolist(),
            "rhat_max_invariant": diag.rhat_max_invariant, "ess_bulk_min_invariant": diag.ess_bulk_min_invariant,
            "rhat_loss": diag.rhat_loss, "ess_bulk_loss": diag.ess_bulk_loss,
            "true_share": share, "true_share_se": se, "true_share_per_chain": true.mean(1).round(3).tolist(),
            "rhat_true_indicator": rhat_ind, "warnings": list(ctx.warnings),
            "ok": bool(diag.rhat_max_invariant <= 1.01 and diag.ess_bulk_min_invariant >= 400),
            "load": os.getloadavg()[0]}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", nargs="+", default=["1.3:1000"], help="t:n pairs")
    ap.add_argument("--seeds", type=int, nargs=2, default=[0, 1])
    ap.add_argument("--set", nargs="*", default=[], help="sampler key=value (int) overrides")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    extra = {k: int(v) for k, v in (s.split("=") for s in a.set)}
    for case in a.cases:
        t, n = case.split(":")
        rows = [one_run(float(t), int(n), s, extra) for s in a.seeds]
        d = rows[0]["true_share"] - rows[1]["true_share"]
        se = math.hypot(rows[0]["true_share_se"], rows[1]["true_share_se"])
        z = d / se if se > 0 else (0.0 if d == 0 else float("inf"))
        for r in rows:
            r["pair_z"] = z
            emit(r, a.out)


if __name__ == "__main__":
    sys.exit(main())
