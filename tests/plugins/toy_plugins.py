"""A task and a method added from outside pinbench: each is one class plus one registry line.

The plug-in tests name this module in a suite (``plugins: [toy_plugins]``); the sweep's workers
import it too (it is on their PYTHONPATH).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from pinbench.methods import Method
from pinbench.registry import METHODS, TASKS
from pinbench.tasks import DatasetInfo, Metric, Task



@dataclass
class PromptLengthConfig:
    target: int = 11
    """The prompt length (characters) that scores best."""


@TASKS.register("prompt-length")
class PromptLength(Task):
    """Scores a prompt by how far its length is from a target (lower is better); no model."""

    config_class = PromptLengthConfig
    metrics = (Metric("distance", higher_is_better=False), Metric("reward"))
    selection_metric = "distance"

    def __init__(self, config: PromptLengthConfig):
        self.config = config

    @classmethod
    def build(cls, config, run):
        return cls(config)

    @classmethod
    def dataset_name(cls, config) -> str:
        return f"length-{config.target}"

    @classmethod
    def list_datasets(cls, dataset_files=()):
        return [DatasetInfo("length-N", "no data: any target length (task.target)", "nothing to download")]

    def score(self, prompts, split="train"):
        distance = torch.tensor([abs(len(p) - self.config.target) for p in prompts], dtype=torch.float)
        if split == "test":  # a harder split, so a test can tell which split a number came from
            distance = distance + 1
        return {"distance": distance, "reward": -distance}

    # `pinbench report`: the task's own section (Task.report_sections), its dataset's title and
    # where a top prompt was found; the report's code names no task

    dataset_titles = {"length-3": "Length 3"}

    @classmethod
    def report_sections(cls, context):
        from pinbench.analysis import ReportSection
        from pinbench.analysis.sections import files_line
        from pinbench.analysis.tables import Column, summarise, to_markdown

        trials = context.trials
        lengths = trials["best_prompt"].astype(str).str.len().astype(float)
        samples = pd.DataFrame({"row": trials["method"], "column": "length", "value": lengths})
        table = summarise(samples, [Column("length", "Length (characters)", None, 1)],
                          title="Best prompt lengths", rows=context.methods, error=context.error)
        section = ReportSection("Prompt lengths")
        context.write_table(section, table, "prompt_length", "tab:toy-prompt-length")
        targets = ", ".join(str(t) for t in sorted(set(trials["task.target"])))
        section.lines = [to_markdown(table), f"Target lengths: {targets}.", "", files_line("prompt_length"), ""]
        return [section]

    @classmethod
    def report_prompt_where(cls, row) -> str:
        return f", target {row['task.target']}"


@TASKS.register("prompt-length-no-splits")
class PromptLengthNoSplits(PromptLength):
    """The same score with one split only: the chosen prompt is the best reward seen (as for
    textual inversion), and it also stores an output per prompt (as style transfer's samples)."""

    splits = ("train",)
    selection_split, selection_metric, report_split = "train", "reward", None
    cacheable = False

    def score(self, prompts, split="train"):
        return {**super().score(prompts, split), "outputs": [[p.upper()] for p in prompts]}


@dataclass
class FixedPromptsConfig:
    prompts: str = "hello|hello world"
    """Candidate prompts separated by '|', one tried per step."""

    def __post_init__(self):
        if not all(self.prompts.split("|")):
            raise ValueError(f"prompts {self.prompts!r} has an empty candidate")


@METHODS.register("fixed-prompts")
class FixedPrompts(Method):
    """Tries a fixed list of prompts in turn (no learning)."""

    config_class = FixedPromptsConfig

    def __init__(self, spec, task=None):
        super().__init__(spec, task)
        self.candidates = self.config.prompts.split("|")

    def iterate(self) -> dict:
        return {"candidate": self.candidates[self.step_count % len(self.candidates)]}

    def current_prompt(self):
        return self.candidates[(self.step_count - 1) % len(self.candidates)], None
