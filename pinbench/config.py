"""The trainer's configuration and the papers' presets (PAPER.md section 8)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import typing
from dataclasses import dataclass
from functools import lru_cache

from .errors import ConfigError


@dataclass
class TrainConfig:
    """Everything that defines a run. Defaults are PIN's settings with the offline models."""

    # --- task ---
    dataset: str = "sst-2"
    """Few-shot classification dataset (registry name)."""
    split_seed: int = 13
    """LM-BFF split seed: 13, 21, 42, 87 or 100."""
    data_dir: str | None = None
    """Root of the few-shot data (<data_dir>/<dataset>/16-<split_seed>/...)."""
    dataset_file: str | None = None
    """Optional YAML file that defines extra datasets."""
    task_lm: str = "smollm2-135m"
    """Task model (black box scored through verbalizers); the papers use roberta-large."""
    task_lm_kind: str | None = None
    """causal or masked; default: masked for *bert* names, else causal."""
    bf16: bool = True
    """Score rewards with a bfloat16 copy of the task LM's weights (several times faster on CPU;
    class probabilities move by up to ~0.05 against float32)."""

    # --- policy ---
    policy_lm: str = "smollm2-135m"
    """Frozen causal policy LM; PIN uses facebook/opt-125m, RLPrompt distilgpt2."""
    prompt_length: int = 5
    """L, tokens per prompt."""
    mlp_hidden: int = 2048
    """Width of the trainable MLP psi."""

    # --- regulariser and filter ---
    regularizer: str = "sparse_tsallis"
    """shannon (RLPrompt), sparse_tsallis (PIN) or tsallis (index q)."""
    alpha: float = 1.0
    """Entropy coefficient; smaller alpha -> fewer tokens in a sparse policy's support."""
    q: float = 1.5
    """Tsallis entropic index in (1, 2]; used by the tsallis regulariser only."""
    top_k: int | None = 10000
    """PIN's ignorable-token filter: keep the policy LM's top-k tokens per prefix (None: off)."""
    sample_top_k: int | None = None
    """RLPrompt's truncation: sample from the policy's own top-k, loss on the full Q (None: off)."""

    # --- objective and data ---
    objective: str = "mc"
    """mc (PIN code), td (PIN paper Eq. 5) or pcl (RLPrompt)."""
    replay_size: int = 64000
    """Replay buffer capacity in prompts; 0 means on-policy updates."""
    replay_batch: int = 256
    """Prompts sampled from the buffer per update."""
    prompts_per_step: int = 16
    """Prompts sampled from the policy per step."""
    reward_scale: float | None = None
    """Shaping: scale * zscore(R) + shift; None takes the task's default (5 for classification)."""
    reward_shift: float | None = None
    """Shaping shift; None takes the task's default (0 for classification)."""

    # --- optimisation ---
    steps: int = 6000
    """Training steps."""
    lr: float = 5e-5
    """Adam learning rate."""
    grad_clip: float = 5.0
    """Gradient-norm clip."""
    polyak: float = 0.001
    """Target update rate tau: psi' <- (1 - tau) psi' + tau psi every step."""

    # --- evaluation ---
    eval_every: int = 20
    """Score the greedy prompt on dev every N steps (and at the last step)."""
    test: bool = True
    """Score the best dev prompt on the test split at the end."""

    # --- run ---
    seed: int = 0
    """Seeds the MLP initialisation and every sampling generator."""
    device: str = "cpu"
    """cpu or cuda[:N]."""

    def __post_init__(self):
        self.validate()

    def validate(self) -> "TrainConfig":
        from .objectives import OBJECTIVES
        from .regularizers import REGULARIZERS

        checks = [
            (self.regularizer in REGULARIZERS, "regularizer", f"one of {sorted(REGULARIZERS)}"),
            (self.objective in OBJECTIVES, "objective", f"one of {sorted(OBJECTIVES)}"),
            (self.alpha > 0, "alpha", "> 0"),
            (1 < self.q <= 2, "q", "in (1, 2]"),
            (self.top_k is None or self.top_k >= 1, "top_k", ">= 1 or None"),
            (self.sample_top_k is None or self.sample_top_k >= 1, "sample_top_k", ">= 1 or None"),
            (self.prompt_length >= 1, "prompt_length", ">= 1"),
            (self.prompts_per_step >= 2, "prompts_per_step", ">= 2 (rewards are z-scored across them)"),
            (self.replay_size >= 0, "replay_size", ">= 0"),
            (self.replay_batch >= 1, "replay_batch", ">= 1"),
            (self.steps >= 1, "steps", ">= 1"),
            (self.eval_every >= 1, "eval_every", ">= 1"),
            (self.lr > 0, "lr", "> 0"),
            (0 < self.polyak <= 1, "polyak", "in (0, 1]"),
            (self.task_lm_kind in (None, "causal", "masked"), "task_lm_kind", "causal, masked or None"),
        ]
        for ok, key, expected in checks:
            if not ok:
                raise ConfigError(f"config '{key}' = {getattr(self, key)!r} is invalid: expected {expected}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# The papers' settings (PAPER.md section 8). Models stay the offline defaults: the papers' are
# one option away (policy_lm=facebook/opt-125m or distilgpt2, task_lm=roberta-large).
PRESETS: dict[str, dict] = {
    "pin": dict(regularizer="sparse_tsallis", alpha=1.0, top_k=10000, sample_top_k=None, objective="mc",
                replay_size=64000, replay_batch=256, lr=5e-5, prompts_per_step=16, eval_every=20, steps=6000),
    "pin-td": dict(regularizer="sparse_tsallis", alpha=1.0, top_k=10000, sample_top_k=None, objective="td",
                   replay_size=64000, replay_batch=256, lr=5e-5, prompts_per_step=16, eval_every=20, steps=6000),
    "rlprompt": dict(regularizer="shannon", alpha=0.2, top_k=None, sample_top_k=256, objective="pcl",
                     replay_size=0, lr=5e-5, prompts_per_step=16, eval_every=10, steps=12000),
}


def from_preset(preset: str | None = None, **overrides) -> TrainConfig:
    """A config from a preset name (or the defaults) with field overrides."""
    values: dict = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset '{preset}'; expected one of {sorted(PRESETS)}")
        values.update(PRESETS[preset])
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise ConfigError(f"unknown config key(s) {unknown}")
    values.update(overrides)
    return TrainConfig(**values)


@lru_cache(maxsize=None)
def field_docs() -> dict[str, str]:
    """The docstring under each TrainConfig field (used for CLI help and the README)."""
    tree = ast.parse(inspect.getsource(TrainConfig))
    body = tree.body[0].body
    docs = {}
    for node, following in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(following, ast.Expr) \
                and isinstance(getattr(following, "value", None), ast.Constant):
            docs[node.target.id] = str(following.value.value)
    return docs


def field_types() -> dict[str, type]:
    """Each field's base type (int, float, str, bool) and whether None is allowed."""
    hints = typing.get_type_hints(TrainConfig)
    out = {}
    for name, hint in hints.items():
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        out[name] = (args[0] if args else hint, type(None) in typing.get_args(hint))
    return out


def parse_value(key: str, raw: str):
    """Parse a CLI string for field ``key`` ('none' for optional fields)."""
    types = field_types()
    if key not in types:
        raise ConfigError(f"unknown config key '{key}'")
    base, optional = types[key]
    if optional and raw.lower() in ("none", "null", "off"):
        return None
    try:
        if base is bool:
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return raw.lower() in ("true", "1", "yes")
        return base(raw)
    except ValueError:
        raise ConfigError(f"config '{key}' expects {base.__name__}{' or none' if optional else ''}, got {raw!r}") from None
