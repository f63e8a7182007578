"""RLMethod tests on a tiny random policy LM and a synthetic task that pays for one sequence."""

import pytest
import torch

from pinbench.errors import ConfigError
from pinbench.fields import parse_value
from pinbench.methods import PRESETS
from pinbench.methods.rl.config import RLConfig
from pinbench.run import RunSpec, make_spec
from pinbench.tasks import Metric, Task
from pinbench.models import LoadedModel
from pinbench.methods.rl.policy import QPolicy
from pinbench.methods.rl.regularizers import make_regularizer
from pinbench.methods.rl.trainer import ReplayBuffer, RLMethod

from conftest import word_tokenizer

VOCAB = "great movie fun bad plot it was the okay story film boring".split()
TARGET = ["great", "movie", "fun"]


@pytest.fixture(scope="module")
def small_lm() -> LoadedModel:
    """A 2-layer GPT-2 over 16 tokens; large random position embeddings keep the states of
    different prefixes apart (a tiny random LM otherwise aliases them)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = word_tokenizer(words=VOCAB)
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=16, n_embd=64, n_layer=2, n_head=2, initializer_range=0.5,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    return LoadedModel("small", "causal", GPT2LMHeadModel(cfg).eval().requires_grad_(False), tok)


class TargetTask(Task):
    """Reward: share of positions that match TARGET; accuracy: exact match."""

    name = "target"
    metrics = (Metric("accuracy"), Metric("reward"))
    selection_metric = "accuracy"

    def __init__(self):
        self.calls: list[tuple[str, list[str]]] = []

    def score(self, prompts, split="train"):
        self.calls.append((split, list(prompts)))
        words = [p.split() for p in prompts]
        reward = [sum(a == b for a, b in zip(w, TARGET)) / len(TARGET) for w in words]
        return {"reward": torch.tensor(reward), "accuracy": torch.tensor([float(w == TARGET) for w in words])}


def small_config(**overrides) -> RunSpec:
    values = dict(prompt_length=3, mlp_hidden=64, lr=3e-3, alpha=1.0, top_k=None, replay_size=2000,
                  replay_batch=64, prompts_per_step=16, steps=300, eval_every=10, polyak=0.1, test=False, seed=0,
                  reward_scale=5.0)
    values.update(overrides)
    return make_spec(values)


def train_until_found(trainer: RLMethod) -> int | None:
    while trainer.step_count < trainer.run.steps:
        row = trainer.step()
        if row.get("dev_accuracy") == 1.0:
            return trainer.step_count
    return None


@pytest.mark.parametrize("objective", ["mc", "td", "pcl"])
@pytest.mark.parametrize("regularizer", ["shannon", "sparse_tsallis", "tsallis"])
def test_learns_the_rewarded_sequence(small_lm, regularizer, objective):
    # Seed 0 with these settings finds the target for every pair within 120 steps (300 allowed);
    # td is the least robust objective here: with seeds 1-2 it sometimes stalls.
    trainer = RLMethod(small_config(regularizer=regularizer, objective=objective), task=TargetTask(), policy_lm=small_lm)
    assert trainer.greedy()[0].split() != TARGET
    before = [p.detach().clone() for p in trainer.policy.mlp.parameters()]
    lm_before = [p.detach().clone() for p in small_lm.model.parameters()]
    found = train_until_found(trainer)
    assert found is not None, f"{regularizer}/{objective} did not find {TARGET}"
    assert trainer.greedy()[0].split() == TARGET
    assert trainer.result.best["prompt"].split() == TARGET
    # Only the MLP trained; the frozen LM did not move.
    assert all(not torch.equal(a, b) for a, b in zip(before, trainer.policy.mlp.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(lm_before, small_lm.model.parameters()))


def test_on_policy_rlprompt_style_learns(small_lm):
    cfg = small_config(regularizer="shannon", objective="pcl", replay_size=0)
    trainer = RLMethod(cfg, task=TargetTask(), policy_lm=small_lm)
    assert train_until_found(trainer) is not None
    assert trainer.buffer is None


def test_same_seed_same_prompts_and_metrics(small_lm):
    runs = []
    for seed in (3, 3, 4):
        trainer = RLMethod(small_config(steps=15, seed=seed, regularizer="sparse_tsallis"), task=TargetTask(),
                          policy_lm=small_lm)
        trainer.train()
        runs.append(trainer.result)
    strip = lambda rows: [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rows]  # noqa: E731
    assert strip(runs[0].history) == strip(runs[1].history)
    assert runs[0].prompts == runs[1].prompts
    assert strip(runs[0].history) != strip(runs[2].history)


def test_resume_from_state_dict_equals_an_uninterrupted_run(small_lm):
    full = RLMethod(small_config(steps=12, objective="td"), task=TargetTask(), policy_lm=small_lm)
    full.train()
    first = RLMethod(small_config(steps=12, objective="td"), task=TargetTask(), policy_lm=small_lm)
    for _ in range(5):
        first.step()
    state = first.state_dict()
    second = RLMethod(small_config(steps=12, objective="td"), task=TargetTask(), policy_lm=small_lm)
    second.load_state_dict(state)
    second.train()
    key = lambda rows: [(r["step"], r["reward_mean"], r["loss"]) for r in rows]  # noqa: E731
    assert key(second.result.history) == key(full.result.history)
    assert torch.equal(second.policy.mlp.net[0].weight, full.policy.mlp.net[0].weight)


def test_compact_checkpoint_rebuilds_the_replay_states(small_lm, tmp_path):
    first = RLMethod(small_config(steps=12), task=TargetTask(), policy_lm=small_lm)
    for _ in range(4):
        first.step()
    path = tmp_path / "state.pt"
    torch.save(first.state_dict(compact=True), path)
    state = torch.load(path, weights_only=True)  # no pickled objects in a checkpoint
    assert "hidden" not in state["buffer"]["data"]
    second = RLMethod(small_config(steps=12), task=TargetTask(), policy_lm=small_lm)
    second.load_state_dict(state)
    assert second.buffer.size == first.buffer.size == 4 * 16
    assert torch.allclose(second.buffer._data["hidden"][:64], first.buffer._data["hidden"][:64], atol=1e-5)
    assert second.step_count == 4 and second.result.history == first.result.history


def test_prompts_are_scored_once_per_run(small_lm):
    task = TargetTask()
    trainer = RLMethod(small_config(steps=40), task=task, policy_lm=small_lm)
    trainer.train()
    scored = [(split, p) for split, call in task.calls for p in call]
    assert len(scored) == len(set(scored))  # no (split, prompt) pair is scored twice
    sampled = 40 * 16
    train_scored = sum(1 for split, _ in scored if split == "train")
    assert train_scored < sampled  # the policy repeated prompts and the cache served them
    assert sum(r["new_prompts"] for r in trainer.result.history) <= train_scored


def _top_k_sets(policy, rollout, k):
    """The LM's own top-k token ids at every state of ``rollout``."""
    return policy.lm_logits(rollout.hidden).topk(k, dim=-1).indices


