"""The README's config reference, generated from the schema's field declarations
(``python -m slt.pipeline.config``; ``tests/test_readme.py`` keeps the README's copy complete)."""
from __future__ import annotations

import dataclasses
import typing

from slt.pipeline.config._schema import _INTERNAL, Config, _yaml_key


def describe(cls=Config, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, doc) rows for the README's config reference."""
    rows = []
    for f in dataclasses.fields(cls):
        if f.name in _INTERNAL:
            continue
        key = f"{prefix}{_yaml_key(f.name)}"
        tp = typing.get_type_hints(cls)[f.name]
        inner = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)]
        sub = tp if dataclasses.is_dataclass(tp) else (inner[0] if inner else None)
        if sub is not None:
            rows += describe(sub, key + ".")
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "required")
        doc = f.metadata.get("doc", "")
        if f.metadata.get("choices"):
            doc = (doc + "; " if doc else "") + "one of " + ", ".join(f.metadata["choices"])
        rows.append((key, repr(default) if default != "required" else "required", doc))
    return rows


def reference_markdown() -> str:
    """The README's config reference table (``python -m slt.pipeline.config``)."""
    lines = ["| key | default | meaning |", "| --- | --- | --- |"]
    for key, default, doc in describe():
        lines.append(f"| `{key}` | `{default}` | {doc} |")
    return "\n".join(lines)
