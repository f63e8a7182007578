"""Config dataclasses as the one source of keys, types and help text.

Every config (the run's, each task's, each method's) is a dataclass with a docstring under each
field. These helpers read that: the CLI's help, the suite checker's types and the documentation's tables
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
    """Each field's type without None (int, float, str, bool, or a ``tuple[...]`` / ``list[...]``
    of those) and whether None is allowed."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = type(None) in typing.get_args(hint)
        out[f.name] = (args[0] if optional and len(args) == 1 else hint, optional)
    return out


SCALARS = (int, float, str, bool)


def sequence_of(base) -> tuple[type, tuple[type, ...], int | None] | None:
    """A sequence field's (container, element types, fixed length or None): ``tuple[int, int]`` ->
    (tuple, (int, int), 2); ``tuple[str, ...]`` and ``list[str]`` -> (tuple or list, (str,), None).
    None for any other type."""
    container, args = typing.get_origin(base), typing.get_args(base)
    if container not in (list, tuple) or not args:
        return None
    if container is tuple and len(args) == 2 and args[1] is Ellipsis:
        return tuple, (args[0],), None
    if container is list:
        return list, (args[0],), None
    return tuple, tuple(args), len(args)


def _name(t) -> str:
    return getattr(t, "__name__", str(t))


def _base_name(base) -> str:
    seq = sequence_of(base)
    if seq is None:
        return _name(base)
    _, items, length = seq
    if length is None:
        return f"list of {_name(items[0])}"
    if len(set(items)) == 1:
        return f"list of {length} {_name(items[0])}"
    return f"list [{', '.join(_name(t) for t in items)}]"


def type_name(cls: type, key: str) -> str:
    base, optional = field_types(cls)[key]
    return f"{_base_name(base)}{' or none' if optional else ''}"


def separator(base) -> str | None:
    """How a sequence field's elements are written on the command line: ``|`` between strings
    (a prompt may hold a comma), ``,`` between numbers and booleans; None for a scalar field."""
    seq = sequence_of(base)
    if seq is None:
        return None
    return "|" if all(t is str for t in seq[1]) else ","


def _item_type(items: tuple[type, ...], i: int) -> type:
    return items[i] if len(items) > 1 else items[0]


def _check_scalar(base: type, value):
    """(ok, value): a YAML value of a scalar type (ints pass as floats; a bool is not an int)."""
    ok = isinstance(value, base) and not (base in (int, float) and isinstance(value, bool))
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return True, float(value)
    return ok, value


def check_value(cls: type, key: str, value, where: str):
    """A YAML value for field ``key`` of ``cls``, type-checked (ints pass as floats; a sequence
    field takes a YAML list, or a string written as on the command line, ``"1,0"`` or
    ``"a|b"``); the error names ``where`` (file and key)."""
    base, optional = field_types(cls)[key]
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}: expected {type_name(cls, key)}, got null")
    seq = sequence_of(base)
    if seq is not None:
        if isinstance(value, str):  # as on the command line (suites written when this was a string)
            return _parse_sequence(cls, key, value, f"{where}:")
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected {type_name(cls, key)}, got {value!r} ({type(value).__name__})")
        return _sequence(cls, key, list(value), where)
    ok, value = _check_scalar(base, value)
    if not ok:
        raise ConfigError(f"{where}: expected {type_name(cls, key)}, got {value!r} ({type(value).__name__})"
                          + _number_as_string_hint(base, value))
    return _in_range(value, f"{where}:")


def _number_as_string_hint(base: type, value) -> str:
    """YAML 1.1 reads ``1e-3`` and ``1.0e5`` as strings: say how to write them."""
    return yaml_float_hint(value) if base in (int, float) and isinstance(value, str) else ""