def test_filtered_tokens_are_never_sampled(small_lm):
    policy = QPolicy(small_lm, hidden=16, prompt_length=4, top_k=3)
    torch.nn.init.normal_(policy.mlp.net[2].weight, std=5.0)  # a non-uniform Q, so the filter matters
    reg = make_regularizer("shannon")
    rollout = policy.rollout(200, reg, 1.0, torch.Generator().manual_seed(0))
    allowed = _top_k_sets(policy, rollout, 3)
    assert (allowed == rollout.tokens.unsqueeze(-1)).any(-1).all()
    assert (rollout.support == 3).all()  # softmax over the 3 kept tokens: all 3, exactly, can be drawn
    # Without the filter the same policy samples outside those sets.
    policy.top_k = None
    free = policy.rollout(200, reg, 1.0, torch.Generator().manual_seed(0))
    assert not (_top_k_sets(policy, free, 3) == free.tokens.unsqueeze(-1)).any(-1).all()


def test_sample_truncation_uses_the_policys_own_top_k(small_lm):
    policy = QPolicy(small_lm, hidden=16, prompt_length=3, sample_top_k=2)
    torch.nn.init.normal_(policy.mlp.net[2].weight, std=5.0)
    reg = make_regularizer("shannon")
    rollout = policy.rollout(100, reg, 1.0, torch.Generator().manual_seed(1))
    q = policy.q_values(rollout.hidden)
    top2 = q.topk(2, dim=-1).indices
    assert (top2 == rollout.tokens.unsqueeze(-1)).any(-1).all()
    # the logged support is what can be sampled (2 tokens), not the softmax's whole vocabulary
    assert (rollout.support == 2).all()


