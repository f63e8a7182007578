"""Config dataclasses as the one source of keys, types and help text.

Every config (the run's, each task's, each method's) is a dataclass with a docstring under each
field. These helpers read that: the CLI's help, the suite checker's types and the README's tables
all come from here, for any config class.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
import textwrap
import typing
from functools import lru_cache

from .errors import ConfigError


@lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (its bases' fields included)."""
    docs: dict[str, str] = {}
    names = {f.name for f in dataclasses.fields(cls)}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):  # defined where there is no source (an interactive session)
            continue
        body = tree.body[0].body
        for node, following in zip(body, body[1:]):
            if isinstance(node, ast.AnnAssign) and isinstance(following, ast.Expr) \
                    and isinstance(getattr(following, "value", None), ast.Constant):
                if node.target.id in names:
                    docs[node.target.id] = " ".join(str(following.value.value).split())
    return docs


@lru_cache(maxsize=None)
def field_types(cls: type) -> dict[str, tuple[type, bool]]:
    """Each field's base type (int, float, str, bool) and whether None is allowed."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        out[f.name] = (args[0] if args else hint, type(None) in typing.get_args(hint))
    return out


def type_name(cls: type, key: str) -> str:
    base, optional = field_types(cls)[key]
    return f"{getattr(base, '__name__', str(base))}{' or none' if optional else ''}"


def check_value(cls: type, key: str, value, where: str):
    """A YAML value for field ``key`` of ``cls``, type-checked (ints pass as floats); the error
    names ``where`` (file and key)."""
    base, optional = field_types(cls)[key]
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}: expected {type_name(cls, key)}, got null")
    ok = isinstance(value, base) and not (base is int and isinstance(value, bool))
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        ok, value = True, float(value)
    if not ok:
        raise ConfigError(f"{where}: expected {type_name(cls, key)}, got {value!r} ({type(value).__name__})")
    return _in_range(value, f"{where}:")


INT64 = 2 ** 63 - 1  # what a results table (Parquet int64) can hold


def _in_range(value, where: str):
    """A number every field can hold: floats finite (inf and nan pass '> 0'-style checks and break
    a run midway), integers within int64."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where} expected a finite number, got {value}")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT64:
        raise ConfigError(f"{where} expected an integer within +-{INT64:,}, got {value}")
    return value


def parse_value(cls: type, key: str, raw: str, where: str):
    """A command-line string for field ``key`` of ``cls`` ('none' for optional fields)."""
    base, optional = field_types(cls)[key]
    if optional and raw.lower() in ("none", "null", "off"):
        return None
    try:
        if base is bool:
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return raw.lower() in ("true", "1", "yes")
        value = base(raw)
    except ValueError:
        raise ConfigError(f"{where} expects {type_name(cls, key)}, got {raw!r}") from None
    return _in_range(value, where)


def build(cls: type, values: dict, where: str):
    """``cls(**values)``; an unknown key is an error that names ``where`` and lists the fields."""
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; fields: {', '.join(names)}")
    return cls(**values)


def same_value(a, b) -> bool:
    """Two config values are the same: both unset (None or NaN, as Parquet gives it back),
    numbers equal to 1e-9 relative, anything else equal."""
    unset = lambda v: v is None or (isinstance(v, float) and math.isnan(v))  # noqa: E731
    if unset(a) or unset(b):
        return unset(a) and unset(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def require(checks, config) -> None:
    """Raise for the first failed ``(ok, field, expected)`` check, naming the field and value."""
    for ok, key, expected in checks:
        if not ok:
            raise ConfigError(f"'{key}' = {getattr(config, key)!r} is invalid: expected {expected}")
