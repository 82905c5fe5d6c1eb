"""Reading configs: YAML files, ``--set key.path=value`` overrides, a dict from Python; each
validated (types, then cross-checks) into a :class:`Config`."""
from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from slt.pipeline.config._schema import _INTERNAL, Config, ConfigError
from slt.pipeline.config._typecheck import build
from slt.pipeline.config._validate import _check


def from_dict(raw: Any, base_dir: str | Path = ".", name: str | None = None,
              external_model: str | None = None) -> Config:
    """Validate a raw mapping (e.g. parsed YAML) into a :class:`Config`. ``external_model``
    (a description) marks a config whose model and data come from Python (``slt.run``)."""
    if not isinstance(raw, dict):
        raise ConfigError("", f"a config must be a YAML mapping, got {type(raw).__name__}")
    raw = dict(raw)
    for key in _INTERNAL:
        if key in raw:
            raise ConfigError(key, "unknown key")
    if name is not None and "name" not in raw:
        raw["name"] = name
    cfg = build(Config, raw)
    cfg = dataclasses.replace(cfg, base_dir=str(base_dir), external_model=external_model)
    return _check(cfg)


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a raw config mapping."""
    raw = _deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError("--set", f"expected key.path=value, got {item!r}")
        key, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        node = raw
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError("--set", f"bad key path {key!r}")
        for p in parts[:-1]:
            if node.get(p) is None:
                node[p] = {}
            if not isinstance(node[p], dict):
                raise ConfigError(key, f"cannot set inside {p!r}, which is not a mapping")
            node = node[p]
        node[parts[-1]] = value
    return raw


def _deepcopy(obj):
    if isinstance(obj, dict):
        return {k: _deepcopy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_deepcopy(v) for v in obj]
    return obj


def read_yaml(path: str | Path) -> dict:
    """Parse a YAML config file into a raw mapping (one-line errors)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("", f"config file {str(path)!r} does not exist")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("", f"config file {str(path)!r} cannot be read: {exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError("", f"config file {str(path)!r} is not valid YAML{where}") from None
    if raw is None:
        raise ConfigError("", f"config file {str(path)!r} is empty")
    if not isinstance(raw, dict):
        raise ConfigError("", f"config file {str(path)!r} must hold a YAML mapping, got {type(raw).__name__}")
    return raw


def load(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read, override and validate a config file."""
    path = Path(path)
    raw = apply_overrides(read_yaml(path), list(overrides))
    return from_dict(raw, base_dir=path.parent, name=path.stem)


def default_config_path() -> Path:
    """The headline experiment shipped inside the package (``slt run`` with no config)."""
    return Path(str(resources.files("slt") / "defaults" / "relu2_truth1.yaml"))
