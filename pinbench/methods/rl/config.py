"""The RL method's configuration and its presets, the papers' recipes (docs/presets.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...fields import require
from ...presets import Preset, register_presets

# The choices of ``regularizer``, ``objective`` and ``policy_input``, named beside the fields so that
# validating a config loads no torch (`pinbench sweep --dry-run`). regularizers.REGULARIZERS and
# objectives.OBJECTIVES implement exactly these (tests/test_regularizers.py, test_objectives.py);
# policy.py reads POLICY_INPUTS from here.
REGULARIZERS = ("shannon", "sparse_tsallis", "tsallis")
OBJECTIVES = ("mc", "td", "pcl")
POLICY_INPUTS = ("ids", "retokenize")


@dataclass
class RLConfig:
    """The RL method's fields (``method.<field>``). Defaults are PIN's settings with the offline
    policy LM; the presets below are the papers' recipes."""

    SETUP_FIELDS: ClassVar[tuple[str, ...]] = ("policy_lm",)
    """Fields that say which model runs the method, not which method it is: report labels leave
    them out (they name the models elsewhere)."""

    # --- policy ---
    policy_lm: str = "smollm2-135m"
    """Frozen causal policy LM; PIN uses facebook/opt-125m, RLPrompt distilgpt2."""
    prompt_length: int = 5
    """L, tokens per prompt."""
    mlp_hidden: int = 2048
    """Width of the trainable MLP psi."""
    policy_input: str = "ids"
    """What the policy LM reads: "ids", the start token and the sampled ids; "retokenize", the
    authors' code: every sampled token decoded to text and tokenized again (with OPT each step
    reads "</s> token"), the batch padded without a mask (docs/fidelity.md)."""

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
    q_bias: float = 0.0
    """A constant added to every Q value (RLPrompt's ``logit_bias``: -10 for style transfer, so Q
    starts near -10 under rewards shaped to [-20, 80]); the policy is unchanged, the targets are not."""

    # --- objective and data ---
    objective: str = "mc"
    """mc (PIN code), td (PIN paper Eq. 5) or pcl (RLPrompt)."""
    replay_size: int = 64000
    """Replay buffer capacity in prompts; 0 means on-policy updates."""
    replay_batch: int = 256
    """Prompts sampled from the buffer per update, with replacement (as the authors' buffer draws)."""
    replay_warmup: bool = True
    """No update until the buffer holds one replay batch (the authors' off-policy modules: steps
    1 to replay_batch / prompts_per_step - 1 only explore, the first update is at step
    replay_batch / prompts_per_step: 16 for 256 / 16); False updates from the first step."""
    prompts_per_step: int = 16
    """Prompts sampled from the policy per step."""
    reward_scale: float | None = None
    """Shaping: scale * zscore(R) + shift. Presets set their code's value for the task; None takes
    the default for the task's kind of reward (``DEFAULT_SHAPING``: 1)."""
    reward_shift: float | None = None
    """Shaping shift; presets set it; None: ``DEFAULT_SHAPING`` (0)."""
    reward_zscore: bool | None = None
    """z-score the rewards before scaling; None: ``DEFAULT_SHAPING`` for the task's
    ``reward_kind``, as the authors' reward classes do: yes for a task score (classification, style
    transfer), no for a raw similarity (inversion's cosine)."""

    # --- optimisation ---
    lr: float = 5e-5
    """Adam learning rate."""
    grad_clip: float = 5.0
    """Gradient-norm clip."""
    polyak: float = 0.001
    """Target update rate tau: psi' <- (1 - tau) psi' + tau psi every step."""

    def __post_init__(self):
        require([
            (self.regularizer in REGULARIZERS, "regularizer", f"one of {sorted(REGULARIZERS)}"),
            (self.objective in OBJECTIVES, "objective", f"one of {sorted(OBJECTIVES)}"),
            (self.policy_input in POLICY_INPUTS, "policy_input", f"one of {list(POLICY_INPUTS)}"),
            (self.alpha > 0, "alpha", "> 0"),
            (1 < self.q <= 2, "q", "in (1, 2]"),
            (self.top_k is None or self.top_k >= 1, "top_k", ">= 1 or None"),
            (self.sample_top_k is None or self.sample_top_k >= 1, "sample_top_k", ">= 1 or None"),
            (self.prompt_length >= 1, "prompt_length", ">= 1"),
            (self.prompts_per_step >= 2, "prompts_per_step", ">= 2 (rewards are z-scored across them)"),
            (self.replay_size >= 0, "replay_size", ">= 0"),
            (self.replay_batch >= 1, "replay_batch", ">= 1"),
            # a buffer smaller than one batch never ends its warm-up: no update would ever run
            (self.replay_size == 0 or self.replay_size >= self.replay_batch or not self.replay_warmup,
             "replay_size", f">= replay_batch ({self.replay_batch}) while replay_warmup is on, or 0 (no buffer)"),
            (self.mlp_hidden >= 1, "mlp_hidden", ">= 1"),
            (self.grad_clip is None or self.grad_clip > 0, "grad_clip", "> 0 (a negative clip flips the gradient)"),
            (self.lr > 0, "lr", "> 0"),
            (0 < self.polyak <= 1, "polyak", "in (0, 1]"),
        ], self)

    def shaping(self, reward_kind: str) -> tuple[float, float, bool]:
        """(scale, shift, z-score) for a task whose reward is ``reward_kind`` (``Task.reward_kind``):
        the fields where set, else ``DEFAULT_SHAPING``."""
        if reward_kind not in DEFAULT_SHAPING:
            from ...errors import ConfigError

            raise ConfigError(f"method 'rl' has no reward shaping for a task reward of kind '{reward_kind}'; "
                              f"known: {sorted(DEFAULT_SHAPING)} (set method.reward_scale, reward_shift and "
                              f"reward_zscore)")
        scale, shift, zscore = DEFAULT_SHAPING[reward_kind]
        pick = lambda mine, default: default if mine is None else mine  # noqa: E731
        return pick(self.reward_scale, scale), pick(self.reward_shift, shift), pick(self.reward_zscore, zscore)


