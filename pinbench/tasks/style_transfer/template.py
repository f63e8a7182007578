"""The style-transfer template: the task LM's input around the prompt and the sentence to rewrite.
No torch here: a config's template is checked when a suite is read (`pinbench sweep --dry-run`)."""

from __future__ import annotations

import string

from ...errors import ConfigError
from ..base import formatted_fields

DEFAULT_TEMPLATE = '{prompt} "{input}" "'
"""RLPrompt's template; generation is cut at the closing quote."""


def check_template(template: str) -> None:
    """A template must hold exactly the fields {prompt} and {input}."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ConfigError(f"style-transfer template {template!r} is not a valid format string ({exc})") from exc
    if sorted(fields) != ["input", "prompt"]:
        raise ConfigError(f"style-transfer template {template!r} must contain the fields {{prompt}} and "
                          f"{{input}} once each and no others (it has {fields})")
    specs = formatted_fields(template)
    if specs:  # {input:.0} rendered the input away: the model never saw it
        raise ConfigError(f"style-transfer template {template!r}: fields take no format or conversion "
                          f"({', '.join(specs)}); write them bare, as {{input}}")
