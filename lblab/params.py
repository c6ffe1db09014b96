"""Experiment parameters as typed dataclasses, validated at the edge.

An experiment declares `Params` as a dataclass whose fields carry their help text and their
allowed range in `param(...)`. `apply_overrides` turns `--set key=value` strings into a new
instance, rejecting unknown keys, ill-typed values and out-of-range values with one line that
names the fix, before anything is created on the machine.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Iterable
from typing import Any

from lblab.errors import UsageError


def param(default: Any, help: str, *, min: float | None = None, max: float | None = None,
          choices: Iterable[Any] | None = None) -> Any:
    """A dataclass field with its help text and its allowed values."""
    meta = {"help": help, "min": min, "max": max,
            "choices": tuple(choices) if choices is not None else None}
    return dataclasses.field(default=default, metadata=meta)


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not a boolean (use true or false)")


def _parse_value(kind: Any, text: str) -> Any:
    if kind is bool:
        return _parse_bool(text)
    if kind is int:
        return int(text.replace("_", ""))
    if kind is float:
        return float(text)
    if kind is str:
        return text
    origin = typing.get_origin(kind)
    if origin is tuple:
        (inner, *_rest) = typing.get_args(kind)
        return tuple(_parse_value(inner, part) for part in text.split(",") if part.strip())
    raise ValueError(f"unsupported parameter type {kind!r}")


def _type_name(kind: Any) -> str:
    if typing.get_origin(kind) is tuple:
        return f"comma-separated {typing.get_args(kind)[0].__name__}s"
    return getattr(kind, "__name__", str(kind))


def check_field(experiment: str, field: dataclasses.Field, value: Any) -> None:
    """Raise UsageError when value is outside the field's declared range or choices."""
    meta = field.metadata
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if meta.get("choices") and v not in meta["choices"]:
            options = ", ".join(str(c) for c in meta["choices"])
            raise UsageError(f"{experiment}: {field.name}={v} is not one of: {options}")
        if meta.get("min") is not None and v < meta["min"]:
            raise UsageError(f"{experiment}: {field.name}={v} is below the minimum {meta['min']}")
        if meta.get("max") is not None and v > meta["max"]:
            raise UsageError(f"{experiment}: {field.name}={v} is above the maximum {meta['max']}")


def apply_overrides(experiment: str, params: Any, assignments: Iterable[str]) -> Any:
    """Return a copy of `params` with each `key=value` applied and every field validated."""
    fields = {f.name: f for f in dataclasses.fields(params)}
    hints = typing.get_type_hints(type(params))
    changes: dict[str, Any] = {}
    for item in assignments:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set expects key=value, got {item!r}")
        if key not in fields:
            near = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise UsageError(f"{experiment}: unknown parameter {key!r}{hint}; "
                             f"`lblab list --params {experiment}` shows them")
        try:
            changes[key] = _parse_value(hints[key], text.strip())
        except ValueError:
            raise UsageError(f"{experiment}: {key} expects {_type_name(hints[key])}, "
                             f"got {text.strip()!r}") from None
    updated = dataclasses.replace(params, **changes)
    for name, field in fields.items():
        check_field(experiment, field, getattr(updated, name))
    validate = getattr(updated, "validate", None)
    if validate is not None:
        problem = validate()
        if problem:
            raise UsageError(f"{experiment}: {problem}")
    return updated


def describe(params: Any) -> list[tuple[str, str, str, str]]:
    """(name, type, default, help) per field, for `lblab list --params`."""
    hints = typing.get_type_hints(type(params))
    rows = []
    for f in dataclasses.fields(params):
        rng = []
        if f.metadata.get("min") is not None:
            rng.append(f">= {f.metadata['min']}")
        if f.metadata.get("max") is not None:
            rng.append(f"<= {f.metadata['max']}")
        if f.metadata.get("choices"):
            rng.append("one of " + ", ".join(map(str, f.metadata["choices"])))
        help_text = f.metadata.get("help", "") + (f" ({'; '.join(rng)})" if rng else "")
        rows.append((f.name, _type_name(hints[f.name]), str(getattr(params, f.name)), help_text))
    return rows