#: The RL method's shaping when no preset or field sets it, per kind of task reward
#: (``Task.reward_kind``): PIN's code's, 1 x z-score for a task score (classification, style
#: transfer), 1 x the raw value for a similarity (its CLIP reward: the README command's
#: reward_shaping_new_max=1; its config file says 10).
DEFAULT_SHAPING: dict[str, tuple[float, float, bool]] = {"score": (1.0, 0.0, True), "similarity": (1.0, 0.0, False)}


# The papers' recipes as their released code runs them (docs/presets.md). Models stay the offline
# defaults: the papers' are one option away (method.policy_lm=facebook/opt-125m or distilgpt2,
# task.task_lm=roberta-large).
#
# Alpha and the reward scale are one knob: both codebases take the policy from the raw Q (alpha 1)
# and shape the rewards, so what the papers call "1/alpha" is the reward scale. Scaling rewards by
# c gives the optimal policy of alpha = 1/c (tests/test_trainer.py checks the identity), but not
# the same learning (Adam, the gradient clip at 5, the MLP's initial Q near 0), so the presets
# copy the code: alpha 1 and the code's scale per task.
def _rl(name: str, description: str, per_task: dict[str, dict], run: dict, *, order: float, **fields) -> Preset:
    values = {f"method.{k}": v for k, v in fields.items()} | {f"run.{k}": v for k, v in run.items()}
    return Preset(name, "rl", description, values, per_task, order=order)


def _task_values(scale: float, shift: float, run: dict | None = None, **fields) -> dict:
    """A preset's values for one task: the code's shaping scale * zscore(R) + shift, and any run
    settings and method fields that differ for that task."""
    return ({"method.reward_scale": scale, "method.reward_shift": shift}
            | {f"method.{k}": v for k, v in fields.items()} | {f"run.{k}": v for k, v in (run or {}).items()})


