"""Differential check: pinbench against the authors' own code, on the same small seeded inputs.

    git clone https://github.com/Youseob/PIN DIR/PIN
    git clone https://github.com/mingkaid/rl-prompt DIR/rl-prompt
    python bench/differential.py --authors DIR [--json PATH] [--seed 0] [--synthetic-tokenizers]

DIR holds the two repositories the user fetched (nothing of theirs is copied into pinbench):
``DIR/PIN`` (github.com/Youseob/PIN, checked at 3357f09) and ``DIR/rl-prompt``
(github.com/mingkaid/rl-prompt, checked at 30528c2). Their modules are imported from there, one
repository at a time (both call their package ``rlprompt``), and run beside pinbench's functions on
identical tensors. Each row prints the largest absolute difference and passes against a stated
tolerance; "info" rows show a known difference and are not pass/fail.

Checks (docs/method.md; the authors' files are named per row):

1. losses: RLPrompt's pcl (``sql_losses.py``, ``v2_v2r_v3_v3r``), PIN's td (``sql_losses.py`` ``v1``,
   with the filtered Q as PIN's ``lm_adaptor_model`` makes it, -inf) and mc (``sparse_ql_losses.py``
   ``v1`` = ``sparse_ql_loss_1``, filtered Q = -1000 as ``lm_filter_model`` makes it), loss and its
   gradient in Q, against ``objectives.py`` with the regulariser's value; PIN's spmax value, support
   size and threshold (``sparse_max_operator``, ``sparse_max_normalized``) against ``SparseTsallis``.
2. few-shot reward: ``fsc_reward.py``'s ``PromptedClassificationReward.forward``, the object made
   with ``__new__`` (no task model is loaded) and its ``_get_logits`` replaced by one returning the
   logits fed here; everything after the logits (softmax over the verbalizers, gap, 200/180
   coefficients, mean, z-score with ``np.std`` and eps 1e-4) is their code. ``mode="infer"`` gives
   the raw rewards, ``mode="train"`` the z-scores, then ``module_utils.get_reward_shaping_func`` with
   the configs' ranges ([0, 1] -> [0, 5] RLPrompt, [0, 1] -> [0, 1] PIN). pinbench:
   ``tasks/classification/rewards.gap_reward`` on the softmax of the same verbalizer logits, and
   ``shaping.shape_rewards``. An info row shows their reading of an exact tie between the label's
   probability and another class's.
3. sampling distributions: the authors' own ``sample`` loops (PIN ``LMFilterModel`` sparsemax; PIN
   ``LMAdaptorModel`` softmax with the filter and top-256; RLPrompt ``LMAdaptorModel`` softmax top-256
   on a GPT-2-shaped LM) against ``QPolicy.rollout`` (presets pin, pin-released, rlprompt; retokenized
   input). pinbench samples; the probability vector it samples from is recorded at
   ``torch.multinomial``; the authors' loop is then forced onto the same tokens by a recording
   ``Categorical`` (its ``probs`` are what their ``Categorical(probs=...)`` / ``Categorical(logits=
   ...)`` samples from). Also, on identical states: PIN's ``_mlp_forward`` (Q, filter mask) and
   ``_get_normalized_prob`` against ``QPolicy.q_values``/``filter_threshold`` and ``SparseTsallis.policy``.
4. the re-tokenised policy input: PIN ``LMFilterModel.teacher_forcing`` (via ``_get_generation_cache``)
   on a tiny OPT-shaped LM and RLPrompt ``LMAdaptorModel.teacher_forcing`` on a tiny GPT-2-shaped LM,
   for the ids pinbench sampled: the token ids the LM read, the per-step states and the Q logits,
   against ``Rollout.context``/``hidden`` and ``QPolicy.hidden_states`` under
   ``policy_input="retokenize"``; and, as info, how far ``policy_input="ids"`` is from them.

The tiny LMs are random (2 layers, width 32). Their tokenizers are OPT's / GPT-2's when those are
in the local Hugging Face cache (nothing is downloaded), else byte-level BPE tokenizers trained here
on a seeded synthetic corpus (1,024 tokens): OPT-shaped, putting ``</s>`` before every call as OPT's
does; GPT-2-shaped, adding nothing; both with tokens that do not survive decode + encode. The
MLP's weights are drawn larger than its 1e-4 initialisation (Q of order 1, so the sparsemax support
holds several tokens) and copied into the authors' ``_build_one_layer_mlp``.

How the authors' code is made to run here: their policy objects are made with ``__new__`` (no
``pipeline``/``from_pretrained``), ``device = "cpu"`` replacing their hard-coded ``0``, and
``generator`` holding the tiny LM; their call into the LM body passes ``past_key_values=`` and reads
``outputs.past_key_values``, which transformers 5 names ``cache``: a thin pass-through renames the
argument (when the installed transformers has ``cache``) and records the ids each call reads. Their
package ``__init__`` files are not run (they import the training modules); modules are imported by
name. Imports that are not installed (``hydra``, ``omegaconf``, ``wandb``) are stubbed while
importing, and reported. ``pdb.set_trace`` (on two of their error paths) raises instead of waiting.

Tolerances (float32): arithmetic on the same tensors |diff| <= 1e-5 x max(1, max |value|); anything
computed from LM states 1e-4 x max(1, max |value|) (a cached incremental forward and a full forward
add in different orders); integers (token ids, filter masks, support sizes) exactly.
Exit status: 0 all pass, 1 a check failed, 2 the authors' code is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import io
import json
import math
import random
import subprocess
import sys
import types
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

REPOS = {
    "PIN": ("github.com/Youseob/PIN", [
        "rlprompt/losses/loss_utils.py", "rlprompt/losses/sql_losses.py", "rlprompt/losses/sparse_ql_losses.py",
        "rlprompt/models/base_model.py", "rlprompt/models/model_utils.py", "rlprompt/models/lm_adaptor_model.py",
        "rlprompt/models/lm_filter_model.py", "rlprompt/modules/module_utils.py", "rlprompt/rewards/__init__.py",
        "rlprompt/rewards/base_reward.py", "rlprompt/utils/utils.py", "examples/few-shot-classification/fsc_reward.py",
    ]),
    "rl-prompt": ("github.com/mingkaid/rl-prompt", [
        "rlprompt/losses/loss_utils.py", "rlprompt/losses/sql_losses.py", "rlprompt/models/base_model.py",
        "rlprompt/models/model_utils.py", "rlprompt/models/lm_adaptor_model.py", "rlprompt/modules/module_utils.py",
        "rlprompt/rewards/__init__.py", "rlprompt/rewards/base_reward.py", "rlprompt/utils/utils.py",
        "examples/few-shot-classification/fsc_reward.py",
    ]),
}

ARITH, LM = 1e-5, 1e-4  # tolerances, times max(1, max |value|)
PROMPT_LENGTH, BATCH = 5, 16


def missing_parts(authors: Path) -> list[str]:
    """What ``--authors`` lacks: the directory, a repository, or a file the checks import."""
    if not authors.is_dir():
        return [f"{authors} (not a directory)"]
    missing = []
    for repo, (_, files) in REPOS.items():
        if not (authors / repo).is_dir():
            missing.append(f"{repo}/")
            continue
        lacking = [f"{repo}/{f}" for f in files if not (authors / repo / f).is_file()]
        if len(lacking) > 3:  # one line: the first and a count
            lacking = [f"{lacking[0]} and {len(lacking) - 1} more of its files"]
        missing += lacking
    return missing


def missing_message(authors: Path, missing: list[str]) -> str:
    where = ", ".join(f"{repo}/ = {url}" for repo, (url, _) in REPOS.items())
    if not authors.is_dir():
        return f"differential.py: --authors {authors}: not a directory (expected one holding {where})"
    return f"differential.py: --authors {authors} is missing {', '.join(missing)} (expected {where})"


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass
class Row:
    check: str
    authors: str  # repository, file:function
    pinbench: str
    diff: float  # max |authors - pinbench|
    tol: float | None  # None: an informational row
    note: str = ""

    @property
    def status(self) -> str:
        if self.tol is None:
            return "info"
        return "pass" if self.diff <= self.tol else "FAIL"


def max_diff(a, b) -> float:
    import torch

    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    return float((a - b).abs().max()) if a.numel() else 0.0


def scale(x) -> float:
    import torch

    x = torch.as_tensor(x).double()
    x = x[torch.isfinite(x)]
    return max(1.0, float(x.abs().max())) if x.numel() else 1.0


def row(check, authors, pinbench, a, b, tol: float | None, note="") -> Row:
    return Row(check, authors, pinbench, max_diff(a, b), None if tol is None else tol * scale(a), note)


def merged(parts: list[Row], check, authors, pinbench, note="") -> Row:
    """One row for several inputs: the largest difference against the largest tolerance."""
    return Row(check, authors, pinbench, max(r.diff for r in parts), max(r.tol for r in parts), note)


def format_table(rows: list[Row]) -> str:
    heads = ("check", "max|diff|", "tol", "result", "authors' code (repository file:function)", "pinbench")
    cells = [(r.check, f"{r.diff:.3g}", "-" if r.tol is None else f"{r.tol:.2g}", r.status, r.authors, r.pinbench)
             for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    line = lambda c: "  ".join(x.ljust(w) for x, w in zip(c, widths)).rstrip()  # noqa: E731
    out = [line(heads), line(["-" * w for w in widths])] + [line(c) for c in cells]
    notes = [f"  {r.check}: {r.note}" for r in rows if r.note]
    return "\n".join(out + (["", "notes:"] + notes if notes else []))


# ---------------------------------------------------------------------------------------------
# Importing the authors' code
# ---------------------------------------------------------------------------------------------

STUB_ROOTS = ("hydra", "omegaconf", "wandb")


class _StubModule(types.ModuleType):
    """Stands in for a package the authors import but these checks never use: any attribute is a
    placeholder class."""

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        placeholder = type(attr, (), {"__init__": lambda self, *a, **k: None, "__module__": self.__name__})
        setattr(self, attr, placeholder)
        return placeholder


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Last on sys.meta_path: a module under STUB_ROOTS that no real finder found (not installed)
    becomes a _StubModule; ``used`` records which."""

    def __init__(self):
        self.used: list[str] = []

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] not in STUB_ROOTS:
            return None
        return importlib.machinery.ModuleSpec(name, self, is_package=True)

    def create_module(self, spec):
        self.used.append(spec.name)
        return _StubModule(spec.name)

    def exec_module(self, module):
        pass