def test_filter_threshold_masks_q_in_targets(small_lm):
    policy = QPolicy(small_lm, hidden=16, prompt_length=2, top_k=4)
    rollout = policy.rollout(5, make_regularizer("sparse_tsallis"), 1.0, torch.Generator().manual_seed(0))
    q = policy.q_values(rollout.hidden, rollout.threshold, target=True)
    assert (torch.isfinite(q).sum(-1) == 4).all()


def test_q_taken_equals_the_gathered_full_q(small_lm):
    policy = QPolicy(small_lm, hidden=16, prompt_length=3, top_k=5)
    torch.nn.init.normal_(policy.mlp.net[2].weight, std=1.0)
    rollout = policy.rollout(6, make_regularizer("shannon"), 1.0, torch.Generator().manual_seed(0))
    full = policy.q_values(rollout.hidden, rollout.threshold).gather(-1, rollout.tokens.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(policy.q_taken(rollout.hidden, rollout.tokens), full, atol=1e-6)


def test_polyak_update(small_lm):
    policy = QPolicy(small_lm, hidden=8)
    with torch.no_grad():
        for p in policy.mlp.parameters():
            p.add_(1.0)
    old = [p.clone() for p in policy.target.parameters()]
    policy.polyak_update(0.25)
    for t, o, online in zip(policy.target.parameters(), old, policy.mlp.parameters()):
        assert torch.allclose(t, 0.75 * o + 0.25 * online)
    assert not any(p.requires_grad for p in policy.target.parameters())


def test_replay_buffer_is_a_ring():
    from pinbench.methods.rl.policy import Rollout

    buf = ReplayBuffer(5)
    for start in (0, 3, 6):
        n = 3
        tokens = torch.arange(start, start + n)[:, None].repeat(1, 2)
        roll = Rollout(tokens, torch.zeros(n, 2, 4), torch.zeros(n, 2), torch.zeros(n, 2), torch.zeros(n, 2))
        buf.add(roll, torch.arange(start, start + n).float())
    assert buf.size == 5
    drawn = buf.sample(200, torch.Generator().manual_seed(0))["reward"].tolist()
    assert len(drawn) == 200  # with replacement, as the authors' buffer draws: more than it holds
    assert set(drawn) == {4.0, 5.0, 6.0, 7.0, 8.0}  # the oldest four were overwritten


# Each preset's effective method settings, written out by hand from docs/presets.md and the
# authors' code (alpha 1 everywhere: the code takes the policy from the raw Q; the reward scale is
# the knob). A change to a preset must change this table.
#  preset          regularizer      alpha top_k  sample objective replay batch warmup scale shift eval
PRESET_TABLE = {
    "pin":           ("sparse_tsallis", 1.0, 10000, None, "mc",  64000, 256, True,  1.0, 0.0, 20),
    "pin-td":        ("sparse_tsallis", 1.0, 10000, None, "td",  64000, 256, True,  1.0, 0.0, 20),
    "pin-released":  ("shannon",        1.0, 10000, 256,  "td",  64000, 256, True,  1.0, 0.0, 20),
    "pin-no-filter": ("sparse_tsallis", 1.0, None,  None, "mc",  64000, 256, True,  1.0, 0.0, 20),
    "rlprompt":      ("shannon",        1.0, None,  256,  "pcl", 0,     256, False, 5.0, 0.0, 10),
}
FIELDS = ("regularizer", "alpha", "top_k", "sample_top_k", "objective", "replay_size", "replay_batch",
          "replay_warmup", "reward_scale", "reward_shift", "eval_every")


@pytest.mark.parametrize("name", sorted(PRESET_TABLE))
def test_presets_pin_the_codes_effective_values(name):
    spec = make_spec({"preset": name})
    config = spec.method_config
    assert tuple(getattr(config, f) for f in FIELDS[:-1]) + (spec.run.eval_every,) == PRESET_TABLE[name]
    assert (config.lr, config.prompts_per_step, config.grad_clip, config.polyak) == (5e-5, 16, 5.0, 0.001)
    assert make_spec({"preset": name, "method.alpha": 0.5}).method_config.alpha == 0.5  # one override away
    assert spec.method == "rl" and spec.preset == name


def test_every_preset_is_pinned():
    assert {name for name, p in PRESETS.items() if p.method == "rl"} == set(PRESET_TABLE)
    # the other methods' presets, pinned in their own tests (in PIN Table 1's row order)
    assert [name for name, p in PRESETS.items() if p.method != "rl"] == [
        "manual", "instructions", "in-context", "in-context-rlprompt", "soft-prompt", "soft-prompt-rlprompt", "grips",
        "grips-rlprompt", "autoprompt", "autoprompt-rlprompt", "pez", "random-search"]


@pytest.mark.parametrize("name", ["pin", "rlprompt"])
def test_inversion_presets_take_pins_command(name):
    """PIN's pic/README.md: 8 tokens, 32 prompts per step, 20,000 steps, 1 x raw cosine (no
    z-score: the task's rule), logged every 50 steps; RLPrompt runs in the same harness."""
    spec = make_spec({"preset": name, "task": "inversion"})
    c = spec.method_config
    assert (c.prompt_length, c.prompts_per_step, c.reward_scale, c.reward_shift, c.reward_zscore) == (8, 32, 1.0, 0.0, None)
    assert (spec.run.steps, spec.run.eval_every) == (20000, 50)
    assert spec.task_class.reward_kind == "similarity" and c.shaping("similarity") == (1.0, 0.0, False)
    assert c.regularizer == PRESET_TABLE[name][0]


@pytest.mark.parametrize("reg", ["shannon", "sparse_tsallis", "tsallis"])
def test_scaling_rewards_by_c_is_alpha_one_over_c(reg):
    """The one-knob identity: Q regressed on c-scaled rewards is c x Q, and the policy (and value,
    over c) of c x Q at alpha 1 are those of Q at alpha 1/c. Presets still copy the code's scale,
    because Adam, the gradient clip and the MLP's initial Q near 0 do not scale with c."""
    q = torch.randn(3, 50) * 0.3
    regularizer = make_regularizer(reg, 1.5)
    for c in (0.2, 5.0):
        assert torch.allclose(regularizer.policy(c * q, 1.0), regularizer.policy(q, 1 / c), atol=1e-5)
        assert torch.allclose(regularizer.value(c * q, 1.0), c * regularizer.value(q, 1 / c), rtol=1e-4, atol=1e-4)
    # ... and alpha matters: another alpha gives another policy
    assert not torch.allclose(regularizer.policy(q, 1.0), regularizer.policy(q, 0.2), atol=1e-3)


@pytest.mark.parametrize("overrides, message", [
    ({"regularizer": "mode2"}, "config: method 'rl': 'regularizer' = 'mode2' is invalid"),
    ({"method.alpha": 0}, "method 'rl': 'alpha' = 0.0 is invalid"),
    ({"q": 2.5}, "'q' = 2.5 is invalid"),
    ({"objective": "v1"}, "'objective' = 'v1'"),
    ({"prompts_per_step": 1}, "prompts_per_step"),
    ({"steps": 0}, "config: run: 'steps' = 0 is invalid"),
    ({"colour": "red"}, r"unknown key 'colour'; run: seed, device, .*; task 'classification': dataset, .*; "
                        r"method 'rl': policy_lm, "),
    ({"method.colour": "red"}, r"unknown key 'method.colour': the fields of method 'rl' are policy_lm, "),
    ({"alpha": "high"}, r"config: method.alpha: expected float, got 'high' \(str\)"),
])
def test_bad_config_is_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        make_spec(overrides)


def test_parse_value_from_the_command_line():
    assert parse_value(RLConfig, "top_k", "none", "--top-k") is None
    assert parse_value(RLConfig, "top_k", "50", "--top-k") == 50
    assert parse_value(RLConfig, "alpha", "0.5", "--alpha") == 0.5
    assert parse_value(RLConfig, "replay_warmup", "false", "--replay-warmup") is False
    with pytest.raises(ConfigError, match="--lr expects float, got 'fast'"):
        parse_value(RLConfig, "lr", "fast", "--lr")
    spec = make_spec({"top_k": "none", "steps": "7", "method.alpha": "0.5"}, from_strings=True)
    assert (spec.method_config.top_k, spec.run.steps, spec.method_config.alpha) == (None, 7, 0.5)


@pytest.mark.parametrize("warmup", [True, False])
def test_replay_warmup_explores_until_the_buffer_holds_one_batch(small_lm, warmup):
    trainer = RLMethod(small_config(replay_batch=40, replay_warmup=warmup, steps=4), TargetTask(), small_lm)
    start = [p.clone() for p in trainer.policy.mlp.parameters()]
    rows = [trainer.step() for _ in range(2)]  # 16, 32 trajectories in the buffer: < 40
    untouched = all(torch.equal(a, b) for a, b in zip(start, trainer.policy.mlp.parameters()))
    assert untouched == warmup
    assert all((r["loss"] is None) == warmup for r in rows)
    third = trainer.step()  # 48 >= 40: updates either way
    assert third["loss"] is not None
    assert any(not torch.equal(a, b) for a, b in zip(start, trainer.policy.mlp.parameters()))


# ---- faults: non-finite quantities, and a run continued from a compact checkpoint -------------


class PoisonedTask(TargetTask):
    """TargetTask whose rewards become ``value`` from the ``after``-th training call on."""

    def __init__(self, after: int, value: float):
        super().__init__()
        self.after, self.value, self.train_calls = after, value, 0

    def score(self, prompts, split="train"):
        out = super().score(prompts, split)
        if split == "train":
            self.train_calls += 1
            if self.train_calls > self.after:
                out["reward"] = torch.full_like(out["reward"], self.value)
        return out


@pytest.mark.parametrize("value, shown", [(float("nan"), "nan"), (float("inf"), "inf")])
def test_a_non_finite_reward_stops_the_run_at_its_step_naming_the_quantity(small_lm, value, shown):
    from pinbench.errors import NonFiniteError

    trainer = RLMethod(small_config(steps=20, replay_size=0), task=PoisonedTask(3, value), policy_lm=small_lm)
    with pytest.raises(NonFiniteError, match=rf"^step 4: reward_mean is {shown} "):
        trainer.train()
    assert trainer.step_count == 4 and trainer.result.steps_done == 4
    assert [r["step"] for r in trainer.result.history] == [1, 2, 3, 4]  # the failing step is kept


def test_a_nan_loss_stops_the_run_before_the_next_step(small_lm, monkeypatch):
    from pinbench.errors import NonFiniteError

    trainer = RLMethod(small_config(steps=20, replay_size=0), task=TargetTask(), policy_lm=small_lm)
    loss = trainer.loss
    monkeypatch.setattr(trainer, "loss", lambda *a: loss(*a) * (float("nan") if trainer.step_count == 6 else 1.0))
    with pytest.raises(NonFiniteError, match=r"^step 7: loss is nan"):
        trainer.train()
    assert trainer.step_count == 7


def test_a_run_continued_from_a_compact_checkpoint_equals_an_uninterrupted_run(small_lm, tmp_path):
    """The checkpoint a sweep writes (compact: no replay states, through torch.save / load with
    weights_only): the continued run makes the same prompts and records where it resumed."""
    full = RLMethod(small_config(steps=14, eval_every=2), task=TargetTask(), policy_lm=small_lm)
    full.train()
    first = RLMethod(small_config(steps=14, eval_every=2), task=TargetTask(), policy_lm=small_lm)
    for _ in range(6):
        first.step()
    torch.save(first.state_dict(compact=True), tmp_path / "state.pt")
    second = RLMethod(small_config(steps=14, eval_every=2), task=TargetTask(), policy_lm=small_lm)
    second.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert second.result.resumed_at == [6]
    iterations = []
    iterate = second.iterate
    second.iterate = lambda: iterations.append(second.step_count) or iterate()
    second.train()
    assert iterations == list(range(6, 14))  # it trained on from step 6, not from 0
    assert [p["prompt"] for p in second.result.prompts] == [p["prompt"] for p in full.result.prompts]
    assert second.result.best["prompt"] == full.result.best["prompt"]
    steps = lambda r: [(h["step"], h.get("greedy_prompt"), h["unique_prompts"]) for h in r.history]  # noqa: E731
    assert steps(second.result) == steps(full.result)
    losses = lambda r: [h["loss"] for h in r.history if h["loss"] is not None]  # noqa: E731
    assert losses(second.result) == pytest.approx(losses(full.result), rel=1e-4)
    assert full.result.resumed_at == []


# ---- what an update sees: shaped rewards, clipped gradients, the best prompt, the replay ring ----


class FixedRewardTask(TargetTask):
    """Pays the prompts of every training batch 1, 2, 3 and 6 in order, whatever they are; not
    cacheable, so every sampled prompt is scored (no cache merges repeated prompts)."""

    cacheable = False

    def score(self, prompts, split="train"):
        out = super().score(prompts, split)
        if split == "train":
            out["reward"] = torch.tensor([1.0, 2.0, 3.0, 6.0])
        return out


# Rewards 1, 2, 3, 6: mean 3, population std 1.870829 (+ eps 1e-4), z = -1.068988, -0.534494, 0,
# 1.603482 (tests/test_rewards.py); TargetTask's own shaping is 5 z + 0.
@pytest.mark.parametrize("overrides, stored", [
    ({}, [-5.344939, -2.672470, 0.0, 8.017409]),  # the task's defaults: 5 z
    ({"reward_scale": 100.0, "reward_shift": -20.0}, [-126.8988, -73.4494, -20.0, 140.3482]),  # 100 z - 20
    ({"reward_zscore": False, "reward_scale": 2.0, "reward_shift": 1.0}, [3.0, 5.0, 7.0, 13.0]),  # 2 R + 1
])
def test_the_buffer_and_the_update_get_the_shaped_rewards(small_lm, overrides, stored, monkeypatch):
    replay = RLMethod(small_config(prompts_per_step=4, replay_size=10, replay_batch=8, steps=3, **overrides),
                     FixedRewardTask(), small_lm)
    row = replay.step()  # 4 < 8 stored: warm-up, no update
    assert replay.buffer._data["reward"][:4].tolist() == pytest.approx(stored, abs=1e-3)
    assert (row["reward_mean"], row["reward_max"]) == (3.0, 6.0)  # the history keeps the raw rewards
    # on-policy: the loss of the step's own batch gets the same shaped rewards
    on_policy = RLMethod(small_config(prompts_per_step=4, replay_size=0, steps=3, **overrides),
                        FixedRewardTask(), small_lm)
    seen = []
    loss = on_policy.loss
    monkeypatch.setattr(on_policy, "loss", lambda *a: seen.append(a[3].tolist()) or loss(*a))
    on_policy.step()
    assert seen == [pytest.approx(stored, abs=1e-3)]


class GroupedRewardTask(TargetTask):
    """Style transfer's shape: prompts paired with inputs 0, 1, 0, 1, each with two reward draws;
    the z-score is taken within each input's group (tests/test_rewards.py has the arithmetic)."""

    cacheable = False

    def score(self, prompts, split="train"):
        out = super().score(prompts, split)
        if split == "train":
            draws = torch.tensor([[1.0, 3.0], [10.0, 30.0], [5.0, 7.0], [50.0, 70.0]])
            out |= {"reward": draws.mean(-1), "reward_draws": draws, "reward_group": torch.tensor([0, 1, 0, 1])}
        return out


def test_the_buffer_holds_rewards_z_scored_within_each_group(small_lm):
    """Group 0 pools 1, 3, 5, 7 (mean 4, std 2.236) and group 1 10, 30, 50, 70 (mean 40, std
    22.36): both give z = -0.894, +0.894. One z-score over the whole step would not."""
    trainer = RLMethod(small_config(prompts_per_step=4, replay_size=10, replay_batch=8, steps=2, reward_scale=2.0,
                                   reward_shift=1.0), GroupedRewardTask(), small_lm)
    trainer.step()
    z = 2.0 / (5 ** 0.5)  # (2 - 4) / sqrt(5) in group 0; (20 - 40) / sqrt(500) in group 1
    assert trainer.buffer._data["reward"][:4].tolist() == pytest.approx(
        [1 - 2 * z, 1 - 2 * z, 1 + 2 * z, 1 + 2 * z], abs=1e-3)


def test_selection_by_reward_keeps_the_highest_dev_reward():
    """run.selection "reward" (the RL authors' trainers): reward first, the metric breaks ties."""
    from pinbench.methods.base import PromptBook
    from pinbench.run import RunResult

    by_metric = PromptBook(TargetTask(), RunResult(small_config()))
    by_reward = PromptBook(TargetTask(), RunResult(small_config(selection="reward")))
    for book in (by_metric, by_reward):
        book.consider("great movie fun", 1, "greedy")  # accuracy 1, reward 1
        book.consider("great it was", 2, "greedy")     # accuracy 0, reward 1/3
    assert by_metric.result.best["step"] == by_reward.result.best["step"] == 1
    other = TargetTask()
    other.score = lambda prompts, split="train": {  # accuracy and reward disagree
        "accuracy": torch.tensor([float(p == "a") for p in prompts]),
        "reward": torch.tensor([2.0 if p == "b" else 1.0 for p in prompts])}
    for selection, best in (("metric", "a"), ("reward", "b")):
        book = PromptBook(other, RunResult(small_config(selection=selection)))
        for step, prompt in enumerate(["a", "b", "c"], 1):
            book.consider(prompt, step, "greedy")
        assert book.result.best["prompt"] == best
    with pytest.raises(ConfigError, match="selection"):
        small_config(selection="accuracy")


def test_a_retokenizing_policy_resumes_from_a_compact_checkpoint(small_lm, tmp_path):
    first = RLMethod(small_config(steps=12, policy_input="retokenize"), task=TargetTask(), policy_lm=small_lm)
    for _ in range(4):
        first.step()
    path = tmp_path / "state.pt"
    torch.save(first.state_dict(compact=True), path)
    state = torch.load(path, weights_only=True)
    assert "hidden" not in state["buffer"]["data"] and "context" in state["buffer"]["data"]
    second = RLMethod(small_config(steps=12, policy_input="retokenize"), task=TargetTask(), policy_lm=small_lm)
    second.load_state_dict(state)
    assert torch.allclose(second.buffer._data["hidden"][:64], first.buffer._data["hidden"][:64], atol=1e-5)


@pytest.mark.parametrize("clip", [1e-7, 1e6])
def test_gradients_are_clipped_to_grad_clip_before_the_update(small_lm, clip, monkeypatch):
    trainer = RLMethod(small_config(grad_clip=clip, replay_size=0, steps=2), TargetTask(), small_lm)
    norms = []
    step = trainer.optimizer.step

    def record_then_step(*args, **kwargs):  # the gradient Adam is given
        norms.append(torch.sqrt(sum(p.grad.pow(2).sum() for p in trainer.policy.mlp.parameters())).item())
        return step(*args, **kwargs)

    monkeypatch.setattr(trainer.optimizer, "step", record_then_step)
    row = trainer.step()
    raw = row["grad_norm"]  # the norm before clipping
    assert 1e-5 < raw < 1e3  # so 1e-7 clips and 1e6 does not
    assert norms == [pytest.approx(min(clip, raw), rel=1e-4)]


class DistanceTask(TargetTask):
    """Selects by a lower-is-better metric: the number of positions that miss TARGET."""

    metrics = (Metric("distance", higher_is_better=False), Metric("reward"))
    selection_metric = "distance"

    def score(self, prompts, split="train"):
        out = super().score(prompts, split)
        return {"distance": 3 - 3 * out["reward"], "reward": out["reward"] * 0 + torch.tensor(
            [float(len(p)) for p in prompts])}  # reward: the prompt's length in characters


def test_the_best_prompt_breaks_ties_on_reward_then_keeps_the_earlier():
    from pinbench.methods.base import PromptBook
    from pinbench.run import RunResult

    book = PromptBook(TargetTask(), RunResult(small_config()))
    # dev accuracy is 0 for the first four (exact match only); reward is the share of hits
    book.consider("great it was", 1, "greedy")       # reward 1/3: the first best
    book.consider("great movie was", 2, "greedy")    # same accuracy, reward 2/3: better
    book.consider("great movie it", 3, "greedy")     # equal on both: the earlier stays
    book.consider("it was the", 4, "greedy")         # reward 0: worse
    assert (book.result.best["step"], book.result.best["prompt"]) == (2, "great movie was")
    book.consider("great movie fun", 5, "greedy")    # accuracy 1 beats any reward
    assert book.result.best["step"] == 5 and len(book.result.prompts) == 5  # all recorded, one best

    lower = PromptBook(DistanceTask(), RunResult(small_config()))
    lower.consider("it was the", 1, "greedy")        # distance 3
    lower.consider("great was it", 2, "greedy")      # distance 2: lower is better
    lower.consider("great it the", 3, "greedy")      # distance 2, same length: the earlier stays
    lower.consider("great it movie", 4, "greedy")    # distance 2, longer (higher reward): better
    lower.consider("the movie fun", 5, "greedy")     # distance 1 (movie, fun hit), shorter: better
    assert [lower.result.best[k] for k in ("step", "dev_distance")] == [5, 1.0]
    assert [p["step"] for p in lower.result.prompts] == [1, 2, 3, 4, 5]


def test_replay_buffer_slots_after_wrap_around_and_a_checkpoint():
    from pinbench.methods.rl.policy import Rollout

    def batch(start, n=3):
        # every field of trajectory i carries i, so a misaligned slot shows up
        ids = torch.arange(start, start + n)
        return (Rollout(ids[:, None].repeat(1, 2), ids[:, None, None].float().repeat(1, 2, 4),
                        ids[:, None].float().repeat(1, 2), torch.zeros(n, 2), torch.zeros(n, 2)), ids.float())

    buf = ReplayBuffer(5)
    for start in (0, 3, 6):
        buf.add(*batch(start))
    # 0 1 2 -> slots 0-2; 3 4 5 -> slots 3, 4, 0; 6 7 8 -> slots 1-3: the ring holds 5 6 7 8 4
    assert buf._data["reward"].tolist() == [5.0, 6.0, 7.0, 8.0, 4.0]
    assert buf._data["tokens"][:, 0].tolist() == [5, 6, 7, 8, 4]
    assert buf._data["hidden"][:, 1, 3].tolist() == [5.0, 6.0, 7.0, 8.0, 4.0]
    assert buf._data["threshold"][:, 0].tolist() == [5.0, 6.0, 7.0, 8.0, 4.0]
    assert (buf.size, buf._next) == (5, 4)
    drawn = buf.sample(50, torch.Generator().manual_seed(0))
    assert torch.equal(drawn["tokens"][:, 1].float(), drawn["reward"])  # rows stay whole
    assert torch.equal(drawn["hidden"][:, 0, 0], drawn["reward"])
    # a restored buffer writes on where the saved one stopped: 9 replaces the oldest (4), 10 then 5
    restored = ReplayBuffer(5)
    restored.load_state_dict(buf.state_dict())
    restored.add(*batch(9, 2))
    assert restored._data["reward"].tolist() == [10.0, 6.0, 7.0, 8.0, 9.0]
    assert restored._data["tokens"][:, 0].tolist() == [10, 6, 7, 8, 9]


@pytest.mark.parametrize("fields, message", [
    ({"replay_size": 4, "replay_batch": 8}, r"'replay_size' = 4 is invalid: expected >= replay_batch \(8\)"),
    ({"grad_clip": -1.0}, r"'grad_clip' = -1.0 is invalid: expected > 0"),
    ({"grad_clip": 0.0}, r"'grad_clip' = 0.0 is invalid"),
    ({"mlp_hidden": 0}, r"'mlp_hidden' = 0 is invalid: expected >= 1"),
])
def test_settings_that_would_train_wrongly_are_refused(fields, message):
    """A buffer smaller than one batch never ends its warm-up (no update ever), a clip <= 0 zeroes
    or flips the gradient, a 0-wide head learns nothing: each is one error naming the field."""
    from pinbench.errors import ConfigError
    from pinbench.methods.rl.config import RLConfig

    with pytest.raises(ConfigError, match=message):
        RLConfig(**fields)
    RLConfig(replay_size=4, replay_batch=8, replay_warmup=False)  # no warm-up: a small buffer is fine
