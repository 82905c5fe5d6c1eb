"""Pipeline stages: each ``run(ctx: slt.runs.Context) -> slt.runs.StageOutput`` turns the
config's section into estimator calls. Estimators themselves never read configs."""
