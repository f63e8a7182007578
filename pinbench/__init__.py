"""pinbench: RL-based discrete prompt tuning (RLPrompt, PIN) as a Ray-distributed benchmark suite."""

__version__ = "0.1.0"
