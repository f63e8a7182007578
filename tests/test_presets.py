"""The preset registry (pinbench/presets.py): the built-in presets in PIN Table 1's order, each
method's own; plug-in modules register more (tests/plugins/toy_presets.py); the RL presets run on
any task."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from pinbench.cli import main
from pinbench.errors import ConfigError
from pinbench.methods import PRESETS, get_preset
from pinbench.presets import PLUGIN_ORDER, Preset
from pinbench.registry import PRESETS as REGISTRY_PRESETS
from pinbench.run import make_spec
from pinbench.suite import parse_suite

PLUGINS = str(Path(__file__).parent / "plugins")
TABLE1 = ["manual", "instructions", "in-context", "in-context-rlprompt", "soft-prompt", "soft-prompt-rlprompt",
          "grips", "grips-rlprompt", "autoprompt", "autoprompt-rlprompt", "pez", "random-search", "rlprompt", "pin",
          "pin-td", "pin-released", "pin-no-filter"]
RL = ["rlprompt", "pin", "pin-td", "pin-released", "pin-no-filter"]


def test_the_built_in_presets_come_in_pin_table_1_order():
    assert PRESETS is REGISTRY_PRESETS  # one registry, with TASKS and METHODS
    assert list(PRESETS) == [name for name, _ in PRESETS.items()] == TABLE1
    orders = [PRESETS[name].order for name in TABLE1]
    assert orders == sorted(orders) and len(set(orders)) == len(orders) and max(orders) < PLUGIN_ORDER


def test_each_method_module_registers_its_own_presets():
    from pinbench.methods.grips.config import PRESETS as GRIPS
    from pinbench.methods.rl.config import PRESETS as RLS

    assert set(RLS) == set(RL) and all(PRESETS[n] is p for n, p in RLS.items())
    assert list(GRIPS) == ["grips", "grips-rlprompt"] and {p.method for p in GRIPS.values()} == {"grips"}


def test_an_unknown_preset_lists_the_known_ones_sorted():
    with pytest.raises(ConfigError) as err:
        get_preset("pinn")
    assert str(err.value) == f"config: unknown preset 'pinn'; expected one of {sorted(TABLE1)}"


@pytest.mark.parametrize("name", RL)
def test_every_rl_preset_runs_on_a_plugin_task_with_its_generic_shaping(name, monkeypatch):
    monkeypatch.syspath_prepend(PLUGINS)
    spec = make_spec({"plugins": ["toy_plugins"], "preset": name, "task": "prompt-length"})
    classification = make_spec({"preset": name})
    c, ref = spec.method_config, classification.method_config
    assert spec.method == "rl" and spec.task == "prompt-length"
    # "*": the classification shaping (PIN 1 x, RLPrompt 5 x z-score) at the preset's own budget
    assert (c.reward_scale, c.reward_shift) == (ref.reward_scale, ref.reward_shift) == \
        ((5.0, 0.0) if name == "rlprompt" else (1.0, 0.0))
    assert c.shaping("score") == (c.reward_scale, 0.0, True)
    assert (c.regularizer, c.objective, c.top_k, spec.run.steps) == \
        (ref.regularizer, ref.objective, ref.top_k, classification.run.steps)


def test_register_refuses_a_taken_name_and_keeps_the_same_preset(monkeypatch):
    monkeypatch.setattr(PRESETS, "_entries", dict(PRESETS._entries))
    PRESETS.register(PRESETS["pin"])  # the same recipe again (a module imported twice): no change
    with pytest.raises(ConfigError, match="preset 'pin' is registered twice .*register yours under another name"):
        PRESETS.register(Preset("pin", "rl", "mine", {"method.alpha": 2.0}))
    with pytest.raises(ConfigError, match="order must be a number"):
        PRESETS.register(Preset("mine", "rl", "mine", order="first"))


def test_a_plugin_module_registers_presets(plugin_presets):
    spec = make_spec({"plugins": ["toy_presets"], "preset": "toy-short", "task": "prompt-length"})
    assert (spec.method, spec.preset, spec.plugins) == ("fixed-prompts", "toy-short", ("toy_presets",))
    assert (spec.method_config.prompts, spec.task_config.target, spec.run.steps) == ("hi|hello", 2, 2)
    # "*": its values for any other task
    other = make_spec({"plugins": ["toy_presets"], "preset": "toy-short", "task": "prompt-length-no-splits"})
    assert other.method_config.prompts == "a|abc"
    # a plug-in recipe of a built-in method, on a plug-in task and on a built-in one
    for task in ("prompt-length", "classification"):
        pin = make_spec({"plugins": ["toy_presets"], "preset": "toy-pin-alpha", "task": task})
        assert (pin.method, pin.method_config.alpha, pin.method_config.reward_scale, pin.run.steps) == \
            ("rl", 0.5, 2.0, 3)
    # Preset.order: toy-short (15) between manual (10) and instructions (20); toy-pin-alpha, with
    # none, after the built-ins
    assert list(PRESETS) == ["manual", "toy-short", *TABLE1[1:], "toy-pin-alpha"]
    with pytest.raises(ConfigError, match=r"unknown preset 'toy'; expected one of \[.*'soft-prompt-rlprompt', "
                                          r"'toy-pin-alpha', 'toy-short'\]"):
        make_spec({"plugins": ["toy_presets"], "preset": "toy"})


def test_a_plugin_that_registers_a_taken_name_is_an_error_naming_it(plugin_presets, tmp_path, monkeypatch):
    (tmp_path / "bad_presets.py").write_text(
        "from pinbench.presets import PRESETS, Preset\n"
        "PRESETS.register(Preset('pin', 'rl', 'not PIN', {'method.alpha': 3.0}))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="^config: plug-in module 'bad_presets': preset 'pin' is registered twice"):
        make_spec({"plugins": ["bad_presets"], "preset": "pin"})
    sys.modules.pop("bad_presets", None)
    assert PRESETS["pin"].description.startswith("PIN as in the paper")


def test_train_and_suites_take_a_plugin_preset(plugin_presets, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--plugin", "toy_presets", "--task", "prompt-length", "--preset", "toy-short",
                 "--out", str(out)]) == 0
    row = pd.read_parquet(out / "trials.parquet").iloc[0]
    assert (row["preset"], row["method"], row["best_prompt"], row["steps"]) == ("toy-short", "fixed-prompts", "hi", 2)
    assert main(["list", "--plugin", "toy_presets"]) == 0
    presets = capsys.readouterr().out.split("presets:\n")[1].split("\nsuites")[0]
    listed = [line.split()[0] for line in presets.splitlines()]
    assert listed == ["manual", "toy-short", *TABLE1[1:], "toy-pin-alpha"]
    suite = parse_suite({"name": "s", "plugins": ["toy_presets"], "base": {"task": "prompt-length"},
                         "grid": {"preset": ["toy-short", "toy-pin-alpha"]}})
    assert [(t.spec.method, t.spec.preset) for t in suite.trials()] == [("fixed-prompts", "toy-short"),
                                                                        ("rl", "toy-pin-alpha")]


def test_train_runs_pin_on_a_plugin_task(tiny_lm_dir, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(PLUGINS)
    out = tmp_path / "run"
    assert main(["train", "--plugin", "toy_plugins", "--task", "prompt-length", "--preset", "pin",
                 "--policy-lm", tiny_lm_dir, "--top-k", "20", "--mlp-hidden", "16", "--steps", "2",
                 "--eval-every", "1", "--replay-batch", "8", "--out", str(out)]) == 0
    row = pd.read_parquet(out / "trials.parquet").iloc[0]
    assert (row["preset"], row["task"], row["method.reward_scale"], row["method.regularizer"]) == \
        ("pin", "prompt-length", 1.0, "sparse_tsallis")
    assert row["steps"] == 2 and isinstance(row["best_prompt"], str)
