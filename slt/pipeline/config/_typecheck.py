"""The type checker: a raw mapping (parsed YAML) into the schema's dataclasses, field by field
from the type annotations, with one-line :class:`ConfigError` messages (did-you-mean for an
unknown key); and back (:func:`to_dict`)."""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any, Union

from slt.pipeline.config._schema import _INTERNAL, ConfigError, _yaml_key


def _typename(tp) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            dict: "a mapping", list: "a list"}.get(tp, getattr(tp, "__name__", str(tp)))


def _convert(value, tp, path: str, meta: dict):
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg, path, meta)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[-1] if len(errors) == 1 else ConfigError(
            path, f"expected {' or '.join(_typename(a) for a in args if a is not type(None))}, "
                  f"got {value!r}")
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(path, f"expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_convert(v, item, f"{path}[{i}]", {"choices": meta.get("choices")})
                for i, v in enumerate(value)]
    if tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected a mapping, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(path, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, f"expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(path, f"must be finite, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(path, f"expected a string, got {value!r}")
        choices = meta.get("choices")
        if choices and value not in choices:
            hint = difflib.get_close_matches(value, choices, n=1)
            raise ConfigError(path, f"must be one of {list(choices)}, got {value!r}"
                              + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        return value
    raise TypeError(f"unsupported config type {tp!r}")


def build(cls, raw: Any, path: str = ""):
    """Validate a raw mapping into dataclass ``cls`` (recursively)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(path, f"expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    yaml_names = {_yaml_key(name): name for name in fields if name not in _INTERNAL}
    kwargs = {}
    for key, value in raw.items():
        sub = f"{path}.{key}" if path else str(key)
        if key not in yaml_names:
            hint = difflib.get_close_matches(str(key), list(yaml_names), n=1)
            raise ConfigError(sub, "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint
                                                    else f"; valid keys: {sorted(yaml_names)}"))
        name = yaml_names[key]
        f = fields[name]
        val = _convert(value, hints[name], sub, f.metadata)
        check = f.metadata.get("check")
        if val is not None and check is not None:
            msg = check(val)
            if msg:
                raise ConfigError(sub, msg)
        kwargs[name] = val
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{path}.{_yaml_key(name)}" if path else _yaml_key(name), "required key is missing")
    return cls(**kwargs)


def to_dict(obj) -> Any:
    """A config (or section) back to plain YAML-able data, with YAML key names."""
    if dataclasses.is_dataclass(obj):
        return {_yaml_key(f.name): to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if f.name not in _INTERNAL}
    if isinstance(obj, list):
        return [to_dict(v) for v in obj]
    return obj