# Per task, from each method's code (docs/presets.md, docs/tasks/style-transfer.md#5). Style
# transfer: PIN's tst_config.yaml + README command (15,000 steps, eval every 50, 2 inputs x 8
# prompts); RLPrompt's tst_config.yaml (12,000 steps, eval every 50, 2 inputs x 4 prompts, top-50
# sampling, logit_bias -10, shaping 100z - 20).
#
# Inversion: PIN's pic/README.md command (prompt_length 8, 32 prompts per step, max_train_steps
# 20,000, reward_shaping_new_max=1 over the raw cosine: scale 1, no z-score; its pic_config.yaml's
# 10 is one override away, method.reward_scale=10) and Trainer_for_clip's log every 50 steps.
# RLPrompt has no inversion experiment; its row in PIN's comparison is RLPrompt's algorithm
# (algo=sql) in that same harness, so its inversion values are PIN's task settings.
#
# Any other task ("*", a plug-in task): each code's generic shaping, its classification values
# (PIN 1 x, RLPrompt 5 x) at the preset's own budget; whether the reward is z-scored follows the
# task's ``reward_kind`` (``DEFAULT_SHAPING``: yes for a score, no for a similarity), as the authors'
# reward classes decide it. Classification is the one task both codes shape with a z-score and
# nothing task-specific (style transfer's shift and Q bias belong to its reward's range).
_INVERSION = _task_values(1.0, 0.0, dict(steps=20000, eval_every=50), prompt_length=8, prompts_per_step=32)
_PIN_TASKS = {"classification": _task_values(1.0, 0.0),
              "style_transfer": _task_values(1.0, 0.0, dict(steps=15000, eval_every=50)),
              "inversion": _INVERSION,
              "*": _task_values(1.0, 0.0)}
_RLPROMPT_TASKS = {"classification": _task_values(5.0, 0.0),
                   "style_transfer": _task_values(100.0, -20.0, dict(steps=12000, eval_every=50),
                                                  prompts_per_step=8, sample_top_k=50, q_bias=-10.0),
                   "inversion": _INVERSION,
                   "*": _task_values(5.0, 0.0)}
# Both codebases feed the policy LM re-tokenized text (policy_input "retokenize") and keep the
# evaluated prompt with the highest dev reward (PIN's Trainer.train: max eval/score, the gap reward;
# RLPrompt's trainer logs the same score and keeps no best: the same rule is our reading).
_PIN = dict(regularizer="sparse_tsallis", alpha=1.0, top_k=10000, sample_top_k=None, objective="mc",
            replay_size=64000, replay_batch=256, replay_warmup=True, lr=5e-5, prompts_per_step=16, q_bias=0.0,
            policy_input="retokenize")
_PIN_RUN = dict(eval_every=20, steps=6000, selection="reward")

PRESETS: dict[str, Preset] = register_presets(
    # The paper's method: sparsemax policy, ignorable-token filter, mc loss (the code's v1; the
    # paper's Eq. 5 is pin-td), replay with warm-up.
    _rl("pin", "PIN as in the paper (sparse Tsallis / sparsemax policy, ignorable-token filter k=10,000, "
               "mc loss of the code, replay)", _PIN_TASKS, _PIN_RUN, **_PIN, order=100),
    _rl("pin-td", "PIN as in the paper with its Eq. 5 TD loss", _PIN_TASKS, _PIN_RUN, **{**_PIN, "objective": "td"},
        order=101),
    # The command the PIN authors publish for few-shot classification (examples/few-shot-
    # classification/README.md: algo=sql, sql-offpolicy, loss v1, fluent_top_k=10000): RLPrompt's
    # Shannon soft Q-learning sampled from the policy's top 256, plus the filter, replay and td.
    # The style-transfer and inversion commands run algo=sparse-ql loss_impl=v1: there the released
    # command is the pin reading.
    _rl("pin-released", "PIN as its released commands run it (few-shot: Shannon softmax sampled from the top 256, "
                        "filter k=10,000, replay, td, no sparsemax; style transfer and inversion: as pin)",
        _PIN_TASKS | {task: _PIN_TASKS[task] | {"method.regularizer": "sparse_tsallis", "method.sample_top_k": None,
                                                "method.objective": "mc"} for task in ("style_transfer", "inversion")},
        _PIN_RUN, **{**_PIN, "regularizer": "shannon", "sample_top_k": 256, "objective": "td"}, order=102),
    # The paper's ablation "PIN without the ignorable set".
    _rl("pin-no-filter", "PIN without the ignorable set (the paper's ablation)", _PIN_TASKS, _PIN_RUN,
        **{**_PIN, "top_k": None}, order=103),
    _rl("rlprompt", "RLPrompt (Shannon soft Q-learning, pcl, on-policy; classification: top-256 sampling, "
                    "shaping 5z; style transfer: top-50 sampling, shaping 100z - 20, Q bias -10)",
        _RLPROMPT_TASKS, dict(eval_every=10, steps=12000, selection="reward"), regularizer="shannon", alpha=1.0,
        top_k=None, sample_top_k=256, objective="pcl", replay_size=0, replay_warmup=False, lr=5e-5,
        prompts_per_step=16, q_bias=0.0, policy_input="retokenize", order=90),
)