# Bare packages: their __init__ files import the training modules (trainers, replay buffer, every
# model), which these checks do not need. rlprompt.rewards' __init__ (one line) is run.
BARE_PACKAGES = ("rlprompt", "rlprompt.losses", "rlprompt.models", "rlprompt.modules", "rlprompt.utils")


def load_authors(root: Path, tag: str, stubs_used: set[str]) -> SimpleNamespace:
    """Import one repository's modules (``root`` = DIR/PIN or DIR/rl-prompt). Both name their
    package ``rlprompt``: sys.modules is restored afterwards, the loaded module objects keep their
    references to each other."""
    is_pkg = lambda k: k == "rlprompt" or k.startswith("rlprompt.")  # noqa: E731
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if is_pkg(k)}
    finder = _StubFinder()
    sys.meta_path.append(finder)
    sys.path.insert(0, str(root))
    try:
        for name in BARE_PACKAGES:
            pkg = types.ModuleType(name)
            pkg.__path__ = [str(root / name.replace(".", "/"))]
            pkg.__package__ = name
            sys.modules[name] = pkg
            if "." in name:
                parent, child = name.rsplit(".", 1)
                setattr(sys.modules[parent], child, pkg)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mods = SimpleNamespace(
                root=root, tag=tag,
                sql_losses=importlib.import_module("rlprompt.losses.sql_losses"),
                model_utils=importlib.import_module("rlprompt.models.model_utils"),
                lm_adaptor_model=importlib.import_module("rlprompt.models.lm_adaptor_model"),
                module_utils=importlib.import_module("rlprompt.modules.module_utils"),
            )
            if (root / "rlprompt/losses/sparse_ql_losses.py").is_file():
                mods.sparse_ql_losses = importlib.import_module("rlprompt.losses.sparse_ql_losses")
                mods.lm_filter_model = importlib.import_module("rlprompt.models.lm_filter_model")
            path = root / "examples/few-shot-classification/fsc_reward.py"
            spec = importlib.util.spec_from_file_location(f"_authors_{tag}_fsc_reward", path)
            mods.fsc_reward = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mods.fsc_reward)
    finally:
        sys.path.remove(str(root))
        sys.meta_path.remove(finder)
        for k in [k for k in sys.modules if is_pkg(k) or k in finder.used]:
            del sys.modules[k]
        sys.modules.update(saved)
    stubs_used.update(finder.used)
    return mods


