"""Config field types (pinbench/fields.py): scalars and sequences of scalars, from YAML and from the
command line, with one-line errors naming the key and the value."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from pinbench.errors import ConfigError
from pinbench.fields import check_value, parse_value, same_value, type_name
from pinbench.run import make_spec


@dataclass
class Lists:
    pair: tuple[int, int] = (0, 1)
    maybe_pair: tuple[int, int] | None = None
    mixed: tuple[int, str] = (1, "a")
    floats: tuple[float, ...] = ()
    flags: list[bool] | None = None
    words: list[str] | None = None
    count: int = 0


def test_type_names():
    assert [type_name(Lists, k) for k in ("pair", "maybe_pair", "mixed", "floats", "flags", "words", "count")] == [
        "list of 2 int", "list of 2 int or none", "list [int, str]", "list of float", "list of bool or none",
        "list of str or none", "int"]


@pytest.mark.parametrize("key, value, expected", [
    ("pair", [1, 0], (1, 0)),
    ("pair", (1, 0), (1, 0)),
    ("maybe_pair", None, None),
    ("mixed", [3, "b"], (3, "b")),
    ("floats", [1, 2.5], (1.0, 2.5)),  # ints pass as floats
    ("floats", [], ()),
    ("flags", [True, False], [True, False]),
    ("words", ["it was", "so, it was"], ["it was", "so, it was"]),
    # a string is read as on the command line (suites written when a list field was a string)
    ("words", "it was|so, it was", ["it was", "so, it was"]),
    ("pair", "1,0", (1, 0)),
])
def test_yaml_sequences(key, value, expected):
    out = check_value(Lists, key, value, f"s.yaml: base: {key}")
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize("key, value, message", [
    ("pair", [1], "s.yaml: base: pair: expected list of 2 int, got 1 value(s) [1]"),
    ("pair", [1, 2, 3], "s.yaml: base: pair: expected list of 2 int, got 3 value(s) [1, 2, 3]"),
    ("pair", [1, "0"], "s.yaml: base: pair: expected list of 2 int, got [1, '0']: element 2 '0' is str, not int"),
    ("pair", [1, True], "s.yaml: base: pair: expected list of 2 int, got [1, True]: element 2 True is bool, not int"),
    ("pair", [1.0, 0], "s.yaml: base: pair: expected list of 2 int, got [1.0, 0]: element 1 1.0 is float, not int"),
    ("pair", 1, "s.yaml: base: pair: expected list of 2 int, got 1 (int)"),
    ("pair", None, "s.yaml: base: pair: expected list of 2 int, got null"),
    ("mixed", [1, 2], "s.yaml: base: mixed: expected list [int, str], got [1, 2]: element 2 2 is int, not str"),
    ("floats", [1.0, float("inf")], "s.yaml: base: floats: element 2: expected a finite number, got inf"),
    ("words", ["a", None], "s.yaml: base: words: expected list of str or none, got ['a', None]: element 2 None is "
                           "null, not str"),
    ("words", {"a": 1}, "s.yaml: base: words: expected list of str or none, got {'a': 1} (dict)"),
    ("pair", "1,x", "s.yaml: base: pair: expects list of 2 int (elements separated by ','), got '1,x': element 2 "
                    "'x' is not an int"),
])
def test_yaml_sequence_errors_name_the_key_and_value(key, value, message):
    with pytest.raises(ConfigError) as err:
        check_value(Lists, key, value, f"s.yaml: base: {key}")
    assert str(err.value) == message and "\n" not in message


@pytest.mark.parametrize("key, raw, expected", [
    ("pair", "1,0", (1, 0)),
    ("pair", " 1 , 0 ", (1, 0)),
    ("maybe_pair", "none", None),
    ("mixed", "2,b c", (2, "b c")),
    ("floats", "0.5,1e-3,2", (0.5, 1e-3, 2.0)),
    ("floats", "", ()),
    ("flags", "true,no,1", [True, False, True]),
    # strings are separated by |: a prompt may hold a comma (and keeps its spaces)
    ("words", "it was|so, it was", ["it was", "so, it was"]),
    ("words", " a | b", [" a ", " b"]),
    ("words", "one", ["one"]),
    ("words", "null", None),
])
def test_command_line_sequences(key, raw, expected):
    out = parse_value(Lists, key, raw, f"--{key}")
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize("key, raw, message", [
    ("pair", "1", "--pair expects list of 2 int (elements separated by ','), got 1 value(s) '1'"),
    ("pair", "1,0,2", "--pair expects list of 2 int (elements separated by ','), got 3 value(s) '1,0,2'"),
    ("pair", "1|0", "--pair expects list of 2 int (elements separated by ','), got 1 value(s) '1|0'"),
    ("pair", "1,x", "--pair expects list of 2 int (elements separated by ','), got '1,x': element 2 'x' is not an int"),
    ("pair", "none", "--pair expects list of 2 int (elements separated by ','), got 1 value(s) 'none'"),
    ("floats", "1,nan", "--floats element 2: expected a finite number, got nan"),
    ("flags", "true,maybe", "--flags expects list of bool or none (elements separated by ','), got 'true,maybe': "
                            "element 2 'maybe' is not a bool"),
])
def test_command_line_sequence_errors_name_the_flag_and_value(key, raw, message):
    with pytest.raises(ConfigError) as err:
        parse_value(Lists, key, raw, f"--{key}")
    assert str(err.value) == message


def test_scalars_are_unchanged():
    assert check_value(Lists, "count", 3, "k") == 3
    assert parse_value(Lists, "count", "3", "--count") == 3
    with pytest.raises(ConfigError, match=r"^k: expected int, got True \(bool\)$"):
        check_value(Lists, "count", True, "k")
    with pytest.raises(ConfigError, match=r"^--count expects int, got '1,2'$"):
        parse_value(Lists, "count", "1,2", "--count")


def test_same_value_compares_sequences_as_a_results_table_gives_them_back():
    assert same_value(["a", "b"], ("a", "b")) and same_value(np.array(["a", "b"], dtype=object), ["a", "b"])
    assert same_value((1, 0), np.array([1.0, 0.0]))
    assert not same_value(["a"], ["a", "b"]) and not same_value(["a"], "a") and not same_value(None, [])


# ---- the fields that are sequences ------------------------------------------------------------


def test_style_label_index_from_yaml_and_the_command_line():
    yaml = make_spec({"task": "style_transfer", "task.style_label_index": [1, 0]}, "s.yaml: base")
    cli = make_spec({"task": "style_transfer", "task.style_label_index": "1,0"}, "pinbench train", from_strings=True)
    assert yaml.task_config.style_label_index == cli.task_config.style_label_index == (1, 0)
    with pytest.raises(ConfigError, match=r"^s.yaml: base: task.style_label_index: expected list of 2 int or none, "
                                          r"got \[1, 'x'\]: element 2 'x' is str, not int$"):
        make_spec({"task": "style_transfer", "task.style_label_index": [1, "x"]}, "s.yaml: base")
    with pytest.raises(ConfigError, match="^pinbench train: task.style_label_index expects list of 2 int or none"):
        make_spec({"task": "style_transfer", "task.style_label_index": "1,0,1"}, "pinbench train", from_strings=True)


def test_fixed_prompts_are_a_list():
    def prompts(value, **kw):
        return make_spec({"method": "fixed", "method.prompts": value}, "s.yaml: base", **kw).method_config.prompts

    assert prompts(["it was", "so, it was"]) == ["it was", "so, it was"]
    assert prompts("it was|so, it was", from_strings=True) == ["it was", "so, it was"]  # --prompts
    assert prompts("it was|so, it was") == ["it was", "so, it was"]  # an old suite's string
    assert prompts(None) is None
    with pytest.raises(ConfigError, match=r"'prompts' = \['a', '', 'b'\] is invalid: expected a non-empty list of "
                                          r"non-empty prompts, or None"):
        prompts("a||b", from_strings=True)
    with pytest.raises(ConfigError, match=r"'prompts' = \[\] is invalid"):
        prompts([])
    with pytest.raises(ConfigError, match=r"^s.yaml: base: method.prompts: expected list of str or none, got "
                                          r"\['a', 3\]: element 2 3 is int, not str$"):
        prompts(["a", 3])


def test_a_list_field_reads_back_from_a_results_table_as_a_list(tmp_path):
    import pandas as pd

    from pinbench.results import upgrade

    rows = [{"trial_id": "a", "method.prompts": ["it was", "so, it was"], "task.style_label_index": (1, 0)},
            {"trial_id": "b", "method.prompts": None, "task.style_label_index": None}]
    pd.DataFrame(rows).to_parquet(tmp_path / "trials.parquet")
    back = upgrade(pd.read_parquet(tmp_path / "trials.parquet"), "trials")
    assert back["method.prompts"].tolist() == [["it was", "so, it was"], None]
    assert back["task.style_label_index"].tolist() == [[1, 0], None]
    assert same_value(back["task.style_label_index"][0], (1, 0))
