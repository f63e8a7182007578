"""Errors that pinbench reports to users as one clear line (the CLI prints them without a traceback)."""


class PinbenchError(Exception):
    """Base class: a user-facing problem whose message names the offending file, key, value or model."""


class ModelLoadError(PinbenchError):
    """A model name could not be resolved or loaded."""


class DataError(PinbenchError):
    """A data file is missing, empty or malformed."""


class ConfigError(PinbenchError):
    """A configuration (dataset registry entry, suite, CLI option) is invalid."""
