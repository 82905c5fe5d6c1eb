"""What the ``llc`` stage and the LLC-along-training stage share (so neither imports the other):
the estimator settings of an ``llc`` section and the exact lambda of a deep linear truth."""
from __future__ import annotations

import numpy as np

from slt.pipeline.runs import Context


def llc_settings(cfg, n: int) -> dict:
    """The keyword arguments of :func:`slt.estimators.learning_coefficient.estimate_llc` from an ``llc`` section."""
    return dict(sampler=cfg.sampler, num_chains=cfg.num_chains, num_draws=cfg.num_draws,
                max_draws=cfg.max_draws, num_burnin=cfg.num_burnin, num_adapt=cfg.num_adapt,
                step_size=cfg.step_size, target_accept=cfg.target_accept, gamma=cfg.gamma,
                trajectory_length=cfg.trajectory_length, max_steps=cfg.max_steps,
                batch_size=cfg.batch_size if cfg.batch_size and cfg.batch_size < n else None)


def exact_lambda(ctx: Context) -> dict:
    """Aoyagi's lambda and multiplicity when the model is a deep linear network (identity
    activations, no biases) with a known truth: the true product matrix's rank decides them."""
    from slt.estimators import exact

    spec = ctx.problem.spec
    if spec is None or spec.activation != "identity" or spec.bias or ctx.truth_params is None:
        return {}
    prod = None
    for layer in ctx.truth_params:
        W = np.asarray(layer["W"], np.float64)
        prod = W if prod is None else W @ prod
    rank = int(np.linalg.matrix_rank(prod, tol=1e-8 * max(1.0, float(np.abs(prod).max())))) if prod.size else 0
    c = exact.dln_lambda(list(spec.widths), rank)
    return {"exact_lambda": c.lam, "exact_multiplicity": c.multiplicity, "truth_rank": rank,
            "exact_source": "Aoyagi 2024 (deep linear network)" if spec.num_layers > 2 else
                            "Aoyagi & Watanabe 2005 (reduced rank)" if spec.num_layers == 2 else "regular (d/2)"}