class AuthorsBreakpoint(RuntimeError):
    pass


@contextlib.contextmanager
def authors_call():
    """Around every call into the authors' code: no gradients, their prints (sql_losses v2 prints Q,
    RLPrompt's reward prints examples) swallowed, and pdb.set_trace raising."""
    import pdb

    def _raise(*a, **k):
        raise AuthorsBreakpoint("the authors' code reached pdb.set_trace (an internal consistency check failed)")

    saved = pdb.set_trace
    pdb.set_trace = _raise
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        pdb.set_trace = saved


def git_commit(path: Path) -> str | None:
    """The checkout's commit, when ``path`` is a git checkout itself (not a folder inside another)."""
    if not (path / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


# ---------------------------------------------------------------------------------------------
# 1. Losses and values
# ---------------------------------------------------------------------------------------------


def check_losses(pin, rlp, seed: int) -> list[Row]:
    import torch

    from pinbench.methods.rl.objectives import mc_loss, pcl_loss, td_loss
    from pinbench.methods.rl.regularizers import Shannon, SparseTsallis, sparsemax_threshold

    g = torch.Generator().manual_seed(seed)
    B, L, V, K = 8, PROMPT_LENGTH, 600, 200
    q_online = torch.randn(B, L, V, generator=g) * 2
    q_target = q_online + 0.3 * torch.randn(B, L, V, generator=g)
    reward = torch.randn(B, generator=g) * 2
    lm_logits = torch.randn(B, L, V, generator=g)
    keep = lm_logits >= lm_logits.topk(K, dim=-1).values[..., -1:]  # PIN's filter: the LM's top-K
    actions = torch.multinomial(keep.float().view(-1, V), 1, generator=g).view(B, L)
    free = torch.multinomial(torch.ones(B * L, V), 1, generator=g).view(B, L)
    lengths = torch.full((B,), L)
    shannon, sparse = Shannon(), SparseTsallis()
    rows = []

    def both(name, authors, pinb, authors_loss, pinbench_loss, q, note=""):
        qa, qp = q.clone().requires_grad_(True), q.clone().requires_grad_(True)
        with authors_call():
            la = authors_loss(qa)
        la.backward()
        lp = pinbench_loss(qp)
        lp.backward()
        rows.append(row(f"1 {name} loss", authors, pinb, la.detach(), lp.detach(), ARITH, note))
        ga, gp = qa.grad, qp.grad
        rows.append(row(f"1 {name} dloss/dQ", authors, pinb, ga, gp, ARITH))

    # pcl: RLPrompt's default, no filter, on-policy sampled ids
    sql = rlp.sql_losses.sql_loss_with_sparse_rewards
    both("pcl", "rl-prompt rlprompt/losses/sql_losses.py:sql_loss_with_sparse_rewards('v2_v2r_v3_v3r')",
         "objectives.pcl_loss, Shannon.value",
         lambda q: sql("v2_v2r_v3_v3r", logits=q, logits_=q_target, actions=free, sampled_actions=None,
                       rewards=reward, sequence_length=lengths)[0],
         lambda q: pcl_loss(q.gather(-1, free[..., None]).squeeze(-1), shannon.value(q, 1.0),
                            shannon.value(q_target, 1.0), reward), q_online)

    # td: PIN's released few-shot command (algo=sql, loss_impl=v1); Q filtered to -inf as PIN's
    # lm_adaptor_model._mlp_forward does
    inf = torch.tensor(float("-inf"))
    q_inf, t_inf = torch.where(keep, q_online, inf), torch.where(keep, q_target, inf)
    sql = pin.sql_losses.sql_loss_with_sparse_rewards
    both("td", "PIN rlprompt/losses/sql_losses.py:sql_loss_with_sparse_rewards('v1')",
         "objectives.td_loss, Shannon.value",
         lambda q: sql("v1", logits=q, logits_=t_inf, actions=actions, sampled_actions=None, rewards=reward,
                       sequence_length=lengths)[0],
         lambda q: td_loss(q.gather(-1, actions[..., None]).squeeze(-1), None, shannon.value(t_inf, 1.0), reward),
         q_inf, "filtered Q = -inf on both sides (PIN's lm_adaptor_model); V_ = logsumexp of the filtered target Q")

    # mc: PIN's sparse path (algo=sparse-ql, loss_impl=v1); Q filtered to MIN_LOGIT_VALUE as
    # lm_filter_model._mlp_forward does, with its mask
    low = pin.lm_filter_model.MIN_LOGIT_VALUE
    q_low, t_low = torch.where(keep, q_online, torch.tensor(low)), torch.where(keep, q_target, torch.tensor(low))
    spql = pin.sparse_ql_losses.sparse_ql_loss_with_sparse_rewards
    both("mc", "PIN rlprompt/losses/sparse_ql_losses.py:sparse_ql_loss_with_sparse_rewards('v1')",
         "objectives.mc_loss",
         lambda q: spql("v1", logits=q, masks=keep, logits_=t_low, masks_=keep, actions=actions, rewards=reward,
                        sequence_length=lengths, gamma=1.0)[0],
         lambda q: mc_loss(q.gather(-1, actions[..., None]).squeeze(-1), None, None, reward), q_low,
         f"v1 = sparse_ql_loss_1; PIN's Q = {low:g} for filtered tokens, pinbench's -inf; gamma = 1")

    # the sparsemax value, support size and threshold, on the target Q (std 2) and a flatter one
    # (std 0.25: a support of ~10 tokens)
    op = pin.sparse_ql_losses.sparse_max_operator
    for name, filtered in (("filtered", True), ("unfiltered", False)):
        values, sizes, taus, supports = [], [], [], []
        for flat in (1.0, 0.125):
            q = q_target * flat
            qa = torch.where(keep, q, torch.tensor(low)) if filtered else q
            qp = torch.where(keep, q, inf) if filtered else q
            mask = keep if filtered else torch.ones_like(keep)
            with authors_call():
                v_a, m_a = op(qa, mask)
                tau_a = pin.lm_filter_model.sparse_max_normalized(qa, with_filter=filtered, top_k=K)
            tau_p, k_p = sparsemax_threshold(qp)
            values.append(row("", "", "", v_a, sparse.value(qp, 1.0), ARITH))
            sizes.append(row("", "", "", m_a, k_p.squeeze(-1).float(), 0.0))
            taus.append(row("", "", "", tau_a, tau_p.squeeze(-1), ARITH))
            supports.append(k_p)
        k = torch.cat([s.flatten() for s in supports])
        operator = "PIN rlprompt/losses/sparse_ql_losses.py:sparse_max_operator"
        rows.append(merged(values, f"1 spmax value, {name}", operator, "SparseTsallis.value",
                           f"Q std 2 and 0.25: support {int(k.min())}-{int(k.max())} tokens"))
        rows.append(merged(sizes, f"1 spmax support size, {name}", operator, "regularizers.sparsemax_threshold"))
        rows.append(merged(taus, f"1 sparsemax threshold, {name}",
                           "PIN rlprompt/models/lm_filter_model.py:sparse_max_normalized",
                           "regularizers.sparsemax_threshold"))
    return rows


# ---------------------------------------------------------------------------------------------
# 2. The few-shot reward
# ---------------------------------------------------------------------------------------------


class _TaskTokenizer:
    """The task tokenizer as the reward's forward uses it: only to join the prompt's tokens."""

    def convert_tokens_to_string(self, tokens):
        return "".join(tokens)


def authors_reward(mods, logits, labels, num_classes: int, mode: str):
    """Run the authors' PromptedClassificationReward.forward on per-prompt task-LM logits [P, E, Vt]
    (the verbalizers are token ids 0..C-1 of that small vocabulary)."""
    import torch

    cls = mods.fsc_reward.PromptedClassificationReward
    r = cls.__new__(cls)  # no task model loaded; _get_logits returns the logits fed here
    tok = _TaskTokenizer()
    r.tokenizer = r._tokenizer = tok  # PIN names it tokenizer, RLPrompt _tokenizer
    r.device = torch.device("cpu")
    r.task_lm, r.is_mask_lm = "roberta-large", True
    # PromptedClassificationRewardConfig's defaults (fsc_helpers.py), which the configs keep
    r.compute_zscore, r.incorrect_coeff, r.correct_coeff = True, 180.0, 200.0
    r.num_classes = num_classes
    r.verbalizers = [f"v{c}" for c in range(num_classes)]
    r.verbalizer_ids = list(range(num_classes))
    r.template = "{sentence_1} {prompt} <mask> ."
    r._counter = 0
    queue = iter(logits)

    def _get_logits(texts):
        out = next(queue)
        assert len(texts) == out.shape[0]
        return out

    r._get_logits = _get_logits
    texts = [f"input {i}" for i in range(logits.shape[1])]
    prompts = [[f"p{p}", "Ġa", "Ġb"] for p in range(logits.shape[0])]
    with authors_call():
        rewards, _ = r.forward(source_texts=texts, class_labels=labels.tolist(), output_tokens=prompts,
                               to_tensor=True, mode=mode)
    return rewards


def check_reward(pin, rlp, seed: int) -> list[Row]:
    import torch

    from pinbench.methods.rl.shaping import shape_rewards
    from pinbench.tasks.classification.rewards import gap_reward

    g = torch.Generator().manual_seed(seed + 1)
    rows = []
    for mods, repo, shaping, scale_ in ((pin, "PIN", (0.0, 1.0, 0.0, 1.0), 1.0),
                                        (rlp, "rl-prompt", (0.0, 1.0, 0.0, 5.0), 5.0)):
        raws, shapeds = [], []
        for classes in (2, 5):  # sst-2 and sst-5 shapes: 16 examples per class, 16 prompts
            P, E, Vt = BATCH, 16 * classes, 40
            labels = torch.arange(classes).repeat_interleave(16)
            logits = torch.randn(P, E, Vt, generator=g) * 1.5
            strength = torch.rand(P, 1, generator=g) * 4 - 1  # prompts from bad to good
            logits[torch.arange(P)[:, None], torch.arange(E)[None], labels[None]] += strength
            probs = torch.softmax(logits[..., :classes], -1)
            a_raw = authors_reward(mods, logits, labels, classes, "infer")
            a_z = authors_reward(mods, logits, labels, classes, "train")
            a_shaped = mods.module_utils.get_reward_shaping_func(*shaping)(a_z)
            p_raw = gap_reward(probs, labels)
            raws.append(row("", "", "", a_raw, p_raw, ARITH))
            shapeds.append(row("", "", "", a_shaped, shape_rewards(p_raw, scale=scale_), ARITH))
        file = "examples/few-shot-classification/fsc_reward.py:PromptedClassificationReward.forward"
        rows.append(merged(raws, f"2 gap reward ({repo})", f"{repo} {file} (mode=infer)",
                           "classification.rewards.gap_reward", "2 and 5 classes, 16 prompts x 16 examples per class"))
        rows.append(merged(shapeds, f"2 shaped reward {scale_:g}z ({repo})", f"{repo} {file} (mode=train)",
                           f"shaping.shape_rewards(scale={scale_:g})",
                           f"their z-score (np.std, eps 1e-4), then modules/module_utils.py:get_reward_shaping_func"
                           f"{shaping}"))
    # an exact tie between the label's probability and another class's
    logits = torch.zeros(1, 32, 40)  # verbalizer logits equal: p = (0.5, 0.5)
    labels = torch.arange(2).repeat_interleave(16)
    a_tie = authors_reward(pin, logits, labels, 2, "infer")
    p_tie = gap_reward(torch.softmax(logits[..., :2], -1), labels)
    rows.append(row("2 gap reward, exact tie", "PIN (and rl-prompt) fsc_reward.py:forward",
                    "classification.rewards.gap_reward", a_tie, p_tie, None,
                    f"authors {float(a_tie[0]):g} vs pinbench {float(p_tie[0]):g}: their "
                    "torch.where(class_probs == label_probs, -1, class_probs) also drops every other class whose "
                    "probability equals the label's, so an exact tie reads as gap p + 1 (200 x 1.5 = 300) instead "
                    "of 0. Only exact float ties (e.g. two verbalizers with one token id)"))
    return rows


# ---------------------------------------------------------------------------------------------
# Tiny OPT- and GPT-2-shaped LMs with a byte-level BPE tokenizer
# ---------------------------------------------------------------------------------------------


def synthetic_corpus(seed: int) -> list[str]:
    rng = random.Random(seed)
    pieces = ["ka", "to", "re", "mi", "sun", "the", "ing", "er", "an", "ol", "é", "ü", "na", "ï", "ve", "日", "本",
              "語", "st", "ch", "qu", "x", "z", "ph", "great", "movie", "bad", " "]
    words = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 4))).strip() or "a" for _ in range(400)]
    return [" ".join(rng.choice(words) for _ in range(12)) + rng.choice(".!?,") for _ in range(2000)]


