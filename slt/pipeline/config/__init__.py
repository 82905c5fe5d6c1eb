"""Typed experiment configs, validated before any work starts.

A config is a YAML mapping; every section is a frozen dataclass (the schema). Validation is
declarative: each field's type annotation (and ``choices``/``check`` metadata) decides what
is accepted; an unknown key suggests the closest valid one. Every problem raises
:class:`ConfigError` whose message is one line naming the key path, e.g.
``sampler.num_chains: must be >= 1, got 0``.

The public names are re-exported here (``from slt.pipeline.config import load, ConfigError``); the
private modules each hold one job:

* ``_schema``    the sections' dataclasses, their field declarations and single-field checks
* ``_typecheck`` a raw mapping into the dataclasses by their type annotations, and back
* ``_validate``  cross-checks between sections, the data, and the machine's memory
* ``_io``        YAML files, ``--set`` overrides, dicts from Python; the shipped default config
* ``_docs``      the README's config reference (``python -m slt.pipeline.config``)
"""
from slt.pipeline.config._docs import describe, reference_markdown
from slt.pipeline.config._io import apply_overrides, default_config_path, from_dict, load, read_yaml
from slt.pipeline.config._schema import (Config, ConfigError, DataConfig, FisherConfig, FreeEnergyConfig,
                                InputConfig, LambdaConfig, LLCConfig, ModelConfig, OutputConfig,
                                PhaseConfig, RandomTruth, RefinedDataConfig, SamplerConfig,
                                SusceptibilityConfig, SweepConfig, TrainConfig, TruthConfig, at_least,
                                non_negative, positive, seed_range)
from slt.pipeline.config._typecheck import build, to_dict
from slt.pipeline.config._validate import influence_check, memory_estimate

__all__ = [
    "Config", "ConfigError", "DataConfig", "FisherConfig", "FreeEnergyConfig", "InputConfig",
    "LambdaConfig", "LLCConfig", "ModelConfig", "OutputConfig", "PhaseConfig", "RandomTruth",
    "RefinedDataConfig", "SamplerConfig", "SusceptibilityConfig", "SweepConfig", "TrainConfig",
    "TruthConfig", "apply_overrides", "at_least", "build", "default_config_path", "describe",
    "from_dict", "influence_check", "load", "memory_estimate", "non_negative", "positive",
    "read_yaml", "reference_markdown", "seed_range", "to_dict",
]
