"""Pipeline stages: each ``run(ctx: slt.pipeline.runs.Context) -> slt.pipeline.runs.StageOutput`` turns the
config's section into estimator calls. Estimators themselves never read configs."""
