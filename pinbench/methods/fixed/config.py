"""The fixed-prompt method's configuration and its presets (PIN Table 1's first three rows)."""

from __future__ import annotations

from dataclasses import dataclass

from ...fields import require
from ...presets import Preset, register_presets

SOURCES = ("manual", "instruction")


@dataclass
class FixedPromptsConfig:
    """The fixed-prompt method's fields (``method.<field>``)."""

    prompts: list[str] | None = None
    """Candidate prompts, one evaluated per iteration (scored on dev, the best kept; each stripped
    of surrounding spaces); None takes the task's reference prompt of ``source``. A YAML list
    (``method.prompts: [it was, "so, it was"]``); on the command line and in a YAML string, the
    prompts separated by ``|`` (``--prompts "it was|so, it was"``: a prompt may hold a comma, not
    a ``|``)."""
    source: str = "manual"
    """Where prompts come from when ``prompts`` is None: manual (the empty prompt in the manual
    template) or instruction (the dataset's task instruction)."""
    query_demonstrations: int = 0
    """In-context demonstrations per class drawn afresh for every scored example: each dev and
    test input gets its own training examples (seeded from ``run.seed``, the split and the input's
    position), rendered as ``task.demonstrations`` renders its one fixed set (after the query for
    masked LMs, before it for causal LMs), the whole input cut to 512 tokens around the scored
    position as LM-BFF cuts it (RLPrompt's in-context script: LM-BFF's ``select_context`` draws one
    example per class for every query). 0: none. Classification only, with
    ``task.demonstrations`` 0."""

    def __post_init__(self):
        require([(self.source in SOURCES, "source", f"one of {SOURCES}"),
                 (self.prompts is None or (len(self.prompts) > 0 and all(p.strip() for p in self.prompts)),
                  "prompts", "a non-empty list of non-empty prompts, or None"),
                 (self.query_demonstrations >= 0, "query_demonstrations", ">= 0")], self)


# RLPrompt's baseline scripts (examples/few-shot-classification/baseline/{0-manual-prompt,
# 1-instruction,2-in-context}/run.sh on branch cls_baseline of mingkaid/rl-prompt), which PIN's
# Table 1 copies: the manual template (LM-BFF's), the same with the dataset's instruction in front,
# and the manual template followed by one training example per class. Nothing is trained: one
# evaluation per prompt.
#
# `in-context` renders one set of demonstrations per run (drawn with run.seed) into the template:
# every dev and test input sees the same examples. RLPrompt's 2-in-context/train.py builds its test
# set with LM-BFF's FewShotDataset (use_demo=True, num_sample=1, utils/dataset.py), whose
# __getitem__ calls select_context for every query: a new random permutation of the training split
# and the first example of each class in it (utils/dataset.py:358-389), so each test input has its
# own demonstrations: `in-context-rlprompt`.
_ONE = {"run.steps": 1, "run.eval_every": 1}
PRESETS: dict[str, Preset] = register_presets(
    Preset("manual", "fixed", "Manual prompt: the papers' hand-written template (LM-BFF's, as RLPrompt's baseline "
                              "0-manual-prompt runs it)",
           {"method.source": "manual", "task.template": "manual", **_ONE}, order=10),
    Preset("instructions", "fixed", "Instructions: the dataset's task instruction before the manual template "
                                    "(RLPrompt's baseline 1-instruction)",
           {"method.source": "instruction", "task.template": "manual", **_ONE}, order=20),
    Preset("in-context", "fixed", "In-context demonstration: the manual template followed by one training example "
                                  "per class, one set drawn with the seed for the whole run (LM-BFF's format; our "
                                  "setting, not RLPrompt's script, which draws per query: see in-context-rlprompt)",
           {"method.source": "manual", "task.template": "manual", "task.demonstrations": 1, **_ONE}, order=30),
    Preset("in-context-rlprompt", "fixed",
           "In-context demonstration as RLPrompt's baseline script (2-in-context/train.py, LM-BFF's dataset) runs "
           "it: the manual template followed by one training example per class, drawn afresh for every test (and "
           "dev) input. Not reproduced: its exact draws (numpy in 4 DataLoader workers)",
           {"method.source": "manual", "method.query_demonstrations": 1, "task.template": "manual",
            "task.demonstrations": 0, "run.selection": "metric", **_ONE}, order=31),
)