def yaml_float_hint(value: str) -> str:
    """How to write a number YAML 1.1 read as a string: its floats need a dot in the mantissa and a
    sign in the exponent (``1.0e-5``, ``1.0e+5``); '' for a string that is not such a number."""
    try:
        if not math.isfinite(float(value)):
            return ""  # 1e400: no way to write it as a finite float
    except (TypeError, ValueError):
        return ""
    mantissa, _, exponent = value.strip().lower().partition("e")
    if not exponent:
        return ""
    mantissa = mantissa if "." in mantissa else f"{mantissa}.0"
    exponent = exponent if exponent[0] in "+-" else f"+{exponent}"
    return f" (YAML reads {value} as a string: write {mantissa}e{exponent})"


def _sequence(cls: type, key: str, values: list, where: str):
    """YAML elements of a sequence field, each checked; the field's container (tuple or list)."""
    container, items, length = sequence_of(field_types(cls)[key][0])
    expected = type_name(cls, key)
    if length is not None and len(values) != length:
        raise ConfigError(f"{where}: expected {expected}, got {len(values)} value(s) {values!r}")
    out = []
    for i, value in enumerate(values):
        item = _item_type(items, i)
        ok, value = _check_scalar(item, value)
        if not ok:
            raise ConfigError(f"{where}: expected {expected}, got {values!r}: element {i + 1} {value!r} is "
                              f"{'null' if value is None else type(value).__name__}, not {_name(item)}")
        out.append(_in_range(value, f"{where}: element {i + 1}:"))
    return container(out)


INT64 = 2 ** 63 - 1  # what a results table (Parquet int64) can hold


def _in_range(value, where: str):
    """A number every field can hold: floats finite (inf and nan pass '> 0'-style checks and break
    a run midway), integers within int64."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where} expected a finite number, got {value}")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT64:
        raise ConfigError(f"{where} expected an integer within +-{INT64:,}, got {value}")
    return value


def _parse_scalar(base: type, raw: str):
    if base is bool:
        if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError
        return raw.lower() in ("true", "1", "yes")
    return base(raw)


def parse_value(cls: type, key: str, raw: str, where: str):
    """A command-line string for field ``key`` of ``cls`` ('none' for optional fields). A sequence
    field's elements are separated by ``,`` (numbers: ``1,0``) or, for strings, ``|`` (``a|b``,
    since a prompt may hold a comma)."""
    base, optional = field_types(cls)[key]
    if optional and raw.lower() in ("none", "null", "off"):
        return None
    if sequence_of(base) is not None:
        return _parse_sequence(cls, key, raw, where)
    try:
        value = _parse_scalar(base, raw)
    except ValueError:
        raise ConfigError(f"{where} expects {type_name(cls, key)}, got {raw!r}") from None
    return _in_range(value, where)


def _parse_sequence(cls: type, key: str, raw: str, where: str):
    base = field_types(cls)[key][0]
    container, items, length = sequence_of(base)
    sep = separator(base)
    parts = raw.split(sep) if raw.strip() else []
    expected = f"{type_name(cls, key)} (elements separated by '{sep}')"
    if length is not None and len(parts) != length:
        raise ConfigError(f"{where} expects {expected}, got {len(parts)} value(s) {raw!r}")
    out = []
    for i, part in enumerate(parts):
        item = _item_type(items, i)
        try:
            out.append(_in_range(_parse_scalar(item, part.strip() if item is not str else part),
                                 f"{where} element {i + 1}:"))
        except ValueError:
            raise ConfigError(f"{where} expects {expected}, got {raw!r}: element {i + 1} {part!r} is not "
                              f"{'an' if _name(item)[0] in 'aeiou' else 'a'} {_name(item)}") from None
    return container(out)


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
    if _is_sequence(a) or _is_sequence(b):  # a list field (a results table gives arrays back)
        if not (_is_sequence(a) and _is_sequence(b)):
            return False
        a, b = list(a), list(b)
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _is_sequence(v) -> bool:
    return isinstance(v, (list, tuple)) or (hasattr(v, "tolist") and getattr(v, "ndim", 0) == 1)


def require(checks, config) -> None:
    """Raise for the first failed ``(ok, field, expected)`` check, naming the field and value."""
    for ok, key, expected in checks:
        if not ok:
            raise ConfigError(f"'{key}' = {getattr(config, key)!r} is invalid: expected {expected}")