def bpe_tokenizer(kind: str, seed: int):
    """A byte-level BPE tokenizer of 1,024 tokens. ``opt``: specials <s> <pad> </s> <unk> (ids 0-3
    as OPT's) and </s> put before every call, as OPT's tokenizer does; ``gpt2``: <|endoftext|>
    only, nothing added."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>"] if kind == "opt" else ["<|endoftext|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1024, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(synthetic_corpus(seed), trainer)
    if kind == "opt":
        tok.post_processor = processors.TemplateProcessing(single="</s> $A", pair="</s> $A </s> $B",
                                                           special_tokens=[("</s>", tok.token_to_id("</s>"))])
        return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="</s>", eos_token="</s>", pad_token="<pad>",
                                       unk_token="<unk>")
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>", unk_token="<|endoftext|>")


LOCAL_TOKENIZERS = {"opt": (("facebook/opt-125m",), "<pad>"), "gpt2": (("distilgpt2", "gpt2"), "<|endoftext|>")}


def local_tokenizer(kind: str):
    """(name, tokenizer) of the real one when it is in the local Hugging Face cache, loaded as the
    authors load it (their pad token); None otherwise. Nothing is downloaded."""
    from transformers import AutoTokenizer

    names, pad = LOCAL_TOKENIZERS[kind]
    for name in names:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return name, AutoTokenizer.from_pretrained(name, pad_token=pad, local_files_only=True)
        except Exception:  # noqa: BLE001 (not cached, or unreadable: use the synthetic one)
            continue
    return None


def tiny_lm(kind: str, seed: int, synthetic: bool = False):
    """(LoadedModel, what its tokenizer is): a random 2-layer LM of width 32 shaped as OPT or
    GPT-2, with the real tokenizer when cached locally (unless ``synthetic``), else bpe_tokenizer."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, OPTConfig, OPTForCausalLM

    from pinbench.models import LoadedModel

    found = None if synthetic else local_tokenizer(kind)
    if found:
        name, tok = found
        what = f"{name} (local cache)"
    else:
        tok = bpe_tokenizer(kind, seed)
        what = f"synthetic byte-level BPE, {len(tok)} tokens" + (", </s> before every call" if kind == "opt" else "")
    torch.manual_seed(seed)
    if kind == "opt":
        cfg = OPTConfig(vocab_size=len(tok), hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=2,
                        max_position_embeddings=64, word_embed_proj_dim=32, pad_token_id=tok.pad_token_id,
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, init_std=0.3)
        model = OPTForCausalLM(cfg)
    else:
        cfg = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=2, initializer_range=0.3,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
        model = GPT2LMHeadModel(cfg)
    return LoadedModel(f"tiny-{kind}", "causal", model.eval().requires_grad_(False), tok), what


