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


def allocation_failure(exc: BaseException) -> str | None:
    """An allocator's out-of-memory error (torch's CPU allocator, CUDA's, numpy's) as one line
    naming the size asked for; None for any other error."""
    import re

    text = str(exc)
    if not (isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
            or "can't allocate memory" in text):
        return None
    size = re.search(r"allocate (\d+) bytes", text)  # torch's CPU allocator
    shown = f"{int(size[1]):,} bytes" if size else None
    if shown is None:  # CUDA: "Tried to allocate 20.00 GiB"; numpy: "Unable to allocate 1.2 TiB for an array"
        size = re.search(r"allocate ([\d.]+ [KMGTPE]i?B)", text)
        shown = size[1] if size else None
    return (f"out of memory{f' allocating {shown}' if shown else ''}: a size setting (method.mlp_hidden, "
            "method.replay_size, method.prompts_per_step, task.max_batch_tokens, ...) asks for more than this "
            "machine holds, or the model does not fit in it")
