"""Errors that pinbench reports to users as one clear line (the CLI prints them without a traceback)."""


class PinbenchError(Exception):
    """Base class: a user-facing problem whose message names the offending file, key, value or model."""


class ModelLoadError(PinbenchError):
    """A model name could not be resolved or loaded."""


class DataError(PinbenchError):
    """A data file is missing, empty or malformed."""


class ConfigError(PinbenchError):
    """A configuration (dataset registry entry, suite, CLI option) is invalid."""


class NonFiniteError(PinbenchError):
    """A training quantity (loss, reward, gradient norm) became NaN or infinite: the run stops at
    that step, since every later update would build on it."""


def first_few(items, n: int = 3) -> str:
    """The first ``n`` of ``items`` for a one-line message, ", ..." when there are more."""
    items = [str(i) for i in items]
    return ", ".join(items[:n]) + (", ..." if len(items) > n else "")


def yaml_error_line(exc: Exception) -> str:
    """A YAML parser error (PyYAML's are several lines, with a caret drawing) as one line: the
    line and column, and what the parser expected."""
    mark = getattr(exc, "problem_mark", None)
    what = ", ".join(p for p in (getattr(exc, "context", None), getattr(exc, "problem", None)) if p)
    if not what:
        what = " ".join(str(exc).strip().splitlines()[0].split()) if str(exc).strip() else type(exc).__name__
    return f"line {mark.line + 1}, column {mark.column + 1}: {what}" if mark is not None else what