def make_policy(lm, seed: int, **kw):
    """pinbench's QPolicy with its MLP drawn at a scale where Q is of order 1 (seeded)."""
    import torch

    from pinbench.methods.rl.policy import QPolicy

    policy = QPolicy(lm, hidden=64, prompt_length=PROMPT_LENGTH, **kw)
    g = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        for p in policy.mlp.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 / p.shape[-1] ** 0.5 if p.dim() == 2 else 0.1))
        policy.target.load_state_dict(policy.mlp.state_dict())
    return policy


class _Body:
    """The authors' call into the LM body, passed through: they give ``past_key_values=`` and read
    ``outputs.past_key_values``; transformers 5 names both ``cache``. Renames when needed and
    records the ids each call reads."""

    def __init__(self, body):
        self.body = body
        self.calls: list = []
        self.cache_kw = "cache" if "cache" in inspect.signature(body.forward).parameters else "past_key_values"

    def __call__(self, input_ids, past_key_values=None, use_cache=True, **kw):
        self.calls.append(input_ids.detach().clone())
        out = self.body(input_ids, **{self.cache_kw: past_key_values}, use_cache=use_cache, **kw)
        return SimpleNamespace(last_hidden_state=out.last_hidden_state, past_key_values=getattr(out, self.cache_kw))


