"""Restricted LLCs where no closed form exists: the first layer of the two-node ReLU network
[2, 2, 1] (nonlinear in the restricted weights), checked against a long independent sampler,
numpyro NUTS in float64 on the restricted coordinates only (everything else held at w*).

    python experiments/restricted_nuts_check.py [--samples 20000] [--out benchmarks/restricted_nuts.json]

Cases (n = 1000, x ~ U[-1, 1]^2, sigma = 1, nbeta = n / log n, gamma = 1, w* = the minimiser of
L_n next to the truth, slt.estimators.learning_coefficient.refine_point):
  generic: two active nodes w1 = (0.6, 0.8), b1 = -0.3; w2 = (-0.8, 0.6), b2 = 0.2; q = (1, 1), c = 0
  dead q2: the same first node, q2 = 0 (node 2 does not reach the output: its input weights are
           flat directions of L_n, held only by gamma)
restricted to [W1, b1] (both nodes' input weights and biases) and to [W1]; with --nodes, to
each hidden node's (w_j, b_j, q_j) (a coordinate mask: q_j reaches the output, so with q2 = 0
node 2's restricted posterior is singular: q2 * ReLU(w2.x + b2)).
"""
import argparse
import json
import math
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from slt import data, models
from slt.samplers import diagnostics
from slt.estimators import restricted  # noqa: E402
from slt.estimators import learning_coefficient as lc  # noqa: E402
from slt.posterior import Problem  # noqa: E402

TRUTHS = {
    "generic": [{"W": [[0.6, 0.8], [-0.8, 0.6]], "b": [-0.3, 0.2]}, {"W": [[1.0, 1.0]], "b": [0.0]}],
    "dead q2": [{"W": [[0.6, 0.8], [-0.8, 0.6]], "b": [-0.3, 0.2]}, {"W": [[1.0, 0.0]], "b": [0.0]}],
}


def nuts_reference(key, p, w_star, names, nbeta, gamma, num_samples, num_warmup=2000, num_chains=4):
    from numpyro.infer import MCMC, NUTS

    idx = np.flatnonzero(restricted.weight_mask(p.model, names))
    u_star = w_star[idx]

    def loss_u(u):
        return p.loss(w_star.at[idx].set(u))

    def potential(u):
        return nbeta * loss_u(u) + 0.5 * gamma * jnp.sum((u - u_star) ** 2)

    mcmc = MCMC(NUTS(potential_fn=potential, target_accept_prob=0.9), num_warmup=num_warmup,
                num_samples=num_samples, num_chains=num_chains, chain_method="vectorized", progress_bar=False)
    inits = jnp.broadcast_to(u_star, (num_chains, len(idx)))
    mcmc.run(key, init_params=inits)
    u = mcmc.get_samples(group_by_chain=True)                       # (C, T, k)
    loss = np.asarray(jax.jit(jax.vmap(jax.vmap(loss_u)))(u))       # (C, T)
    excess = nbeta * (loss - float(loss_u(u_star)))
    ess = float(diagnostics.ess_bulk(loss[..., None])[0])
    rhat = float(diagnostics.rhat(loss[..., None])[0])
    return float(excess.mean()), float(excess.std() / math.sqrt(ess)), rhat, ess


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--out", default="benchmarks/restricted_nuts.json")
    ap.add_argument("--nodes", action="store_true", help="restrict to each hidden node (w_j, b_j, q_j) instead")
    a = ap.parse_args()
    spec = models.make_mlp([2, 2, 1], "relu", True)
    rows = []
    for ci, (case, layers) in enumerate(TRUTHS.items()):
        tparams = models.params_from_lists(spec, layers)
        ds = data.synthesize(jax.random.key(10 + ci), spec, tparams, a.n, 1.0, dist="uniform", low=-1.0, high=1.0)
        p = Problem.make(spec, ds)
        w_star, _, grad = lc.refine_point(p, models.flatten(tparams), jitter=0.0)
        nbeta, gamma = lc.default_nbeta(p.n), 1.0
        nodes = {f"node {j + 1}": np.isin(np.arange(9), [2 * j, 2 * j + 1, 4 + j, 6 + j]).astype(float)
                 for j in range(2)}          # node j: its input weights, bias and output weight
        if a.nodes:
            selections = list(nodes.items())
        else:
            selections = [("+".join(ns), ns) for ns in (["W1", "b1"], ["W1"])]
        for label, names in selections:
            t0 = time.perf_counter()
            r = restricted.restricted_llc(jax.random.key(ci), p, w_star, names, nbeta=nbeta, gamma=gamma)
            t_slt = time.perf_counter() - t0
            t0 = time.perf_counter()
            ref, ref_se, ref_rhat, ref_ess = nuts_reference(jax.random.key(100 + ci), p, w_star, names, nbeta,
                                                            gamma, a.samples)
            t_nuts = time.perf_counter() - t0
            se = restricted.stderr(r)
            row = {"case": case, "weights": label, "grad_norm_at_w_star": grad,
                   "slt_hmc": r.mean, "slt_se": se, "slt_converged": r.converged, "slt_draws": r.num_draws,
                   "slt_s": t_slt, "nuts": ref, "nuts_se": ref_se, "nuts_rhat": ref_rhat, "nuts_ess": ref_ess,
                   "nuts_s": t_nuts, "z": (r.mean - ref) / math.hypot(se, ref_se)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    with open(a.out, "w") as fh:
        json.dump({"n": a.n, "nuts_samples_per_chain": a.samples, "nuts_chains": 4, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