def authors_policy(cls, module, lm, policy, *, fluent: bool, top_k, model_name: str | None, logit_bias):
    """One of the authors' policy classes, made with __new__: the attributes its methods use, the
    tiny LM in ``generator``, device "cpu", pinbench's MLP weights in their own MLP builder."""
    from torch import nn

    m = cls.__new__(cls)
    nn.Module.__init__(m)
    body = _Body(lm.model.model if hasattr(lm.model, "model") else lm.model.transformer)
    lm_model = SimpleNamespace(lm_head=lm.model.lm_head)
    setattr(lm_model, "model" if hasattr(lm.model, "model") else "transformer", body)
    m.generator = SimpleNamespace(model=lm_model, tokenizer=lm.tokenizer)
    m.tokenizer = lm.tokenizer
    if model_name is not None:
        m.model_name = model_name
    m.device = "cpu"  # their __init__ hard-codes 0 (the first GPU)
    m.logit_bias, m.fluent, m.fluent_top_k = logit_bias, fluent, top_k
    m.max_decoding_length, m.eos_token_id = PROMPT_LENGTH, None
    width = policy.head_weight.shape[1]
    hidden = policy.mlp.net[0].out_features
    m.mlp = module._build_one_layer_mlp(in_dim=width, out_dim=width, hidden_size=hidden)
    m.mlp.load_state_dict(policy.mlp.net.state_dict())
    m.target_mlp = copy.deepcopy(m.mlp)
    m.target_mlp.load_state_dict(policy.target.net.state_dict())
    m.requires_grad_(False)
    return m, body


@contextlib.contextmanager
def recording_multinomial(record: list):
    """pinbench's rollout samples with torch.multinomial(probs, 1, generator=...): record probs."""
    import torch

    real = torch.multinomial

    def multinomial(probs, *a, **k):
        record.append(probs.detach().clone())
        return real(probs, *a, **k)

    torch.multinomial = multinomial
    try:
        yield
    finally:
        torch.multinomial = real


@contextlib.contextmanager
def forced_categorical(tokens, record: list):
    """The authors sample with torch.distributions.categorical.Categorical(...).sample(): record the
    distribution's probs and return step t's token of ``tokens`` [B, L]."""
    import torch.distributions.categorical as cat

    real = cat.Categorical
    step = iter(range(tokens.shape[1]))

    class Forced(real):
        def sample(self, sample_shape=()):
            record.append(self.probs.detach().clone())
            return tokens[:, next(step)].clone()

    cat.Categorical = Forced
    try:
        yield
    finally:
        cat.Categorical = real


def sample_both(policy, regularizer, authors_model, *, source: str, sample_top_k, seed: int):
    """pinbench's rollout (sampling), then the authors' sample loop forced onto the same tokens.
    Returns (rollout, pinbench probs [B, L, V] normalised, authors' output, authors' probs)."""
    import torch

    mine: list = []
    with recording_multinomial(mine):
        rollout = policy.rollout(BATCH, regularizer, 1.0, torch.Generator().manual_seed(seed + 11))
    p = torch.stack(mine, 1)
    p = p / p.sum(-1, keepdim=True)  # the multinomial's normalisation (top-k truncation leaves sum < 1)
    theirs: list = []
    with forced_categorical(rollout.tokens, theirs), authors_call():
        out = authors_model.sample(source_texts=[source] * BATCH, top_k=sample_top_k, top_p=None,
                                   max_new_tokens=PROMPT_LENGTH, eos_token_id=None)
    assert torch.equal(out["sample_ids"], rollout.tokens)
    return rollout, p, out, torch.stack(theirs, 1)


# ---------------------------------------------------------------------------------------------
# 3. Sampling distributions
# ---------------------------------------------------------------------------------------------


def check_sampling(pin, rlp, lms, seed: int) -> list[Row]:
    import torch

    from pinbench.methods.rl.regularizers import Shannon, SparseTsallis

    opt, gpt2 = lms["opt"], lms["gpt2"]
    K, TOP = 400, 256  # the filter's k (10,000 of 50,272 in PIN) and the sampling truncation (256)
    rows = []
    filt = "PIN rlprompt/models/lm_filter_model.py"
    adaptor = "rlprompt/models/lm_adaptor_model.py"

    # PIN sparse path (preset pin): LMFilterModel.sample vs QPolicy.rollout(sparse_tsallis)
    policy = make_policy(opt, seed, top_k=K, policy_input="retokenize")
    theirs, _ = authors_policy(pin.lm_filter_model.LMFilterModel, pin.lm_filter_model, opt, policy, fluent=True,
                               top_k=K, model_name="facebook/opt-125m", logit_bias=False)
    rollout, p_mine, out, p_theirs = sample_both(policy, SparseTsallis(), theirs, source="</s>", sample_top_k=TOP,
                                                 seed=seed)
    support = (p_mine > 0).sum(-1).float()
    rows.append(row("3 sparsemax sampling probs (pin)", f"{filt}:LMFilterModel.sample (_get_normalized_prob)",
                    "QPolicy.rollout, SparseTsallis.policy", p_theirs, p_mine, LM,
                    f"{BATCH} prompts x {PROMPT_LENGTH} steps, vocab {policy.vocab_size}, filter k {K}; "
                    f"support {int(support.min())}-{int(support.max())} tokens"))
    rows.append(row("3 sparsemax support (pin)", f"{filt}:LMFilterModel.sample", "QPolicy.rollout",
                    (p_theirs > 0).sum(-1).float(), support, 0.0))
    rows.append(row("3 states while sampling (pin)", f"{filt}:LMFilterModel.sample (states)", "Rollout.hidden",
                    out["states"], rollout.hidden, LM))
    # the same states into both: Q, the filter mask, sparsemax
    e = rollout.hidden.reshape(-1, rollout.hidden.shape[-1])
    with authors_call():
        q_a, mask_a = theirs._mlp_forward(e)
        prob_a = theirs._get_normalized_prob(q_a, mask_a)
    thr = policy.filter_threshold(e)
    with torch.no_grad():
        q_p = policy.q_values(e, thr)
    kept = torch.isfinite(q_p)
    rows.append(row("3 filter mask, same states", f"{filt}:LMFilterModel._mlp_forward (mask)",
                    "QPolicy.filter_threshold, q_values", mask_a.float(), kept.float(), 0.0,
                    f"{int(kept.sum(-1).float().mean())} tokens kept per state"))
    rows.append(row("3 Q of kept tokens, same states", f"{filt}:LMFilterModel._mlp_forward",
                    "QPolicy.q_values", q_a[kept], q_p[kept], ARITH,
                    f"filtered tokens: authors {pin.lm_filter_model.MIN_LOGIT_VALUE:g}, pinbench -inf"))
    rows.append(row("3 sparsemax probs, same states", f"{filt}:_get_normalized_prob (sparse_max_normalized)",
                    "SparseTsallis.policy(q_values)", prob_a, SparseTsallis().policy(q_p, 1.0), ARITH))

    # PIN's released few-shot command (preset pin-released): softmax, filter, top-256 sampling
    policy = make_policy(opt, seed, top_k=K, sample_top_k=TOP, policy_input="retokenize")
    theirs, _ = authors_policy(pin.lm_adaptor_model.LMAdaptorModel, pin.lm_adaptor_model, opt, policy, fluent=True,
                               top_k=K, model_name="facebook/opt-125m", logit_bias=False)
    rollout, p_mine, out, p_theirs = sample_both(policy, Shannon(), theirs, source="</s>", sample_top_k=TOP, seed=seed)
    rows.append(row("3 softmax top-256 + filter probs (pin-released)",
                    f"PIN {adaptor}:LMAdaptorModel.sample (_top_k_logits)",
                    "QPolicy.rollout, Shannon.policy, sample_top_k", p_theirs, p_mine, LM,
                    f"support {int((p_mine > 0).sum(-1).min())}-{int((p_mine > 0).sum(-1).max())} tokens"))
    rows.append(row("3 states while sampling (pin-released)", f"PIN {adaptor}:LMAdaptorModel.sample (states)",
                    "Rollout.hidden", out["states"], rollout.hidden, LM))

    # RLPrompt (preset rlprompt): GPT-2-shaped, softmax, top-256, no filter
    policy = make_policy(gpt2, seed, sample_top_k=TOP, policy_input="retokenize")
    theirs, _ = authors_policy(rlp.lm_adaptor_model.LMAdaptorModel, rlp.lm_adaptor_model, gpt2, policy, fluent=False,
                               top_k=None, model_name=None, logit_bias=0.0)
    rollout, p_mine, out, p_theirs = sample_both(policy, Shannon(), theirs, source="<|endoftext|>", sample_top_k=TOP,
                                                 seed=seed)
    rows.append(row("3 softmax top-256 probs (rlprompt, GPT-2)", f"rl-prompt {adaptor}:LMAdaptorModel.sample",
                    "QPolicy.rollout, Shannon.policy, sample_top_k", p_theirs, p_mine, LM))
    return rows


# ---------------------------------------------------------------------------------------------
# 4. The re-tokenised policy input
# ---------------------------------------------------------------------------------------------


def check_policy_input(pin, rlp, lms, seed: int) -> list[Row]:
    import torch

    from pinbench.methods.rl.regularizers import Shannon, SparseTsallis

    rows = []
    K = 400
    cases = (
        # PIN's sparse path (preset pin) on OPT; RLPrompt (preset rlprompt) on GPT-2
        ("opt", pin.lm_filter_model.LMFilterModel, pin.lm_filter_model, "PIN rlprompt/models/lm_filter_model.py",
         dict(top_k=K), dict(fluent=True, top_k=K, model_name="facebook/opt-125m", logit_bias=False),
         "</s>", SparseTsallis()),
        ("gpt2", rlp.lm_adaptor_model.LMAdaptorModel, rlp.lm_adaptor_model,
         "rl-prompt rlprompt/models/lm_adaptor_model.py", dict(sample_top_k=256),
         dict(fluent=False, top_k=None, model_name=None, logit_bias=0.0), "<|endoftext|>", Shannon()),
    )
    for kind, cls, module, file, policy_kw, authors_kw, source, reg in cases:
        lm = lms[kind]
        label = "OPT" if kind == "opt" else "GPT-2"
        policy = make_policy(lm, seed + 1, policy_input="retokenize", **policy_kw)
        rollout = policy.rollout(BATCH, reg, 1.0, torch.Generator().manual_seed(seed + 13))
        theirs, body = authors_policy(cls, module, lm, policy, **authors_kw)
        states: list = []
        forward = theirs._mlp_forward

        def recording_forward(state, *a, _forward=forward, **k):
            states.append(state.detach().clone())
            return _forward(state, *a, **k)

        theirs._mlp_forward = recording_forward
        with authors_call():
            out = theirs.teacher_forcing(source_texts=[source] * BATCH, sample_ids=rollout.tokens)
        e_theirs = torch.stack(states, 1)
        q_theirs = out["sample_logits"]
        # what their LM read: the source, then one tokenizer call per step (the last step's is never read)
        read = torch.cat(body.calls[:PROMPT_LENGTH], dim=1)
        ctx = rollout.context
        same_shape = read.shape == ctx.shape
        rows.append(Row(f"4 {label} ids read", f"{file}:_get_generation_cache", "Rollout.context",
                        float((read != ctx).sum()) if same_shape else float("inf"), 0.0,
                        f"count of differing ids; {ctx.shape[1]} ids per row" if same_shape else
                        f"widths differ: authors {tuple(read.shape)}, pinbench {tuple(ctx.shape)}"))
        rows.append(row(f"4 {label} states vs sampling", f"{file}:teacher_forcing (states)",
                        "QPolicy.rollout (retokenize) Rollout.hidden", e_theirs, rollout.hidden, LM))
        rebuilt = policy.hidden_states(rollout.tokens, rollout.context, rollout.positions)
        rows.append(row(f"4 {label} states vs rebuilt", f"{file}:teacher_forcing (states)",
                        "QPolicy.hidden_states(tokens, context, positions)", e_theirs, rebuilt, LM))
        with torch.no_grad():
            q_mine = policy.q_values(rebuilt, policy.filter_threshold(rebuilt) if policy.top_k else None)
        kept = torch.isfinite(q_mine)
        rows.append(row(f"4 {label} Q logits", f"{file}:teacher_forcing (sample_logits)", "QPolicy.q_values",
                        q_theirs[kept], q_mine[kept], LM,
                        "kept tokens (masks: next row)" if policy.top_k else "no filter (RLPrompt)"))
        if policy.top_k:
            mask_theirs = torch.stack(out["sample_masks"], 1).bool()
            rows.append(row(f"4 {label} filter mask", f"{file}:teacher_forcing (sample_masks)",
                            "QPolicy.filter_threshold", mask_theirs.float(), kept.float(), 0.0))
        # what policy_input="ids" (a clean prefix) changes
        ids_policy = make_policy(lm, seed + 1, policy_input="ids", **policy_kw)
        clean = ids_policy.hidden_states(rollout.tokens)
        with torch.no_grad():
            q_clean = ids_policy.q_values(clean, ids_policy.filter_threshold(clean) if ids_policy.top_k else None)
        both = kept & torch.isfinite(q_clean)
        reads = "</s> </s>, then </s> before every token" if kind == "opt" else "the text of each token re-tokenised"
        rows.append(row(f"4 {label} states under policy_input=ids", f"{file}:teacher_forcing (states)",
                        "QPolicy.hidden_states (ids)", e_theirs, clean, None,
                        f"ids reads a clean prefix (start token, then the token ids); the authors' LM reads {reads}"))
        rows.append(row(f"4 {label} Q under policy_input=ids", f"{file}:teacher_forcing (sample_logits)",
                        "QPolicy.q_values (ids)", q_theirs[both], q_clean[both], None))
        if kind == "gpt2":
            ids = rollout.tokens[:, :-1].flatten().tolist()
            text = lm.tokenizer.convert_tokens_to_string
            lost = sum(lm.tokenizer(text([t]))["input_ids"] != [i]
                       for i, t in zip(ids, lm.tokenizer.convert_ids_to_tokens(ids)))
            rows[-2].note += f": here {lost} of the {len(ids)} tokens read do not survive decode + encode"
    return rows


# ---------------------------------------------------------------------------------------------


def run(authors: Path, seed: int = 0, synthetic_tokenizers: bool = False) -> dict:
    """Every check; returns {"rows": [...], "stubs": [...], ...}."""
    import torch
    import transformers

    transformers.utils.logging.set_verbosity_error()
    torch.manual_seed(seed)
    stubs: set[str] = set()
    pin = load_authors(authors / "PIN", "pin", stubs)
    rlp = load_authors(authors / "rl-prompt", "rlprompt", stubs)
    built = {kind: tiny_lm(kind, seed, synthetic_tokenizers) for kind in ("opt", "gpt2")}
    lms = {kind: lm for kind, (lm, _) in built.items()}
    rows = []
    for number, name, check, args in ((1, "losses", check_losses, (pin, rlp, seed)),
                                      (2, "reward", check_reward, (pin, rlp, seed)),
                                      (3, "sampling", check_sampling, (pin, rlp, lms, seed)),
                                      (4, "policy input", check_policy_input, (pin, rlp, lms, seed))):
        try:
            rows += check(*args)
        except Exception as exc:  # noqa: BLE001 (one broken check is a failed row; the others still run)
            rows.append(Row(f"{number} {name}: error", "", "", float("inf"), 0.0,
                            f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]))
    return {
        "authors": {repo: {"path": str(authors / repo), "commit": git_commit(authors / repo)} for repo in REPOS},
        "seed": seed,
        "stubs": sorted(stubs),
        "tokenizers": {kind: what for kind, (_, what) in built.items()},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "rows": [dict(asdict(r), diff=r.diff if math.isfinite(r.diff) else str(r.diff), status=r.status)
                 for r in rows],
        "passed": all(r.status != "FAIL" for r in rows),
        "_rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--authors", required=True, type=Path,
                    help="a directory holding PIN/ (Youseob/PIN) and rl-prompt/ (mingkaid/rl-prompt)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--synthetic-tokenizers", action="store_true",
                    help="use the synthetic BPE tokenizers even when OPT's / GPT-2's are cached locally")
    args = ap.parse_args(argv)
    missing = missing_parts(args.authors)
    if missing:
        print(missing_message(args.authors, missing), file=sys.stderr)
        return 2
    result = run(args.authors, args.seed, args.synthetic_tokenizers)
    rows = result.pop("_rows")
    commits = ", ".join(f"{repo} {info['commit'] or '(not a git checkout)'}"
                        for repo, info in result["authors"].items())
    print(f"authors' code: {args.authors} ({commits}); stubbed imports: {', '.join(result['stubs']) or 'none'}; "
          f"torch {result['versions']['torch']}, transformers {result['versions']['transformers']}; seed {args.seed}")
    print("tiny LMs (2 layers, width 32, random): "
          + "; ".join(f"{kind}-shaped with {what}" for kind, what in result["tokenizers"].items()))
    print(format_table(rows))
    failed = [r.check for r in rows if r.status == "FAIL"]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} rows pass or are info"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
